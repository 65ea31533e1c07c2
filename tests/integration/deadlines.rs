//! The run's deadline bounds every wait on CDF: a `Retry-After` that reaches past it, a
//! response that comes too slowly. The run then ends with what it committed, its streams
//! `behind`, and the next run continues exactly where it stopped.
//!
//! The faults last 120 s and the runs have a few seconds; the bound the tests check (60 s)
//! only tells "stopped at the deadline" from "waited for the fault", it does not time them.

use std::time::Duration;

use cdf_emulator::FaultSpec;
use cdf_s3_replicator::cdf::CdfError;
use cdf_s3_replicator::cdf::dto::{
    Filter, SyncExpression, SyncMode, SyncRequest, SyncSelect, ViewReference,
};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lambda::config_source::CONFIG_ENV;
use cdf_s3_replicator::lambda::logging::LogControl;
use cdf_s3_replicator::lambda::metrics::MemorySink;
use cdf_s3_replicator::lambda::{Function, FunctionKind, FunctionSetup, Invocation};
use cdf_s3_replicator::sync::summary::{RunSummary, StreamReport, StreamStatus};
use cdf_s3_replicator::sync::{SyncJob, SyncOptions};
use tokio::time::Instant;

use crate::support::Lab;

const SYNC_PATH: &str = "/models/instances/sync";
const WORK_ORDERS: &str = "plant_schema/PlantModel/1/WorkOrder/nodes";
/// Longer than any run of these tests may take; a run that waits for it fails the test.
const FAULT: Duration = Duration::from_secs(120);
/// What "ended before the fault would have" means here.
const WELL_BEFORE_THE_FAULT: Duration = Duration::from_secs(60);
/// One stream (the WorkOrder view has no edges), ten instances a page, one commit a run
/// unless the run ends, and one second kept for it.
const ONE_STREAM: &str = "  subscription-batch-size: 10\n  ingest-batch-size: 1000\n  parallelism: 1\n  deadline-margin: 1s\n";

/// Runs one slice that may take `budget`, failing the test if it outlives the fault.
async fn slice(job: &SyncJob, budget: Duration) -> RunSummary {
    let inputs = JobInputs::until(Instant::now() + budget);
    tokio::time::timeout(
        WELL_BEFORE_THE_FAULT,
        jobs::sync(job, &inputs, &SyncOptions::default()),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the sync slice of {budget:?} was still waiting for CDF after {WELL_BEFORE_THE_FAULT:?}"
        )
    })
}

fn stream<'a>(summary: &'a RunSummary, key: &str) -> &'a StreamReport {
    summary
        .streams
        .iter()
        .find(|s| s.stream == key)
        .unwrap_or_else(|| panic!("no stream {key} in {summary:#?}"))
}

