//! `cdf-s3-replicator demo`: the whole sync path on one machine, with no CDF and no AWS.
//!
//! Starts the bundled CDF emulator in-process, seeds the sample plant model, syncs it into
//! a local directory, applies updates and deletes, syncs again, publishes, and prints what
//! was written, how to query it, and the lake's `status` (which needs the emulator's RAW
//! state rows, so it is read before the emulator stops).

pub mod sample_model;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdf_emulator::{Emulator, EmulatorConfig};
use tokio::time::Instant;

use crate::config::MapEnv;
use crate::context::{Context, load_config_text};
use crate::jobs;
use crate::sync::SyncOptions;
use crate::sync::summary::RunSummary;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("starting the CDF emulator: {0}")]
    Emulator(#[from] std::io::Error),
    #[error("seeding the CDF emulator ({step}): {message}")]
    Seed { step: &'static str, message: String },
    #[error(transparent)]
    Load(#[from] crate::context::LoadError),
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoReport {
    pub lake: PathBuf,
    pub backfill: RunSummary,
    pub changes: RunSummary,
    pub snapshot: crate::snapshot::SnapshotSummary,
    /// `status` of the lake at the end, read while the emulator (which holds the RAW state
    /// rows) still runs.
    pub status: crate::status::report::StatusReport,
}

/// Runs the demo into `lake` with `pumps` sample pumps.
pub async fn run(lake: &Path, pumps: usize) -> Result<DemoReport, DemoError> {
    let emulator = Emulator::start(EmulatorConfig::default()).await?;
    let control = emulator.control();
    let seed = |step, result: Result<serde_json::Value, cdf_emulator::ApiError>| {
        result.map(|_| ()).map_err(|e| DemoError::Seed {
            step,
            message: e.message,
        })
    };
    seed("schema", control.apply_schema(sample_model::schema()))?;
    seed(
        "instances",
        control.apply_instances(sample_model::initial_instances(pumps)),
    )?;

    std::fs::create_dir_all(lake)?;
    let lake = lake.canonicalize()?;
    let config = load_config_text(
        &demo_config(&emulator, &lake),
        "demo configuration",
        &MapEnv::new(),
    )
    .await?;
    let context = Context::new(config)?;
    let job = context.sync_job();
    let options = || SyncOptions::until(Instant::now() + Duration::from_secs(600));

    let backfill = jobs::sync(&job, &options()).await;
    seed(
        "updates",
        control.apply_instances(sample_model::updates(pumps, 1)),
    )?;
    seed(
        "deletes",
        control.delete_instances(sample_model::deletions(pumps)),
    )?;
    let changes = jobs::sync(&job, &options()).await;
    let snapshot = jobs::snapshot(&context, &crate::snapshot::SnapshotOptions::default()).await;
    let status = crate::status::gather(&context, &crate::status::StatusOptions::default()).await;
    emulator.shutdown().await;
    Ok(DemoReport {
        lake,
        backfill,
        changes,
        snapshot,
        status,
    })
}

/// The configuration a user would write, pointed at the emulator and a local directory.
pub fn demo_config(emulator: &Emulator, lake: &Path) -> String {
    format!(
        r#"logger:
  console:
    level: WARNING
cognite:
  host: {base}
  project: {project}
  idp-authentication:
    token-url: {token}
    client-id: emulator-client
    secret: emulator-secret
    scopes: ["{base}/.default"]
  extraction-pipeline:
    external-id: s3-data-modeling-replicator
extractor:
  state-store:
    raw:
      database: s3_replicator_state
      table: data_modeling_state
  subscription-batch-size: 500
data_modeling:
  - space: {space}
    data_models:
      - external_id: {model}
destination:
  local:
    path: "{lake}"
"#,
        base = emulator.base_url(),
        project = emulator.project(),
        token = emulator.token_url(),
        space = sample_model::SCHEMA_SPACE,
        model = sample_model::MODEL,
        lake = lake.display(),
    )
}
