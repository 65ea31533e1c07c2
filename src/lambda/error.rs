//! Invocation failures, classified by whether running the invocation again can help.
//!
//! Lambda reports a failed invocation as `{errorType, errorMessage}`. The error type says
//! `Retryable.*` when the cause is transient (CDF or AWS unavailable, some streams failed and
//! the next run tries them again) and `Permanent.*` when the same invocation would fail the
//! same way until someone changes the payload, the configuration or the secret. Scheduled
//! invocations are never retried automatically; the classification tells the operator (and
//! any caller that retries by itself) what to do.

use crate::cdf::CdfError;
use crate::context::{ContextError, LoadError};
pub use crate::failure::Retry;
use crate::failure::{Cause, Verdict};

use super::config_source::ConfigSourceError;
use super::event::PayloadError;
use super::secrets::SecretError;

/// One failed invocation.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The payload was refused (see [`PayloadError`]): permanent.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// Neither or both of `CDF_S3_CONFIG` and `CDF_S3_CONFIG_PATH` are set: permanent.
    #[error(transparent)]
    ConfigSource(#[from] ConfigSourceError),
    /// The CDF credentials secret could not be read or used; retryable only when Secrets Manager
    /// failed transiently.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The configuration could not be read, parsed or validated.
    #[error("configuration: {0}")]
    Config(#[from] LoadError),
    /// The configuration loaded, but the clients it describes could not be built.
    #[error("configuration: {0}")]
    Context(#[from] ContextError),
    /// The time left after the configured margin is too short to do anything.
    #[error(
        "the invocation has {remaining_ms} ms left, which is not more than extractor.deadline-margin ({margin_ms} ms): raise the function timeout or lower the margin"
    )]
    NoTimeLeft {
        /// Until the invocation's deadline.
        remaining_ms: u128,
        /// `extractor.deadline-margin`.
        margin_ms: u128,
    },
    /// The run happened, but some streams, views or tables failed; the message lists them,
    /// and the verdict says whether any of them can succeed on a retry. The summary with
    /// every figure is in the invocation's summary log line.
    #[error("{message}")]
    RunFailed {
        /// The failures, one per part, redacted.
        message: String,
        /// Whether a retry can help, and the cause that decides the error type.
        verdict: Verdict,
    },
    /// A bug: the invocation panicked. The panic message is kept; the process lives on.
    #[error("the invocation panicked: {0}")]
    Panic(String),
}

impl FunctionError {
    /// `Retryable.<Cause>` or `Permanent.<Cause>`, the `errorType` Lambda reports.
    pub fn error_type(&self) -> String {
        let (retry, cause) = self.classify();
        format!("{retry}.{cause}")
    }

    #[cfg(test)]
    pub(crate) fn retry(&self) -> Retry {
        self.classify().0
    }

    fn classify(&self) -> (Retry, &'static str) {
        match self {
            FunctionError::Payload(_) => (Retry::Useless, "InvalidPayload"),
            FunctionError::ConfigSource(_) => (Retry::Useless, "InvalidConfiguration"),
            FunctionError::Secret(error) if error.is_transient() => {
                (Retry::Helps, "SecretUnavailable")
            }
            FunctionError::Secret(SecretError::Fetch { .. }) => {
                (Retry::Useless, "SecretUnavailable")
            }
            FunctionError::Secret(_) => (Retry::Useless, "InvalidSecret"),
            FunctionError::Config(LoadError::RemoteFetch { source, .. }) => classify_cdf(source),
            FunctionError::Config(LoadError::Context(ContextError::Cdf(source)))
            | FunctionError::Context(ContextError::Cdf(source)) => classify_cdf(source),
            FunctionError::Config(_) | FunctionError::Context(_) => {
                (Retry::Useless, "InvalidConfiguration")
            }
            FunctionError::NoTimeLeft { .. } => (Retry::Useless, "InvalidConfiguration"),
            FunctionError::RunFailed { verdict, .. } => match verdict {
                Verdict::Retryable => (Retry::Helps, "RunIncomplete"),
                // The views came from the payload (or every configured view is meant).
                Verdict::Permanent(Cause::InvalidRequest) => (Retry::Useless, "InvalidPayload"),
                Verdict::Permanent(cause) => (Retry::Useless, cause.as_str()),
                Verdict::Mixed => (Retry::Useless, "RunFailed"),
            },
            FunctionError::Panic(_) => (Retry::Useless, "InternalError"),
        }
    }
}

/// A CDF failure during configuration loading: transient failures (throttling, 5xx,
/// transport, an identity provider that could not be reached) can pass; a rejected client,
/// a missing pipeline or a refused request cannot.
fn classify_cdf(error: &CdfError) -> (Retry, &'static str) {
    let cause = Cause::of_cdf(error);
    (cause.retry(), cause.as_str())
}

#[cfg(test)]
mod template_check;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_say_whether_a_retry_helps() {
        let payload = FunctionError::from(PayloadError {
            key: Some("view".into()),
            message: "unknown option".into(),
        });
        assert_eq!(payload.error_type(), "Permanent.InvalidPayload");
        assert_eq!(payload.retry(), Retry::Useless);

        let run = FunctionError::RunFailed {
            message: "1 of 4 streams failed".into(),
            verdict: Verdict::Retryable,
        };
        assert_eq!(run.error_type(), "Retryable.RunIncomplete");

        let unavailable = FunctionError::Config(LoadError::RemoteFetch {
            pipeline: "replicator".into(),
            source: CdfError::RetriesExhausted {
                attempts: 3,
                last: Box::new(CdfError::UnexpectedResponse {
                    endpoint: "GET /extpipes/config".into(),
                    reason: "x".into(),
                }),
            },
        });
        assert_eq!(unavailable.error_type(), "Retryable.CdfUnavailable");

        let rejected = FunctionError::Config(LoadError::RemoteFetch {
            pipeline: "replicator".into(),
            source: CdfError::Auth {
                token_url: "https://idp.example/token".into(),
                status: Some(401),
                error: "invalid_client".into(),
                description: None,
                retryable: false,
                source: None,
            },
        });
        assert_eq!(rejected.error_type(), "Permanent.CdfAuthentication");

        let empty = FunctionError::Config(LoadError::RemoteEmpty {
            pipeline: "replicator".into(),
        });
        assert_eq!(empty.error_type(), "Permanent.InvalidConfiguration");

        let panic = FunctionError::Panic("boom".into());
        assert_eq!(panic.error_type(), "Permanent.InternalError");
        assert_eq!(panic.to_string(), "the invocation panicked: boom");
    }
}
