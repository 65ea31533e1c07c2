//! Concurrent writers to one table, locally and with S3 conditional commits on moto, and the
//! conflict error once the retry budget is spent.

use std::collections::BTreeSet;

use cdf_s3_replicator::lake::{
    CommitOutcome, Destination, InstanceKind, LakeError, LakeTable, ModelRef, S3Destination,
    ViewFolder, WriteOptions,
};
use deltalake::logstore::object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use futures::TryStreamExt;
use serde_json::json;
use url::Url;

use crate::support::{python_read, required_env};

use super::{
    NODES_APP, assert_python_values, batch, commit, committed, local_lake, open, options,
    table_rows,
};

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
