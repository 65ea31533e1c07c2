//! The Delta log is the truth about data: a RAW state row edited by hand between two syncs
//! (an older generation, an older row put back, another stream's cursor, garbage, no row)
//! is repaired from the log. The stream continues where its log says, in its log's
//! generation, without starting over, the row is rewritten from the log, and after further
//! changes in CDF the published file still equals the emulator's truth.

use std::time::Duration;

use cdf_emulator::sample_model;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::snapshot::SnapshotOptions;
use cdf_s3_replicator::sync::summary::{RunSummary, StreamReport};
use cdf_s3_replicator::sync::{SyncJob, SyncOptions};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, published_file_spec, python};

const PUMPS: usize = 12;
const PUMP_NODES: &str = "plant_schema/PlantModel/1/Pump/nodes";
const WORK_ORDER_NODES: &str = "plant_schema/PlantModel/1/WorkOrder/nodes";

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(120))
}

async fn sync_ok(job: &SyncJob, options: &SyncOptions) -> RunSummary {
    let summary = jobs::sync(job, &slice(), options).await;
    assert!(summary.is_success(), "{summary:#?}");
    summary
}

fn pumps(summary: &RunSummary) -> &StreamReport {
    summary
        .streams
        .iter()
        .find(|s| s.stream == PUMP_NODES)
        .unwrap_or_else(|| panic!("no Pump stream: {summary:#?}"))
}

/// A hand edit of the Pump stream's state row.
#[derive(Debug, Clone, Copy)]
enum Edit {
    /// The generation lowered, everything else (`seq` included) as it was.
    OlderGeneration,
    /// The row of an earlier commit put back.
    OlderRow,
    /// The cursor and query of another stream (WorkOrder) pasted into the row.
    AnotherStreamsCursor,
    /// A value that does not parse.
    Garbage,
    /// The row deleted.
    Deleted,
}

impl Edit {
    async fn apply(self, lab: &Lab, older_row: &Value) {
        let mut row = lab.state_row(PUMP_NODES);
        let columns = &mut row["columns"];
        match self {
            Edit::OlderGeneration => {
                let generation = columns["generation"].as_u64().expect("generation");
                assert!(generation > 1, "{row}");
                columns["generation"] = json!(generation - 1);
            }
            Edit::OlderRow => {
                assert!(older_row["columns"]["seq"].as_i64() < columns["seq"].as_i64());
                row = older_row.clone();
            }
            Edit::AnotherStreamsCursor => {
                let other = lab.state_row(WORK_ORDER_NODES);
                columns["cursor"] = other["columns"]["cursor"].clone();
                columns["queryHash"] = other["columns"]["queryHash"].clone();
                assert_ne!(
                    columns["queryHash"],
                    lab.state_row(PUMP_NODES)["columns"]["queryHash"]
                );
            }
            Edit::Garbage => columns["generation"] = json!("not a number"),
            Edit::Deleted => {
                lab.api_post(
                    "/raw/dbs/state/tables/streams/rows/delete",
                    json!({"items": [{"key": PUMP_NODES}]}),
                )
                .await;
                return;
            }
        }
        lab.put_state_row(&row).await;
    }
}

/// Two complete generations of the Pump stream (the snapshot then reads only the second
/// and newer ones) and a commit after them; the edit; more changes in CDF; sync, snapshot,
/// and the published Pump file must equal the truth.
async fn the_log_repairs(edit: Edit) {
    if python().is_none() {
        return;
    }
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context("").await;
    let job = SyncJob::from_context(&context);
    let control = lab.emulator.control();
    sync_ok(&job, &SyncOptions::default()).await;
    let resync = SyncOptions {
        force_resync: vec!["Pump".into()],
        ..SyncOptions::default()
    };
    assert_eq!(pumps(&sync_ok(&job, &resync).await).generation, 2);
    let older_row = lab.state_row(PUMP_NODES);
    control
        .apply_instances(sample_model::updates(PUMPS, 1))
        .expect("updates");
    let before = sync_ok(&job, &SyncOptions::default()).await;
    assert!(pumps(&before).rows > 0, "{before:#?}");
    let committed = lab.state_row(PUMP_NODES)["columns"].clone();

    edit.apply(&lab, &older_row).await;
    control
        .apply_instances(sample_model::updates(PUMPS, 2))
        .expect("second updates");
    control
        .delete_instances(sample_model::deletions(PUMPS))
        .expect("deletes");
    let after = sync_ok(&job, &SyncOptions::default()).await;

    // First the data: the published file equals the truth.
    let published = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(published.is_success(), "{published:#?}");
    let files =
        json!({"nodes": published_file_spec(&lab, "nodes", Some("Pump"), "Pump", &json!({}))});
    let expected = files["nodes"]["truth"].as_array().map_or(0, Vec::len);
    assert!(expected > 0);
    let report = lab.check_published("Pump", files).expect("python");
    for reader in ["pyarrow", "duckdb"] {
        let r = &report["files"]["nodes"][reader];
        let what = format!("{edit:?}: Pump nodes ({reader})");
        assert_eq!(r["mismatch_count"], 0, "{what}: {}", r["mismatches"]);
        assert_eq!(r["duplicates"], json!([]), "{what}: one row per instance");
        assert_eq!(r["rows"], expected, "{what}: rows");
    }

    // Then how: from the log, in its generation, without starting over; and the row is
    // rewritten from the log.
    let pump = pumps(&after);
    assert_eq!(
        pump.generation, 2,
        "{edit:?}: the log's generation: {pump:#?}"
    );
    assert_eq!(pump.cursor_resets, 0, "{edit:?}: no resync: {pump:#?}");
    assert!(pump.rows > 0, "{edit:?}: the new changes: {pump:#?}");
    let repaired = lab.state_row(PUMP_NODES)["columns"].clone();
    for column in ["generation", "queryHash", "phase"] {
        assert_eq!(repaired[column], committed[column], "{edit:?}: {column}");
    }
    assert!(
        repaired["seq"].as_i64() > committed["seq"].as_i64(),
        "{edit:?}: {repaired}"
    );
}

/// The finding: with the same `seq`, the lowered generation was trusted, the new changes
/// were committed under it, and the snapshot (which had completed generation 2) ignored
/// them: the published file kept the old values for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_generation_is_repaired_from_the_log() {
    the_log_repairs(Edit::OlderGeneration).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_row_put_back_is_repaired_from_the_log() {
    the_log_repairs(Edit::OlderRow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_streams_cursor_is_repaired_from_the_log() {
    the_log_repairs(Edit::AnotherStreamsCursor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_row_is_repaired_from_the_log() {
    the_log_repairs(Edit::Garbage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_row_is_repaired_from_the_log() {
    the_log_repairs(Edit::Deleted).await;
}
