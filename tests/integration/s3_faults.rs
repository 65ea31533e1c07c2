//! S3 faults aimed at the two writes that must never go wrong: the conditional PUT that
//! lands a Delta commit, and the multipart upload of a published file. The proxy breaks the
//! chosen requests; the data must come out exactly once and readers must never see a
//! partial file.

use std::time::Duration;

use cdf_s3_replicator::context::Context;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::snapshot::BatchSink as _;
use cdf_s3_replicator::snapshot::writer::ParquetSink;
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::logstore::object_store::ObjectStoreExt as _;
use rand::{Rng as _, SeedableRng as _};
use s3_fault_proxy::{FaultKind, FaultRule, S3Op};
use std::sync::Arc;
use tokio::time::Instant;

use crate::support::{lab_behind_proxy, parquet_object_batches};

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

/// A commit PUT whose answer is lost (the commit landed, the client saw a 500 and retried
/// into "already exists") and one that stalls past the client timeout: each change still
/// lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_whose_answer_is_lost_land_once() {
    let Some((lab, proxy)) = lab_behind_proxy(12, 1).await else {
        return;
    };
    let context = lab.context("  ingest-batch-size: 10\n").await;
    proxy.inject(
        FaultRule::times(S3Op::ConditionalPut, FaultKind::ResponseLost, 3)
            .on_paths_containing("_delta_log"),
    );
    sync_all(&context).await;
    let control = lab.emulator.control();
    control
        .apply_instances(cdf_emulator::sample_model::updates(12, 1))
        .expect("updates");
    proxy.inject(
        FaultRule::times(S3Op::ConditionalPut, FaultKind::ResponseLost, 2)
            .on_paths_containing("_delta_log"),
    );
    sync_all(&context).await;
    let stats = proxy.stats();
    assert_eq!(stats.faults_of(FaultKind::ResponseLost), 5, "{stats:?}");
    lab.assert_all_tables_match("after lost commit answers");
    assert_no_duplicate_changes(&lab);
}

fn assert_no_duplicate_changes(lab: &crate::support::Lab) {
    for (folder, kind) in [("Pump", "nodes"), ("WorkOrder", "nodes"), ("Pump", "edges")] {
        let Some(rows) = lab.raw_rows(folder, kind) else {
            return;
        };
        let mut seen = std::collections::HashSet::new();
        for row in &rows {
            let key = (
                row["space"].to_string(),
                row["externalId"].to_string(),
                row["version"].to_string(),
            );
            assert!(seen.insert(key.clone()), "{folder}/{kind}: {key:?} twice");
        }
        assert!(!rows.is_empty(), "{folder}/{kind} has rows");
    }
}

fn big_batches(
    rows_per_batch: usize,
    batches: usize,
    seed: u64,
) -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, false),
    ]));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let out = (0..batches)
        .map(|b| {
            let ids: Vec<i64> = (0..rows_per_batch)
                .map(|i| (b * rows_per_batch + i) as i64)
                .collect();
            // Random text barely compresses, so a few MiB of rows make a multi-part file.
            let payloads: Vec<String> = (0..rows_per_batch)
                .map(|_| {
                    (0..96)
                        .map(|_| char::from(rng.random_range(b'!'..=b'~')))
                        .collect()
                })
                .collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(payloads)),
                ],
            )
            .expect("batch")
        })
        .collect();
    (schema, out)
}

async fn write_file(
    store: &deltalake::logstore::ObjectStoreRef,
    path: &str,
    schema: Arc<Schema>,
    batches: &[RecordBatch],
) -> Result<u64, String> {
    let mut sink = ParquetSink::create(store, path, schema).map_err(|e| e.to_string())?;
    for batch in batches {
        if let Err(error) = sink.write(batch.clone()).await {
            sink.abort().await;
            return Err(error.to_string());
        }
    }
    sink.close()
        .await
        .map(|f| f.bytes)
        .map_err(|e| e.to_string())
}

