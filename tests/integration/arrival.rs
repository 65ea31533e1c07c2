//! `_arrival` on a table written before the column existed: the table gains it by schema
//! evolution, its old rows read null and are never rewritten, and the documented
//! current-state query (`docs/bi-tools.md`, run by `tests/readers/current_state.py`) still
//! returns the publish file's rows, before a resync by its fallback order and after one
//! because every key then has a newer row.

use std::sync::Arc;
use std::time::Duration;

use cdf_emulator::sample_model::{DATA_SPACE, SCHEMA_SPACE};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::{CommitOutcome, LakeTable, StreamCommit, StreamMetadata};
use cdf_s3_replicator::snapshot::SnapshotOptions;
use cdf_s3_replicator::sync::state::Phase;
use cdf_s3_replicator::sync::{SyncJob, SyncOptions};
use deltalake::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake, publish_dir_uri, python, python_read};

const VIEW: &str = "WorkOrder";
const STREAM: &str = "plant_schema/PlantModel/1/WorkOrder/nodes";
const PUMPS: usize = 6;

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(120))
        .with_views([VIEW])
        .expect("a view name")
}

/// The rows a release without `_arrival` wrote: system columns only, in the order given.
fn legacy_rows(rows: &[(&str, i64, i64, Option<i64>)]) -> RecordBatch {
    let texts = |value: &str| -> ArrayRef { Arc::new(StringArray::from(vec![value; rows.len()])) };
    let schema = Schema::new(vec![
        Field::new("space", DataType::Utf8, false),
        Field::new("externalId", DataType::Utf8, false),
        Field::new("instanceType", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("createdTime", DataType::Int64, false),
        Field::new("lastUpdatedTime", DataType::Int64, false),
        Field::new("deletedTime", DataType::Int64, true),
        Field::new("type.space", DataType::Utf8, true),
        Field::new("type.externalId", DataType::Utf8, true),
    ]);
    let nulls: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>; rows.len()]));
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            texts(DATA_SPACE),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            texts("node"),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(vec![1_000; rows.len()])),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
            nulls.clone(),
            nulls,
        ],
    )
    .expect("legacy batch")
}

async fn context(yaml: &str) -> Context {
    let config = load_config_text(yaml, "test configuration", &MapEnv::new())
        .await
        .unwrap_or_else(|e| panic!("configuration loads: {e}"));
    Context::new(config).expect("context")
}

/// Runs a reader script of `tests/readers` with a request file; its JSON answer.
fn reader(python: &str, lab: &Lab, script: &str, args: &[&str], request: Value) -> Value {
    let request_file = lab.dir.path().join(format!("{script}.json"));
    std::fs::write(&request_file, request.to_string()).expect("request");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/readers")
        .join(script);
    let output = std::process::Command::new(python)
        .arg(path)
        .args(args)
        .arg(&request_file)
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON answer")
}

/// Runs the documented query over the WorkOrder nodes table; its report.
fn current_state(python: &str, lab: &Lab) -> Value {
    let publish = format!("{}/nodes.parquet", publish_dir_uri(&lab.lake, VIEW));
    let request = json!({
        "storage_options": lab.lake.storage_options(),
        "tables": [{"label": "WorkOrder/nodes", "raw": lab.lake.raw_table_uri(VIEW, "nodes"),
                    "publish": publish}],
    });
    reader(python, lab, "current_state.py", &[], request)
}

