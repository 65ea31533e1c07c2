//! The raw Delta layer against a local directory and against a real S3 protocol server
//! (moto), read back by independent readers (Python `deltalake`, DuckDB).
//!
//! Environment (exported by `tests/run-all.sh`):
//! - `CDF_S3_TEST_S3_ENDPOINT`: S3 endpoint honouring `If-None-Match`, e.g. moto's server.
//!   Credentials and region come from the usual `AWS_*` variables.
//! - `CDF_S3_TEST_PYTHON`: a Python with `deltalake`, `duckdb`, `duckdb-ext-delta`, `pyarrow`.
//! - `CDF_S3_TEST_REQUIRE_ALL=1`: a missing variable fails the test instead of skipping it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use cdf_s3_replicator::lake::{
    CommitOutcome, Destination, FileCompression, InstanceKind, LakeError, LakeTable,
    LocalDestination, ModelRef, S3Destination, StreamCommit, StreamMetadata, VacuumScope,
    ViewFolder, WriteOptions,
};
use cdf_s3_replicator::lake::{
    CompactionCommitInfo, CompactionInfo, Phase, StreamCheckpoint, StreamCommitInfo,
};
use cdf_s3_replicator::snapshot::arrival::{
    CommitOrigin, GenerationState, LogIndex, StreamStates, Supersession,
};
use deltalake::ObjectStore;
use deltalake::arrow::array::{
    Array, ArrayRef, Int32Array, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::logstore::object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use futures::TryStreamExt;
use serde_json::{Map, Value, json};
use url::Url;

const NODES_APP: &str = "sp/Model/1/Pump/nodes";

/// Returns the variable, or reports the skip (`None`); with `CDF_S3_TEST_REQUIRE_ALL=1` a
/// missing variable fails the test.
fn required_env(var: &str, why: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            if std::env::var("CDF_S3_TEST_REQUIRE_ALL").as_deref() == Ok("1") {
                panic!("{var} is not set ({why}) but CDF_S3_TEST_REQUIRE_ALL=1");
            }
            eprintln!("SKIPPED ({var} is not set: {why}): run tests/run-all.sh");
            None
        }
    }
}

fn base_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("space", DataType::Utf8, false),
        Field::new("externalId", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new(
            "lastUpdated",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

fn external_id(i: i64) -> String {
    format!("n{i:05}")
}

fn name(i: i64) -> Option<String> {
    (i % 7 != 0).then(|| format!("pump ø-{i} \u{1F680}"))
}

fn timestamp(i: i64) -> i64 {
    1_700_000_000_000_000 + i
}

/// Rows `ids` in the base schema; values are derived from the id so readers can check them.
fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let ids: Vec<i64> = ids.collect();
    let mut tags = ListBuilder::new(StringBuilder::new());
    for i in &ids {
        tags.values().append_value("t");
        tags.values().append_value(i.to_string());
        tags.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["sp"; ids.len()])),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| external_id(*i)),
        )),
        Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i * 10))),
        Arc::new(StringArray::from_iter(ids.iter().map(|i| name(*i)))),
        Arc::new(tags.finish()),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(ids.iter().map(|i| timestamp(*i)))
                .with_timezone("UTC"),
        ),
    ];
    RecordBatch::try_new(base_schema(), columns).unwrap()
}

/// The base batch plus one more column.
fn batch_with_column(ids: std::ops::Range<i64>, column: &str, values: ArrayRef) -> RecordBatch {
    let base = batch(ids);
    let mut fields: Vec<Field> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(column, values.data_type().clone(), true));
    let mut columns = base.columns().to_vec();
    columns.push(values);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// A commit whose metadata has the generation and keys of the caller's own (kept as given).
fn commit(app_id: &str, txn_version: i64, cursor: &str) -> StreamCommit {
    let mut other = Map::new();
    other.insert("cursor".into(), json!(cursor));
    other.insert("phase".into(), json!("backfill"));
    StreamCommit {
        app_id: app_id.to_string(),
        txn_version,
        metadata: StreamMetadata {
            generation: Some(1),
            other,
            ..StreamMetadata::default()
        },
    }
}

fn committed(outcome: &CommitOutcome) -> &cdf_s3_replicator::lake::CommitReport {
    match outcome {
        CommitOutcome::Committed(report) => report,
        other => panic!("expected a landed commit, got {other:?}"),
    }
}

fn table_rows(table: &LakeTable) -> u64 {
    table
        .active_files()
        .unwrap()
        .iter()
        .map(|f| f.num_records.expect("writer records row counts"))
        .sum()
}

struct LocalLake {
    _dir: tempfile::TempDir,
    destination: Destination,
    url: Url,
}

fn local_lake() -> LocalLake {
    let dir = tempfile::tempdir().unwrap();
    let destination = Destination::Local(LocalDestination::new(dir.path()).unwrap());
    let model = ModelRef::new("sp", "Model", "1").unwrap();
    let view = ViewFolder::plain("Pump").unwrap();
    let url = destination
        .raw_table_url(&model, &view, InstanceKind::Nodes)
        .unwrap();
    LocalLake {
        _dir: dir,
        destination,
        url,
    }
}

