//! The publish layer: after every kind of change (backfill, updates, deletes, a delete and
//! re-create, a cursor-expiry resync whose tombstones were purged, a schema change, a crash
//! mid-snapshot), the published `nodes.parquet` / `edges.parquet` of every view, read by
//! pyarrow and DuckDB, hold exactly the emulator's live instances, typed for BI tools,
//! sorted, with a manifest that says what they reflect.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use cdf_emulator::sample_model::{self, DATA_SPACE, SCHEMA_SPACE};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::InstanceKind;
use cdf_s3_replicator::snapshot::{
    self, FileAction, PublishSettings, SnapshotOptions, SnapshotSummary, plan_views,
};
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use deltalake::Path as ObjectPath;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake, VIEWS, published_file_spec, python};

const PUMPS: usize = 40;
const SMALL_BATCHES: &str = "  subscription-batch-size: 25\n  ingest-batch-size: 40\n";

/// The views of the sample model and what each publishes: (folder, properties of the nodes
/// file, properties of the edges file).
fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(300))
}

async fn sync_all(context: &Context) {
    let summary = jobs::sync(
        &SyncJob::from_context(context),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{summary:#?}");
}

async fn publish(context: &Context) -> SnapshotSummary {
    let summary = jobs::snapshot(
        context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{summary:#?}");
    assert_eq!(summary.views_total, 4, "{summary:#?}");
    summary
}

/// The action and figures of one file in a summary.
fn file<'a>(
    summary: &'a SnapshotSummary,
    view: &str,
    kind: InstanceKind,
) -> &'a snapshot::FileReport {
    summary
        .view(view)
        .and_then(|v| v.file(kind))
        .unwrap_or_else(|| panic!("{view}/{kind} in {summary:#?}"))
}

/// Every view's files, read by pyarrow and DuckDB, equal the truth; the manifest describes
/// them. `extra_pump_properties` adds properties the sample schema does not have.
fn assert_published(lab: &Lab, label: &str, extra_pump_properties: &Value) {
    for (view, nodes_of, edges_of) in VIEWS {
        let extra = if view == "Pump" {
            extra_pump_properties.clone()
        } else {
            json!({})
        };
        let files = json!({
            "nodes": published_file_spec(lab, "nodes", nodes_of, view, &extra),
            "edges": published_file_spec(lab, "edges", edges_of, view, &json!({})),
        });
        let Some(report) = lab.check_published(view, files.clone()) else {
            return;
        };
        let manifest = &report["manifest"];
        assert!(
            manifest.is_object(),
            "{label}: {view} has a manifest: {report}"
        );
        for kind in ["nodes", "edges"] {
            let expected_rows = files[kind]["truth"].as_array().map_or(0, Vec::len);
            if kind == "nodes" && nodes_of.is_some() || kind == "edges" && edges_of.is_some() {
                assert!(
                    expected_rows > 0,
                    "{label}: {view}/{kind} has live instances"
                );
            }
            for reader in ["pyarrow", "duckdb"] {
                let r = &report["files"][kind][reader];
                let what = format!("{label}: {view}/{kind} ({reader})");
                assert_eq!(r["mismatch_count"], 0, "{what}: {}", r["mismatches"]);
                assert_eq!(r["type_errors"], json!([]), "{what}: types");
                assert_eq!(r["sorted"], true, "{what}: sorted by (space, externalId)");
                assert_eq!(r["duplicates"], json!([]), "{what}: one row per instance");
                assert_eq!(r["deleted_time_set"], 0, "{what}: no tombstones");
                assert_eq!(r["rows"], expected_rows, "{what}: rows");
            }
            let entry = &manifest["files"][kind];
            assert_eq!(
                entry["rows"], expected_rows,
                "{label}: {view}/{kind} manifest rows"
            );
            assert_eq!(entry["path"], format!("{kind}.parquet"));
            assert_eq!(entry["sortedBy"], json!(["space", "externalId"]));
            assert!(
                entry["publishSchema"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty())
            );
            assert!(entry["rawSchemaFingerprint"].is_string());
            assert!(entry["writtenAt"].is_string() && entry["toolVersion"].is_string());
        }
    }
}

/// The typed columns the publish layer promises, as pyarrow reads them.
fn assert_pump_column_types(lab: &Lab) {
    let files =
        json!({"nodes": published_file_spec(lab, "nodes", Some("Pump"), "Pump", &json!({}))});
    let Some(report) = lab.check_published("Pump", files) else {
        return;
    };
    let columns = &report["files"]["nodes"]["pyarrow"]["columns"];
    for column in [
        "commissionedAt",
        "serviceDate",
        "aliases",
        "readings",
        "site.space",
        "deletedTime",
    ] {
        assert!(
            columns
                .as_array()
                .is_some_and(|c| c.iter().any(|n| n == column)),
            "Pump nodes has column {column}: {columns}"
        );
    }
}

async fn backfill_updates_and_deletes(lab: Lab) {
    let context = lab.context(SMALL_BATCHES).await;
    sync_all(&context).await;
    let first = publish(&context).await;
    assert_eq!(first.files_rebuilt, 8, "{first:#?}");
    assert!(first.views.iter().all(|v| v.manifest_written));
    assert_published(&lab, "after the backfill", &json!({}));
    assert_pump_column_types(&lab);

    // Nothing changed: nothing is written, not even the manifest.
    let idle = publish(&context).await;
    assert_eq!(idle.files_skipped, 8, "{idle:#?}");
    assert!(idle.views.iter().all(|v| !v.manifest_written), "{idle:#?}");

    // Updates and deletes: merged incrementally.
    let control = lab.emulator.control();
    lab.update_and_delete_pumps(PUMPS);
    sync_all(&context).await;
    let changed = publish(&context).await;
    for (view, kind) in [
        ("Site", InstanceKind::Nodes),
        ("Pump", InstanceKind::Nodes),
        ("Pump", InstanceKind::Edges),
        ("WorkOrder", InstanceKind::Nodes),
        ("PumpWorkOrder", InstanceKind::Edges),
    ] {
        let report = file(&changed, view, kind);
        assert_eq!(
            report.action,
            FileAction::Incremental,
            "{view}/{kind}: {report:#?}"
        );
        assert!(
            report.source_version > report.previous_version,
            "{report:#?}"
        );
    }
    assert_eq!(
        file(&changed, "Site", InstanceKind::Edges).action,
        FileAction::Skipped
    );
    assert_published(&lab, "after updates and deletes", &json!({}));

    // One change: the merge reads only the one new commit with its one row.
    control
        .apply_instances(
            json!({"items": [{"instanceType": "node", "space": DATA_SPACE,
            "externalId": "pump-0002", "sources": [{"source": {"type": "view",
            "space": SCHEMA_SPACE, "externalId": "Pump", "version": "1"},
            "properties": {"ratedKw": 1234.5, "aliases": ["only", "change"]}}]}]}),
        )
        .expect("one update");
    sync_all(&context).await;
    let one = publish(&context).await;
    let pump = file(&one, "Pump", InstanceKind::Nodes);
    assert_eq!(pump.action, FileAction::Incremental, "{pump:#?}");
    assert_eq!(
        pump.source_version,
        pump.previous_version.map(|v| v + 1),
        "{pump:#?}"
    );
    assert_eq!(
        (pump.commits_read, pump.files_read, pump.rows_read),
        (1, 1, 1),
        "{pump:#?}"
    );
    assert_eq!(one.files_incremental, 1, "{one:#?}");
    assert_eq!(one.files_skipped, 7, "{one:#?}");
    assert_published(&lab, "after one change", &json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_updates_deletes_and_incremental_local() {
    if python().is_none() {
        return;
    }
    backfill_updates_and_deletes(Lab::start(PUMPS, None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_updates_deletes_and_incremental_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    if python().is_none() {
        return;
    }
    backfill_updates_and_deletes(Lab::start(PUMPS, Some(lake)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_views_get_both_files_with_the_full_schema() {
    if python().is_none() {
        return;
    }
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(SMALL_BATCHES).await;
    // Before any sync no raw table exists: the five files of tables that streams write fail
    // (an empty file would tell readers that every instance was deleted) and are not
    // written; the three files of kinds without streams are empty.
    for round in ["first", "unchanged"] {
        let summary = jobs::snapshot(
            &context,
            &JobInputs::everything(),
            &SnapshotOptions::default(),
        )
        .await;
        assert!(!summary.is_success(), "{round}: {summary:#?}");
        assert_eq!(summary.files_failed, 5, "{round}: {summary:#?}");
        assert_eq!(
            summary.files_rebuilt + summary.files_skipped,
            3,
            "{round}: {summary:#?}"
        );
        assert!(summary.views.iter().all(|v| {
            v.files
                .iter()
                .all(|f| f.rows == 0 && f.source_version.is_none())
        }));
    }
    // Once synced, the files are built from the new tables; views without edges keep an
    // empty, typed edges file.
    sync_all(&context).await;
    let built = publish(&context).await;
    assert_eq!(built.files_rebuilt, 5, "{built:#?}");
    assert_eq!(built.files_skipped, 3, "{built:#?}");
    assert_published(&lab, "after the first sync", &json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_and_recreated_instance_is_published_with_its_new_values() {
    if python().is_none() {
        return;
    }
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(SMALL_BATCHES).await;
    sync_all(&context).await;
    publish(&context).await;
    let control = lab.emulator.control();
    let pump = json!({"instanceType": "node", "space": DATA_SPACE, "externalId": "pump-0007"});
    control
        .delete_instances(json!({"items": [pump]}))
        .expect("delete");
    sync_all(&context).await;
    let deleted = publish(&context).await;
    assert_eq!(
        file(&deleted, "Pump", InstanceKind::Nodes).action,
        FileAction::Incremental
    );
    assert!(
        lab.truth_nodes("Pump")
            .iter()
            .all(|p| p["externalId"] != "pump-0007")
    );
    assert_published(&lab, "after the delete", &json!({}));

    control
        .apply_instances(
            json!({"items": [{"instanceType": "node", "space": DATA_SPACE,
            "externalId": "pump-0007", "sources": [{"source": {"type": "view",
            "space": SCHEMA_SPACE, "externalId": "Pump", "version": "1"},
            "properties": {"tag": "reborn", "ratedKw": 7.5, "readings": [0.5]}}]}]}),
        )
        .expect("recreate");
    sync_all(&context).await;
    let recreated = publish(&context).await;
    assert_eq!(
        file(&recreated, "Pump", InstanceKind::Nodes).action,
        FileAction::Incremental
    );
    assert!(
        lab.truth_nodes("Pump")
            .iter()
            .any(|p| p["externalId"] == "pump-0007")
    );
    assert_published(&lab, "after the re-create", &json!({}));
}

/// Publishes with an explicit (tiny) memory budget, so that the rebuild spills sorted runs.
async fn publish_with_budget(context: &Context, budget_bytes: u64) -> Vec<snapshot::ViewReport> {
    let plan = jobs::plan(context).await;
    assert!(plan.problems().is_empty(), "{:?}", plan.problems());
    let settings = PublishSettings {
        memory_budget_bytes: budget_bytes,
        temp_dir: context.config.extractor.snapshot.temp_dir.clone(),
        threads: None,
        part_rows: u64::MAX,
    };
    snapshot::publish_views(&context.destination, &plan_views(plan.streams()), &settings)
        .await
        .expect("publish")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_deleted_during_a_cursor_expiry_resync_disappear() {
    if python().is_none() {
        return;
    }
    let lab = Lab::start(PUMPS, None).await;
    let spill = lab.dir.path().join("spill");
    std::fs::create_dir_all(&spill).expect("spill dir");
    // Commits of 10 rows: the new generation's backfill spans several files.
    let extractor = format!(
        "  subscription-batch-size: 10\n  ingest-batch-size: 10\n  snapshot:\n    temp-dir: \"{}\"\n",
        spill.display()
    );
    let context = lab.context(&extractor).await;
    sync_all(&context).await;
    publish(&context).await;

    let control = lab.emulator.control();
    let gone: Vec<Value> = [3, 4, 12]
        .iter()
        .map(|p| json!({"instanceType": "node", "space": DATA_SPACE, "externalId": format!("pump-{p:04}")}))
        .collect();
    control
        .delete_instances(json!({"items": gone}))
        .expect("deletes");
    // The tombstones are gone before the replicator could read them, and so are its cursors.
    assert!(control.purge_tombstones() > 0);
    control.expire_all_cursors();
    let resync = jobs::sync(
        &SyncJob::from_context(&context),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(resync.is_success(), "{resync:#?}");
    assert!(resync.cursor_resets > 0, "{resync:#?}");

    // A budget of one byte: every batch read becomes a spilled run, merged at the end.
    let reports = publish_with_budget(&context, 1).await;
    let pump = reports
        .iter()
        .find(|v| v.view == "Pump")
        .and_then(|v| v.file(InstanceKind::Nodes))
        .expect("pump nodes");
    assert_eq!(pump.action, FileAction::Rebuilt, "{pump:#?}");
    assert!(
        pump.reason
            .as_deref()
            .is_some_and(|r| r.contains("generation")),
        "{pump:#?}"
    );
    assert!(pump.files_read > 1, "{pump:#?}");
    assert!(pump.spilled_runs >= pump.files_read, "{pump:#?}");
    assert!(reports.iter().all(|v| v.is_success()), "{reports:#?}");
    let truth = lab.truth_nodes("Pump");
    assert!(truth.iter().all(|p| p["externalId"] != "pump-0003"));
    assert_published(&lab, "after the resync", &json!({}));
    // The spill files are gone.
    assert_eq!(std::fs::read_dir(&spill).expect("spill dir").count(), 0);

    // The next change merges incrementally on top of the new generation.
    control
        .apply_instances(sample_model::updates(PUMPS, 2))
        .expect("updates");
    sync_all(&context).await;
    let next = publish(&context).await;
    assert_eq!(
        file(&next, "Pump", InstanceKind::Nodes).action,
        FileAction::Incremental,
        "{next:#?}"
    );
    assert_published(&lab, "after the resync and an update", &json!({}));
}

/// Deletes a view through the API (the control surface has no view deletes).
async fn delete_view(lab: &Lab, external_id: &str) {
    let token = lab.emulator.control().issue_token();
    let response = reqwest::Client::new()
        .post(format!("{}/models/views/delete", lab.emulator.api_url()))
        .bearer_auth(token)
        .json(
            &json!({"items": [{"space": SCHEMA_SPACE, "externalId": external_id, "version": "1"}]}),
        )
        .send()
        .await
        .expect("view delete");
    assert!(response.status().is_success(), "{}", response.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_property_rebuilds_the_file_with_the_new_column() {
    if python().is_none() {
        return;
    }
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(SMALL_BATCHES).await;
    sync_all(&context).await;
    publish(&context).await;

    // Views are immutable per version: add the property to the container, then delete the
    // view and create it again with the extra property.
    let schema = sample_model::schema();
    let mut container = schema["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["externalId"] == "PumpC"))
        .cloned()
        .expect("PumpC");
    container["properties"]["location"] = json!({"type": {"type": "text"}});
    let mut view = schema["views"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["externalId"] == "Pump"))
        .cloned()
        .expect("Pump view");
    view["properties"]["location"] = json!({"container": {"type": "container",
        "space": SCHEMA_SPACE, "externalId": "PumpC"}, "containerPropertyIdentifier": "location"});
    let control = lab.emulator.control();
    control
        .apply_schema(json!({"containers": [container]}))
        .expect("container with the new property");
    delete_view(&lab, "Pump").await;
    control
        .apply_schema(json!({"views": [view]}))
        .expect("view with the new property");
    control
        .apply_instances(
            json!({"items": [{"instanceType": "node", "space": DATA_SPACE,
            "externalId": "pump-0002", "sources": [{"source": {"type": "view",
            "space": SCHEMA_SPACE, "externalId": "Pump", "version": "1"},
            "properties": {"location": "Hall 7"}}]}]}),
        )
        .expect("a value for the new property");
    sync_all(&context).await;

    let summary = publish(&context).await;
    let pump = file(&summary, "Pump", InstanceKind::Nodes);
    assert_eq!(pump.action, FileAction::Rebuilt, "{pump:#?}");
    assert!(
        pump.reason.as_deref().is_some_and(|r| r.contains("schema")),
        "{pump:#?}"
    );
    let location = json!({"location": {"type": "text", "list": false}});
    assert_published(&lab, "after the schema change", &location);
}

/// Child mode of the crash tests: when the variable names a configuration, this "test"
/// runs one snapshot with it (a failpoint in the environment aborts it) and nothing else.
const CHILD_CONFIG: &str = "CDF_S3_TEST_SNAPSHOT_CHILD_CONFIG";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_child_process() {
    let Ok(path) = std::env::var(CHILD_CONFIG) else {
        return;
    };
    let config = load_config(Path::new(&path), &MapEnv::new())
        .await
        .expect("child configuration");
    let context = Context::new(config).expect("child context");
    let summary = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    println!("{}", serde_json::to_string(&summary).unwrap_or_default());
}

/// Runs a snapshot in a child process that the failpoint aborts; fails the test if the
/// child ended any other way (a panic would otherwise pass for a crash).
async fn crash_child(config: &Path, failpoint: &str) {
    let status = run_child(config, failpoint).await;
    assert_eq!(
        status.signal(),
        Some(6),
        "{failpoint}: the child must abort at the failpoint, got {status}"
    );
}

async fn run_child(config: &Path, failpoint: &str) -> ExitStatus {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "snapshot::snapshot_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_CONFIG, config)
        .env(cdf_s3_replicator::failpoint::ENV, failpoint)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    tokio::task::spawn_blocking(move || command.status().expect("child runs"))
        .await
        .expect("child task")
}

/// The bytes of a published object of the Pump view.
async fn pump_object(context: &Context, name: &str) -> Vec<u8> {
    let store = context.destination.object_store().expect("store");
    let path = format!(
        "publish/{SCHEMA_SPACE}/{}/{}/Pump/{name}",
        sample_model::MODEL,
        sample_model::MODEL_VERSION
    );
    store
        .get(&ObjectPath::from(path.as_str()))
        .await
        .expect("published object")
        .bytes()
        .await
        .expect("object bytes")
        .to_vec()
}

async fn killed_mid_snapshot(lab: Lab) {
    let context = lab.context(SMALL_BATCHES).await;
    sync_all(&context).await;
    publish(&context).await;
    lab.update_and_delete_pumps(PUMPS);
    sync_all(&context).await;

    // The child publishes only the Pump view, so each failpoint hits Pump's files.
    let config = lab.dir.path().join("pump-only.yaml");
    std::fs::write(&config, lab.config_yaml(SMALL_BATCHES, Some(&["Pump"]))).expect("config");
    let manifest = pump_object(&context, "_manifest.json").await;
    let nodes = pump_object(&context, "nodes.parquet").await;
    let edges = pump_object(&context, "edges.parquet").await;

    // Killed with the new nodes file fully written but its upload not completed.
    crash_child(&config, "snapshot-before-file-complete:1").await;
    assert_eq!(
        pump_object(&context, "nodes.parquet").await,
        nodes,
        "previous nodes file intact"
    );
    assert_eq!(
        pump_object(&context, "_manifest.json").await,
        manifest,
        "manifest intact"
    );

    // Killed after the nodes file replaced the previous one, before the edges file.
    crash_child(&config, "snapshot-after-nodes-file:1").await;
    assert_ne!(
        pump_object(&context, "nodes.parquet").await,
        nodes,
        "new nodes file in place"
    );
    assert_eq!(
        pump_object(&context, "edges.parquet").await,
        edges,
        "previous edges file intact"
    );
    assert_eq!(
        pump_object(&context, "_manifest.json").await,
        manifest,
        "manifest intact"
    );

    // Killed after both files, before the manifest.
    crash_child(&config, "snapshot-after-edges-file:1").await;
    assert_eq!(
        pump_object(&context, "_manifest.json").await,
        manifest,
        "manifest intact"
    );

    // The next run does not take the older manifest's word for the newer files: their own
    // footers say they are current, so it keeps them and rewrites the manifest to name them.
    let recovered = publish(&context).await;
    let pump = file(&recovered, "Pump", InstanceKind::Nodes);
    assert_eq!(pump.action, FileAction::Skipped, "{pump:#?}");
    assert!(
        pump.reason
            .as_deref()
            .is_some_and(|r| r.contains("not the file the manifest names")),
        "{pump:#?}"
    );
    let view = recovered.view("Pump").expect("Pump");
    assert!(view.manifest_written, "{view:#?}");
    assert_published(&lab, "after the crashes", &json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_snapshot_local() {
    if python().is_none() {
        return;
    }
    killed_mid_snapshot(Lab::start(PUMPS, None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_snapshot_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    if python().is_none() {
        return;
    }
    killed_mid_snapshot(Lab::start(PUMPS, Some(lake)).await).await;
}
