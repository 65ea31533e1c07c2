//! Runs that overlap on S3: an operator's `snapshot` or `sync` while the scheduled function
//! runs. Whatever order their writes land in, each published file ends equal to its
//! manifest, both at the newest raw version, and the raw tables hold every change once.
//!
//! The S3 fault proxy holds chosen PUTs until the test releases them, so the interleavings
//! are exact, not left to timing; random delays shake the rest.

use std::time::Duration;

use cdf_emulator::sample_model::{self, SCHEMA_SPACE};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::InstanceKind;
use cdf_s3_replicator::snapshot::{FileAction, SnapshotOptions, SnapshotSummary};
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use deltalake::Path as ObjectPath;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use s3_fault_proxy::{FaultKind, FaultRule, S3Op};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::support::{Lab, Lake, VIEWS, lab_behind_proxy, published_file_spec, python};

const PUMPS: usize = 30;

/// How long a test waits for a request it expects the proxy to hold; a run that never gets
/// there fails the test instead of hanging it.
const HOLD_LIMIT: Duration = Duration::from_secs(240);

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

/// A context whose S3 requests may take as long as a test holds them: the client must not
/// give up on a held PUT and send it again, which would land it out of turn.
async fn patient_context(lab: &Lab) -> Context {
    let yaml = format!("{}    request-timeout: 600\n", lab.config_yaml("", None));
    let config = load_config_text(&yaml, "test configuration", &MapEnv::new())
        .await
        .unwrap_or_else(|e| panic!("test configuration loads: {e}\n{yaml}"));
    Context::new(config).expect("context")
}

fn pump_only() -> JobInputs {
    JobInputs::everything()
        .with_views(["Pump"])
        .expect("a view name")
}

async fn snapshot(context: &Context, inputs: &JobInputs) -> SnapshotSummary {
    let summary = jobs::snapshot(context, inputs, &SnapshotOptions::default()).await;
    assert!(summary.is_success(), "{summary:#?}");
    summary
}

/// Holds the next PUT of an object whose key contains `text` (single PUT, conditional PUT
/// or completion of a multipart upload).
fn hold_next_put_of(text: &str) -> FaultRule {
    FaultRule {
        ops: vec![S3Op::Put, S3Op::ConditionalPut, S3Op::CompleteMultipart],
        path_contains: Some(text.to_owned()),
        kind: FaultKind::Hold,
        remaining: Some(1),
        probability: 1.0,
    }
}

/// The files of one sample view as pyarrow and DuckDB read them equal the emulator's truth,
/// and the manifest describes exactly those files: for each, the manifest's version and
/// write id are the ones in the file's own footer. Returns the manifest.
fn assert_view_consistent(lab: &Lab, view: &str, label: &str) -> Value {
    let (_, nodes_of, edges_of) = VIEWS
        .iter()
        .find(|(folder, _, _)| *folder == view)
        .copied()
        .unwrap_or_else(|| panic!("{view} is a sample view"));
    let files = json!({
        "nodes": published_file_spec(lab, "nodes", nodes_of, view, &json!({})),
        "edges": published_file_spec(lab, "edges", edges_of, view, &json!({})),
    });
    let report = lab.check_published(view, files.clone()).expect("python");
    for kind in ["nodes", "edges"] {
        let expected_rows = files[kind]["truth"].as_array().map_or(0, Vec::len);
        for reader in ["pyarrow", "duckdb"] {
            let r = &report["files"][kind][reader];
            let what = format!("{label}: {view}/{kind} ({reader})");
            assert_eq!(r["mismatch_count"], 0, "{what}: {}", r["mismatches"]);
            assert_eq!(r["duplicates"], json!([]), "{what}: one row per instance");
            assert_eq!(r["rows"], expected_rows, "{what}: rows");
        }
    }
    let manifest = report["manifest"].clone();
    for kind in ["nodes", "edges"] {
        let entry = &manifest["files"][kind];
        let stamp = report["footers"][kind]["cdf_s3_replicator.built_from"]
            .as_str()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .unwrap_or_else(|| panic!("{label}: {view}/{kind} carries its build state: {report}"));
        assert_eq!(
            stamp["tableVersion"], entry["tableVersion"],
            "{label}: {view}/{kind}: the file's own version is the manifest's: {report}"
        );
        assert_eq!(
            stamp["writeId"], entry["writeId"],
            "{label}: {view}/{kind}: the manifest names the file at the key: {report}"
        );
        assert_eq!(stamp["streams"], entry["streams"], "{label}: {view}/{kind}");
    }
    manifest
}

