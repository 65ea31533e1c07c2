//! Logging of the Lambda functions: JSON lines by default, Lambda's log settings honoured.
//!
//! - Format: `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`, set by the function's logging
//!   configuration); JSON when unset. JSON lines carry `level`, `timestamp`, `message` and the
//!   event's fields at the top level, which is what Lambda's log-level filtering reads.
//! - Level: `RUST_LOG` (a full filter directive) wins, then `CDF_S3_LOG_LEVEL`, then
//!   `AWS_LAMBDA_LOG_LEVEL`; with none, the configuration's `logger.console.level` applies from
//!   the invocation that loaded it on.
//! - Metrics never depend on the level. The EMF lines ([`super::metrics`]) carry no `level`,
//!   so Lambda's own filter (`ApplicationLogLevel`, seen here as `AWS_LAMBDA_LOG_LEVEL`) counts
//!   them as INFO and drops them at WARN or ERROR. The template therefore leaves Lambda's
//!   filter at TRACE and hands its `LogLevel` to this filter as `CDF_S3_LOG_LEVEL`, which
//!   applies to the log events only; a cold start with Lambda's filter above INFO warns that
//!   the metrics are lost.
//! - Panics are logged as one error event, so they are as searchable as everything else.
//!
//! Dependencies that log every Delta snapshot load are kept quiet unless `RUST_LOG` asks.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

use crate::config::{EnvSource, LogLevel};

/// Lambda's log format setting.
pub(crate) const LOG_FORMAT_ENV: &str = "AWS_LAMBDA_LOG_FORMAT";
/// Lambda's application log level setting.
pub(crate) const LOG_LEVEL_ENV: &str = "AWS_LAMBDA_LOG_LEVEL";
/// The functions' own level (Lambda's names), applied to log events and never to metrics.
pub(crate) const FUNCTION_LOG_LEVEL_ENV: &str = "CDF_S3_LOG_LEVEL";

use crate::telemetry::QUIET_DEPENDENCIES;

/// Output format of the function's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Text,
}

/// The logging choices taken from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogSettings {
    pub(crate) format: Format,
    /// A filter fixed by the environment; `None` lets the configuration choose the level.
    pub(crate) pinned_filter: Option<String>,
    /// Lambda's `ApplicationLogLevel` when it drops lines without a level (WARN and up), which
    /// the EMF metrics lines are.
    pub(crate) drops_metrics_at: Option<String>,
}

impl LogSettings {
    pub(crate) fn from_env(env: &dyn EnvSource) -> Self {
        let format = match env.get(LOG_FORMAT_ENV) {
            Some(f) if f.eq_ignore_ascii_case("text") => Format::Text,
            _ => Format::Json,
        };
        let pinned_filter = env
            .get("RUST_LOG")
            .filter(|f| !f.trim().is_empty() && EnvFilter::try_new(f).is_ok())
            .or_else(|| {
                [FUNCTION_LOG_LEVEL_ENV, LOG_LEVEL_ENV]
                    .iter()
                    .find_map(|name| env.get(name).and_then(|level| lambda_level(&level)))
                    .map(with_quiet_dependencies)
            });
        let drops_metrics_at = env
            .get(LOG_LEVEL_ENV)
            .filter(|level| matches!(lambda_level(level), Some("warn" | "error")));
        Self {
            format,
            pinned_filter,
            drops_metrics_at,
        }
    }
}

/// Lambda's level names (`TRACE` .. `FATAL`) as `tracing` levels.
fn lambda_level(level: &str) -> Option<&'static str> {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some("trace"),
        "DEBUG" => Some("debug"),
        "INFO" => Some("info"),
        "WARN" | "WARNING" => Some("warn"),
        "ERROR" | "FATAL" => Some("error"),
        _ => None,
    }
}

fn with_quiet_dependencies(level: &str) -> String {
    format!("{level},{QUIET_DEPENDENCIES}")
}

/// Changes the level after the configuration was loaded, unless the environment pinned it.
pub struct LogControl {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
    applied: std::sync::Mutex<Option<LogLevel>>,
}

impl LogControl {
    /// Applies the configuration's level (a no-op when the environment pinned the filter or
    /// the level did not change).
    pub(crate) fn apply_config_level(&self, level: LogLevel) {
        let Some(handle) = &self.handle else { return };
        let mut applied = self
            .applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *applied == Some(level) {
            return;
        }
        let filter = EnvFilter::new(with_quiet_dependencies(level.as_filter()));
        if handle.reload(filter).is_ok() {
            *applied = Some(level);
        }
    }