fn work_order_sync() -> SyncRequest {
    let view = ViewReference::new("plant_schema", "WorkOrder", "1");
    SyncRequest::single(
        "changes",
        SyncExpression::nodes(
            Some(Filter::has_data_view(view.clone())),
            10,
            SyncMode::OnePhase,
        ),
        SyncSelect::all_of(view),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_past_the_deadline_ends_the_call_at_once() {
    let lab = Lab::start(5, None).await;
    let client = lab.context("").await.client;
    let control = lab.emulator.control();
    control.add_fault(FaultSpec::status(SYNC_PATH, 429, 100).with_retry_after(FAULT.as_secs()));
    let bound = client.with_deadline(Instant::now() + Duration::from_secs(3));
    let error = tokio::time::timeout(WELL_BEFORE_THE_FAULT, bound.sync(&work_order_sync()))
        .await
        .expect("the call ends at the deadline, not after the Retry-After")
        .expect_err("CDF only throttles");
    assert!(error.is_deadline_reached(), "{error:?}");
    assert!(error.is_retryable(), "{error:?}");
    match &error {
        CdfError::DeadlineReached { attempts, last, .. } => {
            assert_eq!(*attempts, 1, "no retry can start before the deadline");
            let last = last.as_deref().expect("the throttled attempt");
            assert_eq!(last.status(), Some(429), "{last:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let sent = control
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with(SYNC_PATH))
        .count();
    assert_eq!(
        sent, 1,
        "one attempt, then no wait for the 120 s Retry-After"
    );

    // The handle without a deadline is unchanged: it still honours a short Retry-After.
    control.clear_faults();
    control.add_fault(FaultSpec::status(SYNC_PATH, 429, 1).with_retry_after(1));
    client
        .sync(&work_order_sync())
        .await
        .expect("a Retry-After of 1 s is waited for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_is_abandoned_at_the_deadline() {
    let lab = Lab::start(5, None).await;
    let client = lab.context("").await.client;
    lab.emulator
        .control()
        .add_fault(FaultSpec::delay(SYNC_PATH, FAULT.as_millis() as u64, 100));
    let bound = client.with_deadline(Instant::now() + Duration::from_secs(3));
    let error = tokio::time::timeout(WELL_BEFORE_THE_FAULT, bound.sync(&work_order_sync()))
        .await
        .expect("the call ends at the deadline, not when the answer comes")
        .expect_err("no answer before the deadline");
    match &error {
        CdfError::DeadlineReached { attempts, last, .. } => {
            assert_eq!(*attempts, 1);
            assert!(last.is_none(), "{last:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // A handle is bound to the earlier of two deadlines.
    let later = bound.with_deadline(Instant::now() + Duration::from_secs(3600));
    assert_eq!(later.deadline(), bound.deadline());
}

/// Two pages are read, the third is throttled with a `Retry-After` far past the deadline:
/// the run commits the two pages, saves the checkpoint and ends `behind`; the next run
/// continues from that checkpoint and reads every other instance exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_throttled_past_its_deadline_ends_behind_with_what_it_read() {
    let lab = Lab::start(30, None).await;
    let job = SyncJob::from_context(&lab.context_with(ONE_STREAM, Some(&["WorkOrder"])).await);
    let control = lab.emulator.control();
    let total = lab.truth_nodes("WorkOrder").len() as u64;
    assert_eq!(total, 60);
    // The first two sync requests pass, every later one is throttled for 120 s.
    control.add_fault(FaultSpec::delay(SYNC_PATH, 0, 2));
    control.add_fault(FaultSpec::status(SYNC_PATH, 429, 1000).with_retry_after(FAULT.as_secs()));

    let cut = slice(&job, Duration::from_secs(4)).await;
    assert!(
        cut.is_success(),
        "a run cut by its deadline is no failure: {cut:#?}"
    );
    let work_orders = stream(&cut, WORK_ORDERS);
    assert_eq!(work_orders.status, StreamStatus::Behind, "{work_orders:#?}");
    assert_eq!(
        (work_orders.pages, work_orders.rows, work_orders.commits),
        (2, 20, 1),
        "the pages read before the throttling are committed: {work_orders:#?}"
    );
    assert!(work_orders.error.is_none(), "{work_orders:#?}");
    let row = lab.state_row(WORK_ORDERS);
    assert_eq!(row["columns"]["seq"], 1, "the checkpoint is saved: {row:#}");
    assert!(row["columns"]["cursor"].is_string(), "{row:#}");

    control.clear_faults();
    let next = slice(&job, Duration::from_secs(50)).await;
    assert!(next.is_success(), "{next:#?}");
    let work_orders = stream(&next, WORK_ORDERS);
    assert_eq!(
        work_orders.status,
        StreamStatus::CaughtUp,
        "{work_orders:#?}"
    );
    assert_eq!(
        (
            work_orders.rows,
            work_orders.generation,
            work_orders.cursor_resets
        ),
        (total - 20, 1, 0),
        "the next run continues from the saved cursor: {work_orders:#?}"
    );
    if let Some(rows) = lab.raw_rows("WorkOrder", "nodes") {
        let mut ids: Vec<String> = rows
            .iter()
            .map(|r| r["externalId"].as_str().unwrap_or_default().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            (rows.len(), ids.len()),
            (total as usize, total as usize),
            "every work order once"
        );
    }
}

/// CDF answers no page in time: the slow request is abandoned at the deadline and the
/// stream ends `behind`, without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_whose_page_never_comes_ends_behind_at_its_deadline() {
    let lab = Lab::start(10, None).await;
    let job = SyncJob::from_context(&lab.context_with(ONE_STREAM, Some(&["WorkOrder"])).await);
    let control = lab.emulator.control();
    // Planning passes, every sync page is delayed past the fault's end.
    control.add_fault(FaultSpec::delay(SYNC_PATH, FAULT.as_millis() as u64, 1000));

    let cut = slice(&job, Duration::from_secs(4)).await;
    assert!(cut.is_success(), "{cut:#?}");
    let work_orders = stream(&cut, WORK_ORDERS);
    assert_eq!(work_orders.status, StreamStatus::Behind, "{work_orders:#?}");
    assert_eq!((work_orders.pages, work_orders.rows), (0, 0));
    assert!(work_orders.error.is_none(), "{work_orders:#?}");
    // The margin left after the abandoned page still carries the run report.
    let runs = control.extpipe_runs("replicator");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "success", "{runs:#?}");

    control.clear_faults();
    let next = slice(&job, Duration::from_secs(50)).await;
    let work_orders = stream(&next, WORK_ORDERS);
    assert_eq!(work_orders.status, StreamStatus::CaughtUp, "{next:#?}");
    assert_eq!(work_orders.rows, 20, "{work_orders:#?}");
}

/// The sync function passes the invocation's deadline to its CDF calls: throttled past
/// Lambda's timeout, it returns its summary (streams behind) instead of being killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_function_returns_before_its_timeout_when_cdf_throttles() {
    let lab = Lab::start(10, None).await;
    let yaml = lab.config_yaml(ONE_STREAM, Some(&["WorkOrder"]));
    let env = MapEnv::new().with(CONFIG_ENV, yaml);
    let config_source = cdf_s3_replicator::lambda::config_source::ConfigSource::from_env(&env);
    let function = Function::new(FunctionSetup {
        kind: FunctionKind::Sync,
        name: "test-cdf-s3-sync".into(),
        env: Box::new(env),
        config_source,
        secrets: None,
        metrics: std::sync::Arc::new(MemorySink::default()),
        logs: LogControl::detached(),
    });
    lab.emulator
        .control()
        .add_fault(FaultSpec::status(SYNC_PATH, 429, 1000).with_retry_after(FAULT.as_secs()));
    let invocation = Invocation {
        request_id: "req-deadline".into(),
        deadline: std::time::SystemTime::now() + Duration::from_secs(6),
    };
    let summary = tokio::time::timeout(
        WELL_BEFORE_THE_FAULT,
        function.invoke(serde_json::json!({}), &invocation),
    )
    .await
    .expect("the invocation ends at its deadline, not after the Retry-After")
    .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    assert_eq!(summary["streamsTotal"], 1, "{summary:#}");
    assert_eq!(summary["streamsBehind"], 1, "{summary:#}");
    assert_eq!(summary["streamsFailed"], 0, "{summary:#}");
}
