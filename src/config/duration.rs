//! Durations written as whole seconds (`900`) or with units (`"15m"`, `"1h30m"`).
//!
//! The Python extractor-utils accept both forms for its intervals, so existing files use both.

use std::time::Duration;

/// Parses `"900"`, `"900s"`, `"15m"`, `"1h"`, `"2d"`, `"500ms"` and sums like `"1h 30m"`.
///
/// The error text says what was expected; the caller adds the key path and the value.
/// The command line's `--time-budget` reads the same syntax.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected whole seconds or a number with a unit \
                            (ms, s, m, h, d), e.g. \"900\", \"900s\", \"15m\", \"1h30m\"";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty duration; {EXPECTED}"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("number is too large; {EXPECTED}"));
    }

    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(EXPECTED.to_string());
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("number is too large; {EXPECTED}"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let part = match unit {
            "ms" => Some(Duration::from_millis(number)),
            "s" => Some(Duration::from_secs(number)),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "h" => number.checked_mul(3_600).map(Duration::from_secs),
            "d" => number.checked_mul(86_400).map(Duration::from_secs),
            "" => return Err(format!("a number without unit inside a sum; {EXPECTED}")),
            other => return Err(format!("unknown unit `{other}`; {EXPECTED}")),
        };
        total = part
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("duration is too large; {EXPECTED}"))?;
    }
    Ok(total)
}

/// Renders a duration the way users write it, for messages.
pub(crate) fn describe(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_millis() != 0 {
        format!("{}ms", duration.as_millis())
    } else if secs != 0 && secs.is_multiple_of(3_600) {
        format!("{}h", secs / 3_600)
    } else if secs != 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_seconds_and_units() {
        assert_eq!(parse_duration("900"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("900s"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("1h30m15s"), Ok(Duration::from_secs(5_415)));
        assert_eq!(parse_duration("10 s"), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "abc",
            "15x",
            "m15",
            "1.5h",
            "-5s",
            "15 m 3",
            "99999999999999999999",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("expected whole seconds"), "{bad}: {err}");
        }
        assert!(
            parse_duration("15x")
                .unwrap_err()
                .contains("unknown unit `x`")
        );
        assert!(
            parse_duration("999999999999999999d")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn describes_round_units() {
        assert_eq!(describe(Duration::from_secs(900)), "15m");
        assert_eq!(describe(Duration::from_secs(7_200)), "2h");
        assert_eq!(describe(Duration::from_secs(61)), "61s");
        assert_eq!(describe(Duration::from_millis(1_500)), "1500ms");
        assert_eq!(describe(Duration::ZERO), "0s");
    }
}
