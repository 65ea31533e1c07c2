//! `--time-budget` and `--connect-timeout`: the configuration's duration syntax on the
//! command line (`90s`, `5m`, `1h30m`, or plain seconds).

use std::time::Duration;

use cdf_s3_replicator::config::parse_duration;

/// Parses a duration as the configuration file writes one. `0` is accepted as before (a
/// budget already spent: the fan-out passes a unit the seconds its run has left).
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_configuration_syntax_and_plain_seconds() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert!(parse("5 minutes").unwrap_err().contains("unknown unit"));
        assert!(parse("-5").unwrap_err().contains("expected whole seconds"));
    }
}
