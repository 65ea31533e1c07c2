//! Writes the Delta tables under `tests/fixtures/delta/commit-metadata-v1/`: the commit
//! metadata as the replicator writes it, kept so that every later version is tested against
//! tables that already exist (`lake_delta/commit_format.rs`, `existing_v1_tables_*`).
//!
//! Ignored: it regenerates the fixture rather than checking anything. Run it only to add a
//! new fixture for a new format version, never to overwrite the existing one:
//! `CDF_S3_FIXTURE_OUT=/tmp/fixture cargo test --test integration write_commit_metadata_fixture -- --ignored`

use std::path::Path;
use std::time::Duration;

use cdf_emulator::FaultSpec;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::maintenance::MaintenanceOptions;
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use tokio::time::Instant;

use crate::support::Lab;

/// Pages of two, one commit per page, one worker: four pumps give a handful of small
/// commits, and compaction merges any two files.
const SMALL_COMMITS: &str = "  subscription-batch-size: 2\n  ingest-batch-size: 2\n  parallelism: 1\n  maintenance:\n    compact-min-files: 2\n";

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(120))
}

/// Copies a table's `_delta_log` in full and leaves the data files out: the fixture pins the
/// log, and the Parquet files would make it a hundred KB larger.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("fixture directory");
    for entry in std::fs::read_dir(from).expect("table directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if !entry.file_name().to_string_lossy().ends_with(".parquet") {
            std::fs::copy(entry.path(), target).expect("copying a table file");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes a fixture; run by hand with CDF_S3_FIXTURE_OUT"]
async fn write_commit_metadata_fixture() {
    let out = std::env::var("CDF_S3_FIXTURE_OUT").expect("CDF_S3_FIXTURE_OUT names a directory");
    let lab = Lab::start(4, None).await;
    let context = lab.context_with(SMALL_COMMITS, Some(&["Pump"])).await;
    let job = SyncJob::from_context(&context);
    // pump-0002's text `tag` arrives as a number: it is quarantined in every generation.
    lab.emulator.control().add_fault(FaultSpec::rewrite_body(
        "/models/instances/sync",
        "\"tag\":\"P-0002",
        "\"tag\":2,\"tagWas\":\"P-0002",
        1000,
    ));

    // Generation 1: the backfill, then the streaming phase.
    let first = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(first.is_success(), "{first:#?}");
    // Generation 2: a forced resync.
    let resync = SyncOptions {
        force_resync: vec!["Pump".into()],
        ..SyncOptions::default()
    };
    let second = jobs::sync(&job, &slice(), &resync).await;
    assert!(second.is_success(), "{second:#?}");
    // Compaction of both generations' small files.
    let compacted = jobs::maintenance(
        &context,
        &JobInputs::everything(),
        &MaintenanceOptions {
            compact: true,
            checkpoint: false,
            vacuum: false,
            ..MaintenanceOptions::default()
        },
    )
    .await;
    assert!(compacted.is_success(), "{compacted:#?}");
    assert!(compacted.files_compacted > 0, "{compacted:#?}");

    for kind in ["nodes", "rejected"] {
        let table = lab.lake.raw_table_uri("Pump", kind);
        copy_dir(Path::new(&table), &Path::new(&out).join(kind));
    }
}
