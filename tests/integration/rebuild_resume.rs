//! A full rebuild that does not fit in one run keeps its sorted runs in the lake and
//! continues next time: cut by its deadline (while the raw table moves on), and once killed
//! mid-build. Either way it ends with the rows of an uninterrupted rebuild, reflects the
//! version it started from (the next incremental merge catches up), and leaves no work
//! folder behind.
//!
//! The deadline runs assume a throughput so low that after the first raw file of a run
//! nothing else fits: each run then advances the build by exactly one raw file, whatever
//! the machine's speed.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config};
use cdf_s3_replicator::job::{Deadline, JobInputs};
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::InstanceKind;
use cdf_s3_replicator::snapshot::{
    self, FileAction, FileReport, PublishSettings, SliceSettings, ViewReport, ViewTarget,
    plan_views,
};
use cdf_s3_replicator::sync::{SyncJob, SyncOptions};
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::concat_batches;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use futures::TryStreamExt as _;
use serde_json::Value;
use tokio::time::Instant;

use crate::support::{Lab, Lake, parquet_object_batches};

const PUMPS: usize = 40;
/// Commits of four instances: the Pump view's tables hold ten and twenty raw files.
const SMALL_COMMITS: &str = "  subscription-batch-size: 4\n  ingest-batch-size: 4\n";

