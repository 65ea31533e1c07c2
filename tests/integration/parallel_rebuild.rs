//! A published file does not depend on how it was built: a full rebuild and an incremental
//! merge on one thread with a memory budget that holds everything write the same bytes as
//! on several threads with a budget so small that every batch becomes a spilled run (and
//! runs are merged in several levels). Both hold exactly the last arrival of every key,
//! where keys change several times in one commit (one file) and across commits, and are
//! deleted and re-created.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cdf_s3_replicator::cdf::dto::PropertyType;
use cdf_s3_replicator::lake::{
    Destination, InstanceKind, LakeTable, LocalDestination, ModelRef, StreamCommit, StreamMetadata,
    ViewFolder, WriteOptions,
};
use cdf_s3_replicator::schema::{PropertySource, TableKind, ViewSchema};
use cdf_s3_replicator::snapshot::stamp::STAMP_KEY;
use cdf_s3_replicator::snapshot::{self, FileAction, PublishSettings, TableTarget, ViewTarget};
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    new_null_array,
};
use deltalake::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

const SPACE: &str = "par";
const VIEW: &str = "Thing";
const STREAM: &str = "par/ParModel/1/Thing/nodes";
const KEYS: u64 = 300;

fn model() -> ModelRef {
    ModelRef::new(SPACE, "ParModel", "1").expect("model")
}

fn folder() -> ViewFolder {
    ViewFolder::plain(VIEW).expect("folder")
}

fn source() -> PropertySource {
    PropertySource {
        space: SPACE.into(),
        key: format!("{VIEW}/1"),
    }
}

fn raw_schema() -> SchemaRef {
    let types: Vec<(&str, PropertyType)> = [
        ("name", json!({"type": "text"})),
        ("count", json!({"type": "int64"})),
        ("tags", json!({"type": "text", "list": true})),
    ]
    .into_iter()
    .map(|(n, t)| (n, serde_json::from_value(t).expect("type")))
    .collect();
    ViewSchema::from_property_types(
        TableKind::Nodes,
        source(),
        types.iter().map(|(n, t)| (*n, t)),
    )
    .arrow_schema()
    .clone()
}

/// One change: key number, the arrival counter (stored as `count` and in `name`), deleted.
type Change = (u64, i64, bool);

fn batch(schema: &SchemaRef, changes: &[Change]) -> RecordBatch {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            let strings = |f: &dyn Fn(&Change) -> String| -> ArrayRef {
                Arc::new(StringArray::from_iter_values(changes.iter().map(f)))
            };
            let ints = |f: &dyn Fn(&Change) -> Option<i64>| -> ArrayRef {
                Arc::new(Int64Array::from_iter(changes.iter().map(f)))
            };
            match field.name().as_str() {
                "space" => strings(&|_| "data".into()),
                "externalId" => strings(&|c| format!("k{:04}", c.0)),
                "instanceType" => strings(&|_| "node".into()),
                "version" | "createdTime" | "lastUpdatedTime" => ints(&|c| Some(c.1)),
                "deletedTime" => ints(&|c| c.2.then_some(c.1)),
                "name" => strings(&|c| format!("arrival {}", c.1)),
                "count" => ints(&|c| Some(c.1)),
                "tags" => {
                    let mut list = ListBuilder::new(StringBuilder::new());
                    if let DataType::List(element) = field.data_type() {
                        list = list.with_field(element.clone());
                    }
                    for change in changes {
                        list.values().append_value(format!("t{}", change.1 % 5));
                        list.append(true);
                    }
                    Arc::new(list.finish())
                }
                _ => new_null_array(field.data_type(), changes.len()),
            }
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).expect("batch")
}

/// The changes of commit `seq`, numbered from `arrival`: commit 1 changes every key four
/// times (in one file), later commits change a scattered subset, deleting some keys and
/// re-creating others.
fn changes(seq: u64, arrival: &mut i64) -> Vec<Change> {
    let rows = if seq == 1 { 4 * KEYS } else { 2 * KEYS };
    (0..rows)
        .map(|i| {
            *arrival += 1;
            let key = if seq == 1 {
                i % KEYS
            } else {
                (i * (2 * seq + 1) + seq * 17) % KEYS
            };
            let deleted = seq > 1 && (i + seq).is_multiple_of(7);
            (key, *arrival, deleted)
        })
        .collect()
}

async fn append(lake: &Path, seq: u64, changes: &[Change]) {
    let destination = destination(lake);
    let url = destination
        .raw_table_url(&model(), &folder(), InstanceKind::Nodes)
        .expect("url");
    // Small row groups: each raw file has many, decoded in parallel.
    let options = WriteOptions {
        rows_per_row_group: 64,
        ..WriteOptions::default()
    };
    let mut table = LakeTable::open(&destination, url, options)
        .await
        .expect("table");
    let schema = raw_schema();
    let batches: Vec<RecordBatch> = changes.chunks(250).map(|c| batch(&schema, c)).collect();
    let commit = StreamCommit {
        app_id: STREAM.into(),
        txn_version: seq as i64,
        metadata: StreamMetadata {
            generation: Some(1),
            opens_generation: Some(seq == 1),
            backfill_complete: Some(seq == 1),
            ..StreamMetadata::default()
        },
    };
    table.append(&batches, commit).await.expect("append");
}

