//! The CDF clients of a long-lived process (a warm Lambda container, the CLI's `run` loop),
//! kept across runs.
//!
//! The configuration is reloaded on every invocation, but building a new client each time
//! would throw away the access token and the connection pool and fetch a new token per run.
//! A client is rebuilt only when the connection settings (host, project, credentials,
//! timeouts) changed, e.g. after a secret rotation. Two are kept: with `type: remote`, the
//! bootstrap file's settings fetch the remote configuration, which may set other timeouts
//! or retries for the run itself.

use std::sync::Mutex;

use super::client_settings;
use crate::cdf::{CdfClient, CdfError, ClientSettings};
use crate::config::CogniteSettings;

/// Clients kept at most; the least recently used one goes first.
const KEPT: usize = 2;

/// The cached clients and the settings each was built from, most recently used last.
#[derive(Debug, Default)]
pub struct ClientCache {
    clients: Mutex<Vec<(ClientSettings, CdfClient)>>,
}

impl ClientCache {
    /// The client for `cognite`: a cached one with the same settings, else a new one.
    pub(crate) fn client_for(&self, cognite: &CogniteSettings) -> Result<CdfClient, CdfError> {
        let settings = client_settings(cognite);
        // A poisoned lock only means another invocation panicked while swapping clients;
        // the list itself is always valid.
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = clients.iter().position(|(cached, _)| cached == &settings) {
            let entry = clients.remove(at);
            let client = entry.1.clone();
            clients.push(entry);
            return Ok(client);
        }
        let client = CdfClient::new(settings.clone())?;
        if clients.len() >= KEPT {
            clients.remove(0);
        }
        clients.push((settings, client.clone()));
        Ok(client)
    }

    #[cfg(test)]
    /// How many clients are kept (for tests and diagnostics).
    pub(crate) fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{ClientCredentials, Secret};

    fn cognite(timeout_secs: u64) -> CogniteSettings {
        CogniteSettings {
            host: "https://api.cognitedata.com".into(),
            project: "p".into(),
            credentials: ClientCredentials {
                token_url: "https://idp.example/token".into(),
                client_id: "id".into(),
                secret: Secret::new("s"),
                scopes: vec!["https://api.cognitedata.com/.default".into()],
                audience: None,
                resource: None,
            },
            extraction_pipeline: None,
            timeout: Duration::from_secs(timeout_secs),
            max_retries: 3,
        }
    }

    #[test]
    fn keeps_the_two_most_recent_settings() {
        let cache = ClientCache::default();
        cache.client_for(&cognite(10)).unwrap();
        cache.client_for(&cognite(20)).unwrap();
        cache.client_for(&cognite(10)).unwrap();
        assert_eq!(cache.len(), 2);
        cache.client_for(&cognite(30)).unwrap();
        assert_eq!(cache.len(), 2);
        let kept: Vec<Duration> = cache
            .clients
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _)| s.timeout)
            .collect();
        assert_eq!(kept, vec![Duration::from_secs(10), Duration::from_secs(30)]);
    }
}
