//! `cdf-s3-replicator demo`: the whole sync path on one machine, with no CDF and no AWS.
//!
//! Starts the bundled CDF emulator in-process, seeds the sample plant model, syncs it into
//! a local directory, applies updates and deletes, syncs again, publishes, and prints what
//! was written, how to query it (Python commands: pyarrow and deltalake, no DuckDB CLI),
//! and the lake's `status` (which needs the emulator's RAW state rows, so it is read before
//! the emulator stops).
//!
//! The emulator starts empty each time, so a rerun into the lake of an earlier demo starts
//! over (and says so). With `--keep-running` the emulator stays up, with a `config.yaml`
//! next to the lake that points at it, until Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cdf_emulator::sample_model;
use cdf_emulator::{Control, Emulator, EmulatorConfig};
use serde_json::Value;

use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::job::{Deadline, JobInputs};
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::sync::{RunSummary, SyncJob, SyncOptions};

use crate::interrupt;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("starting the CDF emulator: {0}")]
    Emulator(#[from] std::io::Error),
    #[error("seeding the CDF emulator ({step}): {message}")]
    Seed { step: &'static str, message: String },
    #[error(
        "{0} is not empty and holds no earlier demo: the demo starts over in its lake, so give it a new or empty directory with --lake"
    )]
    NotADemoLake(PathBuf),
    #[error(transparent)]
    Load(#[from] cdf_s3_replicator::context::LoadError),
    #[error(transparent)]
    Context(#[from] cdf_s3_replicator::context::ContextError),
}

/// What the demo did. A step the operator's Ctrl-C came before is `None`.
#[derive(Debug)]
pub struct DemoReport {
    pub lake: PathBuf,
    pub pumps: usize,
    pub backfill: RunSummary,
    pub changes: Option<RunSummary>,
    pub snapshot: Option<cdf_s3_replicator::snapshot::SnapshotSummary>,
    /// `status` of the lake at the end, read while the emulator (which holds the RAW state
    /// rows) still runs.
    pub status: Option<cdf_s3_replicator::status::report::StatusReport>,
}

/// The file in a demo's lake that marks it as one, so that a rerun may clear it.
const MARKER: &str = ".cdf-s3-replicator-demo";

/// Seeded instances per request, each followed by a progress line.
const SEED_CHUNK: usize = 500;

/// The `demo` command: runs the demo, prints what it wrote, and with `keep_running` leaves
/// the emulator up with a configuration pointing at it until Ctrl-C. Exit 130/143 when a
/// signal stopped the demo before its end.
pub async fn main(lake: &Path, pumps: usize, keep_running: bool) -> anyhow::Result<ExitCode> {
    let lake = prepare_lake(lake)?;
    eprintln!("Starting the bundled CDF emulator...");
    let emulator = Emulator::start(EmulatorConfig::default()).await?;
    let result = run(&emulator, &lake, pumps).await;
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            emulator.shutdown().await;
            return Err(error.into());
        }
    };
    print(&report);
    if let Some(code) = interrupt::exit_code() {
        emulator.shutdown().await;
        let mut outcomes = vec![report.backfill.outcome()];
        outcomes.extend(report.changes.as_ref().map(RunSummary::outcome));
        let outcomes: Vec<_> = outcomes.iter().collect();
        eprint!("{}", interrupt::stopped_message(&outcomes));
        eprintln!("The demo stopped before its end; run it again to start over.");
        return Ok(code);
    }
    if keep_running {
        let config = write_config(&emulator, &lake)?;
        print_next_steps(&config, &lake);
        interrupt::INTERRUPT.raised().await;
        eprintln!("Stopping the emulator.");
    }
    emulator.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The lake directory, created, or cleared when an earlier demo left it: the bundled
/// emulator starts empty every time, so an earlier demo's tables (whose cursors and state
/// rows belonged to that emulator) cannot be continued.
fn prepare_lake(lake: &Path) -> Result<PathBuf, DemoError> {
    if lake.is_dir() && std::fs::read_dir(lake)?.next().is_some() {
        if !lake.join(MARKER).is_file() {
            return Err(DemoError::NotADemoLake(lake.to_owned()));
        }
        println!(
            "{} holds an earlier demo: starting over (the bundled emulator starts empty each time, so its tables cannot be continued).\n",
            lake.display()
        );
        std::fs::remove_dir_all(lake)?;
    }
    std::fs::create_dir_all(lake)?;
    std::fs::write(
        lake.join(MARKER),
        "Written by `cdf-s3-replicator demo`: a rerun of the demo clears this directory.\n",
    )?;
    Ok(lake.canonicalize()?)
}

