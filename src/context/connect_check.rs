//! `check-config --connect`: whether the configuration works against the real services,
//! one clear line per check, before a first run finds out the hard way.
//!
//! - the CDF credentials: a token from the token URL;
//! - the configured data models and views: each resolved in CDF, as a run plans them;
//! - the lake: an object written, read back and deleted at the destination's root.
//!
//! Each check has the same time limit, so an unreachable host costs the limit, not a
//! connection timeout per request and retry, and a slow CDF leaves the lake its own time.

use std::time::Duration;

use deltalake::Path;
use deltalake::logstore::object_store::{ObjectStoreExt as _, PutPayload};
use tokio::time::Instant;

use super::Context;
use crate::config::Destination as ConfiguredDestination;
use crate::lake::Destination;
use crate::plan::{Plan, model_label};
use crate::secret::redact;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectCheck {
    /// What was checked, e.g. `CDF credentials`.
    pub what: String,
    /// What was found: `Ok` with what works, `Err` with what failed, naming the host,
    /// model, view or bucket.
    pub outcome: Result<String, String>,
}

impl ConnectCheck {
    fn new(what: impl Into<String>, outcome: Result<String, String>) -> Self {
        Self {
            what: what.into(),
            outcome,
        }
    }

    /// The check as one line: `ok     what: detail` or `FAILED what: why`.
    pub fn line(&self) -> String {
        match &self.outcome {
            Ok(detail) => format!("ok      {}: {detail}", self.what),
            Err(why) => format!("FAILED  {}: {why}", self.what),
        }
    }
}

/// Runs every check, each within `limit`. A check that cannot run because an earlier one
/// failed says so.
pub async fn check_connection(context: &Context, limit: Duration) -> Vec<ConnectCheck> {
    let deadline = || Instant::now() + limit;
    let mut checks = Vec::new();
    let credentials = credentials(context, deadline(), limit).await;
    let token = credentials.outcome.is_ok();
    checks.push(credentials);
    if token {
        checks.extend(models(context, deadline(), limit).await);
    } else {
        checks.push(ConnectCheck::new(
            "data models and views",
            Err("not checked: no token".to_owned()),
        ));
    }
    checks.push(lake(context, deadline(), limit).await);
    checks
}

/// `fut` within what is left until `deadline`; `None` when it did not finish in time.
async fn within<T>(deadline: Instant, fut: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout_at(deadline, fut).await.ok()
}

async fn credentials(context: &Context, deadline: Instant, limit: Duration) -> ConnectCheck {
    let cognite = &context.config.cognite;
    let token_url = &cognite.credentials.token_url;
    let client = context.client.with_deadline(deadline);
    let outcome = match within(deadline, client.authenticate()).await {
        Some(Ok(())) => Ok(format!(
            "a token for client {} from {token_url}",
            cognite.credentials.client_id
        )),
        Some(Err(error)) => Err(format!(
            "no token for client {} from {token_url}: {}",
            cognite.credentials.client_id,
            redact(&error.to_string())
        )),
        None => Err(format!(
            "{token_url} did not answer within {}",
            crate::config::duration_text(limit)
        )),
    };
    ConnectCheck::new("CDF credentials", outcome)
}

async fn models(context: &Context, deadline: Instant, limit: Duration) -> Vec<ConnectCheck> {
    let config = &context.config;
    let client = context.client.with_deadline(deadline);
    let what = format!(
        "data models and views in {}/{}",
        config.cognite.host, config.cognite.project
    );
    let resolved = within(
        deadline,
        Plan::resolve(
            &client,
            &config.data_modeling,
            config.extractor.sync_page_size,
        ),
    )
    .await;
    let Some(plan) = resolved else {
        return vec![ConnectCheck::new(
            what,
            Err(format!(
                "{} did not answer within {}",
                config.cognite.host,
                crate::config::duration_text(limit)
            )),
        )];
    };
    let mut checks: Vec<ConnectCheck> = plan
        .problems()
        .iter()
        .map(|problem| ConnectCheck::new(&what, Err(redact(&problem.message))))
        .collect();
    if checks.is_empty() {
        let mut views: Vec<String> = plan
            .streams()
            .iter()
            .map(|spec| format!("{}:{}", model_label(&spec.model), spec.view.external_id))
            .collect();
        views.dedup();
        checks.push(ConnectCheck::new(
            what,
            Ok(format!("{} views: {}", views.len(), views.join(", "))),
        ));
    }
    checks
}

/// Name of the probe object: unique per check, so that concurrent checks never meet.
fn probe_name() -> String {
    let suffix: u64 = rand::random();
    format!("_check-config-probe-{suffix:016x}")
}

async fn lake(context: &Context, deadline: Instant, limit: Duration) -> ConnectCheck {
    let location = context.destination.location();
    let what = format!("lake {location}");
    let created_root = match (&context.config.destination, &context.destination) {
        (ConfiguredDestination::Local(_), Destination::Local(local)) => {
            (!local.root().exists()).then(|| local.root().to_path_buf())
        }
        _ => None,
    };
    let outcome = match within(deadline, probe(&context.destination)).await {
        Some(outcome) => outcome,
        None => Err(format!(
            "no answer within {}",
            crate::config::duration_text(limit)
        )),
    };
    // A local lake's directory that only the probe created goes again (only when empty).
    if let Some(root) = created_root {
        let _ = std::fs::remove_dir(root);
    }
    ConnectCheck::new(what, outcome)
}

/// Writes, reads back and deletes one small object at the lake's root.
async fn probe(destination: &Destination) -> Result<String, String> {
    let store = destination
        .object_store()
        .map_err(|error| redact(&error.to_string()))?;
    let name = probe_name();
    let path = Path::from(name.as_str());
    let body = b"check-config probe; deleted right away".to_vec();
    store
        .put(&path, PutPayload::from(body.clone()))
        .await
        .map_err(|error| format!("cannot write {name}: {}", redact(&error.to_string())))?;
    let read = match store.get(&path).await {
        Ok(result) => result.bytes().await.map(|bytes| bytes.to_vec()),
        Err(error) => Err(error),
    };
    let deleted = store.delete(&path).await;
    let read = read.map_err(|error| {
        format!(
            "wrote {name} but cannot read it back: {}",
            redact(&error.to_string())
        )
    })?;
    if read != body {
        return Err(format!("{name} read back differs from what was written"));
    }
    deleted.map_err(|error| {
        format!(
            "wrote and read {name} but cannot delete it (delete it by hand): {}",
            redact(&error.to_string())
        )
    })?;
    let identity = match destination.read_identity().await {
        Ok(Some(identity)) => format!("lake id {}", identity.lake_id),
        Ok(None) => "no lake identity yet (the first sync writes it)".to_owned(),
        Err(error) => format!("lake identity unreadable: {}", redact(&error.to_string())),
    };
    Ok(format!("readable and writable; {identity}"))
}