async fn sync_all(context: &Context) {
    let summary = jobs::sync(
        &SyncJob::from_context(context),
        &JobInputs::until(Instant::now() + Duration::from_secs(300)),
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{summary:#?}");
}

async fn pump_target(context: &Context) -> Vec<ViewTarget> {
    let plan = jobs::plan(context).await;
    assert!(plan.problems().is_empty(), "{:?}", plan.problems());
    let targets: Vec<ViewTarget> = plan_views(plan.streams())
        .into_iter()
        .filter(|t| t.folder.to_string() == "Pump")
        .collect();
    assert_eq!(targets.len(), 1);
    targets
}

fn settings(context: &Context) -> PublishSettings {
    PublishSettings::from(&context.config.extractor.snapshot)
}

/// Publishes the Pump view with `slices` and an optional deadline from now.
async fn publish_pump(
    context: &Context,
    slices: &SliceSettings,
    budget: Option<Duration>,
) -> ViewReport {
    let targets = pump_target(context).await;
    let mut reports = snapshot::publish_sliced(
        &context.destination,
        &targets,
        &settings(context),
        slices,
        Deadline::within(budget),
    )
    .await
    .expect("publish");
    let report = reports.pop().expect("the Pump view");
    assert!(report.is_success(), "{report:#?}");
    report
}

fn file(report: &ViewReport, kind: InstanceKind) -> &FileReport {
    report
        .file(kind)
        .unwrap_or_else(|| panic!("{kind} in {report:#?}"))
}

/// The rows of the Pump view's two files.
async fn pump_rows(store: &ObjectStoreRef) -> BTreeMap<&'static str, RecordBatch> {
    let mut rows = BTreeMap::new();
    for kind in ["nodes", "edges"] {
        let path = format!(
            "publish/{}/{}/{}/Pump/{kind}.parquet",
            cdf_emulator::sample_model::SCHEMA_SPACE,
            cdf_emulator::sample_model::MODEL,
            cdf_emulator::sample_model::MODEL_VERSION
        );
        let batches = parquet_object_batches(store, &deltalake::Path::from(path.as_str())).await;
        let schema = batches.first().map(|b| b.schema()).expect("rows");
        rows.insert(kind, concat_batches(&schema, &batches).expect("one batch"));
    }
    rows
}

/// Same columns and rows (the footers, which say which run wrote a file, differ).
fn assert_same_rows(
    label: &str,
    got: &BTreeMap<&'static str, RecordBatch>,
    expected: &BTreeMap<&'static str, RecordBatch>,
) {
    for (kind, rows) in got {
        let expected = &expected[kind];
        assert_eq!(rows.num_rows(), expected.num_rows(), "{label}: {kind} rows");
        assert!(rows.num_rows() > 0, "{label}: {kind} has rows");
        for (i, field) in rows.schema().fields().iter().enumerate() {
            assert_eq!(
                field.name(),
                expected.schema().field(i).name(),
                "{label}: {kind} columns"
            );
            assert!(
                rows.column(i).as_ref() == expected.column(i).as_ref(),
                "{label}: {kind}: column {} differs",
                field.name()
            );
        }
    }
}

async fn objects_under(store: &ObjectStoreRef, prefix: &str) -> Vec<String> {
    store
        .list(Some(&deltalake::Path::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("listing")
}

async fn delete_under(store: &ObjectStoreRef, prefix: &str) {
    for path in objects_under(store, prefix).await {
        store
            .delete(&deltalake::Path::from(path.as_str()))
            .await
            .expect("delete");
    }
}

/// The progress document of the Pump view's `kind` rebuild.
async fn progress(store: &ObjectStoreRef, kind: &str) -> Option<Value> {
    let documents: Vec<String> = objects_under(store, "_work/snapshot")
        .await
        .into_iter()
        .filter(|p| p.contains(&format!("/Pump/{kind}/")) && p.ends_with("/progress.json"))
        .collect();
    assert!(documents.len() <= 1, "one build per file: {documents:?}");
    let path = documents.first()?;
    let bytes = store
        .get(&deltalake::Path::from(path.as_str()))
        .await
        .expect("progress")
        .bytes()
        .await
        .expect("progress bytes");
    Some(serde_json::from_slice(&bytes).expect("progress JSON"))
}

/// One uninterrupted rebuild of the Pump view (the publish layer must be empty): its rows.
/// The publish layer is emptied again afterwards.
async fn reference(
    context: &Context,
    store: &ObjectStoreRef,
) -> BTreeMap<&'static str, RecordBatch> {
    let defaults = SliceSettings::of(&settings(context));
    let whole = publish_pump(context, &defaults, None).await;
    assert_eq!(
        file(&whole, InstanceKind::Nodes).action,
        FileAction::Rebuilt
    );
    let rows = pump_rows(store).await;
    delete_under(store, "publish").await;
    rows
}

async fn cut_by_its_deadline(lab: Lab) {
    let context = lab.context(SMALL_COMMITS).await;
    sync_all(&context).await;
    let store = context.destination.object_store().expect("store");
    let expected = reference(&context, &store).await;

    // So slow an assumed throughput that only the one raw file a run always reads fits.
    let slow = SliceSettings {
        assumed_bytes_per_second: 16,
        ..SliceSettings::of(&settings(&context))
    };
    let deadline = Some(Duration::from_secs(60));
    let first = publish_pump(&context, &slow, deadline).await;
    let nodes = file(&first, InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Behind, "{nodes:#?}");
    assert_eq!(nodes.files_read, 1, "{nodes:#?}");
    assert!(
        nodes.commits_read > 0,
        "a new build reads the log: {nodes:#?}"
    );
    assert!(first.is_behind());
    let recorded = progress(&store, "nodes").await.expect("progress kept");
    let started_at = recorded["tableVersion"].as_u64().expect("version");
    let total = recorded["files"].as_array().map_or(0, Vec::len);
    assert!(total >= 5, "{recorded}");
    assert_eq!(recorded["consumed"], 1);
    assert_eq!(recorded["runs"].as_array().map(Vec::len), Some(1));
    // Nothing is published yet, not even a manifest naming a file.
    assert!(
        objects_under(&store, "publish")
            .await
            .iter()
            .all(|p| !p.ends_with("nodes.parquet"))
    );

    // The raw table moves on; the build keeps to the files of the version it recorded.
    lab.update_and_delete_pumps(PUMPS);
    sync_all(&context).await;
    for round in 2..=3 {
        let next = publish_pump(&context, &slow, deadline).await;
        let nodes = file(&next, InstanceKind::Nodes);
        assert_eq!(
            nodes.action,
            FileAction::Behind,
            "round {round}: {nodes:#?}"
        );
        assert_eq!(
            (nodes.files_read, nodes.commits_read),
            (1, 0),
            "round {round} continues the build without reading the log: {nodes:#?}"
        );
        let saved = progress(&store, "nodes").await.expect("progress kept");
        assert_eq!(saved["consumed"], round, "{saved}");
        assert_eq!(saved["tableVersion"], started_at);
    }

    // Without a deadline the build finishes: the rest of the recorded files, then the
    // final merge.
    let defaults = SliceSettings::of(&settings(&context));
    let done = publish_pump(&context, &defaults, None).await;
    let nodes = file(&done, InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Rebuilt, "{nodes:#?}");
    assert_eq!(nodes.files_read as usize, total - 3, "{nodes:#?}");
    assert_eq!(nodes.source_version, Some(started_at), "{nodes:#?}");
    assert_same_rows(
        "resumed after its deadline",
        &pump_rows(&store).await,
        &expected,
    );
    assert_eq!(
        objects_under(&store, "_work").await,
        Vec::<String>::new(),
        "work folder gone"
    );

    // The next run merges the commits the build did not read, and equals a rebuild of the
    // current table.
    let caught_up = publish_pump(&context, &defaults, None).await;
    let nodes = file(&caught_up, InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Incremental, "{nodes:#?}");
    assert!(nodes.source_version > Some(started_at), "{nodes:#?}");
    let merged = pump_rows(&store).await;
    delete_under(&store, "publish").await;
    let current = reference(&context, &store).await;
    assert_same_rows("caught up", &merged, &current);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_cut_by_its_deadline_resumes_local() {
    cut_by_its_deadline(Lab::start(PUMPS, None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_cut_by_its_deadline_resumes_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    cut_by_its_deadline(Lab::start(PUMPS, Some(lake)).await).await;
}

/// Child mode of the kill test: when the variable names a configuration, this "test"
/// rebuilds the Pump view with a checkpoint after every raw file and a generous deadline
/// (a failpoint in the environment aborts it), and nothing else.
const CHILD_CONFIG: &str = "CDF_S3_TEST_REBUILD_CHILD_CONFIG";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_child_process() {
    let Ok(path) = std::env::var(CHILD_CONFIG) else {
        return;
    };
    let config = load_config(Path::new(&path), &MapEnv::new())
        .await
        .expect("child configuration");
    let context = Context::new(config).expect("child context");
    let every_file = SliceSettings {
        checkpoint_bytes: 1,
        ..SliceSettings::of(&settings(&context))
    };
    publish_pump(&context, &every_file, Some(Duration::from_secs(600))).await;
}

async fn killed_mid_rebuild(lab: Lab) {
    let context = lab.context(SMALL_COMMITS).await;
    sync_all(&context).await;
    let store = context.destination.object_store().expect("store");
    let expected = reference(&context, &store).await;

    // Killed right after the third checkpoint of the nodes file.
    let config = lab.dir.path().join("rebuild.yaml");
    std::fs::write(&config, lab.config_yaml(SMALL_COMMITS, None)).expect("config");
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "rebuild_resume::rebuild_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_CONFIG, &config)
        .env(
            cdf_s3_replicator::failpoint::ENV,
            "snapshot-after-rebuild-checkpoint:3",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let status = tokio::task::spawn_blocking(move || command.status().expect("child runs"))
        .await
        .expect("child task");
    assert_eq!(
        status.signal(),
        Some(6),
        "the child aborts at the failpoint: {status}"
    );
    let saved = progress(&store, "nodes").await.expect("progress kept");
    assert_eq!(saved["consumed"], 3, "{saved}");
    let total = saved["files"].as_array().map_or(0, Vec::len);
    assert!(
        total > 8,
        "enough raw files to merge runs at a checkpoint: {saved}"
    );

    // The next run continues the build instead of starting over.
    let defaults = SliceSettings::of(&settings(&context));
    let done = publish_pump(&context, &defaults, None).await;
    let nodes = file(&done, InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Rebuilt, "{nodes:#?}");
    assert_eq!(
        (nodes.files_read as usize, nodes.commits_read),
        (total - 3, 0),
        "{nodes:#?}"
    );
    assert_same_rows("resumed after a kill", &pump_rows(&store).await, &expected);
    assert_eq!(
        objects_under(&store, "_work").await,
        Vec::<String>::new(),
        "work folder gone"
    );

    // A build that checkpoints after every raw file merges its runs into one as they pile
    // up, and ends the same.
    delete_under(&store, "publish").await;
    let every_file = SliceSettings {
        checkpoint_bytes: 1,
        ..defaults
    };
    let checkpointed = publish_pump(&context, &every_file, Some(Duration::from_secs(600))).await;
    assert_eq!(
        file(&checkpointed, InstanceKind::Nodes).action,
        FileAction::Rebuilt
    );
    assert_same_rows(
        "checkpointed after every file",
        &pump_rows(&store).await,
        &expected,
    );
    assert_eq!(objects_under(&store, "_work").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_mid_build_resumes_local() {
    killed_mid_rebuild(Lab::start(PUMPS, None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_mid_build_resumes_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    killed_mid_rebuild(Lab::start(PUMPS, Some(lake)).await).await;
}

/// A rebuild of parts is not resumable, so it starts only when it fits in the time left:
/// with too little time the parts are left `behind` (no part written, the view first in
/// line next time), and a run with time publishes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_that_do_not_fit_the_time_left_wait_for_the_next_run() {
    let lab = Lab::start(PUMPS, None).await;
    let context = lab
        .context(&format!("{SMALL_COMMITS}  snapshot:\n    part-rows: 8\n"))
        .await;
    sync_all(&context).await;
    let store = context.destination.object_store().expect("store");
    let slow = SliceSettings {
        assumed_bytes_per_second: 16,
        ..SliceSettings::of(&settings(&context))
    };
    let first = publish_pump(&context, &slow, Some(Duration::from_secs(60))).await;
    let nodes = file(&first, InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Behind, "{nodes:#?}");
    let reason = nodes.reason.as_deref().unwrap_or("");
    assert!(reason.contains("parts left for the next run"), "{reason}");
    assert!(first.is_behind(), "{first:#?}");
    let parts = objects_under(&store, "publish").await;
    assert!(
        parts.iter().all(|p| !p.contains("/nodes/part-")),
        "no part starts that cannot finish: {parts:?}"
    );

    let defaults = SliceSettings::of(&settings(&context));
    let second = publish_pump(&context, &defaults, None).await;
    let nodes = file(&second, InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Rebuilt, "{nodes:#?}");
    let count = nodes.parts.map(|p| p.count).expect("in parts");
    assert!(count > 1, "{nodes:#?}");
    assert!(!second.is_behind(), "{second:#?}");
}
