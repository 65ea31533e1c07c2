//! Configuration: the YAML file of the original replicator, plus this product's additions.
//!
//! Loading goes: read text, parse YAML into a value tree, substitute `${VAR}` (from an
//! [`EnvSource`]), deserialize into the document model (unknown keys are errors), then
//! validate into a [`Config`] with every default applied. Errors name the key path.
//!
//! ```no_run
//! use std::path::Path;
//! use cdf_s3_replicator::config::{ProcessEnv, RawConfig, merge_remote};
//! # fn fetch(_: &str) -> String { String::new() }
//! let path = Path::new("config.yaml");
//! let env = ProcessEnv::for_config_file(path)?;
//! let config = match RawConfig::load(path, &env)? {
//!     RawConfig::Complete(config) => *config,
//!     RawConfig::NeedsRemote { local, pipeline_external_id, .. } => {
//!         let remote_yaml = fetch(&pipeline_external_id); // extraction-pipeline config call
//!         merge_remote(&local, &remote_yaml, &env)?
//!     }
//! };
//! # Ok::<(), cdf_s3_replicator::config::ConfigError>(())
//! ```

mod duration;
mod env;
mod error;
mod guard;
mod identifiers;
mod load;
mod model;
mod parse;
mod remote;
mod secret;
mod settings;
mod validate;

#[cfg(test)]
mod tests;

/// An S3 key prefix as the configuration normalizes it (`a/b` -> `a/b/`, `/` -> ``), or why
/// it is not one.
pub fn normalize_s3_prefix(raw: &str) -> Result<String, String> {
    validate::destination::normalize_prefix(raw)
}

pub use duration::parse_duration;
pub use env::{
    EnvSource, Layered, MapEnv, ProcessEnv, REMOTE_VAR_PREFIX, is_secret_variable, read_dotenv,
};
pub use error::{ConfigError, ConfigIssue};
pub use guard::{MAX_DOCUMENT_BYTES, MAX_NESTING};
pub use load::{RawConfig, load_config};
pub use remote::{REMOTE_DESTINATION_KNOBS, merge_remote};
pub use secret::Secret;
pub use serde_yaml_ng::Value as YamlValue;
pub use settings::{
    ClientCredentials, CogniteSettings, Config, ConfigKind, DataModelSelection, Destination,
    ExtractorSettings, GlueCatalogSettings, LocalDestination, LogFormat, LogLevel, LoggerSettings,
    MAX_PARALLELISM, MAX_SYNC_PAGE_SIZE, MaintenanceSettings, RawStateStore, S3Destination,
    SnapshotSettings, SpaceSelection, StaticS3Credentials, defaults,
};
