//! The cold start: everything a container builds once and reuses for every invocation.
//!
//! Reads the process environment only; nothing here calls AWS or CDF, so the init phase is
//! short and cannot fail. A problem found here (no configuration source, a malformed `.env`)
//! is kept and reported by every invocation, where it shows up as a failed invocation with
//! its cause instead of a crashed runtime.

use std::sync::Arc;

use crate::config::{EnvSource, ProcessEnv};

use super::FunctionKind;
use super::config_source::{ConfigSource, ConfigSourceError};
use super::handler::{Function, FunctionSetup};
use super::logging::{self, LogSettings};
use super::metrics::StdoutSink;
use super::secrets::{SECRET_ID_ENV, SecretSource};

/// Lambda sets this to the function's name.
const FUNCTION_NAME_ENV: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// Sets up logging and builds the function from the process environment.
///
/// With `CDF_S3_SECRET_ID` set (in AWS), `${VAR}` comes from the process environment over the
/// secret. Without it (local runs, `cargo lambda watch`), from the process environment over
/// the `.env` files next to the configuration file and in the working directory.
pub async fn cold_start(kind: FunctionKind) -> Function {
    let process = ProcessEnv::without_dotenv();
    let logs = logging::init(&LogSettings::from_env(&process));
    let name = process
        .get(FUNCTION_NAME_ENV)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| kind.default_name().to_owned());
    let mut config_source = ConfigSource::from_env(&process);
    let secret_id = process
        .get(SECRET_ID_ENV)
        .filter(|id| !id.trim().is_empty());
    let (env, secrets): (Box<dyn EnvSource + Send + Sync>, _) = match secret_id {
        Some(id) => (
            Box::new(process),
            Some(SecretSource::from_default_chain(id).await),
        ),
        None => {
            let files = config_source
                .as_ref()
                .map(ConfigSource::dotenv_files)
                .unwrap_or_default();
            match ProcessEnv::from_dotenv_files(&files) {
                Ok(with_dotenv) => (Box::new(with_dotenv), None),
                Err(error) => {
                    config_source = Err(ConfigSourceError::DotEnv(error.to_string()));
                    (Box::new(process), None)
                }
            }
        }
    };
    tracing::info!(
        function = %kind,
        name = %name,
        version = env!("CARGO_PKG_VERSION"),
        config = %config_source.as_ref().map(ConfigSource::origin).unwrap_or_else(|e| e.to_string()),
        secret = secrets.as_ref().map(SecretSource::secret_id),
        "cold start"
    );
    Function::new(FunctionSetup {
        kind,
        name,
        env,
        config_source,
        secrets,
        metrics: Arc::new(StdoutSink),
        logs,
    })
}