fn options() -> WriteOptions {
    WriteOptions {
        rows_per_row_group: 64,
        compression: FileCompression::Zstd(3),
        max_commit_attempts: 5,
    }
}

async fn open(destination: &Destination, url: &Url) -> LakeTable {
    LakeTable::open(destination, url.clone(), options())
        .await
        .unwrap()
}

/// Runs the Python reader and returns what it printed.
fn python_read(python: &str, request: Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/read_delta.py");
    let output = Command::new(python)
        .arg(script)
        .arg(request.to_string())
        .output()
        .expect("run the Python reader");
    assert!(
        output.status.success(),
        "Python reader failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("reader prints JSON")
}

/// What the readers must see for rows `ids` written by [`batch`].
fn assert_python_values(read: &Value, ids: &BTreeSet<i64>) {
    let ids: Vec<i64> = ids.iter().copied().collect();
    assert_eq!(read["rows"], json!(ids.len()));
    let expected_ids: Vec<String> = ids.iter().map(|i| external_id(*i)).collect();
    assert_eq!(read["values"]["externalId"], json!(expected_ids));
    let expected_versions: Vec<i64> = ids.iter().map(|i| i * 10).collect();
    assert_eq!(read["values"]["version"], json!(expected_versions));
    let expected_names: Vec<Option<String>> = ids.iter().map(|i| name(*i)).collect();
    assert_eq!(read["values"]["name"], json!(expected_names));
    let expected_ts: Vec<i64> = ids.iter().map(|i| timestamp(*i)).collect();
    assert_eq!(read["values"]["lastUpdated"], json!(expected_ts));
    let expected_tags: Vec<Vec<String>> = ids
        .iter()
        .map(|i| vec!["t".into(), i.to_string()])
        .collect();
    assert_eq!(read["values"]["tags"], json!(expected_tags));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_append_records_txn_and_metadata_and_reopens() {
    let lake = local_lake();
    let mut table = open(&lake.destination, &lake.url).await;
    assert!(!table.exists());
    assert_eq!(table.txn_version(NODES_APP).await.unwrap(), None);

    let first = table
        .append(
            &[batch(0..100), batch(100..150)],
            commit(NODES_APP, 1, "c1"),
        )
        .await
        .unwrap();
    let report = committed(&first);
    assert!(report.created_table);
    assert_eq!((report.rows, report.files), (150, 1), "one file per append");
    assert_eq!(report.delta_version, 1, "version 0 is the table creation");
    let second = table
        .append(&[batch(150..200)], commit(NODES_APP, 2, "c2"))
        .await
        .unwrap();
    assert_eq!(committed(&second).delta_version, 2);

    // One Parquet file per append, row groups of at most `rows_per_row_group` rows.
    let root = lake.url.to_file_path().unwrap();
    let first_file = &table.changes_since(Some(0)).await.unwrap()[0].adds[0];
    let reader = deltalake::parquet::file::reader::SerializedFileReader::new(
        std::fs::File::open(root.join(&first_file.path)).unwrap(),
    )
    .unwrap();
    use deltalake::parquet::file::reader::FileReader;
    let metadata = reader.metadata();
    assert_eq!(metadata.num_row_groups(), 3, "150 rows in groups of 64");
    assert_eq!(
        metadata.row_group(0).column(0).compression(),
        deltalake::parquet::basic::Compression::ZSTD(Default::default())
    );

    // A fresh handle sees the stream state from the log alone.
    let reopened = open(&lake.destination, &lake.url).await;
    assert_eq!(reopened.version(), Some(2));
    assert_eq!(reopened.txn_version(NODES_APP).await.unwrap(), Some(2));
    let last = reopened
        .last_stream_commit(NODES_APP, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((last.delta_version, last.txn_version), (2, 2));
    assert_eq!(last.metadata.other["cursor"], "c2");
    assert_eq!(last.metadata.other["phase"], "backfill");
    assert!(last.timestamp_ms.is_some());
    assert_eq!(
        reopened.last_stream_commit("other", 100).await.unwrap(),
        None
    );
    assert_eq!(table_rows(&reopened), 200);

    // The log reader reports every commit with its files and stream metadata.
    let changes = reopened.changes_since(None).await.unwrap();
    assert_eq!(changes.len(), 3);
    assert!(changes[0].metadata_changed && changes[0].adds.is_empty());
    assert_eq!(changes[1].adds.len(), 1);
    assert_eq!(changes[1].adds[0].num_records, Some(150));
    assert_eq!(changes[1].operation.as_deref(), Some("STREAMING UPDATE"));
    let stream = changes[2].stream_commit.as_ref().unwrap();
    assert_eq!((stream.app_id.as_str(), stream.txn_version), (NODES_APP, 2));
    assert_eq!(stream.metadata.other["cursor"], "c2");
    assert_eq!(changes[2].txns[0].app_id, NODES_APP);
    let active: BTreeSet<String> = reopened
        .active_files()
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    let added: BTreeSet<String> = changes
        .iter()
        .flat_map(|c| c.adds.iter().map(|a| a.path.clone()))
        .collect();
    assert_eq!(active, added);
    assert!(reopened.changes_since(Some(2)).await.unwrap().is_empty());
    assert!(matches!(
        reopened.version_changes(9).await,
        Err(LakeError::LogUnavailable { version: 9, .. })
    ));

    if let Some(python) = required_env("CDF_S3_TEST_PYTHON", "independent Delta readers") {
        let path = root.to_str().unwrap();
        let read = python_read(
            &python,
            json!({
                "uri": path,
                "app_ids": [NODES_APP],
                "columns": ["externalId", "version", "name", "lastUpdated", "tags"],
                "duckdb_path": path,
            }),
        );
        assert_python_values(&read, &(0..200).collect());
        assert_eq!(read["txn"][NODES_APP], 2);
        assert_eq!(read["duckdb_rows"], 200);
        assert_eq!(read["duckdb_distinct_ids"], 200);
        let cursors: Vec<&Value> = read["stream_commits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["metadata"]["cursor"])
            .collect();
        assert_eq!(cursors, [&json!("c2"), &json!("c1")]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_duplicate_txn_version_writes_nothing() {
    let lake = local_lake();
    let mut table = open(&lake.destination, &lake.url).await;
    table
        .append(&[batch(0..10)], commit(NODES_APP, 5, "c5"))
        .await
        .unwrap();
    let version = table.version();

    for stale in [5, 4, 0] {
        let outcome = table
            .append(&[batch(10..20)], commit(NODES_APP, stale, "stale"))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            CommitOutcome::AlreadyCommitted {
                table_txn_version: 5,
                conflicts: 0
            }
        );
    }
    let reopened = open(&lake.destination, &lake.url).await;
    assert_eq!(reopened.version(), version);
    assert_eq!(table_rows(&reopened), 10);
    let parquet_files = std::fs::read_dir(lake.url.to_file_path().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".parquet")
        })
        .count();
    assert_eq!(parquet_files, 1, "a skipped append leaves no files behind");

    // Another stream on the same table is independent.
    let other = table
        .append(
            &[batch(10..20)],
            commit("sp/Model/1/Pump/edges/sp/t", 1, "e1"),
        )
        .await
        .unwrap();
    assert_eq!(committed(&other).rows, 10);
    assert!(matches!(
        table.append(&[], commit(NODES_APP, -1, "x")).await,
        Err(LakeError::InvalidTxnVersion { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_schema_evolution_adds_nullable_columns_and_casts_lossless_widenings() {
    let lake = local_lake();
    let mut table = open(&lake.destination, &lake.url).await;
    table
        .append(&[batch(0..10)], commit(NODES_APP, 1, "c1"))
        .await
        .unwrap();

    let with_pressure = batch_with_column(
        10..20,
        "pressure",
        Arc::new(Int32Array::from_iter_values(0..10)),
    );
    let outcome = table
        .append(&[with_pressure], commit(NODES_APP, 2, "c2"))
        .await
        .unwrap();
    assert_eq!(committed(&outcome).added_columns, ["pressure"]);
    let schema = table.arrow_schema().unwrap();
    let pressure = schema.field_with_name("pressure").unwrap();
    assert!(pressure.is_nullable());
    assert_eq!(pressure.data_type(), &DataType::Int32);
    assert!(table.changes_since(Some(1)).await.unwrap()[0].metadata_changed);

    // Rows without the new column still append (null-filled).
    let outcome = table
        .append(&[batch(20..30)], commit(NODES_APP, 3, "c3"))
        .await
        .unwrap();
    assert!(committed(&outcome).added_columns.is_empty());

    // A narrower type than stored is widened losslessly: int32 data into the int64 `version`.
    let mut narrow_fields: Vec<Field> = base_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    narrow_fields[2] = Field::new("version", DataType::Int32, false);
    let base = batch(30..40);
    let mut columns = base.columns().to_vec();
    columns[2] = Arc::new(Int32Array::from_iter_values((30..40).map(|i| i * 10)));
    let narrow = RecordBatch::try_new(Arc::new(Schema::new(narrow_fields)), columns).unwrap();
    table
        .append(&[narrow], commit(NODES_APP, 4, "c4"))
        .await
        .unwrap();

    // An empty append with a new column evolves the schema and records progress only.
    let empty = batch_with_column(
        0..0,
        "flow",
        Arc::new(StringArray::from(Vec::<String>::new())),
    );
    let outcome = table
        .append(&[empty], commit(NODES_APP, 5, "c5"))
        .await
        .unwrap();
    let report = committed(&outcome);
    assert_eq!((report.rows, report.files), (0, 0));
    assert_eq!(report.added_columns, ["flow"]);
    assert_eq!(table.txn_version(NODES_APP).await.unwrap(), Some(5));
    assert_eq!(table_rows(&table), 40);

    if let Some(python) = required_env("CDF_S3_TEST_PYTHON", "independent Delta readers") {
        let path = lake.url.to_file_path().unwrap();
        let path = path.to_str().unwrap();
        let read = python_read(
            &python,
            json!({
                "uri": path,
                "columns": ["externalId", "version", "name", "lastUpdated", "tags", "pressure"],
                "duckdb_path": path,
            }),
        );
        assert_python_values(&read, &(0..40).collect());
        let pressure: Vec<Option<i64>> = (0..40)
            .map(|i| (10..20).contains(&i).then_some(i - 10))
            .collect();
        assert_eq!(read["values"]["pressure"], json!(pressure));
        assert!(read["columns"].as_array().unwrap().contains(&json!("flow")));
        assert_eq!(read["duckdb_rows"], 40);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_incompatible_type_change_is_a_typed_error() {
    let lake = local_lake();
    let mut table = open(&lake.destination, &lake.url).await;
    table
        .append(&[batch(0..10)], commit(NODES_APP, 1, "c1"))
        .await
        .unwrap();
    let version = table.version();

    let mut fields: Vec<Field> = base_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[2] = Field::new("version", DataType::Utf8, false);
    let base = batch(10..20);
    let mut columns = base.columns().to_vec();
    columns[2] = Arc::new(StringArray::from_iter_values(
        (10..20).map(|i| format!("v{i}")),
    ));
    let changed = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();

    match table
        .append(&[changed], commit(NODES_APP, 2, "c2"))
        .await
        .unwrap_err()
    {
        LakeError::IncompatibleType {
            column,
            table_type,
            batch_type,
            ..
        } => {
            assert_eq!(column, "version");
            assert_eq!(table_type, "long");
            assert_eq!(batch_type, "string");
        }
        other => panic!("expected IncompatibleType, got {other}"),
    }
    table.refresh().await.unwrap();
    assert_eq!(table.version(), version, "nothing was committed");
    assert_eq!(table.txn_version(NODES_APP).await.unwrap(), Some(1));

    // A batch lacking a required (non-nullable) column is refused by name.
    let partial = batch(10..20).project(&[0, 2]).unwrap();
    assert!(matches!(
        table.append(&[partial], commit(NODES_APP, 2, "c2")).await,
        Err(LakeError::MissingRequiredColumn { column, .. }) if column == "externalId"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_maintenance_checkpoints_and_vacuums_unreferenced_files() {
    let lake = local_lake();
    let mut table = open(&lake.destination, &lake.url).await;
    for txn in 1..=3 {
        table
            .append(
                &[batch(txn * 10..txn * 10 + 10)],
                commit(NODES_APP, txn, "c"),
            )
            .await
            .unwrap();
    }
    table.create_checkpoint().await.unwrap();
    let root = lake.url.to_file_path().unwrap();
    assert!(
        root.join("_delta_log/00000000000000000003.checkpoint.parquet")
            .exists()
    );
    assert!(root.join("_delta_log/_last_checkpoint").exists());

    // A file no commit references (a crash between writing data and committing).
    let stray = root.join("part-00000-stray-c000.zstd.parquet");
    std::fs::write(&stray, b"not referenced").unwrap();
    let dry = table
        .vacuum(
            std::time::Duration::ZERO,
            VacuumScope::AllUnreferenced,
            true,
        )
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.files.len(), 1, "{:?}", dry.files);
    assert!(stray.exists());
    let done = table
        .vacuum(
            std::time::Duration::ZERO,
            VacuumScope::AllUnreferenced,
            false,
        )
        .await
        .unwrap();
    assert_eq!(done.files.len(), 1);
    assert!(!stray.exists());

    // The destination-level store writes under the destination root (publish layer).
    let model = ModelRef::new("sp", "Model", "1").unwrap();
    let view = ViewFolder::plain("Pump").unwrap();
    let manifest = lake.destination.publish_paths(&model, &view).manifest;
    lake.destination
        .object_store()
        .unwrap()
        .put(
            &deltalake::Path::from(manifest.as_str()),
            PutPayload::from_static(b"{}"),
        )
        .await
        .unwrap();
    assert!(
        lake._dir
            .path()
            .join("publish/sp/Model/1/Pump/_manifest.json")
            .exists()
    );

    let reopened = open(&lake.destination, &lake.url).await;
    assert_eq!(table_rows(&reopened), 30);
    assert_eq!(reopened.txn_version(NODES_APP).await.unwrap(), Some(3));
    assert_eq!(
        reopened
            .last_stream_commit(NODES_APP, 10)
            .await
            .unwrap()
            .unwrap()
            .txn_version,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_concurrent_writers() {
    let lake = local_lake();
    concurrent_writers(&lake.destination, &lake.url).await;
}

/// Races writers against one table. Returns all ids that must be in the table.
async fn concurrent_writers(destination: &Destination, url: &Url) -> BTreeSet<i64> {
    // Two writers find no table: one creates it, the other loses that race and uses it.
    let mut first = open(destination, url).await;
    let mut other = open(destination, url).await;
    let (batch_first, batch_other) = ([batch(0..100)], [batch(240..250)]);
    let (r1, r2) = tokio::join!(
        first.append(&batch_first, commit(NODES_APP, 1, "c1")),
        other.append(&batch_other, commit("sp/Model/1/Pump/edges/0", 1, "z1")),
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    let created = [committed(&r1).created_table, committed(&r2).created_table];
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");

    // Two writers with the same stream commit, both past the txn check: exactly one lands.
    let mut a = open(destination, url).await;
    let mut b = open(destination, url).await;
    let (batch_a, batch_b) = ([batch(100..150)], [batch(100..150)]);
    let (ra, rb) = tokio::join!(
        a.append(&batch_a, commit(NODES_APP, 2, "c2")),
        b.append(&batch_b, commit(NODES_APP, 2, "c2")),
    );
    let outcomes = [ra.unwrap(), rb.unwrap()];
    let landed = outcomes
        .iter()
        .filter(|o| matches!(o, CommitOutcome::Committed(_)))
        .count();
    assert_eq!(landed, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().any(|o| matches!(
            o,
            CommitOutcome::AlreadyCommitted {
                table_txn_version: 2,
                conflicts: 1
            }
        )),
        "the loser must detect the winner at commit time: {outcomes:?}"
    );

    // A stale writer with the next commit loses the race, reloads and retries.
    let retried = first
        .append(&[batch(150..200)], commit(NODES_APP, 3, "c3"))
        .await
        .unwrap();
    assert_eq!(committed(&retried).conflicts, 1, "{retried:?}");

    // Different streams appending at the same time both land.
    let mut c = open(destination, url).await;
    let mut d = open(destination, url).await;
    let (batch_c, batch_d) = ([batch(200..220)], [batch(220..240)]);
    let (rc, rd) = tokio::join!(
        c.append(&batch_c, commit("sp/Model/1/Pump/edges/a", 1, "a1")),
        d.append(&batch_d, commit("sp/Model/1/Pump/edges/b", 1, "b1")),
    );
    committed(&rc.unwrap());
    committed(&rd.unwrap());

    let check = open(destination, url).await;
    assert_eq!(table_rows(&check), 250, "no duplicated or lost rows");
    let changes = check.changes_since(None).await.unwrap();
    let schema_commits: Vec<u64> = changes
        .iter()
        .filter(|c| c.metadata_changed)
        .map(|c| c.version)
        .collect();
    assert_eq!(schema_commits, [0], "the table is created exactly once");
    let stream_commits = changes.iter().filter(|c| c.stream_commit.is_some()).count();
    assert_eq!(
        stream_commits, 6,
        "two creators, one of two duplicates, retry, two streams"
    );
    assert_eq!(check.txn_version(NODES_APP).await.unwrap(), Some(3));
    let last = check
        .last_stream_commit(NODES_APP, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (last.txn_version, last.metadata.other["cursor"].as_str()),
        (3, Some("c3"))
    );

    // Files of lost commits are deleted: every data file under the table is referenced.
    let listed: BTreeSet<String> = check
        .object_store()
        .list(None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.location.to_string())
        .filter(|p| p.ends_with(".parquet") && !p.starts_with("_delta_log"))
        .collect();
    let active: BTreeSet<String> = check
        .active_files()
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(listed, active);
    (0..250).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_conditional_commits_on_moto() {
    let Some(endpoint) = required_env(
        "CDF_S3_TEST_S3_ENDPOINT",
        "S3 protocol server honouring If-None-Match",
    ) else {
        return;
    };
    let bucket = format!(
        "lake-delta-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let response = reqwest::Client::new()
        .put(format!("{}/{bucket}", endpoint.trim_end_matches('/')))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "create bucket: {response:?}"
    );

    // No static credentials: the default chain (AWS_* variables here) must be used.
    let destination = Destination::S3(
        S3Destination::new(&bucket, "/lake/prefix/")
            .unwrap()
            .with_region(std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()))
            .with_endpoint_url(&endpoint)
            .unwrap()
            .with_allow_http(true),
    );
    let model = ModelRef::new("sp", "Model", "1").unwrap();
    let view = ViewFolder::plain("Pump").unwrap();
    let url = destination
        .raw_table_url(&model, &view, InstanceKind::Nodes)
        .unwrap();
    assert_eq!(
        url.as_str(),
        format!("s3://{bucket}/lake/prefix/raw/sp/Model/1/views/Pump/nodes/")
    );

    let ids = concurrent_writers(&destination, &url).await;

    // The store refuses to overwrite an existing commit file: put-if-absent is honoured.
    let table = open(&destination, &url).await;
    let existing = deltalake::Path::from("_delta_log/00000000000000000001.json");
    let overwrite = table
        .object_store()
        .put_opts(
            &existing,
            PutPayload::from_static(b"{}"),
            PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(
            overwrite,
            Err(deltalake::ObjectStoreError::AlreadyExists { .. })
        ),
        "{overwrite:?}"
    );

    // The destination-level store writes under the prefix (publish layer).
    let store = destination.object_store().unwrap();
    let manifest = destination.publish_paths(&model, &view).manifest;
    store
        .put(
            &deltalake::Path::from(manifest.as_str()),
            PutPayload::from_static(b"{}"),
        )
        .await
        .unwrap();
    let listed = reqwest::get(format!(
        "{}/{bucket}?list-type=2&prefix=lake/prefix/publish/",
        endpoint.trim_end_matches('/')
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        listed.contains("lake/prefix/publish/sp/Model/1/Pump/_manifest.json"),
        "{listed}"
    );

    if let Some(python) = required_env("CDF_S3_TEST_PYTHON", "independent Delta readers") {
        let mut storage_options = serde_json::Map::new();
        storage_options.insert("AWS_ENDPOINT_URL".into(), json!(endpoint));
        storage_options.insert("AWS_ALLOW_HTTP".into(), json!("true"));
        storage_options.insert(
            "AWS_REGION".into(),
            json!(std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())),
        );
        for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            if let Ok(value) = std::env::var(key) {
                storage_options.insert(key.into(), json!(value));
            }
        }
        let read = python_read(
            &python,
            json!({
                "uri": url.as_str(),
                "storage_options": storage_options,
                "app_ids": [NODES_APP, "sp/Model/1/Pump/edges/a", "sp/Model/1/Pump/edges/b",
                            "sp/Model/1/Pump/edges/0"],
                "columns": ["externalId", "version", "name", "lastUpdated", "tags"],
            }),
        );
        assert_python_values(&read, &ids);
        assert_eq!(read["txn"][NODES_APP], 3);
        assert_eq!(read["txn"]["sp/Model/1/Pump/edges/a"], 1);
        assert_eq!(read["txn"]["sp/Model/1/Pump/edges/b"], 1);
        assert_eq!(read["txn"]["sp/Model/1/Pump/edges/0"], 1);
        let nodes_commits: Vec<i64> = read["stream_commits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["appId"] == NODES_APP)
            .map(|c| c["txnVersion"].as_i64().unwrap())
            .collect();
        assert_eq!(nodes_commits, [3, 2, 1], "each txn version committed once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_conflict_error_when_the_retry_budget_is_spent() {
    let lake = local_lake();
    let mut winner = open(&lake.destination, &lake.url).await;
    winner
        .append(&[batch(0..10)], commit(NODES_APP, 1, "c1"))
        .await
        .unwrap();
    let mut stale = LakeTable::open(
        &lake.destination,
        lake.url.clone(),
        WriteOptions {
            max_commit_attempts: 1,
            ..options()
        },
    )
    .await
    .unwrap();
    winner
        .append(&[batch(10..20)], commit(NODES_APP, 2, "c2"))
        .await
        .unwrap();

    match stale
        .append(&[batch(20..30)], commit(NODES_APP, 3, "c3"))
        .await
    {
        Err(LakeError::Conflict {
            app_id,
            txn_version,
            attempts,
            ..
        }) => assert_eq!((app_id.as_str(), txn_version, attempts), (NODES_APP, 3, 1)),
        other => panic!("expected a Conflict error, got {other:?}"),
    }
    let check = open(&lake.destination, &lake.url).await;
    assert_eq!(table_rows(&check), 20);
    assert_eq!(check.txn_version(NODES_APP).await.unwrap(), Some(2));
    let parquet_files = std::fs::read_dir(lake.url.to_file_path().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".parquet")
        })
        .count();
    assert_eq!(parquet_files, 2, "the lost commit's file was deleted");

    // The same handle succeeds on the next call: it reloaded the table.
    let retried = stale
        .append(&[batch(20..30)], commit(NODES_APP, 3, "c3"))
        .await
        .unwrap();
    assert_eq!(committed(&retried).conflicts, 0);
}

// ---------------------------------------------------------------------------------------
// Commit metadata format 1, as existing tables hold it
// (tests/fixtures/delta/commit-metadata-v1, written before the format had a number)
// ---------------------------------------------------------------------------------------

const FIXTURE_APP: &str = "plant_schema/PlantModel/1/Pump/nodes";

/// A copy of one fixture table's log, so that nothing a test does can change the fixture.
fn fixture_copy(kind: &str) -> (tempfile::TempDir, Url) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/delta/commit-metadata-v1")
        .join(kind)
        .join("_delta_log");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(kind).join("_delta_log");
    std::fs::create_dir_all(&log).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), log.join(entry.file_name())).unwrap();
    }
    let url = Url::from_directory_path(dir.path().join(kind)).unwrap();
    (dir, url)
}

async fn open_fixture(url: &Url) -> LakeTable {
    LakeTable::open_with_storage_options(url.clone(), Default::default(), options())
        .await
        .unwrap()
}

/// The checkpoint the fixture's sync stored with txn version `seq`.
fn fixture_checkpoint(seq: i64) -> StreamCheckpoint {
    let (cursor, phase, generation, rows_total, last_success) = match seq {
        1 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6ImIiLCJwb3MiOjAsInMwIjoyNCwiaWF0IjoxNzk2MTgzNjU4NDExLCJuIjoxLCJsayI6WyJwbGFudF9kYXRhIiwicHVtcC0wMDAxIl0sInNpZyI6ImYyOTk1YjA2NDQzY2JkMTkifQ",
            Phase::Backfill,
            1,
            2,
            1796183658412,
        ),
        2 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6ImIiLCJwb3MiOjAsInMwIjoyNCwiaWF0IjoxNzk2MTgzNjU4NTE1LCJuIjozLCJsayI6WyJwbGFudF9kYXRhIiwicHVtcC0wMDAzIl0sInNpZyI6IjMwODEwZDM2NGM3NzY1ZTUifQ",
            Phase::Backfill,
            1,
            3,
            1796183658516,
        ),
        3 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6InMiLCJwb3MiOjI0LCJzMCI6MjQsImlhdCI6MTc5NjE4MzY1ODU3MCwibiI6NSwic2lnIjoiZmQ5YjNmY2NiZDNhYzAyOCJ9",
            Phase::Streaming,
            1,
            3,
            1796183658571,
        ),
        4 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6ImIiLCJwb3MiOjAsInMwIjoyNCwiaWF0IjoxNzk2MTgzNjU4Njg4LCJuIjoxMSwibGsiOlsicGxhbnRfZGF0YSIsInB1bXAtMDAwMSJdLCJzaWciOiI2ZDM4NDA5NjRkZWYzZDZiIn0",
            Phase::Backfill,
            2,
            5,
            1796183658689,
        ),
        5 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6ImIiLCJwb3MiOjAsInMwIjoyNCwiaWF0IjoxNzk2MTgzNjU4NzgyLCJuIjoxMywibGsiOlsicGxhbnRfZGF0YSIsInB1bXAtMDAwMyJdLCJzaWciOiI5M2FjMjhiOWQ5NWZjM2MxIn0",
            Phase::Backfill,
            2,
            6,
            1796183658783,
        ),
        6 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6InMiLCJwb3MiOjI0LCJzMCI6MjQsImlhdCI6MTc5NjE4MzY1ODg2NSwibiI6MTUsInNpZyI6IjFiZDY3M2YzOTFjYzAyMWEifQ",
            Phase::Streaming,
            2,
            6,
            1796183658866,
        ),
        other => panic!("the fixture has no stream commit {other}"),
    };
    StreamCheckpoint {
        cursor: Some(cursor.into()),
        phase,
        generation,
        seq,
        query_hash: "a1eb3adbaba65f69".into(),
        rows_total,
        caught_up: false,
        last_success: Some(last_success),
        newest_change: Some(1796183658334),
        last_error: None,
    }
}

fn fixture_stream_commit(seq: i64, opens: bool, complete: bool) -> StreamCommitInfo {
    let checkpoint = fixture_checkpoint(seq);
    StreamCommitInfo {
        format_version: 1,
        app_id: FIXTURE_APP.into(),
        txn_version: seq,
        metadata: StreamMetadata::data_commit(&checkpoint, opens, complete),
        other: Map::new(),
    }
}

fn fixture_compaction(generation: u64, first: u64, last: u64) -> CompactionCommitInfo {
    CompactionCommitInfo {
        format_version: 1,
        compaction: CompactionInfo {
            app_id: FIXTURE_APP.into(),
            generation,
            first_version: first,
            last_version: last,
            source_files: 2,
        },
        other: Map::new(),
    }
}

#[tokio::test]
async fn existing_v1_tables_read_through_the_commit_format() {
    let (_dir, url) = fixture_copy("nodes");
    let table = open_fixture(&url).await;
    assert_eq!(table.version(), Some(8));
    let changes = table.changes_since(None).await.unwrap();
    assert_eq!(changes.len(), 9);

    // Version 0 creates the table; 1-3 are generation 1, 4-6 the resync's generation 2.
    assert!(changes[0].stream_commit.is_none());
    assert_eq!(CompactionCommitInfo::read(&changes[0].commit_info), None);
    let flags = [
        (true, false),
        (false, false),
        (false, true),
        (true, false),
        (false, false),
        (false, true),
    ];
    for (seq, (opens, complete)) in (1..=6).zip(flags) {
        let commit = &changes[seq as usize];
        assert_eq!(
            commit.stream_commit,
            Some(fixture_stream_commit(seq, opens, complete)),
            "version {seq}"
        );
        assert_eq!(CompactionInfo::of_commit(commit), None, "version {seq}");
    }
    // Versions 7 and 8 compact each generation's first two files.
    for (version, expected) in [
        (7, fixture_compaction(1, 1, 2)),
        (8, fixture_compaction(2, 4, 5)),
    ] {
        let commit = &changes[version];
        assert!(commit.stream_commit.is_none(), "version {version}");
        assert_eq!(
            CompactionCommitInfo::read(&commit.commit_info),
            Some(expected.clone())
        );
        assert_eq!(CompactionInfo::of_commit(commit), Some(expected.compaction));
    }

    // A sync resumes from the newest commit of the stream.
    assert_eq!(table.txn_version(FIXTURE_APP).await.unwrap(), Some(6));
    let last = table
        .last_stream_commit(FIXTURE_APP, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((last.delta_version, last.txn_version), (6, 6));
    assert_eq!(last.metadata.checkpoint, Some(fixture_checkpoint(6)));

    // The snapshot sees generation 2 completed at version 6, superseding generation 1.
    let origins: Vec<CommitOrigin> = changes.iter().map(CommitOrigin::of).collect();
    assert_eq!(origins[0], CommitOrigin::Other);
    assert_eq!(
        origins[4],
        CommitOrigin::Stream {
            app_id: FIXTURE_APP.into(),
            generation: Some(2),
            opens_generation: true,
            backfill_complete: false,
        }
    );
    assert_eq!(
        origins[8],
        CommitOrigin::Compaction {
            app_id: FIXTURE_APP.into(),
            generation: Some(2),
            last_version: 5,
        }
    );
    let index = LogIndex::build(&changes, StreamStates::new());
    assert_eq!(
        index.streams[FIXTURE_APP],
        GenerationState {
            completed_generation: 2,
            lowest_generation: Some(2),
        }
    );
    assert_eq!(
        index.superseded,
        Some(Supersession {
            stream: FIXTURE_APP.into(),
            generation: 2,
            version: 6,
        })
    );
    assert!(!index.keeps_unattributed(&[FIXTURE_APP.to_string()]));
    let compacted: Vec<(u64, Option<u64>, bool)> = [7, 8]
        .iter()
        .map(|&v| {
            let origin = &index.origins[&changes[v].adds[0].path];
            (origin.version, origin.generation, index.qualifies(origin))
        })
        .collect();
    assert_eq!(compacted, [(2, Some(1), false), (5, Some(2), true)]);

    // The quarantine table: one commit per generation, before the data commit it goes with.
    let (_dir, url) = fixture_copy("rejected");
    let rejected = open_fixture(&url).await;
    let changes = rejected.changes_since(None).await.unwrap();
    let quarantined: Vec<Option<StreamCommitInfo>> =
        changes.iter().map(|c| c.stream_commit.clone()).collect();
    let quarantine = |txn_version, generation| StreamCommitInfo {
        format_version: 1,
        app_id: FIXTURE_APP.into(),
        txn_version,
        metadata: StreamMetadata::quarantine_commit(generation),
        other: Map::new(),
    };
    assert_eq!(
        quarantined,
        [None, Some(quarantine(2, 1)), Some(quarantine(5, 2))]
    );
}

/// The value of `"key":` in JSON text, exactly as written.
fn raw_value<'a>(text: &'a str, key: &str) -> &'a str {
    let start = text.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in text[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return &text[start..=start + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced JSON after {key}")
}

fn commit_text(url: &Url, version: u64) -> String {
    let path = url
        .to_file_path()
        .unwrap()
        .join(format!("_delta_log/{version:020}.json"));
    std::fs::read_to_string(path).unwrap()
}

/// New commits write the bytes of format 1 plus `"formatVersion":1`: what an older
/// deployment reads, and what this one reads from existing tables.
#[tokio::test]
async fn new_commits_write_the_bytes_of_format_1_and_their_version() {
    let (_dir, nodes) = fixture_copy("nodes");
    let (_dir2, rejected) = fixture_copy("rejected");
    let old_data = commit_text(&nodes, 1);
    let old_data = raw_value(&old_data, "cdfS3Replicator");
    let old_quarantine = commit_text(&rejected, 1);
    let old_quarantine = raw_value(&old_quarantine, "cdfS3Replicator");

    let lake = local_lake();
    let mut table = open(&lake.destination, &lake.url).await;
    for (txn_version, metadata) in [
        (
            1,
            StreamMetadata::data_commit(&fixture_checkpoint(1), true, false),
        ),
        (2, StreamMetadata::quarantine_commit(1)),
    ] {
        let outcome = table
            .append(
                &[batch(0..2)],
                StreamCommit {
                    app_id: FIXTURE_APP.into(),
                    txn_version,
                    metadata,
                },
            )
            .await
            .unwrap();
        committed(&outcome);
    }
    let new_data = commit_text(&lake.url, 1);
    let new_data = raw_value(&new_data, "cdfS3Replicator");
    assert!(new_data.contains(r#","formatVersion":1,"#), "{new_data}");
    assert_eq!(new_data.replacen(r#""formatVersion":1,"#, "", 1), old_data);
    let new_quarantine = commit_text(&lake.url, 2);
    let new_quarantine = raw_value(&new_quarantine, "cdfS3Replicator");
    assert_eq!(
        new_quarantine.replacen(r#""formatVersion":1,"#, "", 1),
        old_quarantine
    );

    // Compaction records: the same bytes as the fixture's, plus the version.
    let old_compaction = commit_text(&nodes, 7);
    let old_compaction = raw_value(&old_compaction, "cdfS3Replicator");
    let (key, value) = fixture_compaction(1, 1, 2).to_commit_info().unwrap();
    assert_eq!(key, "cdfS3Replicator");
    let new_compaction = serde_json::to_string(&value).unwrap();
    assert_eq!(
        new_compaction.replacen(r#","formatVersion":1"#, "", 1),
        old_compaction
    );
}