/// Runs the demo into `lake` with `pumps` sample pumps. Ctrl-C ends the sync in progress
/// at its next safe point and skips the steps after it.
pub async fn run(emulator: &Emulator, lake: &Path, pumps: usize) -> Result<DemoReport, DemoError> {
    let control = emulator.control();
    seed(&control, pumps)?;
    let config = load_config_text(
        &demo_config(emulator, lake),
        "demo configuration",
        &MapEnv::new(),
    )
    .await?;
    let context = Context::new(config)?;
    let job = SyncJob::from_context(&context);
    let inputs = || JobInputs {
        progress: crate::progress::for_stderr(),
        ..JobInputs::until(interrupt::interruptible(Deadline::none()))
    };
    let options = SyncOptions::default();

    let mut report = DemoReport {
        lake: lake.to_owned(),
        pumps,
        backfill: jobs::sync(&job, &inputs(), &options).await,
        changes: None,
        snapshot: None,
        status: None,
    };
    if interrupt::interrupted() {
        return Ok(report);
    }
    eprintln!("Applying updates and deletes in the emulator...");
    seed_step(
        "updates",
        control.apply_instances(sample_model::updates(pumps, 1)),
    )?;
    seed_step(
        "deletes",
        control.delete_instances(sample_model::deletions(pumps)),
    )?;
    report.changes = Some(jobs::sync(&job, &inputs(), &options).await);
    if interrupt::interrupted() {
        return Ok(report);
    }
    report.snapshot = Some(
        jobs::snapshot(
            &context,
            &inputs(),
            &cdf_s3_replicator::snapshot::SnapshotOptions::default(),
        )
        .await,
    );
    report.status = Some(
        cdf_s3_replicator::status::gather(
            &context,
            &cdf_s3_replicator::status::StatusOptions::default(),
        )
        .await,
    );
    Ok(report)
}

fn seed_step(
    step: &'static str,
    result: Result<Value, cdf_emulator::ApiError>,
) -> Result<(), DemoError> {
    result.map(|_| ()).map_err(|e| DemoError::Seed {
        step,
        message: e.message,
    })
}

