//! `verify` against the CDF emulator and a real lake: a converged lake verifies clean (every
//! row sampled), changes in CDF after the snapshot are lag, each injected divergence is
//! found with its class and example, verify writes nothing (request log, every lake object,
//! the state rows), and the CLI's exit code, `--json` and `--seed`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cdf_emulator::sample_model::{DATA_SPACE, SCHEMA_SPACE};
use cdf_s3_replicator::context::Context;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs::{self, PublishOptions};
use cdf_s3_replicator::snapshot::stamp::STAMP_KEY;
use cdf_s3_replicator::sync::{SyncJob, SyncOptions};
use cdf_s3_replicator::verify::{
    DivergenceClass, FileState, FileVerification, VerifyOptions, VerifySummary,
};
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray as _, BooleanArray, Int64Array, RecordBatch, StringArray,
};
use deltalake::arrow::compute::{concat_batches, filter_record_batch};
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::file::metadata::KeyValue;
use deltalake::parquet::file::properties::WriterProperties;
use futures::TryStreamExt as _;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake};

const PUMPS: usize = 30;
/// More than any file's rows: every row of every file is sampled.
const EVERYTHING: usize = 100_000;
/// Small pages and commits; compaction merges as few as two files, so that the raw tables
/// hold maintenance commits next to the streams' (none of them foreign).
const SMALL: &str = "  subscription-batch-size: 25\n  ingest-batch-size: 40\n  maintenance:\n    compact-min-files: 2\n";

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(300))
}

/// Seeds, syncs, applies the sample updates and deletes, syncs again and publishes: a
/// converged lake.
async fn converged(lab: &Lab) -> Context {
    converged_with(lab, SMALL).await
}

async fn converged_with(lab: &Lab, extractor: &str) -> Context {
    let context = lab.context(extractor).await;
    let job = SyncJob::from_context(&context);
    let first = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(first.is_success(), "{first:#?}");
    lab.update_and_delete_pumps(PUMPS);
    let second = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(second.is_success(), "{second:#?}");
    publish(&context).await;
    context
}

async fn publish(context: &Context) {
    let plan = jobs::plan(context).await;
    let report = jobs::publish(context, &plan, &slice(), &PublishOptions::everything()).await;
    assert!(report.is_success(), "{report:#?}");
}

async fn verify(context: &Context, sample: usize, seed: u64) -> VerifySummary {
    let options = VerifyOptions {
        sample,
        seed: Some(seed),
        resume: None,
    };
    jobs::verify(context, &slice(), &options).await
}

fn file<'a>(summary: &'a VerifySummary, view: &str, kind: &str) -> &'a FileVerification {
    summary
        .files
        .iter()
        .find(|f| f.view == view && f.kind == kind)
        .unwrap_or_else(|| panic!("{view}/{kind} in {summary:#?}"))
}

/// Every object under the destination prefix with its size, last-modified time and ETag.
async fn lake_objects(context: &Context) -> BTreeMap<String, (u64, String, Option<String>)> {
    let store = context.destination.object_store().expect("object store");
    store
        .list(None)
        .map_ok(|meta| {
            (
                meta.location.to_string(),
                (meta.size, meta.last_modified.to_rfc3339(), meta.e_tag),
            )
        })
        .try_collect()
        .await
        .expect("listing the lake")
}

/// Only reads in the request log: aggregate, byids, list, sync, models and views, token,
/// and the GET of the state rows.
fn assert_only_reads(lab: &Lab) {
    let log = lab.emulator.control().request_log();
    assert!(!log.is_empty(), "verify read CDF");
    let reads = [
        "/models/instances/aggregate",
        "/models/instances/byids",
        "/models/instances/list",
        "/models/instances/sync",
        "/models/datamodels",
        "/models/datamodels/byids",
        "/models/views",
        "/models/views/byids",
        "/token",
    ];
    for request in &log {
        let read = reads.iter().any(|path| request.path.ends_with(path))
            || (request.method == "GET" && request.path.contains("/raw/dbs/"));
        assert!(
            read,
            "verify made a request that is not a read: {request:?}"
        );
    }
    for endpoint in ["aggregate", "byids", "list"] {
        assert!(
            log.iter().any(|r| r.path.ends_with(endpoint)),
            "verify called {endpoint}: {log:#?}"
        );
    }
}

