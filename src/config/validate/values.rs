//! Reading single values: required and optional text, bounded integers, durations.

use std::time::Duration;

use crate::config::duration::{describe, parse_duration};
use crate::config::error::Issues;
use crate::config::model::{DurationValue, Int, Text};

/// A required text value: absent, null and blank are all reported.
pub(super) fn required_text(
    value: Option<&Text>,
    path: &str,
    issues: &mut Issues,
) -> Option<String> {
    match value {
        None => {
            issues.push(path, "required key is missing");
            None
        }
        Some(Text(v)) if v.trim().is_empty() => {
            issues.push(path, "must not be empty");
            None
        }
        Some(Text(v)) => Some(v.trim().to_string()),
    }
}

/// An optional text value; blank counts as absent (an empty `${VAR}` means "not set").
pub(super) fn optional_text(value: Option<&Text>) -> Option<String> {
    value
        .map(|Text(v)| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// An integer in `min..=max`, or `default` when absent.
pub(super) fn int<T>(
    value: Option<Int>,
    path: &str,
    default: T,
    min: u64,
    max: u64,
    issues: &mut Issues,
) -> T
where
    T: TryFrom<u64> + Copy,
{
    let Some(Int(v)) = value else {
        return default;
    };
    if v < i128::from(min) || v > i128::from(max) {
        issues.push(
            path,
            format!("{v} is out of range; expected a whole number from {min} to {max}"),
        );
        return default;
    }
    u64::try_from(v)
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .unwrap_or(default)
}

/// A duration of at least `min` (and at most `max`), or `default` when absent.
pub(super) fn duration(
    value: Option<&DurationValue>,
    path: &str,
    default: Duration,
    min: Duration,
    max: Option<Duration>,
    issues: &mut Issues,
) -> Duration {
    let parsed = match value {
        None => return default,
        Some(DurationValue::Seconds(s)) => match u64::try_from(*s) {
            Ok(s) => Ok(Duration::from_secs(s)),
            Err(_) => Err(format!(
                "{s} is negative or too large; expected seconds >= 0"
            )),
        },
        Some(DurationValue::Text(text)) => {
            parse_duration(text).map_err(|expected| format!("{text:?}: {expected}"))
        }
    };
    match parsed {
        Err(message) => {
            issues.push(path, message);
            default
        }
        Ok(d) if d < min => {
            issues.push(
                path,
                format!(
                    "{} is too short; expected at least {}",
                    describe(d),
                    describe(min)
                ),
            );
            default
        }
        Ok(d) if max.is_some_and(|max| d > max) => {
            issues.push(
                path,
                format!(
                    "{} is too long; expected at most {}",
                    describe(d),
                    describe(max.unwrap_or(d))
                ),
            );
            default
        }
        Ok(d) => d,
    }
}
