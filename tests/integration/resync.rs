//! An operator's `--resync` takes effect, or the run says it did not: a resync that races
//! another sync of the same stream is never silently dropped.

use std::time::Duration;

use cdf_emulator::FaultSpec;
use cdf_emulator::sample_model;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use cdf_s3_replicator::sync::summary::{RunSummary, StreamReport, StreamStatus};
use tokio::time::Instant;

use crate::support::Lab;

const SYNC_PATH: &str = "/models/instances/sync";
const WORK_ORDERS: &str = "plant_schema/PlantModel/1/WorkOrder/nodes";
const PUMPS: usize = 20;

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(120))
}

fn stream<'a>(summary: &'a RunSummary, key: &str) -> &'a StreamReport {
    summary
        .streams
        .iter()
        .find(|s| s.stream == key)
        .unwrap_or_else(|| panic!("no stream {key} in {summary:#?}"))
}

/// Waits until the emulator has received `count` sync requests (it logs a request when it
/// arrives, before a delay fault holds it).
async fn sync_requests_reach(lab: &Lab, count: usize) {
    let control = lab.emulator.control();
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let seen = control
                .request_log()
                .iter()
                .filter(|r| r.path.ends_with(SYNC_PATH))
                .count();
            if seen >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "sync request {count} never arrived");
}

/// The race of the finding: a scheduled sync loads the stream's state, then the operator's
/// resync records its new generation, then the scheduled sync commits the old generation
/// first and the resync's first commit is refused. The resync must still happen (or the run
/// must fail saying it did not): after it, the stream is in its second generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_that_loses_a_race_to_another_sync_still_happens() {
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context_with("", Some(&["WorkOrder"])).await;
    let job = SyncJob::from_context(&context);
    let first = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(first.is_success(), "{first:#?}");
    assert_eq!(stream(&first, WORK_ORDERS).generation, 1);

    let control = lab.emulator.control();
    control
        .apply_instances(sample_model::updates(PUMPS, 1))
        .expect("updates");
    let before = control
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with(SYNC_PATH))
        .count();
    // The scheduled sync loads the state now; its page comes in 2 s.
    control.add_fault(FaultSpec::delay(SYNC_PATH, 2_000, 1));
    let scheduled_job = job.clone();
    let scheduled =
        tokio::spawn(
            async move { jobs::sync(&scheduled_job, &slice(), &SyncOptions::default()).await },
        );
    sync_requests_reach(&lab, before + 1).await;
    // The resync starts while the scheduled sync waits; its first page comes in 6 s, after
    // the scheduled sync committed.
    control.add_fault(FaultSpec::delay(SYNC_PATH, 6_000, 1));
    let resync = SyncOptions {
        force_resync: vec!["WorkOrder".into()],
        ..SyncOptions::default()
    };
    let resynced = jobs::sync(&job, &slice(), &resync).await;
    let scheduled = scheduled.await.expect("the scheduled sync");
    let scheduled_report = stream(&scheduled, WORK_ORDERS);
    assert_eq!(
        (scheduled_report.status, scheduled_report.generation),
        (StreamStatus::CaughtUp, 1),
        "the race happened as staged: the scheduled sync committed generation 1 first: {scheduled:#?}"
    );

    let report = stream(&resynced, WORK_ORDERS);
    if report.status == StreamStatus::Failed {
        // Telling the operator is the other acceptable outcome.
        let error = report.error.as_ref().expect("a failed stream says why");
        assert!(
            error.message.contains("resync did not take effect"),
            "{error:?}"
        );
        assert!(!resynced.is_success());
        return;
    }
    assert!(resynced.is_success(), "{resynced:#?}");
    assert_eq!(report.status, StreamStatus::CaughtUp, "{report:#?}");
    assert_eq!(
        report.rows as usize,
        lab.truth_nodes("WorkOrder").len(),
        "the resync read every work order again: {report:#?}"
    );

    // The lake agrees: the next plain sync continues the resync's generation.
    let after = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(after.is_success(), "{after:#?}");
    let report = stream(&after, WORK_ORDERS);
    assert_eq!(
        (report.generation, report.cursor_resets),
        (2, 0),
        "the stream is in the generation the resync opened: {report:#?}"
    );
}
