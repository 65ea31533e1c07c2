//! The AWS Lambda functions `cdf-s3-sync` and `cdf-s3-snapshot`, independent of the Lambda
//! runtime crate: the function crates in `functions/` only connect [`Function::invoke`] to
//! `lambda_runtime`, so everything here runs (and is tested) in-process.
//!
//! Per container ([`init::cold_start`]): logging, the configuration source, the Secrets
//! Manager client and, once the first configuration is loaded, the CDF client with its token
//! cache. Per invocation ([`Function::invoke`]): parse the payload ([`event`]), read the
//! secret (cached, [`secrets`]), reload the configuration ([`config_source`]), run until the
//! invocation's deadline, then log one summary line, print one EMF metrics line
//! ([`metrics`]) and return the summary, or a failure whose type says whether a retry can
//! help ([`error`]).
//!
//! Function environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `CDF_S3_CONFIG` | the configuration YAML itself (or use `CDF_S3_CONFIG_PATH`) |
//! | `CDF_S3_CONFIG_PATH` | a configuration file, relative to the package root `/var/task` |
//! | `CDF_S3_SECRET_ID` | name or ARN of the Secrets Manager secret with the `COGNITE_*` variables |
//! | `AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL`, `RUST_LOG` | logging ([`logging`]) |
//!
//! Without `CDF_S3_SECRET_ID` (local runs) `${VAR}` also reads `.env` files. S3 access uses
//! the default AWS credential chain (the function's role); static keys in the configuration
//! are meant for local development only.

pub mod config_source;
pub(crate) mod error;
pub mod event;
pub(crate) mod handler;
pub(crate) mod init;
pub mod logging;
pub mod metrics;
pub mod secrets;

use std::fmt;

pub use error::{FunctionError, Retry};
pub use handler::{Function, FunctionSetup, Invocation};
pub use init::cold_start;

/// Which of the two functions a container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionKind {
    /// CDF to the raw Delta tables.
    Sync,
    /// Raw tables to the published Parquet snapshots (and table maintenance).
    Snapshot,
}

impl FunctionKind {
    /// The binary and default function name.
    pub fn default_name(self) -> &'static str {
        match self {
            FunctionKind::Sync => "cdf-s3-sync",
            FunctionKind::Snapshot => "cdf-s3-snapshot",
        }
    }
}

impl fmt::Display for FunctionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FunctionKind::Sync => "sync",
            FunctionKind::Snapshot => "snapshot",
        })
    }
}