    /// A control that changes nothing (logging set up elsewhere, e.g. in tests).
    pub fn detached() -> Self {
        Self {
            handle: None,
            applied: std::sync::Mutex::new(None),
        }
    }
}

/// Installs the global subscriber and the panic hook. A second call (or a subscriber set
/// up by someone else) leaves the first in place and returns a detached control.
pub(crate) fn init(settings: &LogSettings) -> LogControl {
    let pinned = settings.pinned_filter.is_some();
    let initial = settings
        .pinned_filter
        .clone()
        .unwrap_or_else(|| with_quiet_dependencies("info"));
    let (filter, handle) = reload::Layer::new(EnvFilter::new(initial));
    let installed = match settings.format {
        Format::Json => Registry::default()
            .with(filter)
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        Format::Text => Registry::default()
            .with(filter)
            .with(fmt::layer().with_ansi(false).with_writer(std::io::stderr))
            .try_init(),
    };
    if installed.is_err() {
        return LogControl::detached();
    }
    install_panic_hook();
    if let Some(level) = &settings.drops_metrics_at {
        tracing::warn!(
            "Lambda's application log level is {level}: it drops the EMF metrics lines, which \
             carry no level, so the CloudWatch metrics and their alarms stop; set \
             ApplicationLogLevel to TRACE and the functions' level with {FUNCTION_LOG_LEVEL_ENV}"
        );
    }
    LogControl {
        handle: (!pinned).then_some(handle),
        applied: std::sync::Mutex::new(None),
    }
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %panic_message(info.payload()), %location, "panicked");
    }));
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    #[test]
    fn lambda_settings() {
        let defaults = LogSettings::from_env(&MapEnv::new());
        assert_eq!(defaults.format, Format::Json);
        assert_eq!(defaults.pinned_filter, None);

        let text = LogSettings::from_env(
            &MapEnv::new()
                .with(LOG_FORMAT_ENV, "Text")
                .with(LOG_LEVEL_ENV, "FATAL"),
        );
        assert_eq!(text.format, Format::Text);
        assert_eq!(
            text.pinned_filter.as_deref(),
            Some("error,buoyant_kernel=off,deltalake_core=warn,deltalake_aws=warn")
        );

        let rust_log = LogSettings::from_env(
            &MapEnv::new()
                .with("RUST_LOG", "cdf_s3_replicator=debug")
                .with(LOG_LEVEL_ENV, "ERROR"),
        );
        assert_eq!(
            rust_log.pinned_filter.as_deref(),
            Some("cdf_s3_replicator=debug")
        );

        let unknown = LogSettings::from_env(&MapEnv::new().with(LOG_LEVEL_ENV, "LOUD"));
        assert_eq!(unknown.pinned_filter, None);
    }

    /// The template's setup: Lambda's filter at TRACE keeps every line (the EMF lines
    /// included), the function's own level comes from `CDF_S3_LOG_LEVEL`.
    #[test]
    fn function_level_wins_over_lambdas_filter_and_metrics_loss_is_detected() {
        let template = LogSettings::from_env(
            &MapEnv::new()
                .with(LOG_LEVEL_ENV, "TRACE")
                .with(FUNCTION_LOG_LEVEL_ENV, "WARN"),
        );
        assert_eq!(
            template.pinned_filter.as_deref(),
            Some("warn,buoyant_kernel=off,deltalake_core=warn,deltalake_aws=warn")
        );
        assert_eq!(template.drops_metrics_at, None);

        for (lambda, drops) in [
            ("TRACE", false),
            ("DEBUG", false),
            ("INFO", false),
            ("WARN", true),
            ("ERROR", true),
            ("FATAL", true),
        ] {
            let settings = LogSettings::from_env(&MapEnv::new().with(LOG_LEVEL_ENV, lambda));
            assert_eq!(settings.drops_metrics_at.is_some(), drops, "{lambda}");
        }
    }

    #[test]
    fn panic_payloads() {
        let literal: Box<dyn std::any::Any + Send> = Box::new("boom");
        assert_eq!(panic_message(literal.as_ref()), "boom");
        let formatted: Box<dyn std::any::Any + Send> = Box::new(format!("boom {}", 2));
        assert_eq!(panic_message(formatted.as_ref()), "boom 2");
        let other: Box<dyn std::any::Any + Send> = Box::new(7_u8);
        assert_eq!(
            panic_message(other.as_ref()),
            "panic with a non-text payload"
        );
    }
}