/// The next snapshot finds nothing to do: every file is current and its manifest names it.
async fn assert_settled(context: &Context, inputs: &JobInputs, manifests: &[(&str, Value)]) {
    let summary = snapshot(context, inputs).await;
    for (view, manifest) in manifests {
        let report = summary
            .view(view)
            .unwrap_or_else(|| panic!("{view} in {summary:#?}"));
        assert!(!report.manifest_written, "{view}: {report:#?}");
        for (kind, name) in [
            (InstanceKind::Nodes, "nodes"),
            (InstanceKind::Edges, "edges"),
        ] {
            let file = report.file(kind).expect("file report");
            assert_eq!(file.action, FileAction::Skipped, "{view}/{kind}: {file:#?}");
            assert_eq!(
                json!(file.source_version),
                manifest["files"][name]["tableVersion"],
                "{view}/{kind}: the manifest is at the newest raw version"
            );
        }
    }
}

/// The interleaving of the report: run A reads the raw table, its nodes file is held; a
/// change is committed; run B publishes it, and B's manifest is held; A's file lands over
/// B's, A writes its manifest, then B's manifest is let through last. Without a guard the
/// lake keeps A's older file under B's newer manifest, and every later snapshot trusts the
/// manifest and never publishes the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_snapshots_end_with_file_manifest_and_data_in_agreement() {
    let Some((lab, proxy)) = lab_behind_proxy(PUMPS, 41).await else {
        return;
    };
    if python().is_none() {
        return;
    }
    // Separate contexts: nothing shared but the lake, like two processes.
    let syncer = lab.context("").await;
    let (first, second) = (patient_context(&lab).await, patient_context(&lab).await);
    sync_all(&syncer).await;
    snapshot(&first, &pump_only()).await;
    // Something for run A to publish.
    let control = lab.emulator.control();
    control
        .apply_instances(sample_model::updates(PUMPS, 1))
        .expect("updates");
    sync_all(&syncer).await;

    proxy.inject(hold_next_put_of("/Pump/nodes.parquet"));
    let (a_done, a_finished) = oneshot::channel();
    let (b_go, b_start) = oneshot::channel::<()>();
    let run_a = async {
        let summary = jobs::snapshot(&first, &pump_only(), &SnapshotOptions::default()).await;
        let _ = a_done.send(());
        summary
    };
    let run_b = async {
        b_start.await.expect("the test starts run B");
        jobs::snapshot(&second, &pump_only(), &SnapshotOptions::default()).await
    };
    let orchestrate = async {
        proxy.wait_until_held(1, HOLD_LIMIT).await;
        // Run A has read the raw table; the change lands after that.
        control
            .apply_instances(sample_model::updates(PUMPS, 2))
            .expect("updates");
        control
            .delete_instances(sample_model::deletions(PUMPS))
            .expect("deletes");
        sync_all(&syncer).await;
        proxy.inject(hold_next_put_of("/Pump/_manifest.json"));
        b_go.send(()).expect("run B waits");
        proxy.wait_until_held(2, HOLD_LIMIT).await;
        // Run A's older nodes file lands over run B's, run A finishes ...
        assert!(proxy.release_next(), "run A's nodes file is held");
        a_finished.await.expect("run A ends");
        // ... and run B's manifest comes last.
        assert!(proxy.release_next(), "run B's manifest is held");
    };
    let (a, b, ()) = tokio::join!(run_a, run_b, orchestrate);
    assert!(a.is_success(), "{a:#?}");
    assert!(b.is_success(), "{b:#?}");
    let manifest = assert_view_consistent(&lab, "Pump", "after two overlapping snapshots");
    let b_json = serde_json::to_value(&b).expect("summary JSON");
    assert_eq!(
        b_json["views"][0]["attempts"], 2,
        "run B found its manifest replaced and started over: {b_json:#}"
    );
    assert_settled(&lab.context("").await, &pump_only(), &[("Pump", manifest)]).await;
}

