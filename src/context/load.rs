//! Loading the configuration: the file or inline text, and with `type: remote` the extraction
//! pipeline's stored configuration merged over it.

use super::{ContextError, client_settings};
use crate::cdf::{self, CdfClient};
use crate::config::{self, Config};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration file or text is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// `type: remote`, and the extraction pipeline's configuration could not be fetched from CDF.
    #[error("fetching the remote configuration of extraction pipeline {pipeline}: {source}")]
    RemoteFetch {
        /// The extraction pipeline's external id.
        pipeline: String,
        /// The failed CDF call.
        source: cdf::CdfError,
    },
    /// `type: remote`, and the pipeline's latest configuration revision is empty.
    #[error("extraction pipeline {pipeline} has a configuration revision without any content")]
    RemoteEmpty {
        /// The extraction pipeline's external id.
        pipeline: String,
    },
    /// The CDF client for the remote fetch could not be built from the local `cognite` block.
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// Loads the configuration at `path`; with `type: remote`, fetches the extraction
/// pipeline's configuration with the local `cognite` block and merges it over the file.
/// Called on every invocation, so a change to the remote configuration applies to the next
/// run without a redeploy.
pub async fn load_config(
    path: &std::path::Path,
    env: &dyn config::EnvSource,
) -> Result<Config, LoadError> {
    resolve_remote(config::RawConfig::load(path, env)?, env).await
}

/// Like [`load_config`], for YAML text (a configuration passed inline, e.g. in a Lambda
/// environment variable).
pub async fn load_config_text(
    text: &str,
    origin: &str,
    env: &dyn config::EnvSource,
) -> Result<Config, LoadError> {
    resolve_remote(config::RawConfig::from_yaml(text, origin, env)?, env).await
}

async fn resolve_remote(
    raw: config::RawConfig,
    env: &dyn config::EnvSource,
) -> Result<Config, LoadError> {
    resolve_remote_with(raw, env, |cognite| {
        CdfClient::new(client_settings(cognite)).map_err(ContextError::from)
    })
    .await
}

/// A complete configuration as it is; with `type: remote`, the extraction pipeline's stored
/// configuration, fetched with the client `connect` gives for the local `cognite` block,
/// merged over the local file.
pub(crate) async fn resolve_remote_with(
    raw: config::RawConfig,
    env: &dyn config::EnvSource,
    connect: impl FnOnce(&config::CogniteSettings) -> Result<CdfClient, ContextError>,
) -> Result<Config, LoadError> {
    match raw {
        config::RawConfig::Complete(config) => Ok(*config),
        config::RawConfig::NeedsRemote {
            local,
            cognite,
            pipeline_external_id,
            ..
        } => {
            let client = connect(&cognite)?;
            let remote = client
                .get_extpipe_config(&pipeline_external_id, None)
                .await
                .map_err(|source| LoadError::RemoteFetch {
                    pipeline: pipeline_external_id.clone(),
                    source,
                })?;
            let Some(text) = remote.config else {
                return Err(LoadError::RemoteEmpty {
                    pipeline: pipeline_external_id,
                });
            };
            Ok(config::merge_remote(&local, &text, env)?)
        }
    }
}
