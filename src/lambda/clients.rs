//! The CDF client of a warm container, kept across invocations.
//!
//! The configuration is reloaded on every invocation, but building a new client each time
//! would throw away the access token and the connection pool and fetch a new token per run.
//! The client is rebuilt only when the connection settings (host, project, credentials,
//! timeouts) changed, e.g. after a secret rotation.

use std::sync::Mutex;

use crate::cdf::{CdfClient, CdfError, ClientSettings};
use crate::config::CogniteSettings;
use crate::context::client_settings;

/// One cached client and the settings it was built from.
#[derive(Debug, Default)]
pub struct ClientCache {
    current: Mutex<Option<(ClientSettings, CdfClient)>>,
}

impl ClientCache {
    /// The client for `cognite`: the cached one when its settings are the same, else a new
    /// one (which then replaces it).
    pub fn client_for(&self, cognite: &CogniteSettings) -> Result<CdfClient, CdfError> {
        let settings = client_settings(cognite);
        // A poisoned lock only means another invocation panicked while swapping clients;
        // the slot itself is always a valid value.
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((cached, client)) = current.as_ref()
            && cached == &settings
        {
            return Ok(client.clone());
        }
        let client = CdfClient::new(settings.clone())?;
        *current = Some((settings, client.clone()));
        Ok(client)
    }
}
