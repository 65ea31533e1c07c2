//! Whether CDF and its identity provider answer at all, within a bounded time.
//!
//! A run's calls retry transient failures patiently (8 attempts, backoff up to 30 s, each
//! attempt up to the HTTP timeout): right for a scheduled run, but an operator at a
//! terminal whose CDF address is wrong, or whose network drops the packets, would wait
//! minutes per model. Interactive commands therefore first ask for a token and make one
//! small call, bound to a short deadline, and give up with the host that did not answer.
//! Only silence counts: an answer, even a refusal, proves the host reachable, and the call
//! that needs it reports the refusal itself.

use std::time::Duration;

use tokio::time::Instant;

use super::client::ApiRequest;
use super::{CdfClient, CdfError};

/// The host (identity provider or CDF) that gave no answer in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot reach {what} at {host}: no answer within {} s ({detail}); check the address and the network, or wait longer with --connect-timeout",
    within.as_secs()
)]
pub struct Unreachable {
    /// `the identity provider` or `CDF`.
    pub what: &'static str,
    /// The host (and port, when given) that did not answer.
    pub host: String,
    /// How long it was given.
    pub within: Duration,
    /// What the last attempt saw (redacted by [`CdfError`]'s display).
    pub detail: String,
}

impl CdfClient {
    /// Gets a token and makes one small read (`GET /models/datamodels?limit=1`), both within
    /// `within`; fails naming the host that gave no answer. Any HTTP answer, even an error
    /// status, counts as reachable.
    pub async fn reachable_within(&self, within: Duration) -> Result<(), Unreachable> {
        let probe = self.with_deadline(Instant::now() + within);
        let unreachable = |what, url: &str, error: &CdfError| Unreachable {
            what,
            host: host_of(url),
            within,
            detail: error.to_string(),
        };
        if let Err(error) = probe.authenticate().await
            && no_answer(&error)
        {
            return Err(unreachable(
                "the identity provider",
                self.token_url(),
                &error,
            ));
        }
        let request = ApiRequest::get("/models/datamodels".to_owned()).query("limit", 1);
        match probe.send_json::<serde_json::Value>(&request).await {
            Err(error) if no_answer(&error) => Err(unreachable("CDF", self.api_base(), &error)),
            _ => Ok(()),
        }
    }
}

/// Whether the failure is silence: no HTTP answer (connect refused or timed out, dropped
/// connection) or none before the deadline.
fn no_answer(error: &CdfError) -> bool {
    match error {
        CdfError::Transport { .. } => true,
        CdfError::Auth { status, .. } => status.is_none(),
        CdfError::DeadlineReached { last, .. } => last.as_deref().is_none_or(no_answer),
        CdfError::RetriesExhausted { last, .. } => no_answer(last),
        _ => false,
    }
}

/// `host[:port]` of a URL, or the text itself when it does not parse.
fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => url.to_owned(),
        },
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_host_and_port() {
        assert_eq!(
            host_of("http://127.0.0.1:9/api/v1/projects/p"),
            "127.0.0.1:9"
        );
        assert_eq!(
            host_of("https://api.cognitedata.com/api/v1/projects/p"),
            "api.cognitedata.com"
        );
        assert_eq!(host_of("not a url"), "not a url");
    }
}