/// Two snapshots run at once, again and again, with changes committed in between and PUTs
/// delayed at random: after the last pair, every view's files equal the truth and their
/// manifests name them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeatedly_overlapping_snapshots_converge() {
    let Some((lab, proxy)) = lab_behind_proxy(PUMPS, 43).await else {
        return;
    };
    if python().is_none() {
        return;
    }
    let syncer = lab.context("").await;
    let (first, second) = (lab.context("").await, lab.context("").await);
    sync_all(&syncer).await;
    proxy.inject(FaultRule::random(
        &[S3Op::Put, S3Op::ConditionalPut, S3Op::Head],
        FaultKind::Delay(Duration::from_millis(120)),
        0.4,
    ));
    let all = JobInputs::everything();
    let options = SnapshotOptions::default();
    for round in 1..=3 {
        let (a, b) = tokio::join!(
            jobs::snapshot(&first, &all, &options),
            jobs::snapshot(&second, &all, &options)
        );
        for summary in [&a, &b] {
            assert!(summary.is_success(), "round {round}: {summary:#?}");
        }
        lab.emulator
            .control()
            .apply_instances(sample_model::updates(PUMPS, round))
            .expect("updates");
        sync_all(&syncer).await;
    }
    let (a, b) = tokio::join!(
        jobs::snapshot(&first, &all, &options),
        jobs::snapshot(&second, &all, &options)
    );
    for summary in [&a, &b] {
        assert!(summary.is_success(), "last round: {summary:#?}");
    }
    proxy.clear();
    let manifests: Vec<(&str, Value)> = VIEWS
        .iter()
        .map(|(view, _, _)| {
            let manifest = assert_view_consistent(&lab, view, "after overlapping snapshots");
            (*view, manifest)
        })
        .collect();
    assert_settled(&lab.context("").await, &all, &manifests).await;
}

/// The object key of a published file of the Pump view.
fn pump_object(name: &str) -> ObjectPath {
    ObjectPath::from(format!(
        "publish/{SCHEMA_SPACE}/{}/{}/Pump/{name}",
        sample_model::MODEL,
        sample_model::MODEL_VERSION
    ))
}

