//! Logging of the command line: text or JSON lines on stderr at the configured level.
//!
//! The Lambda functions set up their own logging ([`crate::lambda::logging`], which honours
//! Lambda's log settings); both keep the Delta libraries as quiet as [`QUIET_DEPENDENCIES`].

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogLevel};

/// The Delta libraries log every snapshot load at INFO and a missing table (the normal
/// state before a stream's first commit) at ERROR; the lake reports real failures itself.
pub(crate) const QUIET_DEPENDENCIES: &str =
    "buoyant_kernel=off,deltalake_core=warn,deltalake_aws=warn";

/// Installs the global subscriber once. `RUST_LOG` (or Lambda's `AWS_LAMBDA_LOG_LEVEL`)
/// overrides the configured level, so operators can turn up logging without a redeploy.
pub fn init(level: LogLevel, format: LogFormat) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|l| l.to_lowercase())
        })
        .and_then(|directive| EnvFilter::try_new(directive).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("{},{QUIET_DEPENDENCIES}", level.as_filter())));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_on_stderr())
        .with_writer(std::io::stderr);
    // A second init (tests, warm Lambda containers) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Colour only for a person at a terminal: never in a pipe, a file or a CI log, and never
/// when `NO_COLOR` is set (<https://no-color.org>).
fn colour_on_stderr() -> bool {
    colour_allowed(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

fn colour_allowed(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_at_a_terminal_without_no_color() {
        assert!(colour_allowed(true, None));
        assert!(!colour_allowed(false, None));
        assert!(!colour_allowed(true, Some(std::ffi::OsStr::new("1"))));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(colour_allowed(true, Some(std::ffi::OsStr::new(""))));
    }
}
