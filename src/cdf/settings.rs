//! Everything `CdfClient::new` needs, independent of how the replicator's configuration is
//! written; the caller maps its configuration onto these settings.

use std::time::Duration;

use super::{ClientCredentials, RetryPolicy};

/// How to reach and authenticate to one CDF project, and how patiently. Start from
/// [`ClientSettings::new`] and override the public fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The cluster root, e.g. `https://api.cognitedata.com` or `http://127.0.0.1:8080`.
    /// `/api/v1/projects/<project>` is appended by the client.
    pub base_url: String,
    pub(crate) project: String,
    pub(crate) credentials: ClientCredentials,
    /// Sent as `x-cdp-app` so CDF operators can tell this service's traffic apart.
    pub app_name: String,
    /// Limit for one HTTP attempt, connect to last body byte.
    pub timeout: Duration,
    /// When and how often failed calls are retried.
    pub retry: RetryPolicy,
}

impl ClientSettings {
    /// Settings with the default app name, a 60 s timeout and the default retry policy.
    pub fn new(
        base_url: impl Into<String>,
        project: impl Into<String>,
        credentials: ClientCredentials,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            project: project.into(),
            credentials,
            app_name: DEFAULT_APP_NAME.to_owned(),
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

pub const DEFAULT_APP_NAME: &str = "cdf-s3-replicator";

/// `x-cdp-sdk` and `User-Agent` value: this crate and its version.
pub const SDK_ID: &str = concat!("cdf-s3-replicator/", env!("CARGO_PKG_VERSION"));

/// The stable API version this client is written against.
pub const CDF_API_VERSION: &str = "20230101";
