//! CDF credentials from AWS Secrets Manager, as variables for `${VAR}` substitution.
//!
//! The secret named by `CDF_S3_SECRET_ID` (name or ARN) holds a JSON object of variables,
//! the `COGNITE_*` keys of the original replicator's runtime secret:
//!
//! ```json
//! {"COGNITE_BASE_URL": "https://api.cognitedata.com", "COGNITE_PROJECT": "my-project",
//!  "COGNITE_TOKEN_URL": "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token",
//!  "COGNITE_CLIENT_ID": "...", "COGNITE_CLIENT_SECRET": "...",
//!  "COGNITE_TOKEN_SCOPES": "https://api.cognitedata.com/.default"}
//! ```
//!
//! The variables sit under the process environment (a function environment variable of the
//! same name wins). The secret is read once per container and again after
//! [`SECRET_MAX_AGE`], so a rotated secret reaches warm containers without a redeploy. No
//! value of the secret ever appears in a log line, an error or a `Debug` rendering.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::EnvSource;

/// Environment variable naming the secret (name or ARN).
pub(crate) const SECRET_ID_ENV: &str = "CDF_S3_SECRET_ID";

/// How long a warm container keeps using the secret it read.
pub(crate) const SECRET_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// Service error codes that a later call may not see again.
const TRANSIENT_CODES: [&str; 4] = [
    "InternalServiceError",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
];

/// The variables of the secret. `Debug` lists the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct SecretVariables(HashMap<String, String>);

impl SecretVariables {
    /// Names of the variables, sorted (safe to log).
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for SecretVariables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretVariables")
            .field("names", &self.names())
            .finish()
    }
}

impl EnvSource for SecretVariables {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    /// Every variable of the secret: a remote configuration may expand none of them.
    fn is_from_secret_store(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// Why the secret could not be used. Messages name the secret and the key, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager did not return the secret (missing, no permission, throttled,
    /// unreachable).
    #[error("reading secret {secret_id} from AWS Secrets Manager: {message}")]
    Fetch {
        /// The secret's name or ARN.
        secret_id: String,
        /// What Secrets Manager or the SDK said.
        message: String,
        /// Throttling, a server error or a network failure: a later attempt may work.
        transient: bool,
    },
    /// The secret has a binary value only.
    #[error(
        "secret {secret_id} has no text value (SecretString); store a JSON object of variables such as {{\"COGNITE_CLIENT_SECRET\": \"...\"}}"
    )]
    NoText {
        /// The secret's name or ARN.
        secret_id: String,
    },
    /// The secret text is not JSON.
    #[error(
        "secret {secret_id} is not a JSON object of variables (not valid JSON at line {line}, column {column}); expected {{\"COGNITE_CLIENT_ID\": \"...\", ...}}"
    )]
    NotJson {
        /// The secret's name or ARN.
        secret_id: String,
        /// Where the JSON parser stopped (1-based).
        line: usize,
        /// Where the JSON parser stopped (1-based).
        column: usize,
    },
    /// The secret text is JSON, but not an object.
    #[error(
        "secret {secret_id} is JSON {found}, expected an object of variables such as {{\"COGNITE_CLIENT_ID\": \"...\"}}"
    )]
    NotObject {
        /// The secret's name or ARN.
        secret_id: String,
        /// What the JSON is instead (`a list`, `a string`, ...).
        found: &'static str,
    },
    /// A variable's value is an array or an object.
    #[error(
        "key `{key}` of secret {secret_id} holds {found}; expected a string (or a number or boolean)"
    )]
    BadValue {
        /// The secret's name or ARN.
        secret_id: String,
        /// The variable.
        key: String,
        /// What the value is instead (`a list` or `an object`).
        found: &'static str,
    },
}

impl SecretError {
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            SecretError::Fetch {
                transient: true,
                ..
            }
        )
    }
}

/// Reads the variables from the secret text. Numbers and booleans count as their JSON text,
/// `null` as an unset variable; nested values are refused.
pub(crate) fn parse_secret(secret_id: &str, text: &str) -> Result<SecretVariables, SecretError> {
    let value: Value = serde_json::from_str(text).map_err(|e| SecretError::NotJson {
        // serde_json's message may quote the text; only the position is kept.
        secret_id: secret_id.to_owned(),
        line: e.line(),
        column: e.column(),
    })?;
    let Value::Object(map) = value else {
        return Err(SecretError::NotObject {
            secret_id: secret_id.to_owned(),
            found: kind(&value),
        });
    };
    let mut variables = HashMap::with_capacity(map.len());
    for (key, value) in map {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            other => {
                return Err(SecretError::BadValue {
                    secret_id: secret_id.to_owned(),
                    key,
                    found: kind(&other),
                });
            }
        };
        variables.insert(key, text);
    }
    Ok(SecretVariables(variables))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The secret of this container: fetched on first use, cached, refreshed when old.
pub struct SecretSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    cached: Mutex<Option<(Arc<SecretVariables>, Instant)>>,
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSource")
            .field("secret_id", &self.secret_id)
            .finish_non_exhaustive()
    }
}