/// A file older than its manifest, made by hand (an older file copied over the current one,
/// as an overlap of earlier releases left it): the next snapshot does not trust the
/// manifest, brings the file up to date and rewrites the manifest to name it.
async fn older_file_under_a_newer_manifest(lab: Lab) {
    let context = lab.context("").await;
    let store = context.destination.object_store().expect("store");
    sync_all(&context).await;
    snapshot(&context, &pump_only()).await;
    let older = store
        .get(&pump_object("nodes.parquet"))
        .await
        .expect("published nodes file")
        .bytes()
        .await
        .expect("file bytes");

    lab.update_and_delete_pumps(PUMPS);
    sync_all(&context).await;
    let newer = snapshot(&context, &pump_only()).await;
    let published = newer
        .view("Pump")
        .and_then(|v| v.file(InstanceKind::Nodes))
        .expect("Pump nodes");
    assert_ne!(published.action, FileAction::Skipped, "{published:#?}");
    store
        .put(&pump_object("nodes.parquet"), older.into())
        .await
        .expect("copying the older file over the current one");

    let repaired = snapshot(&context, &pump_only()).await;
    let view = repaired.view("Pump").expect("Pump");
    let nodes = view.file(InstanceKind::Nodes).expect("Pump nodes");
    assert_ne!(
        nodes.action,
        FileAction::Skipped,
        "a file older than its manifest is not skipped: {nodes:#?}"
    );
    assert!(
        nodes
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("not the file the manifest names")),
        "{nodes:#?}"
    );
    assert!(view.manifest_written, "{view:#?}");
    let manifest = assert_view_consistent(&lab, "Pump", "after the repair");
    assert_settled(&context, &pump_only(), &[("Pump", manifest)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_older_than_its_manifest_is_brought_up_to_date_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    if python().is_none() {
        return;
    }
    older_file_under_a_newer_manifest(Lab::start(PUMPS, Some(lake)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_older_than_its_manifest_is_brought_up_to_date_local() {
    if python().is_none() {
        return;
    }
    older_file_under_a_newer_manifest(Lab::start(PUMPS, None).await).await;
}

/// Rows per (space, externalId, version, deleted) of a raw table, read with the Python
/// `deltalake` package; every count must be 1.
fn assert_each_change_once(lab: &Lab, folder: &str, kind: &str) {
    let rows = lab.raw_rows(folder, kind).expect("python");
    assert!(!rows.is_empty(), "{folder}/{kind} has rows");
    let mut counts = std::collections::BTreeMap::new();
    for row in &rows {
        let key = (
            row["space"].to_string(),
            row["externalId"].to_string(),
            row["version"].to_string(),
            row["deletedTime"].is_null(),
        );
        *counts.entry(key).or_insert(0u32) += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{folder}/{kind}: changes stored twice: {twice:?}"
    );
}

/// Two syncs at once, with PUTs (data files and commits) delayed at random so that their
/// uploads and commits interleave: the raw tables hold every change exactly once, and the
/// publish layer built from them equals the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_syncs_with_delayed_puts_store_each_change_once() {
    let Some((lab, proxy)) = lab_behind_proxy(PUMPS, 47).await else {
        return;
    };
    if python().is_none() {
        return;
    }
    let extractor = "  subscription-batch-size: 10\n  ingest-batch-size: 20\n  parallelism: 2\n";
    let (a, b) = (lab.context(extractor).await, lab.context(extractor).await);
    let (job_a, job_b) = (SyncJob::from_context(&a), SyncJob::from_context(&b));
    proxy.inject(FaultRule::random(
        &[S3Op::Put, S3Op::ConditionalPut],
        FaultKind::Delay(Duration::from_millis(150)),
        0.5,
    ));
    for round in 0..3u32 {
        if round > 0 {
            lab.emulator
                .control()
                .apply_instances(sample_model::updates(PUMPS, round))
                .expect("updates");
        }
        if round == 2 {
            lab.emulator
                .control()
                .delete_instances(sample_model::deletions(PUMPS))
                .expect("deletes");
        }
        let (inputs, options) = (slice(), SyncOptions::default());
        let (first, second) = tokio::join!(
            jobs::sync(&job_a, &inputs, &options),
            jobs::sync(&job_b, &inputs, &options)
        );
        // The loser of a commit race stops cleanly (superseded); nothing fails.
        for summary in [&first, &second] {
            assert_eq!(summary.streams_failed, 0, "round {round}: {summary:#?}");
        }
    }
    assert!(proxy.stats().faults_of(FaultKind::Delay(Duration::ZERO)) > 0);
    proxy.clear();
    // What a superseded run left is picked up by the next one.
    sync_all(&a).await;
    lab.assert_all_tables_match("after overlapping syncs");
    for (folder, kind) in [
        ("Site", "nodes"),
        ("Pump", "nodes"),
        ("WorkOrder", "nodes"),
        ("Pump", "edges"),
        ("PumpWorkOrder", "edges"),
    ] {
        assert_each_change_once(&lab, folder, kind);
    }
    snapshot(&a, &JobInputs::everything()).await;
    for (view, _, _) in VIEWS {
        assert_view_consistent(&lab, view, "published after overlapping syncs");
    }
}

/// The guard rests on the ETag a publish upload reports being the one S3 serves for the key
/// afterwards, for a single PUT and for a multipart upload alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_upload_reports_the_etag_s3_serves() {
    use cdf_s3_replicator::snapshot::BatchSink as _;
    use cdf_s3_replicator::snapshot::writer::ParquetSink;
    use deltalake::arrow::array::{RecordBatch, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let Some(lake) = Lake::s3().await else { return };
    let lab = Lab::start(1, Some(lake)).await;
    let store = lab
        .context("")
        .await
        .destination
        .object_store()
        .expect("store");
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
    // Random ids barely compress: 1M rows take two 8 MiB parts.
    for (rows, name) in [(10, "single.parquet"), (1_000_000, "multipart.parquet")] {
        let ids: Vec<String> = (0..rows)
            .map(|_| format!("{:016x}", rand::random::<u64>()))
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(ids))])
            .expect("batch");
        let path = format!("publish/etag/{name}");
        let mut sink = ParquetSink::create(&store, &path, schema.clone()).expect("sink");
        sink.write(batch).await.expect("rows");
        let written = sink.close().await.expect("upload");
        let served = store
            .head(&ObjectPath::from(path.as_str()))
            .await
            .expect("HEAD");
        assert!(written.e_tag.is_some(), "{name}: {written:?}");
        assert_eq!(written.e_tag, served.e_tag, "{name}");
        assert_eq!(written.bytes, served.size, "{name}");
    }
}
