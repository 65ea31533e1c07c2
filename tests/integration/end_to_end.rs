//! Seed, sync, change, sync again: every raw table, read back by the Python `deltalake`
//! package and by DuckDB, holds exactly the emulator's truth.

use std::time::Duration;

use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use cdf_s3_replicator::sync::summary::StreamStatus;
use tokio::time::Instant;

use crate::support::{Lab, Lake};

const PUMPS: usize = 60;

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(300))
}

/// Small pages and commits, so that every path (several pages, several commits per
/// stream, the backfill-to-streaming switch) is taken with little data.
const SMALL_BATCHES: &str = "  subscription-batch-size: 25\n  ingest-batch-size: 40\n";

async fn replicate_and_compare(lab: Lab) {
    let context = lab.context(SMALL_BATCHES).await;
    let job = SyncJob::from_context(&context);

    let first = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(first.is_success(), "{first:#?}");
    assert_eq!(first.streams_total, 5, "{first:#?}");
    assert!(
        first
            .streams
            .iter()
            .all(|s| s.status == StreamStatus::CaughtUp),
        "{first:#?}"
    );
    assert!(
        first.streams.iter().any(|s| s.commits > 1),
        "small budgets give several commits"
    );

    lab.update_and_delete_pumps(PUMPS);
    let second = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(second.is_success(), "{second:#?}");
    assert!(second.rows > 0);

    // A sync with nothing new writes nothing.
    let idle = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert_eq!((idle.rows, idle.commits), (0, 0), "{idle:#?}");

    assert_eq!(
        lab.truth_work_order_edges().len(),
        (PUMPS - PUMPS.div_ceil(11)) * 2,
        "live edges after pump deletes"
    );
    lab.assert_all_tables_match("end to end");

    // The tombstones are in the raw history: one per deleted pump.
    let rows = lab.raw_rows("Pump", "nodes").expect("python");
    let tombstones = rows.iter().filter(|r| !r["deletedTime"].is_null()).count();
    assert_eq!(tombstones, PUMPS.div_ceil(11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory_matches_cdf() {
    if crate::support::python().is_none() {
        return;
    }
    replicate_and_compare(Lab::start(PUMPS, None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_matches_cdf() {
    let Some(lake) = Lake::s3().await else { return };
    if crate::support::python().is_none() {
        return;
    }
    replicate_and_compare(Lab::start(PUMPS, Some(lake)).await).await;
}
