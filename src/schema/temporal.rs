//! CDF timestamp and date text, converted exactly to and from Arrow's integer encodings.
//!
//! CDF sends timestamps as RFC 3339 text whose fraction and offset vary between API
//! versions and SDKs, and dates as `YYYY-MM-DD`. Replication must not drift by a rounding
//! step or a time-zone hour, so the conversion is integer arithmetic on the calendar
//! (proleptic Gregorian, days counted from 1970-01-01) instead of a date library: a few
//! dozen lines that are easy to verify at the year 0001 and 9999 edges.

use std::fmt::Write as _;

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Why a timestamp or date text was rejected. Static text keeps the hot path free of
/// allocations; the caller adds the offending value and the property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub(crate) struct TemporalError {
    pub(crate) reason: &'static str,
}

const fn invalid(reason: &'static str) -> TemporalError {
    TemporalError { reason }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.f…](Z|±HH:MM|±HHMM|±HH)` into microseconds since the epoch
/// (UTC).
///
/// Lenient where CDF and its SDKs differ: 0–9 fraction digits, `Z`/`z` or any offset form,
/// and `T`, `t` or a space between date and time. Digits beyond microseconds are truncated,
/// since the column holds microseconds. Strict where a lenient reading would silently
/// change the instant: every field is range-checked, the day must exist in its month, the
/// year must be 0001–9999 and the offset is required.
pub(crate) fn parse_timestamp_micros(text: &str) -> Result<i64, TemporalError> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 {
        return Err(invalid("too short for YYYY-MM-DDTHH:MM:SS"));
    }
    let days = parse_date_bytes(&bytes[..10])?;
    if !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err(invalid("expected `T` between date and time"));
    }
    let hour = two_digits(bytes, 11).ok_or(invalid("hour is not two digits"))?;
    let minute = colon_two_digits(bytes, 13).ok_or(invalid("expected `:MM` after the hour"))?;
    let second = colon_two_digits(bytes, 16).ok_or(invalid("expected `:SS` after the minute"))?;
    if hour > 23 {
        return Err(invalid("hour out of range 00-23"));
    }
    if minute > 59 {
        return Err(invalid("minute out of range 00-59"));
    }
    if second > 59 {
        return Err(invalid("second out of range 00-59"));
    }

    let mut pos = 19;
    let mut fraction_micros: i64 = 0;
    if bytes.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            let digit = i64::from(bytes[pos] - b'0');
            let place = pos - start;
            if place < 6 {
                fraction_micros += digit * 10_i64.pow(5 - place as u32);
            }
            pos += 1;
        }
        match pos - start {
            0 => return Err(invalid("`.` must be followed by fraction digits")),
            1..=9 => {}
            _ => return Err(invalid("more than 9 fraction digits")),
        }
    }

    let offset_seconds = parse_offset(&bytes[pos..])?;
    let seconds = i64::from(days) * SECONDS_PER_DAY
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second)
        - offset_seconds;
    Ok(seconds * MICROS_PER_SECOND + fraction_micros)
}

/// Parses `YYYY-MM-DD` (year 0001–9999) into days since 1970-01-01.
pub(crate) fn parse_date_days(text: &str) -> Result<i32, TemporalError> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 {
        return Err(invalid("expected exactly YYYY-MM-DD"));
    }
    parse_date_bytes(bytes)
}

/// Formats microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
///
/// Years outside 0000–9999 (which CDF cannot produce) get the ISO 8601 expanded form with a
/// sign, so that any value still round-trips.
pub(crate) fn format_timestamp_micros(micros: i64, out: &mut String) {
    let seconds = micros.div_euclid(MICROS_PER_SECOND);
    let fraction = micros.rem_euclid(MICROS_PER_SECOND);
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    write_civil_date(days, out);
    let _ = write!(
        out,
        "T{:02}:{:02}:{:02}.{:06}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        fraction
    );
}

/// Formats days since the epoch as `YYYY-MM-DD`.
pub(crate) fn format_date_days(days: i32, out: &mut String) {
    write_civil_date(i64::from(days), out);
}

fn write_civil_date(days: i64, out: &mut String) {
    let (year, month, day) = civil_from_days(days);
    let _ = if (0..=9999).contains(&year) {
        write!(out, "{year:04}-{month:02}-{day:02}")
    } else {
        write!(out, "{year:+05}-{month:02}-{day:02}")
    };
}

fn parse_date_bytes(bytes: &[u8]) -> Result<i32, TemporalError> {
    let year = four_digits(bytes).ok_or(invalid("year is not four digits"))?;
    let month = (bytes[4] == b'-')
        .then(|| two_digits(bytes, 5))
        .flatten()
        .ok_or(invalid("expected `-MM` after the year"))?;
    let day = (bytes[7] == b'-')
        .then(|| two_digits(bytes, 8))
        .flatten()
        .ok_or(invalid("expected `-DD` after the month"))?;
    if year == 0 {
        return Err(invalid("year out of range 0001-9999"));
    }
    if !(1..=12).contains(&month) {
        return Err(invalid("month out of range 01-12"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(invalid("day does not exist in that month"));
    }
    // Years 1..=9999 span about ±2.9 million days, well inside i32.
    Ok(days_from_civil(i64::from(year), month, day) as i32)
}

/// `Z`, `z`, `±HH:MM`, `±HHMM` or `±HH`, as seconds east of UTC.
fn parse_offset(bytes: &[u8]) -> Result<i64, TemporalError> {
    let (sign, rest) = match bytes.split_first() {
        Some((b'Z' | b'z', [])) => return Ok(0),
        Some((b'+', rest)) => (1, rest),
        Some((b'-', rest)) => (-1, rest),
        Some(_) => return Err(invalid("expected `Z` or a `±HH:MM` offset after the time")),
        None => return Err(invalid("missing time-zone offset (`Z` or `±HH:MM`)")),
    };
    let (hours, minutes) = match rest.len() {
        2 => (two_digits(rest, 0), Some(0)),
        4 => (two_digits(rest, 0), two_digits(rest, 2)),
        5 if rest[2] == b':' => (two_digits(rest, 0), two_digits(rest, 3)),
        _ => (None, None),
    };
    match (hours, minutes) {
        (Some(hours), Some(minutes)) if hours <= 23 && minutes <= 59 => {
            Ok(sign * (i64::from(hours) * 3600 + i64::from(minutes) * 60))
        }
        (Some(_), Some(_)) => Err(invalid("offset out of range (max ±23:59)")),
        _ => Err(invalid("malformed offset; expected ±HH:MM, ±HHMM or ±HH")),
    }
}

fn digit(bytes: &[u8], at: usize) -> Option<u32> {
    let byte = *bytes.get(at)?;
    byte.is_ascii_digit().then(|| u32::from(byte - b'0'))
}

fn two_digits(bytes: &[u8], at: usize) -> Option<u32> {
    Some(digit(bytes, at)? * 10 + digit(bytes, at + 1)?)
}

fn colon_two_digits(bytes: &[u8], at: usize) -> Option<u32> {
    (bytes.get(at) == Some(&b':')).then(|| two_digits(bytes, at + 1))?
}

fn four_digits(bytes: &[u8]) -> Option<u32> {
    Some(two_digits(bytes, 0)? * 100 + two_digits(bytes, 2)?)
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: i64 = 1_556_699_400 * MICROS_PER_SECOND; // 2019-05-01T08:30:00Z

    fn ts(text: &str) -> i64 {
        parse_timestamp_micros(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn formatted(micros: i64) -> String {
        let mut out = String::new();
        format_timestamp_micros(micros, &mut out);
        out
    }

    #[test]
    fn fraction_digits_zero_to_nine() {
        assert_eq!(ts("2019-05-01T08:30:00Z"), BASE);
        assert_eq!(ts("2019-05-01T08:30:00.1Z"), BASE + 100_000);
        assert_eq!(ts("2019-05-01T08:30:00.17+00:00"), BASE + 170_000);
        assert_eq!(ts("2019-05-01T08:30:00.123Z"), BASE + 123_000);
        assert_eq!(ts("2019-05-01T08:30:00.123456Z"), BASE + 123_456);
        // Nanoseconds are truncated to the column's microseconds.
        assert_eq!(ts("2019-05-01T08:30:00.123456789Z"), BASE + 123_456);
        assert!(parse_timestamp_micros("2019-05-01T08:30:00.1234567890Z").is_err());
        assert!(parse_timestamp_micros("2019-05-01T08:30:00.Z").is_err());
    }

    #[test]
    fn every_offset_form_gives_the_same_instant() {
        assert_eq!(ts("2019-05-01T08:30:00.000+00:00"), BASE);
        assert_eq!(ts("2019-05-01T14:00:00+05:30"), BASE);
        assert_eq!(ts("2019-05-01T00:30:00-0800"), BASE);
        assert_eq!(ts("2019-05-01T09:30:00+01"), BASE);
        assert_eq!(ts("2019-05-01t08:30:00z"), BASE);
        assert_eq!(ts("2019-05-01 08:30:00Z"), BASE);
        assert_eq!(ts("2019-05-01T08:30:00-00:00"), BASE);
    }

    #[test]
    fn malformed_timestamps_say_why() {
        for (text, reason) in [
            ("2019-05-01T08:30:00", "missing time-zone offset"),
            ("2019-05-01T24:00:00Z", "hour out of range"),
            ("2019-05-01T08:60:00Z", "minute out of range"),
            ("2019-05-01T08:30:60Z", "second out of range"),
            ("2019-02-29T08:30:00Z", "day does not exist"),
            ("0000-01-01T00:00:00Z", "year out of range"),
            ("2019-05-01T08:30:00+24:00", "offset out of range"),
            ("2019-05-01T08:30:00+5:30", "malformed offset"),
            ("2019-05-01X08:30:00Z", "expected `T`"),
            ("2019/05/01T08:30:00Z", "expected `-MM`"),
            ("2019-05-01T08:30:00Zjunk", "expected `Z` or a"),
            ("short", "too short"),
        ] {
            let err = parse_timestamp_micros(text).unwrap_err();
            assert!(err.reason.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn timestamps_at_the_year_edges() {
        let first = ts("0001-01-01T00:00:00Z");
        assert_eq!(first, -62_135_596_800 * MICROS_PER_SECOND);
        assert_eq!(formatted(first), "0001-01-01T00:00:00.000000Z");
        let last = ts("9999-12-31T23:59:59.999999Z");
        assert_eq!(last, 253_402_300_799_999_999);
        assert_eq!(formatted(last), "9999-12-31T23:59:59.999999Z");
        // An offset may move the instant just outside 0001-9999; it is still exact.
        assert_eq!(
            ts("0001-01-01T00:00:00+01:00"),
            first - 3_600 * MICROS_PER_SECOND
        );
    }

    #[test]
    fn formatting_round_trips_and_handles_pre_epoch_fractions() {
        assert_eq!(formatted(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(formatted(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(formatted(BASE + 170_000), "2019-05-01T08:30:00.170000Z");
        for micros in [
            -62_135_596_800_000_000,
            -1,
            0,
            1,
            BASE,
            253_402_300_799_999_999,
        ] {
            assert_eq!(ts(&formatted(micros)), micros);
        }
    }

    #[test]
    fn dates_at_the_edges() {
        assert_eq!(parse_date_days("1970-01-01"), Ok(0));
        assert_eq!(parse_date_days("1969-12-31"), Ok(-1));
        assert_eq!(parse_date_days("2024-03-15"), Ok(19_797));
        assert_eq!(parse_date_days("0001-01-01"), Ok(-719_162));
        assert_eq!(parse_date_days("9999-12-31"), Ok(2_932_896));
        assert_eq!(parse_date_days("2000-02-29"), Ok(11_016));
        assert!(parse_date_days("1900-02-29").is_err());
        assert!(parse_date_days("2024-13-01").is_err());
        assert!(parse_date_days("2024-03-15T00:00:00Z").is_err());
        assert!(parse_date_days("0000-12-31").is_err());
        let mut out = String::new();
        format_date_days(-719_162, &mut out);
        out.push(' ');
        format_date_days(2_932_896, &mut out);
        assert_eq!(out, "0001-01-01 9999-12-31");
    }

    #[test]
    fn civil_conversion_is_a_bijection_over_the_supported_range() {
        let mut previous = None;
        for days in -719_162..=2_932_896_i64 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
            assert!(day >= 1 && day <= days_in_month(year as u32, month));
            if let Some((py, pm, pd)) = previous {
                assert!((year, month, day) > (py, pm, pd));
            }
            previous = Some((year, month, day));
        }
    }
}
