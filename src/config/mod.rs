//! Configuration: the YAML file of the original replicator, plus this product's additions.
//!
//! Loading goes: read text, parse YAML into a value tree, substitute `${VAR}` (from an
//! [`EnvSource`]), deserialize into the document model (unknown keys are errors), then
//! validate into a [`Config`] with every default applied. Errors name the key path.
//!
//! ```no_run
//! use std::path::Path;
//! use cdf_s3_replicator::config::ProcessEnv;
//! use cdf_s3_replicator::context::load_config;
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let path = Path::new("config.yaml");
//! let env = ProcessEnv::for_config_file(path)?;
//! // With `type: remote`, the extraction pipeline's stored configuration is fetched with the
//! // file's `cognite` block and merged over the file.
//! let config = load_config(path, &env).await?;
//! # let _ = config;
//! # Ok(())
//! # }
//! ```

mod deserialize;
mod duration;
mod effective;
mod env;
mod error;
mod findings;
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
pub(crate) fn normalize_s3_prefix(raw: &str) -> Result<String, String> {
    validate::destination::normalize_prefix(raw)
}

pub use duration::parse_duration;
pub use effective::REDACTED;
pub(crate) use effective::duration_text;
pub(crate) use env::Layered;
pub use env::MapEnv;
pub use env::{EnvSource, ProcessEnv};
#[cfg(test)]
pub(crate) use env::{is_secret_variable, read_dotenv};
pub use error::ConfigError;
pub(crate) use error::ConfigIssue;
#[cfg(test)]
pub(crate) use guard::MAX_DOCUMENT_BYTES;
pub(crate) use load::RawConfig;
#[cfg(test)]
pub(crate) use load::load_config;
pub(crate) use remote::merge_remote;
#[cfg(test)]
pub(crate) use secret::Secret;
pub use settings::Config;
pub use settings::Destination;
pub use settings::LogFormat;
pub use settings::{
    ClientCredentials, DataModelSelection, LocalDestination, LogLevel, S3Destination, defaults,
};
pub(crate) use settings::{CogniteSettings, GlueCatalogSettings, SnapshotSettings, SpaceSelection};
#[cfg(test)]
pub(crate) use settings::{ConfigKind, ExtractorSettings, MAX_SYNC_PAGE_SIZE, StaticS3Credentials};
