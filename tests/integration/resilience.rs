//! Streams that must recover on their own: a rejected cursor restarts one stream only, idle
//! streams keep their cursors fresh, a deadline in the middle of a backfill is picked up by
//! the next slice, and bad configuration or data is reported per view while the rest syncs.

use std::time::Duration;

use cdf_s3_replicator::cdf::dto::RawRowWrite;
use cdf_s3_replicator::failure::{Cause, Failure};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use cdf_s3_replicator::sync::summary::{RunSummary, StreamReport, StreamStatus};
use serde_json::json;
use tokio::time::Instant;

use crate::support::{Lab, python};

const PUMP_NODES: &str = "plant_schema/PlantModel/1/Pump/nodes";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_cursor_restarts_only_its_stream() {
    let lab = Lab::start(20, None).await;
    let context = lab.context("").await;
    let job = SyncJob::from_context(&context);
    let first = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(first.is_success(), "{first:#?}");

    // Corrupt one stream's cursor in the state table, as a foreign or damaged cursor would be.
    let rows = context
        .client
        .list_all_rows("state", "streams", None)
        .await
        .expect("state rows");
    let mut row = rows
        .into_iter()
        .find(|r| r.key == PUMP_NODES)
        .expect("Pump state row");
    row.columns.insert("cursor".into(), json!("not-a-cursor"));
    context
        .client
        .insert_rows(
            "state",
            "streams",
            &[RawRowWrite::new(PUMP_NODES, row.columns)],
        )
        .await
        .expect("corrupt the cursor");

    let second = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(second.is_success(), "{second:#?}");
    let pumps = stream(&second, PUMP_NODES);
    assert_eq!(
        (pumps.cursor_resets, pumps.generation),
        (1, 2),
        "{pumps:#?}"
    );
    assert_eq!(
        pumps.rows, 20,
        "the new generation backfills every pump again"
    );
    for other in second.streams.iter().filter(|s| s.stream != PUMP_NODES) {
        assert_eq!(
            (other.cursor_resets, other.generation, other.rows),
            (0, 1, 0),
            "{other:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_keep_a_fresh_cursor_and_expired_ones_resync() {
    let lab = Lab::start(10, None).await;
    let context = lab.context("").await;
    let job = SyncJob::from_context(&context);
    let control = lab.emulator.control();
    assert!(
        jobs::sync(&job, &slice(), &SyncOptions::default())
            .await
            .is_success()
    );

    // Two days idle, twice: each idle run stores the cursor of its empty page, so the
    // cursor is never older than three days.
    for _ in 0..2 {
        control.advance_clock(Duration::from_secs(2 * 24 * 3600));
        let idle = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
        assert!(idle.is_success(), "{idle:#?}");
        assert_eq!(idle.cursor_resets, 0, "{idle:#?}");
        assert_eq!(idle.rows, 0);
    }
    // Four days without a run: every cursor expired; each stream starts a new generation.
    control.advance_clock(Duration::from_secs(4 * 24 * 3600));
    let expired = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(expired.is_success(), "{expired:#?}");
    assert_eq!(
        expired.cursor_resets as usize, expired.streams_total,
        "{expired:#?}"
    );
    assert!(
        expired
            .streams
            .iter()
            .all(|s| s.generation == 2 && s.status == StreamStatus::CaughtUp)
    );
}

/// Slices of one second end in the middle of the backfill; later slices finish it, each
/// one committing what it read and serving the streams longest-waiting first. Progress is
/// counted in pages and commits, never in wall time: a slice that could not reach a single
/// page (a busy machine) is followed by one with twice the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_mid_backfill_is_finished_by_later_slices() {
    if python().is_none() {
        return;
    }
    let lab = Lab::start(150, None).await;
    let extractor = "  subscription-batch-size: 10\n  ingest-batch-size: 20\n  parallelism: 1\n  deadline-margin: 0s\n";
    let context = lab.context(extractor).await;
    let job = SyncJob::from_context(&context);
    // Every sync call takes at least 100 ms, so a one-second slice holds at most ten pages
    // of the ~60 the backfill needs, however fast the machine is.
    let slow_pages = cdf_emulator::FaultSpec::delay("/models/instances/sync", 100, 1_000_000);
    lab.emulator.control().add_fault(slow_pages);
    const SLICE: Duration = Duration::from_millis(1000);
    /// A slice this long that reads no page is not slow, it hangs.
    const MAX_SLICE: Duration = Duration::from_secs(128);
    let mut order = crate::load::TurnOrder::new(1);
    let mut slice_time = SLICE;
    let mut slices = 0;
    let mut idle_slices = 0;
    let mut behind_seen = false;
    let mut pages = 0;
    let mut rows = 0;
    loop {
        slices += 1;
        let summary = jobs::sync(
            &job,
            &JobInputs::until(Instant::now() + slice_time),
            &SyncOptions::default(),
        )
        .await;
        assert_eq!(summary.streams_failed, 0, "{summary:#?}");
        for report in &summary.streams {
            if report.pages > 0 && report.status == StreamStatus::Behind {
                // The deadline never costs work already read.
                assert!(
                    report.commits > 0,
                    "slice {slices}: {} read {} pages and committed none: {report:#?}",
                    report.stream,
                    report.pages
                );
            }
        }
        order.record(
            summary
                .streams
                .iter()
                .map(|s| (s.stream.as_str(), s.pages > 0)),
        );
        let slice_pages: u64 = summary.streams.iter().map(|s| s.pages).sum();
        pages += slice_pages;
        rows += summary.rows;
        behind_seen |= summary.streams_behind > 0;
        if summary.streams_caught_up == summary.streams_total {
            break;
        }
        if slice_pages == 0 {
            idle_slices += 1;
            assert!(
                slice_time < MAX_SLICE,
                "a slice of {slice_time:?} read no page with the backfill unfinished: the sync hangs"
            );
            slice_time *= 2;
        } else {
            slice_time = SLICE;
        }
    }
    println!(
        "sliced backfill: {slices} slices ({idle_slices} without a page), {pages} pages, {rows} rows"
    );
    assert!(
        behind_seen && slices > 2,
        "the slices must have ended mid-backfill ({slices} slices)"
    );
    lab.assert_all_tables_match("after a sliced backfill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_view_and_an_unknown_model_are_reported_and_the_rest_syncs() {
    let lab = Lab::start(5, None).await;
    let context = lab.context_with("", Some(&["Pump", "Valve"])).await;
    let summary = jobs::sync(
        &SyncJob::from_context(&context),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(!summary.is_success());
    assert_eq!(
        summary.plan_errors,
        [Failure::new(
            Cause::ViewNotFound,
            "view Valve is not in data model plant_schema:PlantModel/1; the model has: Site, Pump, WorkOrder, PumpWorkOrder"
        )]
    );
    assert_eq!(
        summary.streams_caught_up, 2,
        "Pump nodes and its edges still sync: {summary:#?}"
    );

    let mut config = context.config.clone();
    config.data_modeling[0]
        .data_models
        .push(cdf_s3_replicator::config::DataModelSelection {
            external_id: "NoSuchModel".into(),
            version: None,
            views: None,
        });
    config.data_modeling[0].data_models[0].views = None;
    let context = cdf_s3_replicator::context::Context::new(config).expect("context");
    let summary = jobs::sync(
        &SyncJob::from_context(&context),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert_eq!(
        summary.plan_errors,
        [Failure::new(
            Cause::ModelNotFound,
            format!(
                "data model plant_schema:NoSuchModel (latest version) does not exist; the space \
                 plant_schema has: {}/1",
                cdf_emulator::sample_model::MODEL
            )
        )]
    );
    assert_eq!(summary.streams_caught_up, 5, "{summary:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_of_the_wrong_type_quarantines_its_instance_only() {
    let lab = Lab::start(5, None).await;
    let context = lab.context("  parallelism: 1\n").await;
    let job = SyncJob::from_context(&context);
    // Every sync page that carries a pump's `stages` gets a string there instead of an int32.
    let wrong = cdf_emulator::FaultSpec::rewrite_body(
        "/models/instances/sync",
        "\"stages\":2",
        "\"stages\":\"two\"",
        100,
    );
    lab.emulator.control().add_fault(wrong);
    let summary = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(summary.is_success(), "{summary:#?}");
    let pumps = stream(&summary, PUMP_NODES);
    assert_eq!(pumps.status, StreamStatus::CaughtUp);
    assert_eq!(pumps.rows_quarantined, 1, "pump-0001 is quarantined");
    assert_eq!(pumps.rows, 4, "the other pumps of the page are written");
    assert_eq!(summary.streams_caught_up, 5, "{summary:#?}");
}

/// A typo in `views` or `resync` is reported by name; the streams that were named right
/// still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_in_views_and_resync_are_reported() {
    let lab = Lab::start(4, None).await;
    let context = lab.context("").await;
    let inputs = slice().with_views(["Pump", "Pmup"]).expect("view names");
    let options = SyncOptions {
        force_resync: vec!["Siet".into(), PUMP_NODES.into()],
        ..SyncOptions::default()
    };
    let summary = jobs::sync(&SyncJob::from_context(&context), &inputs, &options).await;
    assert!(!summary.is_success(), "{summary:#?}");
    assert!(
        summary
            .plan_errors
            .iter()
            .all(|e| e.cause == Cause::InvalidRequest),
        "{:?}",
        summary.plan_errors
    );
    let errors: Vec<&str> = summary
        .plan_errors
        .iter()
        .map(|e| e.message.as_str())
        .collect();
    let errors = errors.join("\n");
    assert!(
        errors.contains("views: `Pmup` matches no stream"),
        "{errors}"
    );
    assert!(
        errors.contains("resync: `Siet` matches no stream"),
        "{errors}"
    );
    assert!(errors.contains("(views: Pump)"), "{errors}");
    assert_eq!(summary.plan_errors.len(), 2, "{errors}");
    assert_eq!(stream(&summary, PUMP_NODES).status, StreamStatus::CaughtUp);
    assert_eq!(
        summary.streams.len(),
        2,
        "only the Pump streams ran: {summary:#?}"
    );
}
