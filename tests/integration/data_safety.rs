//! The data itself never costs a row or wedges a view: a refused value never moves a stored
//! cursor past uncommitted rows, an instance that cannot be represented is quarantined (once)
//! while the rest of its view syncs, `caughtUp` includes the changes made during the
//! backfill, and a view whose sync never committed is a failed view in the snapshot, not an
//! empty file.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cdf_emulator::FaultSpec;
use cdf_emulator::sample_model::{DATA_SPACE, SCHEMA_SPACE};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::InstanceKind;
use cdf_s3_replicator::lambda::config_source::{CONFIG_ENV, ConfigSource};
use cdf_s3_replicator::lambda::logging::LogControl;
use cdf_s3_replicator::lambda::metrics::MemorySink;
use cdf_s3_replicator::lambda::{Function, FunctionKind, FunctionSetup, Invocation};
use cdf_s3_replicator::maintenance::{MaintenanceOptions, TableStatus};
use cdf_s3_replicator::snapshot::{FileAction, SnapshotOptions};
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use cdf_s3_replicator::sync::summary::{RunSummary, StreamReport, StreamStatus};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake, assert_matches_truth, python};

const PUMP_NODES: &str = "plant_schema/PlantModel/1/Pump/nodes";
const WORK_ORDER_NODES: &str = "plant_schema/PlantModel/1/WorkOrder/nodes";
/// Pages of three instances: twelve pumps (`pump-0000` ... `pump-0011`) make four full pages,
/// and `pump-0010` is on the fourth.
const PAGES_OF_THREE: &str = "  subscription-batch-size: 3\n  parallelism: 1\n";
const PUMPS: usize = 12;

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(120))
}

fn stream<'a>(summary: &'a RunSummary, key: &str) -> &'a StreamReport {
    summary
        .streams
        .iter()
        .find(|s| s.stream == key)
        .unwrap_or_else(|| panic!("no stream {key}: {summary:#?}"))
}

/// Every sync page that carries `pump-0010` serves its text property `tag` as a number, a
/// value the view's type refuses (the original text moves to a property the view lacks).
fn refuse_the_tag_of_pump_0010() -> FaultSpec {
    FaultSpec::rewrite_body(
        "/models/instances/sync",
        "\"tag\":\"P-0010",
        "\"tag\":10,\"tagWas\":\"P-0010",
        1000,
    )
}

fn local_path(lab: &Lab, folder: &str, kind: &str) -> PathBuf {
    match &lab.lake {
        Lake::Local(_) => PathBuf::from(lab.lake.raw_table_uri(folder, kind)),
        Lake::S3 { .. } => panic!("these tests use a local lake"),
    }
}

