//! Invocation failures, classified by whether running the invocation again can help.
//!
//! Lambda reports a failed invocation as `{errorType, errorMessage}`. The error type says
//! `Retryable.*` when the cause is transient (CDF or AWS unavailable, some streams failed and
//! the next run tries them again) and `Permanent.*` when the same invocation would fail the
//! same way until someone changes the payload, the configuration or the secret. After the
//! dot comes a [`Cause`], the same name the run summaries and the metrics use, or the
//! verdict of a run whose parts failed of several causes (`RunIncomplete`, `RunFailed`). Scheduled
//! invocations are never retried automatically; the classification tells the operator (and
//! any caller that retries by itself) what to do.

use crate::context::{ContextError, LoadError};
pub use crate::failure::Retry;
use crate::failure::{Cause, ErrorType, Verdict};

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
    /// `Retryable.<Cause>` or `Permanent.<Cause>`, the `errorType` Lambda reports: the same
    /// [`Cause`] names as the failures in the run summaries and the `Failures<Cause>`
    /// metrics (see [`ErrorType`]).
    pub fn error_type(&self) -> String {
        self.classify().to_string()
    }

    #[cfg(test)]
    pub(crate) fn retry(&self) -> Retry {
        self.classify().retry
    }

    fn classify(&self) -> ErrorType {
        let cause = match self {
            FunctionError::Payload(_) => Cause::InvalidRequest,
            FunctionError::ConfigSource(_) => Cause::InvalidConfiguration,
            FunctionError::Secret(error) if error.is_transient() => Cause::SecretUnavailable,
            FunctionError::Secret(SecretError::Fetch { .. }) => Cause::SecretAccessDenied,
            FunctionError::Secret(_) => Cause::InvalidSecret,
            FunctionError::Config(LoadError::RemoteFetch { source, .. }) => Cause::of_cdf(source),
            FunctionError::Config(LoadError::Context(ContextError::Cdf(source)))
            | FunctionError::Context(ContextError::Cdf(source)) => Cause::of_cdf(source),
            FunctionError::Config(_) | FunctionError::Context(_) => Cause::InvalidConfiguration,
            FunctionError::NoTimeLeft { .. } => Cause::InvalidConfiguration,
            FunctionError::RunFailed { verdict, .. } => return verdict.error_type(),
            FunctionError::Panic(_) => Cause::Internal,
        };
        cause.into()
    }
}

#[cfg(test)]
mod template_check;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdf::CdfError;

    #[test]
    fn types_say_whether_a_retry_helps() {
        let payload = FunctionError::from(PayloadError {
            key: Some("view".into()),
            message: "unknown option".into(),
        });
        assert_eq!(payload.error_type(), "Permanent.InvalidRequest");
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
        assert_eq!(panic.to_string(), "the invocation panicked: boom");
    }

    /// A panic is the same defect whether a part of a run caught it (a stream's task) or
    /// the edge did (the whole invocation): one name, `Internal`.
    #[test]
    fn a_panic_has_the_name_of_an_internal_failure() {
        let panic = FunctionError::Panic("boom".into());
        let internal = ErrorType::from(Cause::Internal).to_string();
        assert_eq!(panic.error_type(), internal);
        assert_eq!(internal, "Permanent.Internal");
        let run = FunctionError::RunFailed {
            message: "a stream panicked".into(),
            verdict: Verdict::Permanent(Cause::Internal),
        };
        assert_eq!(run.error_type(), internal);
    }

    /// Every error type the edge reports is a cause's (or a run verdict's) name, with the
    /// cause's own retryability.
    #[test]
    fn the_edge_speaks_the_causes_vocabulary() {
        let secret = |transient| {
            FunctionError::Secret(SecretError::Fetch {
                secret_id: "s".into(),
                message: "m".into(),
                transient,
            })
        };
        let cases = [
            (secret(true), Cause::SecretUnavailable),
            (secret(false), Cause::SecretAccessDenied),
            (
                FunctionError::Secret(SecretError::NoText {
                    secret_id: "s".into(),
                }),
                Cause::InvalidSecret,
            ),
            (
                FunctionError::NoTimeLeft {
                    remaining_ms: 1,
                    margin_ms: 2,
                },
                Cause::InvalidConfiguration,
            ),
        ];
        for (error, cause) in cases {
            assert_eq!(error.error_type(), ErrorType::from(cause).to_string());
            assert_eq!(error.retry(), cause.retry());
        }
        let by_verdict = FunctionError::RunFailed {
            message: "x".into(),
            verdict: Verdict::Permanent(Cause::InvalidRequest),
        };
        assert_eq!(by_verdict.error_type(), "Permanent.InvalidRequest");
    }
}
