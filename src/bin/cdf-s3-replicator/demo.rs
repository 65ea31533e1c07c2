//! `cdf-s3-replicator demo`: the whole sync path on one machine, with no CDF and no AWS.
//!
//! Starts the bundled CDF emulator in-process, seeds the sample plant model, syncs it into
//! a local directory, applies updates and deletes, syncs again, publishes, and prints what
//! was written, how to query it, and the lake's `status` (which needs the emulator's RAW
//! state rows, so it is read before the emulator stops).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdf_emulator::sample_model;
use cdf_emulator::{Emulator, EmulatorConfig};
use tokio::time::Instant;

use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::sync::{RunSummary, SyncJob, SyncOptions};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("starting the CDF emulator: {0}")]
    Emulator(#[from] std::io::Error),
    #[error("seeding the CDF emulator ({step}): {message}")]
    Seed { step: &'static str, message: String },
    #[error(transparent)]
    Load(#[from] cdf_s3_replicator::context::LoadError),
    #[error(transparent)]
    Context(#[from] cdf_s3_replicator::context::ContextError),
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoReport {
    pub lake: PathBuf,
    pub backfill: RunSummary,
    pub changes: RunSummary,
    pub snapshot: cdf_s3_replicator::snapshot::SnapshotSummary,
    /// `status` of the lake at the end, read while the emulator (which holds the RAW state
    /// rows) still runs.
    pub status: cdf_s3_replicator::status::report::StatusReport,
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
    let job = SyncJob::from_context(&context);
    let inputs = || JobInputs {
        progress: crate::progress::for_stderr(),
        ..JobInputs::until(Instant::now() + Duration::from_secs(600))
    };
    let options = SyncOptions::default();

    let backfill = jobs::sync(&job, &inputs(), &options).await;
    seed(
        "updates",
        control.apply_instances(sample_model::updates(pumps, 1)),
    )?;
    seed(
        "deletes",
        control.delete_instances(sample_model::deletions(pumps)),
    )?;
    let changes = jobs::sync(&job, &inputs(), &options).await;
    let snapshot = jobs::snapshot(
        &context,
        &inputs(),
        &cdf_s3_replicator::snapshot::SnapshotOptions::default(),
    )
    .await;
    let status = cdf_s3_replicator::status::gather(
        &context,
        &cdf_s3_replicator::status::StatusOptions::default(),
    )
    .await;
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

/// What the demo wrote, and how to read it.
pub fn print(report: &DemoReport) {
    let lake = report.lake.display();
    println!("Synced the sample plant model from the bundled CDF emulator into {lake}\n");
    for (title, summary) in [
        ("Backfill", &report.backfill),
        ("Updates and deletes", &report.changes),
    ] {
        println!("{title}: {}", summary.one_line());
        for stream in &summary.streams {
            println!(
                "  {:<60} {:>7} rows {:>3} commits  {:?}",
                stream.stream, stream.rows, stream.commits, stream.status
            );
        }
        println!();
    }
    println!("Delta tables (raw layer, full change history):");
    let raw = report.lake.join("raw");
    let mut tables = Vec::new();
    find_tables(&raw, &mut tables);
    tables.sort();
    for table in &tables {
        println!("  {}", table.display());
    }
    println!("\nPublish layer (latest state of every live instance, for BI tools):");
    let mut published = Vec::new();
    find_files(&report.lake.join("publish"), &mut published);
    published.sort();
    for file in &published {
        println!("  {}", file.display());
    }
    if !report.snapshot.is_success() {
        println!(
            "  snapshot problems: {}",
            serde_json::to_string(&report.snapshot).unwrap_or_default()
        );
    }
    if let Some(pumps) = published.iter().find(|f| f.ends_with("Pump/nodes.parquet")) {
        println!("\nRead it with DuckDB:");
        println!(
            "  duckdb -c \"SELECT externalId, tag, ratedKw, status FROM '{}' LIMIT 10\"",
            pumps.display()
        );
    }
    if let Some(pumps) = tables.iter().find(|t| t.ends_with("Pump/nodes")) {
        let pumps = pumps.display();
        println!("\nQuery the change history with DuckDB (delta extension):");
        println!(
            "  duckdb -c \"INSTALL delta; LOAD delta; SELECT externalId, version, ratedKw, deletedTime FROM delta_scan('{pumps}') ORDER BY externalId, version LIMIT 10\""
        );
        println!("or with Python:");
        println!(
            "  python -c \"from deltalake import DeltaTable; print(DeltaTable('{pumps}').to_pyarrow_table().slice(0, 5))\""
        );
    }
    println!("\ncdf-s3-replicator status:");
    print!(
        "{}",
        cdf_s3_replicator::status::render::render(&report.status)
    );
}

fn find_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
}

fn find_tables(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.join("_delta_log").is_dir() {
            out.push(path);
        } else if path.is_dir() {
            find_tables(&path, out);
        }
    }
}