fn destination(lake: &Path) -> Destination {
    Destination::Local(LocalDestination::new(lake).expect("destination"))
}

fn target() -> ViewTarget {
    ViewTarget {
        model: model(),
        folder: folder(),
        nodes: TableTarget {
            kind: InstanceKind::Nodes,
            streams: vec![STREAM.into()],
            schema_without_table: raw_schema(),
        },
        edges: TableTarget::without_streams(InstanceKind::Edges, source()),
    }
}

/// How a lake is published.
struct Build {
    lake: PathBuf,
    settings: PublishSettings,
}

impl Build {
    async fn publish(&self, expected: FileAction) -> PathBuf {
        let destination = destination(&self.lake);
        let reports = snapshot::publish_views(&destination, &[target()], &self.settings)
            .await
            .expect("publish");
        let nodes = reports[0].file(InstanceKind::Nodes).expect("nodes report");
        assert_eq!(nodes.action, expected, "{nodes:?}");
        let dir = destination.publish_paths(&model(), &folder()).dir;
        self.lake.join(dir).join("nodes.parquet")
    }
}

/// The bytes before the footer (every row group), and the footer's stamp without what
/// is unique to an upload (its write id and time).
fn content(file: &Path) -> (Vec<u8>, serde_json::Value) {
    let bytes = std::fs::read(file).expect("published file");
    let footer_len =
        u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
    let data_end = bytes.len() - 8 - footer_len as usize;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.clone()))
        .expect("parquet");
    let stamp = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == STAMP_KEY))
        .and_then(|e| e.value.clone())
        .expect("stamp");
    let mut stamp: serde_json::Value = serde_json::from_str(&stamp).expect("stamp json");
    for unique in ["writeId", "writtenAt"] {
        stamp.as_object_mut().expect("object").remove(unique);
    }
    (bytes[..data_end].to_vec(), stamp)
}

/// (externalId, count) of every row, in file order.
fn rows(file: &Path) -> Vec<(String, i64)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(file).expect("published file"),
    )
    .expect("parquet")
    .build()
    .expect("reader");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let ids = batch
            .column_by_name("externalId")
            .expect("id")
            .as_string::<i32>();
        let counts = batch
            .column_by_name("count")
            .expect("count")
            .as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            assert!(counts.is_valid(i));
            rows.push((ids.value(i).to_owned(), counts.value(i)));
        }
    }
    rows
}

/// The last arrival of every key, deleted keys left out, in key order.
fn expected(all: &[Change]) -> Vec<(String, i64)> {
    let mut latest: BTreeMap<String, (i64, bool)> = BTreeMap::new();
    for &(key, arrival, deleted) in all {
        latest.insert(format!("k{key:04}"), (arrival, deleted));
    }
    latest
        .into_iter()
        .filter(|(_, (_, deleted))| !deleted)
        .map(|(key, (arrival, _))| (key, arrival))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilds_and_merges_write_the_same_file_on_one_thread_and_many() {
    let temp = tempfile::tempdir().expect("temp");
    let lake_one = temp.path().join("one");
    let mut arrival = 0;
    let mut all = Vec::new();
    for seq in 1..=3 {
        let commit = changes(seq, &mut arrival);
        append(&lake_one, seq, &commit).await;
        all.extend(commit);
    }
    let lake_many = temp.path().join("many");
    copy_dir(&lake_one, &lake_many);

    let one = Build {
        lake: lake_one,
        settings: PublishSettings {
            memory_budget_bytes: 1 << 30,
            temp_dir: temp.path().join("spill-one"),
            threads: Some(1),
            part_rows: u64::MAX,
        },
    };
    let many = Build {
        lake: lake_many,
        // Every batch is a run of its own: dozens of runs, merged in several levels.
        settings: PublishSettings {
            memory_budget_bytes: 1,
            temp_dir: temp.path().join("spill-many"),
            threads: Some(4),
            part_rows: u64::MAX,
        },
    };
    for build in [&one, &many] {
        std::fs::create_dir_all(&build.settings.temp_dir).expect("spill dir");
    }

    let truth = expected(&all);
    assert!(
        truth.len() > 100 && truth.len() < KEYS as usize,
        "{}",
        truth.len()
    );
    let (first, second) = (
        one.publish(FileAction::Rebuilt).await,
        many.publish(FileAction::Rebuilt).await,
    );
    assert_eq!(rows(&first), truth, "one thread");
    assert_eq!(rows(&second), truth, "many threads, spilled");
    assert!(
        content(&first) == content(&second),
        "the rebuilds wrote different bytes"
    );

    // Two more commits, merged incrementally into each file.
    for seq in 4..=5 {
        let commit = changes(seq, &mut arrival);
        append(&one.lake, seq, &commit).await;
        append(&many.lake, seq, &commit).await;
        all.extend(commit);
    }
    let truth = expected(&all);
    let (first, second) = (
        one.publish(FileAction::Incremental).await,
        many.publish(FileAction::Incremental).await,
    );
    assert_eq!(rows(&first), truth, "one thread, incremental");
    assert_eq!(rows(&second), truth, "many threads, incremental");
    assert!(
        content(&first) == content(&second),
        "the incremental merges wrote different bytes"
    );
}
