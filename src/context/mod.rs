//! Turns a validated configuration into the clients and settings a run works with.
//!
//! - [`load`]: the configuration, with a remote one fetched from CDF;
//! - [`clients`]: the CDF clients a long-lived process keeps across runs, so a reloaded
//!   configuration with the same connection settings keeps the token and connection pool;
//! - [`connect_check`]: `check-config --connect`, the configuration tried against CDF and
//!   the lake.

mod clients;
mod connect_check;
mod load;

pub use self::clients::ClientCache;
pub use self::connect_check::{ConnectCheck, check_connection};
pub(crate) use self::load::resolve_remote_with;
pub use self::load::{LoadError, load_config, load_config_text};

use crate::cdf::{self, CdfClient, ClientSettings, RetryPolicy};
use crate::config::{self, Config};
use crate::lake::{self, Destination, LakeError, WriteOptions};

/// Why the clients could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The CDF connection settings are unusable.
    #[error("CDF client: {0}")]
    Cdf(#[from] cdf::CdfError),
    /// The destination could not be set up from the configuration.
    #[error("destination: {0}")]
    Destination(#[from] LakeError),
}

/// The configuration and the clients built from it.
#[derive(Debug, Clone)]
pub struct Context {
    /// The validated configuration of the run.
    pub config: Config,
    /// The client for the configured CDF project; clones share its token and connections.
    pub client: CdfClient,
    /// Where the lake tables live, with the storage options for writing them.
    pub destination: Destination,
}

impl Context {
    /// With a new CDF client (a new token on the first request).
    pub fn new(config: Config) -> Result<Self, ContextError> {
        let client = CdfClient::new(client_settings(&config.cognite))?;
        Self::with_client(config, client)
    }

    /// With the cached client for the configuration's connection settings, if there is one.
    pub fn with_clients(config: Config, clients: &ClientCache) -> Result<Self, ContextError> {
        let client = clients.client_for(&config.cognite)?;
        Self::with_client(config, client)
    }

    fn with_client(config: Config, client: CdfClient) -> Result<Self, ContextError> {
        let destination = destination(&config.destination)?;
        Ok(Self {
            config,
            client,
            destination,
        })
    }

    /// How the raw tables' data files are written: the same for every job that writes them
    /// (the sync's commits, maintenance's compactions).
    pub fn raw_write_options(&self) -> WriteOptions {
        WriteOptions {
            rows_per_row_group: self.config.extractor.s3_ingest_batch_size,
            ..WriteOptions::default()
        }
    }
}

/// CDF client settings from the `cognite` block.
pub(crate) fn client_settings(cognite: &config::CogniteSettings) -> ClientSettings {
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
pub(crate) fn destination(destination: &config::Destination) -> Result<Destination, LakeError> {
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