/// The latest row of every key in Delta-log arrival order, read independently.
fn latest_rows(python: &str, lab: &Lab) -> Vec<Value> {
    let request = json!({"uri": lab.lake.raw_table_uri(VIEW, "nodes"),
                         "storage_options": lab.lake.storage_options()});
    reader(python, lab, "arrival.py", &["latest"], request)["latest"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every row's (`createdTime`, `_arrival`), read by the Python `deltalake` package.
fn created_and_arrival(python: &str, lab: &Lab) -> Vec<(Value, Value)> {
    let answer = python_read(
        python,
        json!({"uri": lab.lake.raw_table_uri(VIEW, "nodes"),
               "storage_options": lab.lake.storage_options(),
               "columns": ["createdTime", "_arrival"]}),
    );
    let column = |name: &str| {
        answer["values"][name]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    column("createdTime")
        .into_iter()
        .zip(column("_arrival"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_arrival_gains_it_and_the_documented_query_still_holds() {
    let Some(python) = python() else { return };
    let lab = Lab::start(PUMPS, None).await;
    // A scratch lake (and state table) replicates the view once, for a real cursor and the
    // stream's query hash, as the earlier release would have recorded them.
    let scratch_dir = lab.dir.path().join("scratch");
    let scratch = Lake::local(&scratch_dir);
    let yaml = lab
        .config_yaml("", Some(&[VIEW]))
        .replace(&lab.lake.destination_yaml(), &scratch.destination_yaml())
        .replace("table: streams", "table: scratch");
    let scratch_context = context(&yaml).await;
    let summary = jobs::sync(
        &SyncJob::from_context(&scratch_context),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{}", summary.one_line());
    let scratch_url = url::Url::from_directory_path(scratch.raw_table_uri(VIEW, "nodes"))
        .expect("scratch table URL");
    let scratch_table =
        LakeTable::open_with_storage_options(scratch_url, Default::default(), Default::default())
            .await
            .expect("scratch table");
    let mut checkpoint = scratch_table
        .last_stream_commit(STREAM, u64::MAX)
        .await
        .expect("the scratch stream's commit")
        .and_then(|record| record.metadata.checkpoint)
        .expect("a checkpoint");
    assert_eq!(checkpoint.phase, Phase::Streaming);
    checkpoint.seq = 1;

    // The table as the earlier release left it: one commit of the stream (opening and
    // completing its first generation) whose rows have neither `_arrival` nor `_exitedTime`.
    // `wo-gone` was deleted (its tombstone is its newest row), `wo-stale` is live in the
    // table but no longer in CDF, and `wo-0000-0` has an older version than CDF's.
    let uri = lab.lake.raw_table_uri(VIEW, "nodes");
    std::fs::create_dir_all(&uri).expect("table directory");
    let url = url::Url::from_directory_path(&uri).expect("table URL");
    let mut table =
        LakeTable::open_with_storage_options(url, Default::default(), Default::default())
            .await
            .expect("legacy table");
    let legacy = legacy_rows(&[
        ("wo-gone", 1, 1_000, None),
        ("wo-stale", 1, 1_500, None),
        ("wo-0000-0", 0, 1_200, None),
        ("wo-gone", 2, 2_000, Some(2_000)),
    ]);
    let outcome = table
        .append(
            &[legacy],
            StreamCommit {
                app_id: STREAM.into(),
                txn_version: 1,
                metadata: StreamMetadata::data_commit(&checkpoint, true, true),
            },
        )
        .await
        .expect("legacy commit");
    assert!(matches!(outcome, CommitOutcome::Committed(_)));

    // The stream continues from the legacy commit's cursor: CDF changes one work order.
    lab.emulator
        .control()
        .apply_instances(json!({"items": [{
            "instanceType": "node", "space": DATA_SPACE, "externalId": "wo-0001-1",
            "sources": [{"source": {"type": "view", "space": SCHEMA_SPACE, "externalId": VIEW, "version": "1"},
                         "properties": {"done": true}}]}]}))
        .expect("a change");
    let lake_context = lab.context_with("", Some(&[VIEW])).await;
    let summary = jobs::sync(
        &SyncJob::from_context(&lake_context),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{}", summary.one_line());
    assert_eq!(summary.streams[0].generation, 1, "the stream continued");

    // Schema evolution: both raw-only columns were added, nullable; the old rows read null
    // and stay as they were; the new rows have values.
    table.refresh().await.expect("refresh");
    let schema = table.arrow_schema().expect("a schema");
    for column in ["_arrival", "_exitedTime"] {
        let field = schema
            .field_with_name(column)
            .expect("the column was added");
        assert!(field.is_nullable(), "{column} is nullable");
    }
    let rows = created_and_arrival(&python, &lab);
    let (old, new): (Vec<_>, Vec<_>) = rows.iter().partition(|(created, _)| created == 1_000);
    assert_eq!(old.len(), 4, "the old rows are all still there: {old:?}");
    assert!(old.iter().all(|(_, arrival)| arrival.is_null()));
    assert!(!new.is_empty());
    assert!(
        new.iter().all(|(_, arrival)| arrival.is_string()),
        "{new:?}"
    );

    // Before a resync: the fallback order (old rows before new ones; among themselves by
    // lastUpdatedTime) gives the publish file's rows.
    let published = jobs::snapshot(
        &lake_context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(published.is_success(), "{}", published.one_line());
    let report = current_state(&python, &lab);
    assert_eq!(report["mismatch_count"], 0, "{report}");
    assert!(report["rows"].as_u64().unwrap_or(0) > 0, "{report}");

    // A resync: the completed backfill leaves no key whose latest row lacks `_arrival`.
    let resync = SyncOptions {
        force_resync: vec![VIEW.into()],
        ..SyncOptions::default()
    };
    let summary = jobs::sync(&SyncJob::from_context(&lake_context), &slice(), &resync).await;
    assert!(summary.is_success(), "{}", summary.one_line());
    assert_eq!(summary.streams[0].generation, 2);
    let latest = latest_rows(&python, &lab);
    let without: Vec<&Value> = latest.iter().filter(|r| r["_arrival"].is_null()).collect();
    assert!(
        without.is_empty(),
        "latest rows without _arrival: {without:?}"
    );
    let stale = latest
        .iter()
        .find(|r| r["externalId"] == "wo-stale")
        .expect("wo-stale");
    assert!(stale["_exitedTime"].is_i64(), "wo-stale exited: {stale}");
    let published = jobs::snapshot(
        &lake_context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(published.is_success(), "{}", published.one_line());
    let report = current_state(&python, &lab);
    assert_eq!(report["mismatch_count"], 0, "{report}");

    // The comparison notices a wrong answer: a change synced but not yet published makes
    // the query (newest row) and the file (previous state) differ in that value.
    lab.emulator
        .control()
        .apply_instances(json!({"items": [{
            "instanceType": "node", "space": DATA_SPACE, "externalId": "wo-0002-0",
            "sources": [{"source": {"type": "view", "space": SCHEMA_SPACE, "externalId": VIEW, "version": "1"},
                         "properties": {"title": "changed after the snapshot"}}]}]}))
        .expect("a change");
    let summary = jobs::sync(
        &SyncJob::from_context(&lake_context),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{}", summary.one_line());
    let stale = current_state(&python, &lab);
    let first = stale["first"].to_string();
    assert!(
        stale["mismatch_count"].as_u64().unwrap_or(0) > 0 && first.contains("wo-0002-0"),
        "{stale}"
    );
}
