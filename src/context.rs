//! Turns a validated configuration into the clients and settings a run works with.
//!
//! Built once per process (or Lambda cold start) and shared by every invocation: the CDF
//! client keeps its token cache and connection pool, and nothing here is re-read.

use crate::cdf::{self, CdfClient, ClientSettings, RetryPolicy};
use crate::config::{self, Config};
use crate::lake::{self, Destination, LakeError, WriteOptions};
use crate::sync::SyncJob;
use crate::sync::state_store::StateStore;
use crate::sync::stream::StreamContext;

/// Why the clients could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("CDF client: {0}")]
    Cdf(#[from] cdf::CdfError),
    #[error("destination: {0}")]
    Destination(#[from] LakeError),
}

/// The configuration and the clients built from it.
#[derive(Debug, Clone)]
pub struct Context {
    pub config: Config,
    pub client: CdfClient,
    pub destination: Destination,
}

impl Context {
    pub fn new(config: Config) -> Result<Self, ContextError> {
        let client = CdfClient::new(client_settings(&config.cognite))?;
        let destination = destination(&config.destination)?;
        Ok(Self {
            config,
            client,
            destination,
        })
    }

    /// The sync settings of this configuration.
    pub fn sync_job(&self) -> SyncJob {
        let extractor = &self.config.extractor;
        SyncJob {
            streams: StreamContext {
                client: self.client.clone(),
                destination: self.destination.clone(),
                state_store: StateStore::new(
                    self.client.clone(),
                    &extractor.state_store.database,
                    &extractor.state_store.table,
                ),
                write_options: WriteOptions {
                    rows_per_row_group: extractor.s3_ingest_batch_size,
                    ..WriteOptions::default()
                },
                row_budget: extractor.ingest_batch_size,
                byte_budget: usize::try_from(extractor.ingest_batch_bytes).unwrap_or(usize::MAX),
                deadline_margin: extractor.deadline_margin,
            },
            data_modeling: self.config.data_modeling.clone(),
            page_size: extractor.sync_page_size,
            parallelism: extractor.parallelism as usize,
            extraction_pipeline: self.config.cognite.extraction_pipeline.clone(),
        }
    }
}

/// CDF client settings from the `cognite` block.
pub fn client_settings(cognite: &config::CogniteSettings) -> ClientSettings {
    let credentials = cdf::ClientCredentials {
        token_url: cognite.credentials.token_url.clone(),
        client_id: cognite.credentials.client_id.clone(),
        client_secret: cognite.credentials.secret.clone(),
        scopes: cognite.credentials.scopes.clone(),
        audience: cognite.credentials.audience.clone(),
        resource: cognite.credentials.resource.clone(),
    };
    let mut settings = ClientSettings::new(&cognite.host, &cognite.project, credentials);
    settings.timeout = cognite.timeout;
    settings.retry = RetryPolicy {
        max_attempts: cognite.max_retries.saturating_add(1),
        ..RetryPolicy::default()
    };
    settings
}

/// The lake destination from the `destination` block.
pub fn destination(destination: &config::Destination) -> Result<Destination, LakeError> {
    match destination {
        config::Destination::Local(local) => Ok(Destination::Local(lake::LocalDestination::new(
            &local.path,
        )?)),
        config::Destination::S3(s3) => {
            let mut target = lake::S3Destination::new(&s3.bucket, &s3.prefix)?
                .with_allow_http(s3.allow_http)
                .with_request_timeout(s3.request_timeout);
            if let Some(region) = &s3.region {
                target = target.with_region(region);
            }
            if let Some(endpoint) = &s3.endpoint_url {
                target = target.with_endpoint_url(endpoint)?;
            }
            if let Some(keys) = &s3.credentials {
                target = target.with_static_credentials(lake::StaticCredentials {
                    access_key_id: keys.access_key_id.clone(),
                    secret_access_key: keys.secret_access_key.expose().to_owned(),
                    session_token: None,
                });
            }
            Ok(Destination::S3(target))
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("fetching the remote configuration of extraction pipeline {pipeline}: {source}")]
    RemoteFetch {
        pipeline: String,
        source: cdf::CdfError,
    },
    #[error("extraction pipeline {pipeline} has a configuration revision without any content")]
    RemoteEmpty { pipeline: String },
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