/// The sample model and its instances, in chunks with a progress line each.
fn seed(control: &Control, pumps: usize) -> Result<(), DemoError> {
    eprintln!(
        "Seeding the sample plant model: {pumps} pumps, {} work orders, {} edges",
        2 * pumps,
        2 * pumps
    );
    seed_step("schema", control.apply_schema(sample_model::schema()))?;
    let mut all = sample_model::initial_instances(pumps);
    let items = match all.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let total = items.len();
    let mut done = 0;
    for chunk in items.chunks(SEED_CHUNK) {
        let mut body = all.clone();
        body["items"] = Value::Array(chunk.to_vec());
        seed_step("instances", control.apply_instances(body))?;
        done += chunk.len();
        eprintln!("  seeded {done}/{total} instances");
    }
    Ok(())
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

/// The file the demo leaves next to the lake with `--keep-running`: `config.yaml` in the
/// lake's parent directory, unless a configuration the demo did not write is there already
/// (then `demo-config.yaml`).
fn write_config(emulator: &Emulator, lake: &Path) -> std::io::Result<PathBuf> {
    const HEADER: &str = "# Written by `cdf-s3-replicator demo --keep-running`: the bundled CDF emulator and the demo's lake.\n";
    let dir = lake.parent().unwrap_or(lake);
    let mut path = dir.join("config.yaml");
    let ours =
        |path: &Path| std::fs::read_to_string(path).is_ok_and(|text| text.starts_with(HEADER));
    if path.exists() && !ours(&path) {
        path = dir.join("demo-config.yaml");
    }
    std::fs::write(&path, format!("{HEADER}{}", demo_config(emulator, lake)))?;
    Ok(path)
}

/// The commands to try against the running emulator.
fn print_next_steps(config: &Path, lake: &Path) {
    let config = config.display();
    println!(
        "\nThe emulator keeps running; {config} points at it and at {}.",
        lake.display()
    );
    println!("Try, in another terminal:");
    println!("  cdf-s3-replicator status --config {config}");
    println!("  cdf-s3-replicator sync --config {config}");
    println!("  cdf-s3-replicator snapshot --config {config}");
    println!("  cdf-s3-replicator verify --config {config}");
    println!(
        "(from a clone of the repository: `cargo run --features demo --` instead of `cdf-s3-replicator`)"
    );
    println!("Press Ctrl-C to stop the emulator.");
}

/// A pump whose history has more than one row: every fifth pump is updated (but not one
/// the deletes take, every eleventh), and every eleventh is deleted.
pub fn changed_pump(pumps: usize) -> String {
    let updated = (0..pumps).step_by(5).find(|p| p % 11 != 0);
    format!("pump-{:04}", updated.unwrap_or(0))
}

/// What the demo wrote, and how to read it.
pub fn print(report: &DemoReport) {
    let lake = report.lake.display();
    println!("Synced the sample plant model from the bundled CDF emulator into {lake}\n");
    for (title, summary) in [
        ("Backfill", Some(&report.backfill)),
        ("Updates and deletes", report.changes.as_ref()),
    ] {
        let Some(summary) = summary else {
            continue;
        };
        println!("{title}: {}", summary.one_line());
        for stream in &summary.streams {
            println!(
                "  {:<60} {:>7} rows {:>3} commits  {}",
                stream.stream,
                stream.rows,
                stream.commits,
                stream.status.label()
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
    let Some(snapshot) = &report.snapshot else {
        return;
    };
    println!("\nPublish layer (latest state of every live instance, for BI tools):");
    let mut published = Vec::new();
    find_files(&report.lake.join("publish"), &mut published);
    published.sort();
    for file in &published {
        println!("  {}", file.display());
    }
    if !snapshot.is_success() {
        println!(
            "  snapshot problems: {}",
            serde_json::to_string(snapshot).unwrap_or_default()
        );
    }
    let pumps_file = published.iter().find(|f| f.ends_with("Pump/nodes.parquet"));
    let pumps_table = tables.iter().find(|t| t.ends_with("Pump/nodes"));
    if pumps_file.is_some() || pumps_table.is_some() {
        println!(
            "\nRead it with Python (`pip install pyarrow deltalake`, or prefix `uvx --with pyarrow --with deltalake`):"
        );
    }
    if let Some(pumps) = pumps_file {
        println!("The published pumps, their latest state:");
        println!("  {}", published_pumps_command(pumps));
    }
    if let Some(pumps) = pumps_table {
        println!(
            "The change history of {}, which the demo updated or deleted:",
            changed_pump(report.pumps)
        );
        println!("  {}", history_command(pumps, &changed_pump(report.pumps)));
    }
    if let Some(status) = &report.status {
        println!("\ncdf-s3-replicator status:");
        print!("{}", cdf_s3_replicator::status::render::render(status));
    }
}

/// A `python3 -c` reading the first published pumps with pyarrow.
pub fn published_pumps_command(file: &Path) -> String {
    format!(
        "python3 -c \"import pyarrow.parquet as pq; [print(r) for r in pq.read_table('{}', columns=['externalId', 'tag', 'ratedKw', 'status']).slice(0, 5).to_pylist()]\"",
        file.display()
    )
}

/// A `python3 -c` printing every row of one pump in the raw table, oldest first. It ends
/// with `os._exit`: the native threads of `deltalake` can abort the interpreter's shutdown
/// ("terminate called without an active exception") after the rows are printed.
pub fn history_command(table: &Path, pump: &str) -> String {
    format!(
        "python3 -c \"import os, deltalake; rows = deltalake.DeltaTable('{}').to_pyarrow_table(columns=['externalId', 'version', 'ratedKw', 'status', 'deletedTime'], filters=[('externalId', '=', '{pump}')]).to_pylist(); [print(r, flush=True) for r in sorted(rows, key=lambda r: r['version'])]; os._exit(0)\"",
        table.display()
    )
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
