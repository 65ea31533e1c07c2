//! Exactly once under crashes and races: the CLI is killed (`abort`, no cleanup) at each
//! step of a commit, then run again; two syncs run at once on the same streams. The raw
//! tables must hold every change once and match the truth.

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use cdf_emulator::sample_model;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use tokio::time::Instant;

use crate::support::{Lab, Lake, neighbour_commits, python};

const PUMPS: usize = 30;
const SMALL_BATCHES: &str =
    "  subscription-batch-size: 10\n  ingest-batch-size: 20\n  parallelism: 1\n";

async fn run_cli(config: &Path, failpoint: Option<&str>) -> ExitStatus {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"));
    command.args(["sync", "--config"]).arg(config);
    command.stdout(std::process::Stdio::null());
    match failpoint {
        Some(point) => command.env(cdf_s3_replicator::failpoint::ENV, point),
        None => command.env_remove(cdf_s3_replicator::failpoint::ENV),
    };
    tokio::task::spawn_blocking(move || command.status().expect("CLI runs"))
        .await
        .expect("CLI task")
}

/// Crash at `failpoint`, apply changes, recover, and compare.
async fn crash_and_recover(failpoint: &str, lake: Option<Lake>) {
    let lab = Lab::start(PUMPS, lake).await;
    let config = lab.config_file(SMALL_BATCHES);
    let crashed = run_cli(&config, Some(failpoint)).await;
    assert!(
        !crashed.success(),
        "{failpoint}: the armed failpoint must stop the process"
    );

    let control = lab.emulator.control();
    lab.update_and_delete_pumps(PUMPS);

    let recovered = run_cli(&config, None).await;
    assert!(recovered.success(), "{failpoint}: the next run recovers");
    // Crash again in the middle of streaming the changes, then recover once more.
    control
        .apply_instances(sample_model::updates(PUMPS, 2))
        .expect("second updates");
    let _ = run_cli(&config, Some(failpoint)).await;
    assert!(
        run_cli(&config, None).await.success(),
        "{failpoint}: second recovery"
    );
    lab.assert_all_tables_match(failpoint);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_delta_commit() {
    if python().is_none() {
        return;
    }
    crash_and_recover("before-delta-commit:3", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_delta_commit_before_the_raw_checkpoint() {
    if python().is_none() {
        return;
    }
    crash_and_recover("after-delta-commit:1", None).await;
    crash_and_recover("after-delta-commit:4", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_raw_checkpoint() {
    if python().is_none() {
        return;
    }
    crash_and_recover("after-raw-checkpoint:2", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_upload_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    if python().is_none() {
        return;
    }
    crash_and_recover("after-data-upload:2", Some(lake)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_delta_commit_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    if python().is_none() {
        return;
    }
    crash_and_recover("after-delta-commit:2", Some(lake)).await;
}

async fn concurrent_syncs(lake: Option<Lake>) {
    let lab = Lab::start(PUMPS, lake).await;
    let extractor = "  subscription-batch-size: 10\n  ingest-batch-size: 20\n  parallelism: 2\n";
    let (a, b) = (lab.context(extractor).await, lab.context(extractor).await);
    let inputs = JobInputs::until(Instant::now() + Duration::from_secs(120));
    let options = SyncOptions::default();
    let (job_a, job_b) = (SyncJob::from_context(&a), SyncJob::from_context(&b));
    let (first, second) = tokio::join!(
        jobs::sync(&job_a, &inputs, &options),
        jobs::sync(&job_b, &inputs, &options)
    );
    // Losers stop cleanly (superseded); whatever is left is picked up by the next run.
    for summary in [&first, &second] {
        assert_eq!(summary.streams_failed, 0, "{summary:#?}");
    }
    lab.emulator
        .control()
        .apply_instances(sample_model::updates(PUMPS, 1))
        .expect("updates");
    let (third, fourth) = tokio::join!(
        jobs::sync(&job_a, &inputs, &options),
        jobs::sync(&job_b, &inputs, &options)
    );
    assert_eq!(
        third.streams_failed + fourth.streams_failed,
        0,
        "{third:#?} {fourth:#?}"
    );
    let last = jobs::sync(&job_a, &inputs, &SyncOptions::default()).await;
    assert!(last.is_success(), "{last:#?}");
    lab.assert_all_tables_match("concurrent syncs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_at_once_do_not_duplicate_local() {
    if python().is_none() {
        return;
    }
    concurrent_syncs(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_at_once_do_not_duplicate_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    if python().is_none() {
        return;
    }
    concurrent_syncs(Some(lake)).await;
}

/// A stream whose newest commit lies hundreds of commits back, behind the commits of other
/// streams of its table, still resumes from it: both when RAW holds that commit's
/// checkpoint, and when RAW is behind it (a crash between the commit and the RAW write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_outpaced_by_its_table_neighbours_resumes() {
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(SMALL_BATCHES).await;
    let job = SyncJob::from_context(&context);
    let slice = || JobInputs::until(Instant::now() + Duration::from_secs(300));
    let run = || async {
        let summary = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
        assert!(summary.is_success(), "{summary:#?}");
        assert_eq!(
            summary.cursor_resets, 0,
            "no stream starts over: {summary:#?}"
        );
        summary
    };
    run().await;
    let control = lab.emulator.control();
    let pump_key = "plant_schema/PlantModel/1/Pump/nodes";
    let stale_row = lab.state_row(pump_key);

    control
        .apply_instances(sample_model::updates(PUMPS, 1))
        .expect("updates");
    run().await;
    neighbour_commits(&lab, "Pump", "nodes", 1, 230).await;
    // RAW loses the last checkpoint: the cursor is only in a commit 230 versions back.
    lab.put_state_row(&stale_row).await;
    control
        .apply_instances(sample_model::updates(PUMPS, 2))
        .expect("second updates");
    run().await;

    // RAW is current, and the stream's commit is again far behind its neighbour's.
    neighbour_commits(&lab, "Pump", "nodes", 231, 230).await;
    control
        .apply_instances(sample_model::updates(PUMPS, 3))
        .expect("third updates");
    let summary = run().await;
    let pump = summary
        .streams
        .iter()
        .find(|s| s.stream == pump_key)
        .expect("Pump stream report");
    assert_eq!(pump.generation, 1, "{pump:#?}");

    let Some(rows) = lab.raw_rows("Pump", "nodes") else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for row in &rows {
        let key = (row["externalId"].to_string(), row["version"].to_string());
        assert!(seen.insert(key.clone()), "{key:?} twice");
    }
    lab.assert_all_tables_match("after resuming behind neighbours");
}
