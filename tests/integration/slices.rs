//! The snapshot in time slices: a model with more views than a run's budget can publish.
//!
//! Every run ends by its deadline with the work it could not start reported behind (a
//! success, like a sync stream that is behind); the next run takes the views left behind
//! before the views it brought up to date; every view is published within a bounded number
//! of runs; and the files equal those of one unbounded run, row for row.
//!
//! Nothing here depends on how fast the machine is: the budget is a fraction of what an
//! unbounded run of the same model took on this machine, the order is checked on the order
//! the reports come in, and the time bound only catches a run that ignores its deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cdf_emulator::{Emulator, EmulatorConfig, SeedNode, ViewId};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::snapshot::{FileAction, SnapshotOptions, SnapshotSummary};
use cdf_s3_replicator::sync::{SyncJob, SyncOptions};
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::concat_batches;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use futures::TryStreamExt as _;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lake, parquet_object_batches};

const SPACE: &str = "slices";
const MODEL: &str = "SliceModel";
const VIEWS: usize = 14;
const NODES_PER_VIEW: usize = 1500;
/// Catches a run that ignores its deadline; never a measure of speed.
const HANG_SLACK: Duration = Duration::from_secs(60);

fn view_name(i: usize) -> String {
    format!("S{i:02}")
}

fn schema() -> Value {
    let views: Vec<Value> = (0..VIEWS)
        .map(|i| {
            let container =
                json!({"type": "container", "space": SPACE, "externalId": format!("C{i:02}")});
            json!({"space": SPACE, "externalId": view_name(i), "version": "1", "properties": {
                "reading": {"container": container, "containerPropertyIdentifier": "reading"},
                "label": {"container": container, "containerPropertyIdentifier": "label"},
            }})
        })
        .collect();
    let containers: Vec<Value> = (0..VIEWS)
        .map(|i| json!({"space": SPACE, "externalId": format!("C{i:02}"), "usedFor": "node",
            "properties": {"reading": {"type": {"type": "float64"}}, "label": {"type": {"type": "text"}}}}))
        .collect();
    let refs: Vec<Value> = (0..VIEWS)
        .map(
            |i| json!({"type": "view", "space": SPACE, "externalId": view_name(i), "version": "1"}),
        )
        .collect();
    json!({
        "spaces": [{"space": SPACE}],
        "containers": containers,
        "views": views,
        "dataModels": [{"space": SPACE, "externalId": MODEL, "version": "1", "views": refs}],
    })
}

async fn seed(emulator: &Emulator) {
    let control = emulator.control();
    control.apply_schema(schema()).expect("schema");
    for i in 0..VIEWS {
        let view = ViewId {
            space: SPACE.into(),
            external_id: view_name(i),
            version: "1".into(),
        };
        // Views of different sizes, so that the budget cuts through them unevenly.
        let count = NODES_PER_VIEW / 2 + (i * NODES_PER_VIEW) / VIEWS;
        let nodes = (0..count).map(|n| SeedNode {
            space: SPACE.into(),
            external_id: format!("{}-{n:05}", view_name(i)),
            values: vec![
                json!(n as f64 * 0.25),
                json!(format!("node {n} of view {i}")),
            ],
        });
        control
            .seed_nodes(&view, &["reading", "label"], nodes)
            .expect("seed nodes");
    }
}

fn config(emulator: &Emulator, lake: &Lake) -> String {
    format!(
        "cognite:\n  host: {base}\n  project: {project}\n  idp-authentication:\n    token-url: {token}\n    client-id: emulator-client\n    secret: emulator-secret\nextractor:\n  state-store:\n    raw:\n      database: state\n      table: streams\n  subscription-batch-size: 500\n  ingest-batch-size: 500\n  parallelism: 4\n  deadline-margin: 1\n  maintenance:\n    enabled: false\ndata_modeling:\n  - space: {SPACE}\n    data_models:\n      - external_id: {MODEL}\ndestination:\n{destination}",
        base = emulator.base_url(),
        project = emulator.project(),
        token = emulator.token_url(),
        destination = lake.destination_yaml(),
    )
}

/// Every published object (path relative to the destination prefix) with its rows.
async fn published(store: &ObjectStoreRef) -> BTreeMap<String, Option<RecordBatch>> {
    let objects: Vec<_> = store
        .list(Some(&deltalake::Path::from("publish")))
        .try_collect()
        .await
        .expect("listing the publish layer");
    let mut files = BTreeMap::new();
    for object in objects {
        let path = object.location.to_string();
        if !path.ends_with(".parquet") {
            continue;
        }
        let batches = parquet_object_batches(store, &object.location).await;
        let rows = batches
            .first()
            .map(|b| concat_batches(&b.schema(), &batches).expect("one batch"));
        files.insert(path, rows);
    }
    files
}