fn external_ids(rows: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = rows
        .iter()
        .map(|r| r["externalId"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn pump_ids(except: &[&str]) -> Vec<String> {
    (0..PUMPS)
        .map(|p| format!("pump-{p:04}"))
        .filter(|id| !except.contains(&id.as_str()))
        .collect()
}

fn pump_update(xid: &str, properties: Value) -> Value {
    json!({"items": [{"instanceType": "node", "space": DATA_SPACE, "externalId": xid,
        "sources": [{"source": {"type": "view", "space": SCHEMA_SPACE, "externalId": "Pump", "version": "1"}, "properties": properties}]}]})
}

/// Defect: a refused value on page 4 reset the buffer (dropping pages 1-3) and stored the
/// cursor of page 3, so the next run started after rows that were never committed. Here the
/// refused instance cannot even be quarantined (its table's path is blocked), so the stream
/// fails, and the next run must still deliver every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_cannot_be_stored_never_moves_the_cursor_past_uncommitted_rows() {
    if python().is_none() {
        return;
    }
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context_with(PAGES_OF_THREE, Some(&["Pump"])).await;
    let job = SyncJob::from_context(&context);
    let control = lab.emulator.control();
    control.add_fault(refuse_the_tag_of_pump_0010());
    let blocked = local_path(&lab, "Pump", "rejected");
    std::fs::create_dir_all(blocked.parent().expect("parent")).expect("view folder");
    std::fs::write(&blocked, "not a table").expect("a file where the table would go");

    let failed = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    let pumps = stream(&failed, PUMP_NODES);
    assert_eq!(pumps.status, StreamStatus::Failed, "{failed:#?}");
    assert_eq!(pumps.rows, 0, "{failed:#?}");
    let state = lab.state_row(PUMP_NODES);
    assert_eq!(
        state["columns"]["cursor"],
        Value::Null,
        "no row was committed, so no cursor may be stored: {state}"
    );
    let error = pumps.error.as_ref().map_or("", |e| e.message.as_str());
    assert!(error.contains("quarantine"), "{error}");

    // The data is right again and the path is free: nothing of the first pages is missing.
    control.clear_faults();
    std::fs::remove_file(&blocked).expect("unblock");
    let recovered = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(recovered.is_success(), "{recovered:#?}");
    assert_eq!(stream(&recovered, PUMP_NODES).rows, PUMPS as u64);
    let report = lab
        .compare("Pump", "nodes", "Pump", lab.truth_nodes("Pump"))
        .expect("python");
    assert_matches_truth(&report, PUMPS, "after the failed page");
}

/// A refused value is quarantined with the instance as received; the rest of the view
/// (pages before and after it, other streams) syncs in the same run, and a fix in CDF
/// replicates normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_instance_is_quarantined_and_the_rest_of_its_view_syncs() {
    if python().is_none() {
        return;
    }
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context_with(PAGES_OF_THREE, Some(&["Pump"])).await;
    let job = SyncJob::from_context(&context);
    let control = lab.emulator.control();
    control.add_fault(refuse_the_tag_of_pump_0010());

    let summary = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(summary.is_success(), "{summary:#?}");
    let pumps = stream(&summary, PUMP_NODES);
    assert_eq!(pumps.status, StreamStatus::CaughtUp, "{summary:#?}");
    assert_eq!(pumps.rows, PUMPS as u64 - 1);
    assert_eq!(pumps.rows_quarantined, 1);
    assert_eq!(summary.rows_quarantined, 1);
    assert!(
        summary.one_line().contains("1 rows quarantined"),
        "{}",
        summary.one_line()
    );
    let raw = lab.raw_rows("Pump", "nodes").expect("python");
    assert_eq!(external_ids(&raw), pump_ids(&["pump-0010"]));

    let rejected = lab.raw_rows("Pump", "rejected").expect("python");
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    let row = &rejected[0];
    assert_eq!(row["stream"], PUMP_NODES);
    assert_eq!(row["table"], "nodes");
    assert_eq!(row["space"], DATA_SPACE);
    assert_eq!(row["externalId"], "pump-0010");
    assert_eq!(row["instanceType"], "node");
    assert_eq!(row["property"], "tag");
    assert_eq!(row["generation"], 1);
    assert!(row["seq"].as_i64().is_some_and(|s| s >= 1), "{row}");
    assert!(row["quarantinedTime"].as_i64().is_some(), "{row}");
    let reason = row["reason"].as_str().unwrap_or_default();
    for part in ["Pump", "tag", "pump-0010", "expected"] {
        assert!(reason.contains(part), "the reason names {part}: {reason}");
    }
    let instance: Value =
        serde_json::from_str(row["instance"].as_str().unwrap_or_default()).expect("JSON");
    let values = &instance["properties"][SCHEMA_SPACE]["Pump/1"];
    assert_eq!(values["tag"], 10, "stored as received: {instance}");
    assert_eq!(values["tagWas"], "P-0010 æøå ✓", "{instance}");
    assert_eq!(instance["externalId"], "pump-0010");

    // The other streams of the view were not held back, and the snapshot publishes the
    // view without reading the quarantine table.
    assert_eq!(summary.streams_failed, 0, "{summary:#?}");
    let published = jobs::snapshot(
        &context,
        &JobInputs::everything()
            .with_views(["Pump"])
            .expect("a view name"),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(published.is_success(), "{published:#?}");
    let pump_view = &published.views[0];
    assert_eq!(
        pump_view.file(InstanceKind::Nodes).map(|f| f.rows),
        Some(PUMPS as u64 - 1)
    );

    // Maintenance visits the quarantine table with the view's other tables.
    let maintained = jobs::maintenance(
        &context,
        &JobInputs::everything(),
        &MaintenanceOptions::default(),
    )
    .await;
    assert!(maintained.is_success(), "{maintained:#?}");
    let quarantine = maintained
        .tables
        .iter()
        .find(|t| t.table.ends_with("/views/Pump/rejected"))
        .unwrap_or_else(|| panic!("the quarantine table is maintained: {maintained:#?}"));
    assert_eq!(quarantine.status, TableStatus::Done, "{quarantine:#?}");

    // Later pages keep flowing; once the value is fixed in CDF the instance replicates.
    control.clear_faults();
    control
        .apply_instances(pump_update("pump-0010", json!({"stages": 4})))
        .expect("fix");
    let fixed = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(fixed.is_success(), "{fixed:#?}");
    assert_eq!(stream(&fixed, PUMP_NODES).rows_quarantined, 0);
    let report = lab
        .compare("Pump", "nodes", "Pump", lab.truth_nodes("Pump"))
        .expect("python");
    assert_matches_truth(&report, PUMPS, "after the fix");
    assert_eq!(
        lab.raw_rows("Pump", "rejected").expect("python").len(),
        1,
        "nothing new is quarantined"
    );
}

fn run_cli(config: &std::path::Path, failpoint: Option<&str>) -> ExitStatus {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"));
    command.args(["sync", "--config"]).arg(config);
    command.stdout(std::process::Stdio::null());
    command.stderr(std::process::Stdio::null());
    match failpoint {
        Some(point) => command.env(cdf_s3_replicator::failpoint::ENV, point),
        None => command.env_remove(cdf_s3_replicator::failpoint::ENV),
    };
    command.status().expect("CLI runs")
}

/// Killed between the quarantine commit and the data commit: the next run repeats the
/// pages, and the quarantined instance is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_quarantine_commit_stores_the_rejected_row_once() {
    if python().is_none() {
        return;
    }
    let lab = Lab::start(PUMPS, None).await;
    lab.emulator
        .control()
        .add_fault(refuse_the_tag_of_pump_0010());
    let config = lab.config_file(PAGES_OF_THREE);
    let crash_config = config.clone();
    let crashed = tokio::task::spawn_blocking(move || {
        run_cli(&crash_config, Some("after-quarantine-commit"))
    })
    .await
    .expect("CLI task");
    assert!(!crashed.success(), "the armed failpoint stops the process");
    assert_eq!(lab.raw_rows("Pump", "rejected").expect("python").len(), 1);
    assert_eq!(
        lab.state_row(PUMP_NODES)["columns"]["cursor"],
        Value::Null,
        "the data commit did not happen"
    );

    let recovered = tokio::task::spawn_blocking(move || run_cli(&config, None))
        .await
        .expect("CLI task");
    assert!(recovered.success(), "the next run recovers");
    let rejected = lab.raw_rows("Pump", "rejected").expect("python");
    assert_eq!(rejected.len(), 1, "stored once: {rejected:#?}");
    let raw = lab.raw_rows("Pump", "nodes").expect("python");
    assert_eq!(raw.len(), PUMPS - 1, "every other pump once");
    assert_eq!(external_ids(&raw), pump_ids(&["pump-0010"]));
}

/// Defect: a run that ended its backfill reported `caughtUp` without reading the changes
/// made while the backfill ran; they arrived one invocation late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caught_up_includes_the_changes_made_during_the_backfill() {
    if python().is_none() {
        return;
    }
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context_with(PAGES_OF_THREE, Some(&["WorkOrder"])).await;
    let job = SyncJob::from_context(&context);
    let control = lab.emulator.control();
    // The first pages are slow, so the change below lands after the backfill's snapshot
    // (taken at the first page) and before its last page.
    control.add_fault(FaultSpec::delay("/models/instances/sync", 1500, 3));
    let run =
        tokio::spawn(async move { jobs::sync(&job, &slice(), &SyncOptions::default()).await });
    loop {
        let served = control
            .request_log()
            .iter()
            .any(|r| r.path.ends_with("/models/instances/sync") && r.status == Some(200));
        if served {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    control
        .apply_instances(json!({"items": [
            {"instanceType": "node", "space": DATA_SPACE, "externalId": "wo-0000-0",
             "sources": [{"source": {"type": "view", "space": SCHEMA_SPACE, "externalId": "WorkOrder", "version": "1"},
                          "properties": {"title": "changed during the backfill"}}]},
            {"instanceType": "node", "space": DATA_SPACE, "externalId": "wo-new",
             "sources": [{"source": {"type": "view", "space": SCHEMA_SPACE, "externalId": "WorkOrder", "version": "1"},
                          "properties": {"title": "created during the backfill", "priority": 1}}]},
        ]}))
        .expect("changes during the backfill");
    let summary = run.await.expect("sync task");
    assert!(summary.is_success(), "{summary:#?}");
    assert_eq!(summary.streams_total, 1, "{summary:#?}");
    assert_eq!(
        stream(&summary, WORK_ORDER_NODES).status,
        StreamStatus::CaughtUp
    );

    let rows = lab.raw_rows("WorkOrder", "nodes").expect("python");
    assert!(
        rows.iter()
            .any(|r| r["externalId"] == "wo-0000-0" && r["title"] == "changed during the backfill"),
        "the update made during the backfill is in the same run"
    );
    assert!(rows.iter().any(|r| r["externalId"] == "wo-new"));
    let truth = lab.truth_nodes("WorkOrder");
    let live = truth.len();
    let report = lab
        .compare("WorkOrder", "nodes", "WorkOrder", truth)
        .expect("python");
    assert_matches_truth(&report, live, "after the run that reported caughtUp");
}

/// Defect: the snapshot published an empty file for a view whose sync never committed,
/// exited 0 and reported `viewsFailed: 0`. A synced view without rows still gets its empty
/// file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_never_synced_fails_its_snapshot_and_an_empty_view_publishes() {
    if python().is_none() {
        return;
    }
    // No pumps: Pump, WorkOrder and PumpWorkOrder are empty views; Site has four nodes.
    let lab = Lab::start(0, None).await;
    let context = lab.context(PAGES_OF_THREE).await;
    let only_site = slice().with_views(["Site"]).expect("a view name");
    assert!(
        jobs::sync(
            &SyncJob::from_context(&context),
            &only_site,
            &SyncOptions::default()
        )
        .await
        .is_success()
    );

    let summary = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(!summary.is_success(), "{summary:#?}");
    assert_eq!(summary.views_failed, 3, "{summary:#?}");
    let pump = summary
        .views
        .iter()
        .find(|v| v.view == "Pump")
        .expect("Pump view");
    let nodes = pump.file(InstanceKind::Nodes).expect("nodes file");
    assert_eq!(nodes.action, FileAction::Failed);
    let error = nodes.error.as_ref().map_or("", |e| e.message.as_str());
    assert!(
        error.contains("raw/plant_schema/PlantModel/1/views/Pump/nodes")
            && error.contains(PUMP_NODES),
        "the error names the table and its stream: {error}"
    );
    let site = summary
        .views
        .iter()
        .find(|v| v.view == "Site")
        .expect("Site");
    assert!(site.is_success(), "{site:#?}");
    let lake_root = match &lab.lake {
        Lake::Local(root) => root.clone(),
        Lake::S3 { .. } => unreachable!(),
    };
    let published_pump = lake_root.join("publish/plant_schema/PlantModel/1/Pump/nodes.parquet");
    assert!(
        !published_pump.exists(),
        "no file claims that the view is empty"
    );

    // Synced, the empty views publish empty files.
    assert!(
        jobs::sync(
            &SyncJob::from_context(&context),
            &slice(),
            &SyncOptions::default()
        )
        .await
        .is_success()
    );
    let published = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(published.is_success(), "{published:#?}");
    let pump = published
        .views
        .iter()
        .find(|v| v.view == "Pump")
        .expect("Pump view");
    let nodes = pump.file(InstanceKind::Nodes).expect("nodes file");
    assert_eq!(nodes.action, FileAction::Rebuilt);
    assert_eq!(nodes.rows, 0);
    assert!(nodes.source_version.is_some());
    assert!(published_pump.exists());

    // A raw table that disappears later fails its file again; the published file stays.
    let before = std::fs::read(&published_pump).expect("published file");
    std::fs::remove_dir_all(local_path(&lab, "Pump", "nodes")).expect("remove the raw table");
    let gone = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(!gone.is_success(), "{gone:#?}");
    assert_eq!(gone.views_failed, 1, "{gone:#?}");
    assert_eq!(
        std::fs::read(&published_pump).expect("published file"),
        before,
        "the previous file is untouched"
    );
}

/// The snapshot Lambda of a view that never synced ends with a retryable error class that
/// names the missing table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_function_fails_for_a_view_that_never_synced() {
    let lab = Lab::start(3, None).await;
    let yaml = lab.config_yaml("", Some(&["Pump"]));
    let env = MapEnv::new().with(CONFIG_ENV, yaml);
    let config_source = ConfigSource::from_env(&env);
    let metrics = Arc::new(MemorySink::default());
    let function = Function::new(FunctionSetup {
        kind: FunctionKind::Snapshot,
        name: "test-cdf-s3-snapshot".into(),
        env: Box::new(env),
        config_source,
        secrets: None,
        metrics: metrics.clone(),
        logs: LogControl::detached(),
    });
    let invocation = Invocation {
        request_id: "req-never-synced".into(),
        deadline: SystemTime::now() + Duration::from_secs(300),
    };
    let err = function
        .invoke(json!({"maintenance": false}), &invocation)
        .await
        .expect_err("a view without a raw table is a failed snapshot");
    assert_eq!(err.error_type(), "Retryable.RunIncomplete", "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let line: Value = serde_json::from_str(&metrics.lines()[0]).expect("EMF");
    assert_eq!(line["ViewsFailed"], 1.0, "{line}");
}
