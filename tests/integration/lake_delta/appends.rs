//! Appends to a local table: the stream's txn and commit metadata recorded and read back after
//! a reopen, and a txn version already in the log writing nothing.

use std::collections::BTreeSet;

use cdf_s3_replicator::lake::{CommitOutcome, LakeError};
use serde_json::{Value, json};

use crate::support::{python_read, required_env};

use super::{
    NODES_APP, assert_python_values, batch, commit, committed, local_lake, open, table_rows,
};

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