/// A lake that has converged verifies clean with every row sampled, writes nothing, and
/// counts CDF's changes after the snapshot (update, create, delete) as lag.
async fn converged_lake_is_clean_and_later_changes_are_lag(lab: Lab) {
    let context = converged(&lab).await;
    let control = lab.emulator.control();
    let objects = lake_objects(&context).await;
    let state_rows = control.raw_rows("state", "streams").expect("state rows");
    control.clear_request_log();

    let summary = verify(&context, EVERYTHING, 7).await;
    assert!(summary.is_clean(), "{summary:#?}");
    assert!(summary.complete, "{summary:#?}");
    assert_eq!(summary.divergences(), 0, "{summary:#?}");
    assert_eq!(
        summary.files.len(),
        5,
        "every view and kind with streams: {summary:#?}"
    );
    for f in &summary.files {
        assert_eq!(f.state, FileState::Verified, "{f:#?}");
        let counts = f.counts.as_ref().expect("counts");
        assert!(counts.file_rows > 0, "{f:#?}");
        assert_eq!(counts.file_rows, counts.cdf_live, "{f:#?}");
        assert_eq!(f.sampled, counts.file_rows, "every row sampled: {f:#?}");
        assert_eq!(f.matched, f.sampled, "{f:#?}");
        assert!(f.watermark.as_ref().and_then(|w| w.at).is_some(), "{f:#?}");
    }
    assert_eq!(
        file(&summary, "Pump", "nodes")
            .counts
            .as_ref()
            .unwrap()
            .source,
        "aggregate"
    );
    assert_eq!(
        file(&summary, "Pump", "edges")
            .counts
            .as_ref()
            .unwrap()
            .source,
        "listing"
    );
    assert!(summary.requests > 0);

    assert_only_reads(&lab);
    assert_eq!(
        lake_objects(&context).await,
        objects,
        "verify changed the lake"
    );
    assert_eq!(
        control.raw_rows("state", "streams").expect("state rows"),
        state_rows,
        "verify changed the state rows"
    );

    // Changes in CDF after the snapshot: an update, a new pump, a deleted pump (and its
    // edges).
    let pump_view =
        json!({"type": "view", "space": SCHEMA_SPACE, "externalId": "Pump", "version": "1"});
    control
        .apply_instances(json!({"items": [
            {"instanceType": "node", "space": DATA_SPACE, "externalId": "pump-0002",
             "sources": [{"source": pump_view, "properties": {"tag": "changed after the snapshot"}}]},
            {"instanceType": "node", "space": DATA_SPACE, "externalId": "pump-new",
             "sources": [{"source": pump_view, "properties": {"tag": "created after the snapshot"}}]},
        ]}))
        .expect("update and create");
    control
        .delete_instances(json!({"items": [
            {"instanceType": "node", "space": DATA_SPACE, "externalId": "pump-0003"}
        ]}))
        .expect("delete");
    let later = verify(&context, EVERYTHING, 7).await;
    assert!(later.is_clean(), "lag is not divergence: {later:#?}");
    let pumps = file(&later, "Pump", "nodes");
    assert_eq!(pumps.lag.count, 3, "update, create, delete: {pumps:#?}");
    let counts = pumps.counts.as_ref().expect("counts");
    assert_eq!(counts.changed_since_watermark, Some(2), "{pumps:#?}");
    assert_eq!(
        (counts.difference, counts.unexplained),
        (0, 0),
        "{pumps:#?}"
    );
    assert!(pumps.lag.max_age_ms.is_some());
    assert_eq!(pumps.matched + 3, pumps.sampled, "{pumps:#?}");
    let edges = file(&later, "Pump", "edges");
    assert_eq!(
        edges.lag.count, 2,
        "the deleted pump's two edges: {edges:#?}"
    );
    assert!(later.lag_max_ms() >= 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converged_local_lake_is_clean_and_later_changes_are_lag() {
    converged_lake_is_clean_and_later_changes_are_lag(Lab::start(PUMPS, None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converged_lake_on_s3_is_clean_and_later_changes_are_lag() {
    let Some(lake) = Lake::s3().await else { return };
    converged_lake_is_clean_and_later_changes_are_lag(Lab::start(PUMPS, Some(lake)).await).await;
}

fn publish_file(lab: &Lab, view: &str, kind: &str) -> PathBuf {
    let Lake::Local(root) = &lab.lake else {
        panic!("a local lake")
    };
    root.join(format!(
        "publish/{SCHEMA_SPACE}/PlantModel/1/{view}/{kind}.parquet"
    ))
}

/// Rewrites a published file through `change`, keeping its footer's key-value metadata
/// (the build stamp) unless `stamp` rewrites it.
fn rewrite(
    path: &Path,
    change: impl FnOnce(RecordBatch) -> RecordBatch,
    stamp: impl FnOnce(Value) -> Value,
) {
    let reader = std::fs::File::open(path).expect("published file");
    let builder = ParquetRecordBatchReaderBuilder::try_new(reader).expect("parquet");
    let schema = builder.schema().clone();
    let metadata: Vec<KeyValue> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|kv| kv.key != "ARROW:schema")
        .collect();
    let batches: Vec<RecordBatch> = builder
        .build()
        .expect("reader")
        .collect::<Result<_, _>>()
        .expect("rows");
    let batch = change(concat_batches(&schema, &batches).expect("one batch"));
    let mut stamp = Some(stamp);
    let metadata: Vec<KeyValue> = metadata
        .into_iter()
        .map(|kv| match (kv.key == STAMP_KEY, kv.value.as_deref()) {
            (true, Some(text)) => {
                let value: Value = serde_json::from_str(text).expect("stamp");
                let value = (stamp.take().expect("one stamp"))(value);
                KeyValue::new(kv.key, value.to_string())
            }
            _ => kv,
        })
        .collect();
    let properties = WriterProperties::builder()
        .set_key_value_metadata(Some(metadata))
        .build();
    let out = std::fs::File::create(path).expect("rewrite");
    let mut writer = ArrowWriter::try_new(out, batch.schema(), Some(properties)).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

fn column(batch: &RecordBatch, name: &str) -> usize {
    batch.schema().index_of(name).expect("column")
}

fn text(batch: &RecordBatch, name: &str, row: usize) -> String {
    batch
        .column(column(batch, name))
        .as_string::<i32>()
        .value(row)
        .to_owned()
}

fn with_column(batch: RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
    let mut columns = batch.columns().to_vec();
    columns[column(&batch, name)] = array;
    RecordBatch::try_new(batch.schema(), columns).expect("batch")
}

fn replace_text(batch: RecordBatch, name: &str, row: usize, value: &str) -> RecordBatch {
    let old = batch
        .column(column(&batch, name))
        .as_string::<i32>()
        .clone();
    let new: StringArray = (0..old.len())
        .map(|i| match i == row {
            true => Some(value.to_owned()),
            false => old.is_valid(i).then(|| old.value(i).to_owned()),
        })
        .collect();
    with_column(batch, name, std::sync::Arc::new(new))
}

fn examples(f: &FileVerification, class: DivergenceClass) -> Vec<(String, String, String, String)> {
    f.divergences
        .get(&class)
        .map(|d| {
            d.examples
                .iter()
                .map(|e| {
                    (
                        e.key.clone().unwrap_or_default(),
                        e.column.clone().unwrap_or_default(),
                        e.lake.clone().unwrap_or_default(),
                        e.cdf.clone().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Appends a site row to the raw Site table with the Python `deltalake` package, as
/// someone editing the lake behind the replicator's back would.
fn foreign_append(lab: &Lab, python: &str) {
    let uri = lab.lake.raw_table_uri("Site", "nodes");
    let script = r#"
import sys, json
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
uri = sys.argv[1]
table = DeltaTable(uri).to_pyarrow_table()
row = [r for r in table.to_pylist() if r["deletedTime"] is None][-1]
row["externalId"] = "site-foreign"
extra = pa.Table.from_pylist([row], schema=table.schema)
write_deltalake(uri, extra, mode="append")
"#;
    let status = Command::new(python)
        .args(["-c", script, &uri])
        .status()
        .expect("python runs");
    assert!(status.success(), "the foreign append");
}

/// Each injected divergence is found with its class and an example that names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_divergences_are_found_with_their_class_and_example() {
    let lab = Lab::start(PUMPS, None).await;
    let context = converged(&lab).await;
    let python = crate::support::python();

    // A raw table edited behind the replicator's back, then published.
    if let Some(python) = &python {
        foreign_append(&lab, python);
        publish(&context).await;
    }

    // A changed value in a published file (footer kept).
    let pumps = publish_file(&lab, "Pump", "nodes");
    let mut changed_key = String::new();
    rewrite(
        &pumps,
        |batch| {
            changed_key = format!("{DATA_SPACE}/{}", text(&batch, "externalId", 3));
            replace_text(batch, "tag", 3, "edited in the lake")
        },
        |stamp| stamp,
    );
    // A removed row.
    let orders = publish_file(&lab, "WorkOrder", "nodes");
    let mut removed_key = String::new();
    rewrite(
        &orders,
        |batch| {
            removed_key = format!("{DATA_SPACE}/{}", text(&batch, "externalId", 0));
            let keep: BooleanArray = (0..batch.num_rows()).map(|i| Some(i != 0)).collect();
            filter_record_batch(&batch, &keep).expect("filter")
        },
        |stamp| stamp,
    );
    // An extra row of a deleted instance: an edge of pump-0000, deleted with it.
    let links = publish_file(&lab, "PumpWorkOrder", "edges");
    rewrite(
        &links,
        |batch| {
            let extra = with_column(
                batch.slice(0, 1),
                "externalId",
                std::sync::Arc::new(StringArray::from(vec!["pump-0000--wo-0000-0"])),
            );
            let extra = with_column(
                extra,
                "version",
                std::sync::Arc::new(Int64Array::from(vec![1])),
            );
            concat_batches(&batch.schema(), &[batch.clone(), extra]).expect("concat")
        },
        |stamp| stamp,
    );
    // A file older than its manifest.
    let edges = publish_file(&lab, "Pump", "edges");
    rewrite(
        &edges,
        |batch| batch,
        |mut stamp| {
            let version = stamp["tableVersion"].as_u64().expect("version");
            stamp["tableVersion"] = json!(version - 1);
            stamp
        },
    );

    let summary = verify(&context, EVERYTHING, 11).await;
    assert!(!summary.is_clean(), "{summary:#?}");

    let pump_nodes = file(&summary, "Pump", "nodes");
    let mismatches = examples(pump_nodes, DivergenceClass::ValueMismatch);
    assert_eq!(mismatches.len(), 1, "{pump_nodes:#?}");
    assert_eq!(mismatches[0].0, changed_key);
    assert_eq!(mismatches[0].1, "tag");
    assert_eq!(mismatches[0].2, "edited in the lake");
    assert!(mismatches[0].3.starts_with("P-"), "{mismatches:?}");
    assert_eq!(pump_nodes.divergence_count(), 1, "{pump_nodes:#?}");

    let order_nodes = file(&summary, "WorkOrder", "nodes");
    let missing = examples(order_nodes, DivergenceClass::MissingFromFile);
    assert_eq!(missing.len(), 1, "{order_nodes:#?}");
    assert_eq!(missing[0].0, removed_key);
    let counts = order_nodes.counts.as_ref().expect("counts");
    assert_eq!(counts.unexplained, 1, "{order_nodes:#?}");
    assert!(
        order_nodes
            .divergences
            .contains_key(&DivergenceClass::CountMismatch)
    );

    let link_edges = file(&summary, "PumpWorkOrder", "edges");
    let deleted = examples(link_edges, DivergenceClass::DeletedButPublished);
    assert_eq!(deleted.len(), 1, "{link_edges:#?}");
    assert_eq!(deleted[0].0, format!("{DATA_SPACE}/pump-0000--wo-0000-0"));
    assert!(deleted[0].3.starts_with("deleted at"), "{deleted:?}");

    let pump_edges = file(&summary, "Pump", "edges");
    let stale = examples(pump_edges, DivergenceClass::StaleFile);
    assert_eq!(stale.len(), 1, "{pump_edges:#?}");
    assert!(stale[0].1.starts_with("tableVersion"), "{stale:?}");
    assert_eq!(pump_edges.divergence_count(), 1, "{pump_edges:#?}");

    if python.is_some() {
        let sites = file(&summary, "Site", "nodes");
        let foreign = examples(sites, DivergenceClass::ForeignCommit);
        assert_eq!(foreign.len(), 1, "{sites:#?}");
        assert_eq!(foreign[0].1, "version");
        let gone = examples(sites, DivergenceClass::DeletedButPublished);
        assert_eq!(gone.len(), 1, "{sites:#?}");
        assert_eq!(gone[0].0, format!("{DATA_SPACE}/site-foreign"));
    } else {
        assert!(file(&summary, "Site", "nodes").divergences.is_empty());
    }
}

/// The CLI: exit 0 on a clean lake and the seed it prints repeats the sample; non-zero with
/// a divergence; `--json` parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exits_by_divergence_and_its_seed_repeats_the_sample() {
    let lab = Lab::start(PUMPS, None).await;
    let _context = converged(&lab).await;
    let config = lab.config_file(SMALL);
    let run = |args: Vec<String>| {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"))
                    .arg("verify")
                    .args(args)
                    .arg("--config")
                    .arg(config)
                    .output()
                    .expect("CLI runs")
            })
            .await
            .expect("CLI task")
        }
    };
    let table = run(vec!["--sample".into(), "5".into()]).await;
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("seed"), "{text}");
    assert!(text.contains("Pump"), "{text}");

    let json_run = |seed: u64| {
        run(vec![
            "--json".into(),
            "--sample".into(),
            "5".into(),
            "--seed".into(),
            seed.to_string(),
        ])
    };
    let first = json_run(99).await;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first: Value = serde_json::from_slice(&first.stdout).expect("--json is JSON");
    assert_eq!(first["seed"], 99);
    let second: Value = serde_json::from_slice(&json_run(99).await.stdout).expect("JSON");
    let samples = |report: &Value| -> Vec<Value> {
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["sampleDigest"].clone())
            .collect()
    };
    assert!(samples(&first).iter().all(Value::is_string), "{first:#}");
    assert_eq!(
        samples(&first),
        samples(&second),
        "the same seed, the same sample"
    );
    let other: Value = serde_json::from_slice(&json_run(100).await.stdout).expect("JSON");
    assert_ne!(
        samples(&first),
        samples(&other),
        "another seed, another sample"
    );

    // A divergence: a changed value, found with every row sampled.
    rewrite(
        &publish_file(&lab, "Pump", "nodes"),
        |batch| replace_text(batch, "tag", 0, "edited"),
        |stamp| stamp,
    );
    let diverged = run(vec![
        "--json".into(),
        "--sample".into(),
        EVERYTHING.to_string(),
    ])
    .await;
    assert!(!diverged.status.success());
    let report: Value = serde_json::from_slice(&diverged.stdout).expect("JSON");
    let pumps = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["view"] == "Pump" && f["kind"] == "nodes")
        .expect("Pump nodes");
    assert_eq!(
        pumps["divergences"]["valueMismatch"]["count"], 1,
        "{pumps:#}"
    );
}

/// A run whose deadline comes first reports the files it did not reach as pending, not
/// failed; a resumed run verifies only the files its cycle has not done, under the cycle's
/// seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_by_its_deadline_leaves_files_pending_and_a_resumed_run_does_the_rest() {
    let lab = Lab::start(PUMPS, None).await;
    converged(&lab).await;
    let context = lab
        .context(&format!("{SMALL}  deadline-margin: 0s\n"))
        .await;
    let control = lab.emulator.control();

    // Every key listing answers after the deadline.
    control.add_fault(cdf_emulator::FaultSpec::delay(
        "/models/instances/list",
        60_000,
        1,
    ));
    let options = VerifyOptions {
        sample: 5,
        seed: Some(3),
        resume: None,
    };
    let cut = jobs::verify(
        &context,
        &JobInputs::until(Instant::now() + Duration::from_secs(3)),
        &options,
    )
    .await;
    control.clear_faults();
    assert!(!cut.complete, "{cut:#?}");
    assert!(
        cut.files.iter().all(|f| f.state == FileState::Pending),
        "{cut:#?}"
    );
    let outcome = cut.outcome();
    assert_eq!((outcome.behind, outcome.failed), (5, 0), "{outcome:#?}");
    assert!(cut.progress.done.is_empty());

    let full = verify(&context, 5, 3).await;
    assert!(full.complete && full.is_clean(), "{full:#?}");
    assert_eq!(full.progress.done.len(), 5);
    let mut progress = full.progress.clone();
    let pump_nodes = "plant_schema:PlantModel/1|Pump|nodes";
    assert!(progress.done.remove(pump_nodes), "{progress:?}");
    let resumed = jobs::verify(
        &context,
        &slice(),
        &VerifyOptions {
            sample: 5,
            seed: None,
            resume: Some(progress),
        },
    )
    .await;
    assert_eq!(resumed.seed, 3, "the cycle's seed");
    assert!(resumed.complete, "{resumed:#?}");
    for f in &resumed.files {
        let expected = match (f.view.as_str(), f.kind.as_str()) {
            ("Pump", "nodes") => FileState::Verified,
            _ => FileState::VerifiedEarlier,
        };
        assert_eq!(f.state, expected, "{f:#?}");
    }
    assert_eq!(
        file(&resumed, "Pump", "nodes").sample_digest,
        file(&full, "Pump", "nodes").sample_digest,
        "the same file under the same seed samples the same keys"
    );
}

/// Files published in parts are verified part by part and sampled as one file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_parts_verify_clean_and_a_changed_part_is_found() {
    let lab = Lab::start(PUMPS, None).await;
    let context = converged_with(&lab, &format!("{SMALL}  snapshot:\n    part-rows: 8\n")).await;
    let Lake::Local(root) = &lab.lake else {
        panic!("a local lake")
    };
    let parts_dir = root.join(format!("publish/{SCHEMA_SPACE}/PlantModel/1/Pump/nodes"));
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&parts_dir)
        .expect("Pump nodes in parts")
        .map(|e| e.expect("entry").path())
        .collect();
    parts.sort();
    assert!(parts.len() > 1, "{parts:?}");

    let summary = verify(&context, EVERYTHING, 5).await;
    assert!(summary.is_clean(), "{summary:#?}");
    let pumps = file(&summary, "Pump", "nodes");
    let counts = pumps.counts.as_ref().expect("counts");
    assert_eq!(pumps.sampled, counts.file_rows, "{pumps:#?}");
    assert_eq!(pumps.matched, pumps.sampled, "{pumps:#?}");

    let last = parts.last().expect("a part");
    rewrite(
        last,
        |batch| replace_text(batch, "tag", 0, "edited in a part"),
        |stamp| stamp,
    );
    let summary = verify(&context, EVERYTHING, 5).await;
    let pumps = file(&summary, "Pump", "nodes");
    let mismatches = examples(pumps, DivergenceClass::ValueMismatch);
    assert_eq!(mismatches.len(), 1, "{pumps:#?}");
    assert_eq!(mismatches[0].2, "edited in a part");
}
