//! Parsing and formatting of CDF timestamps and dates.
//!
//! Timestamps are stored in the canonical read form `YYYY-MM-DDTHH:MM:SS.fff+00:00`, whose
//! lexical order equals time order, so filters can compare stored strings directly.

/// Days since 1970-01-01 for a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0i64, |acc, c| {
        acc.checked_mul(10)?.checked_add(i64::from(c - b'0'))
    })
}

/// Parses `YYYY-MM-DD` (year 0001–9999) into days since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|±HH:MM|±HHMM|±HH]` into epoch milliseconds.
/// A missing offset means UTC. Digits past milliseconds are truncated.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || (b[10] != b'T' && b[10] != b't' && b[10] != b' ') {
        return None;
    }
    let days = parse_date(s.get(0..10)?)?;
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hh, mm, ss) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if let Some((&b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let mut ms_digits = [b'0'; 3];
        for (i, c) in frac[..n.min(3)].iter().enumerate() {
            ms_digits[i] = *c;
        }
        millis = digits(&ms_digits)?;
        rest = &frac[n..];
    }
    let offset_min = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (oh, om) = match tail {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let total = oh * 60 + om;
            if *sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.fff+00:00`.
pub fn format_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (mi, rem) = (rem / 60_000, rem % 60_000);
    let (s, f) = (rem / 1000, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:03}+00:00")
}

/// `0001-01-01T00:00:00.000Z`, the earliest instant CDF stores.
pub const MIN_TIMESTAMP_MS: i64 = -62_135_596_800_000;
/// `9999-12-31T23:59:59.999Z`, the latest instant CDF stores.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// Normalizes a timestamp string to the canonical read form. CDF stores years 0001–9999
/// after conversion to UTC: an offset that pushes a year-1 or year-9999 value outside
/// (`9999-12-31T23:30:00-01:00`) is refused, never served with a 5-digit or zero year.
pub fn normalize_timestamp(s: &str) -> Option<String> {
    let ms = parse_timestamp(s)?;
    (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS)
        .contains(&ms)
        .then(|| format_timestamp(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            normalize_timestamp("2019-05-01T10:30:00.5+02:00").as_deref(),
            Some("2019-05-01T08:30:00.500+00:00")
        );
        assert_eq!(
            normalize_timestamp("2024-09-03T09:36:01.170123456-0130").as_deref(),
            Some("2024-09-03T11:06:01.170+00:00")
        );
        assert_eq!(
            normalize_timestamp("2024-02-29T00:00:00+05").as_deref(),
            Some("2024-02-28T19:00:00.000+00:00")
        );
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999+00:00");
        assert_eq!(
            normalize_timestamp("0001-01-01T00:00:00Z").as_deref(),
            Some("0001-01-01T00:00:00.000+00:00")
        );
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-01-01",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:00:00.Z",
            "2023-01-01T00:00:00+1",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:30:00-01:00",
            "0001-01-01T00:30:00+01:00",
            "garbage",
        ] {
            assert_eq!(normalize_timestamp(bad), None, "{bad}");
        }
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(
            normalize_timestamp("9999-12-31T23:59:59.999Z").as_deref(),
            Some("9999-12-31T23:59:59.999+00:00")
        );
        assert_eq!(
            normalize_timestamp("0001-01-01T00:30:00+00:30").as_deref(),
            Some("0001-01-01T00:00:00.000+00:00")
        );
        assert!(parse_date("2024-02-29").is_some());
    }
}