async fn read_ids(store: &deltalake::logstore::ObjectStoreRef, path: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    for batch in parquet_object_batches(store, &deltalake::Path::from(path)).await {
        let column = batch
            .column_by_name("id")
            .expect("id column")
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64 ids")
            .clone();
        ids.extend(column.values().iter().copied());
    }
    ids
}

/// Parts that fail, reset, or land with their answer lost are retried; the completed file
/// holds every row once. An upload that cannot complete leaves the previous file as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_survive_part_faults_and_never_expose_a_partial_file() {
    let Some((lab, proxy)) = lab_behind_proxy(1, 2).await else {
        return;
    };
    let context = lab.context("").await;
    let store = context.destination.object_store().expect("store");
    let path = "faults/big.parquet";

    let (schema, small) = big_batches(1000, 1, 3);
    write_file(&store, path, schema.clone(), &small)
        .await
        .expect("the first, single-PUT file");
    assert_eq!(read_ids(&store, path).await.len(), 1000);

    // About 24 MiB of rows: three or more 8 MiB parts.
    let (schema, big) = big_batches(25_000, 10, 4);
    for kind in [
        FaultKind::InternalError,
        FaultKind::Reset,
        FaultKind::ResponseLost,
        FaultKind::SlowDown,
    ] {
        proxy.inject(FaultRule::times(S3Op::UploadPart, kind, 1));
    }
    proxy.inject(FaultRule::times(
        S3Op::CompleteMultipart,
        FaultKind::SlowDown,
        1,
    ));
    let bytes = write_file(&store, path, schema.clone(), &big)
        .await
        .expect("the multipart upload completes despite the faults");
    let stats = proxy.stats();
    assert!(bytes > 16 * 1024 * 1024, "a multi-part file: {bytes} bytes");
    assert!(
        stats.requests.get(&S3Op::UploadPart).copied().unwrap_or(0) >= 3,
        "{stats:?}"
    );
    assert_eq!(stats.faults_on(S3Op::UploadPart), 4, "{stats:?}");
    let ids = read_ids(&store, path).await;
    assert_eq!(
        ids,
        (0..250_000).collect::<Vec<i64>>(),
        "every row once, in order"
    );

    // Completion keeps failing: the upload is abandoned and the key keeps the last file.
    proxy.inject(FaultRule::random(
        &[S3Op::CompleteMultipart],
        FaultKind::InternalError,
        1.0,
    ));
    let (schema, other) = big_batches(25_000, 10, 5);
    let failed = write_file(&store, path, schema, &other).await;
    assert!(failed.is_err(), "completion cannot succeed");
    proxy.clear();
    let ids = read_ids(&store, path).await;
    assert_eq!(ids.len(), 250_000, "the previous file is intact");
}

/// A request that never gets an answer is abandoned after `request-timeout` and retried, so
/// one stuck connection cannot eat a time slice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_is_abandoned_after_the_request_timeout() {
    let Some((lab, proxy)) = lab_behind_proxy(1, 3).await else {
        return;
    };
    let yaml = lab.config_yaml("", None).replace(
        "    allow-http: true\n",
        "    allow-http: true\n    request-timeout: 1\n",
    );
    let config = cdf_s3_replicator::context::load_config_text(
        &yaml,
        "test configuration",
        &cdf_s3_replicator::config::MapEnv::new(),
    )
    .await
    .expect("configuration");
    let context = Context::new(config).expect("context");
    let store = context.destination.object_store().expect("store");
    proxy.inject(FaultRule::times(
        S3Op::Put,
        FaultKind::Stall(Duration::from_secs(600)),
        1,
    ));
    let location = deltalake::Path::from("faults/stalled.txt");
    let put = store.put(&location, bytes::Bytes::from_static(b"landed").into());
    // The client default (30 s) would outlast this bound; the configured 1 s does not.
    tokio::time::timeout(Duration::from_secs(15), put)
        .await
        .expect("the stalled PUT is abandoned long before the stall ends")
        .expect("the retried PUT lands");
    assert_eq!(proxy.stats().faults_on(S3Op::Put), 1);
    let body = store
        .get(&location)
        .await
        .expect("object")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(&body[..], b"landed");
}
