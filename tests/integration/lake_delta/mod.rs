//! The raw Delta layer against a local directory and against a real S3 protocol server
//! (moto), read back by independent readers (Python `deltalake`, DuckDB).
//!
//! Environment (exported by `tests/run-all.sh`):
//! - `CDF_S3_TEST_S3_ENDPOINT`: S3 endpoint honouring `If-None-Match`, e.g. moto's server.
//!   Credentials and region come from the usual `AWS_*` variables.
//! - `CDF_S3_TEST_PYTHON`: a Python with `deltalake`, `duckdb`, `duckdb-ext-delta`, `pyarrow`.
//! - `CDF_S3_TEST_REQUIRE_ALL=1`: a missing variable fails the test instead of skipping it.

mod appends;
mod commit_format;
mod concurrency;
mod maintenance;
mod schema;

use std::collections::BTreeSet;
use std::sync::Arc;

use cdf_s3_replicator::lake::{
    CommitOutcome, Destination, FileCompression, InstanceKind, LakeTable, LocalDestination,
    ModelRef, StreamCommit, StreamMetadata, ViewFolder, WriteOptions,
};
use deltalake::arrow::array::{
    ArrayRef, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::{Map, Value, json};
use url::Url;

const NODES_APP: &str = "sp/Model/1/Pump/nodes";

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