/// The files of two runs hold the same columns and rows (their footers, which say when and
/// by which run they were written, differ).
fn assert_same_rows(
    sliced: &BTreeMap<String, Option<RecordBatch>>,
    whole: &BTreeMap<String, Option<RecordBatch>>,
) {
    assert_eq!(
        sliced.keys().collect::<Vec<_>>(),
        whole.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (path, rows) in sliced {
        let expected = &whole[path];
        match (rows, expected) {
            (Some(a), Some(b)) => {
                let names = |b: &RecordBatch| -> Vec<String> {
                    b.schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect()
                };
                assert_eq!(names(a), names(b), "{path}: columns");
                assert_eq!(a.num_rows(), b.num_rows(), "{path}: rows");
                for (i, name) in names(a).iter().enumerate() {
                    assert!(
                        a.column(i).as_ref() == b.column(i).as_ref(),
                        "{path}: column {name} differs"
                    );
                }
            }
            (None, None) => {}
            _ => panic!("{path}: one run wrote rows, the other none"),
        }
    }
}

async fn delete_publish_layer(store: &ObjectStoreRef) {
    let objects: Vec<_> = store
        .list(Some(&deltalake::Path::from("publish")))
        .try_collect()
        .await
        .expect("listing the publish layer");
    for object in objects {
        store.delete(&object.location).await.expect("delete");
    }
}

fn summary_json(summary: &SnapshotSummary) -> Value {
    serde_json::to_value(summary).expect("summary JSON")
}

/// What a view's report says it did in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Something was written (rebuilt or merged) and nothing was left.
    Done,
    /// Some file was left for the next run.
    Behind,
    /// The deadline came before the run reached the view (it may have had nothing to do).
    Unreached,
    /// Nothing to do.
    Idle,
}

fn turns(summary: &SnapshotSummary) -> Vec<(String, Turn)> {
    summary
        .views
        .iter()
        .map(|view| {
            let turn = if view.is_behind() && view.attempts == 0 {
                Turn::Unreached
            } else if view.is_behind() {
                Turn::Behind
            } else if view
                .files
                .iter()
                .any(|f| matches!(f.action, FileAction::Rebuilt | FileAction::Incremental))
            {
                Turn::Done
            } else {
                Turn::Idle
            };
            (view.view.clone(), turn)
        })
        .collect()
}

/// One `snapshot` run of the CLI with `--time-budget`: its JSON report and exit code.
fn cli_snapshot(config: &Path, budget_secs: u64) -> (Value, Option<i32>) {
    let output = Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"))
        .args([
            "snapshot",
            "--no-maintenance",
            "--time-budget",
            &budget_secs.to_string(),
            "--config",
        ])
        .arg(config)
        .env("RUST_LOG", "warn,buoyant_kernel=off")
        .env_remove(cdf_s3_replicator::failpoint::ENV)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("CLI runs");
    let text = String::from_utf8_lossy(&output.stdout);
    (
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("report JSON: {e}: {text}")),
        output.status.code(),
    )
}