impl SecretSource {
    /// A source using the given Secrets Manager client (region, endpoint and credentials
    /// come from the AWS configuration it was built with).
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            cached: Mutex::new(None),
        }
    }

    /// A source with a client from the default AWS configuration chain: the function's role
    /// in Lambda; `AWS_ENDPOINT_URL_SECRETS_MANAGER` points it at another endpoint.
    pub(crate) async fn from_default_chain(secret_id: impl Into<String>) -> Self {
        let config = aws_config::load_from_env().await;
        Self::new(aws_sdk_secretsmanager::Client::new(&config), secret_id)
    }

    pub(crate) fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The variables, read from Secrets Manager at most every [`SECRET_MAX_AGE`]. When a
    /// refresh fails transiently, the variables read before are used once more.
    pub(crate) async fn variables(&self) -> Result<Arc<SecretVariables>, SecretError> {
        let mut cached = self.cached.lock().await;
        if let Some((variables, read_at)) = cached.as_ref()
            && read_at.elapsed() < SECRET_MAX_AGE
        {
            return Ok(variables.clone());
        }
        match self.fetch().await {
            Ok(variables) => {
                let variables = Arc::new(variables);
                tracing::info!(
                    secret_id = %self.secret_id,
                    variables = ?variables.names(),
                    "read the CDF credentials secret"
                );
                *cached = Some((variables.clone(), Instant::now()));
                Ok(variables)
            }
            Err(error) if error.is_transient() => match cached.as_ref() {
                Some((variables, _)) => {
                    tracing::warn!(%error, "keeping the secret read before");
                    Ok(variables.clone())
                }
                None => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// Forgets the cached variables, so the next invocation reads the secret again.
    pub(crate) async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<SecretVariables, SecretError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|error| self.fetch_error(&error))?;
        let Some(text) = output.secret_string() else {
            return Err(SecretError::NoText {
                secret_id: self.secret_id.clone(),
            });
        };
        parse_secret(&self.secret_id, text)
    }

    /// Describes a failed call without the response body (which could carry the secret).
    fn fetch_error<E: ProvideErrorMetadata + std::error::Error + 'static, R>(
        &self,
        error: &SdkError<E, R>,
    ) -> SecretError {
        let (message, transient) = match error {
            SdkError::ServiceError(service) => {
                let err = service.err();
                let code = err.code().unwrap_or("unknown error").to_owned();
                let detail = err
                    .message()
                    .map(|m| format!(": {}", crate::secret::redact(m)))
                    .unwrap_or_default();
                let transient = TRANSIENT_CODES.contains(&code.as_str());
                (format!("{code}{detail}"), transient)
            }
            SdkError::TimeoutError(_) => ("the request timed out".to_owned(), true),
            SdkError::DispatchFailure(failure) => (
                format!(
                    "could not reach the service ({})",
                    if failure.is_timeout() {
                        "timeout"
                    } else if failure.is_io() {
                        "connection failed"
                    } else {
                        "dispatch failure"
                    }
                ),
                true,
            ),
            SdkError::ResponseError(_) => ("the response could not be read".to_owned(), true),
            SdkError::ConstructionFailure(_) => (
                "the request could not be built (check the region configuration)".to_owned(),
                false,
            ),
            _ => ("unexpected failure".to_owned(), true),
        };
        SecretError::Fetch {
            secret_id: self.secret_id.clone(),
            message,
            transient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_original_runtime_secret() {
        let text = r#"{"APP_ENV": "prod", "COGNITE_CLIENT_SECRET": "s3cr3t-value",
            "COGNITE_PROJECT": "p", "PORT": 8080, "FLAG": true, "UNSET": null}"#;
        let vars = parse_secret("rt", text).unwrap();
        assert_eq!(
            vars.get("COGNITE_CLIENT_SECRET").as_deref(),
            Some("s3cr3t-value")
        );
        assert_eq!(vars.get("PORT").as_deref(), Some("8080"));
        assert_eq!(vars.get("FLAG").as_deref(), Some("true"));
        assert_eq!(vars.get("UNSET"), None);
        assert_eq!(vars.len(), 5);
        let debug = format!("{vars:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        assert!(debug.contains("COGNITE_CLIENT_SECRET"), "{debug}");
    }

    #[test]
    fn errors_name_the_key_but_never_a_value() {
        let err = parse_secret(
            "rt",
            r#"{"COGNITE_CLIENT_SECRET": "hunter2", "NESTED": {"a": 1}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            SecretError::BadValue {
                secret_id: "rt".into(),
                key: "NESTED".into(),
                found: "an object"
            }
        );
        let err = parse_secret("rt", "hunter2-not-json").unwrap_err();
        assert!(matches!(err, SecretError::NotJson { line: 1, .. }), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = parse_secret("rt", r#""hunter2""#).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("a string"), "{err}");
        let err = parse_secret("rt", r#"{"A": "hunter2", "B": "x"#).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