async fn many_views_in_slices(lake: Lake) {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    seed(&emulator).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = match lake {
        Lake::Local(_) => Lake::local(dir.path()),
        s3 => s3,
    };
    let yaml = config(&emulator, &lake);
    let config_path = dir.path().join("slices.yaml");
    std::fs::write(&config_path, &yaml).expect("config");
    let config = load_config_text(&yaml, "test configuration", &MapEnv::new())
        .await
        .expect("configuration");
    let context = Context::new(config).expect("context");
    let synced = jobs::sync(
        &SyncJob::from_context(&context),
        &JobInputs::until(Instant::now() + Duration::from_secs(600)),
        &SyncOptions::default(),
    )
    .await;
    assert!(synced.is_success(), "{synced:#?}");
    assert_eq!(synced.streams_caught_up, VIEWS, "{}", synced.one_line());
    let store = context.destination.object_store().expect("store");

    // The CLI's budget less the margin (1 s each) leaves no time: every view with a raw
    // table is behind, which is a success (exit 0), and nothing is published but the empty
    // files of kinds without streams.
    let path = config_path.clone();
    let (report, code) = tokio::task::spawn_blocking(move || cli_snapshot(&path, 1))
        .await
        .expect("CLI task");
    assert_eq!(
        code,
        Some(0),
        "a run that is only behind succeeds: {report}"
    );
    assert_eq!(report["snapshot"]["viewsBehind"], VIEWS, "{report}");
    assert_eq!(report["snapshot"]["filesBehind"], VIEWS * 2, "{report}");
    assert_eq!(report["snapshot"]["filesRebuilt"], 0, "{report}");
    assert!(published(&store).await.is_empty());

    // One unbounded run: the reference, and what the whole work takes on this machine.
    let started = Instant::now();
    let whole = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    let whole_time = started.elapsed();
    assert!(whole.is_success(), "{}", whole.one_line());
    assert_eq!((whole.views_total, whole.views_behind), (VIEWS, 0));
    let reference = published(&store).await;
    assert_eq!(reference.len(), VIEWS * 2, "{:?}", reference.keys());
    let longest_view = summary_json(&whole)["views"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["durationMs"].as_u64())
        .max()
        .map(Duration::from_millis)
        .unwrap_or_default();
    delete_publish_layer(&store).await;

    // A budget far smaller than the whole work, but room for the longest view: the time
    // before the deadline less the margin the snapshot keeps.
    let margin = context.config.extractor.deadline_margin;
    let mut budget = (whole_time / 5).max(longest_view * 3);
    println!(
        "unbounded run: {whole_time:.1?} (longest view {longest_view:.1?}); budget per run {budget:.1?}"
    );
    let max_runs = VIEWS + 5;
    let mut stalled = 0;
    let mut previous: Option<Vec<(String, Turn)>> = None;
    let mut runs = 0;
    let mut behind_runs = 0;
    loop {
        runs += 1;
        assert!(
            runs <= max_runs,
            "{max_runs} runs did not publish every view"
        );
        let started = Instant::now();
        let summary = jobs::snapshot(
            &context,
            &JobInputs::until(started + budget + margin),
            &SnapshotOptions::default(),
        )
        .await;
        let took = started.elapsed();
        println!("run {runs} ({took:.1?}): {}", summary.one_line());
        assert!(summary.is_success(), "run {runs}: {}", summary.one_line());
        assert_eq!(summary.views_failed, 0, "run {runs}");
        assert!(
            took <= budget + HANG_SLACK,
            "run {runs} took {took:.1?} with a budget of {budget:.1?}: it ignored its deadline"
        );
        let turns = turns(&summary);
        // A run normally gets something done (the most stale view fits the budget). One
        // that did not, with work left, met a machine too busy for its budget (planning
        // alone took it): the next run gets twice the budget, as a schedule would not, but
        // a busy machine is no reason to fail.
        let progress = turns.iter().any(|(_, t)| *t == Turn::Done);
        if !progress && summary.views_behind > 0 {
            stalled += 1;
            assert!(
                stalled <= 4,
                "runs keep publishing nothing: {}",
                summary.one_line()
            );
            budget *= 2;
        }
        // The views left behind by the previous run come before the views it brought up
        // to date.
        if let Some(previous) = &previous {
            let left: BTreeSet<&str> = previous
                .iter()
                .filter(|(_, t)| matches!(t, Turn::Behind | Turn::Unreached))
                .map(|(v, _)| v.as_str())
                .collect();
            let done: BTreeSet<&str> = previous
                .iter()
                .filter(|(_, t)| *t == Turn::Done)
                .map(|(v, _)| v.as_str())
                .collect();
            let position = |view: &str| turns.iter().position(|(v, _)| v == view);
            let last_left = left.iter().filter_map(|v| position(v)).max();
            let first_done = done.iter().filter_map(|v| position(v)).min();
            if let (Some(last_left), Some(first_done)) = (last_left, first_done) {
                assert!(
                    last_left < first_done,
                    "run {runs}: a view left behind came after a view done in the run before: {turns:?}"
                );
            }
            // A view that was left with work is not found idle: the work was still there.
            for (view, turn) in previous {
                let now = turns.iter().find(|(v, _)| v == view).map(|(_, t)| *t);
                if *turn == Turn::Behind {
                    assert_ne!(now, Some(Turn::Idle), "run {runs}: {view} lost its work");
                }
            }
        }
        if summary.views_behind > 0 {
            behind_runs += 1;
        }
        let all_done = summary.views_behind == 0;
        previous = Some(turns);
        if all_done {
            break;
        }
    }
    assert!(
        behind_runs >= 1 && runs >= 2,
        "a budget of a fifth of the whole work left nothing behind ({runs} runs)"
    );
    // Once everything is published, a run has nothing to do. Its deadline is generous: the
    // claim is about work, and checking 28 manifests on a busy machine can outlast a slice.
    let idle = jobs::snapshot(
        &context,
        &JobInputs::until(Instant::now() + Duration::from_secs(300)),
        &SnapshotOptions::default(),
    )
    .await;
    assert_eq!(
        (idle.views_behind, idle.files_skipped),
        (0, VIEWS * 2),
        "{}",
        idle.one_line()
    );
    assert_same_rows(&published(&store).await, &reference);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_views_are_published_in_bounded_runs_local() {
    many_views_in_slices(Lake::Local(Default::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_views_are_published_in_bounded_runs_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    many_views_in_slices(lake).await;
}
