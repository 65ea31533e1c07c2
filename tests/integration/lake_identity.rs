//! One lake per state: two lakes (two local directories, or a local directory and a bucket
//! on the S3 server) that share one RAW state table. The lake that wrote a stream's row
//! keeps working; the other one's sync of that stream fails for good, naming both lakes and
//! the fix, and never starts the stream over (it re-reads nothing). `status` of the other
//! lake says the same. A row that names no lake (written by an earlier version) is adopted
//! by the first lake that starts its stream.

use std::time::Duration;

use cdf_emulator::sample_model;
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::failure::Cause;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::LakeIdentity;
use cdf_s3_replicator::status::report::{Agreement, Progress};
use cdf_s3_replicator::status::{self, StatusOptions};
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use cdf_s3_replicator::sync::summary::{RunSummary, StreamStatus};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake};

const PUMPS: usize = 6;
const PUMP_NODES: &str = "plant_schema/PlantModel/1/Pump/nodes";
const SYNC_PATH: &str = "/models/instances/sync";

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(120))
}

/// The lab's configuration with another destination: a second deployment that keeps its
/// state rows in the same RAW table (`state`/`streams`).
async fn context_for(lab: &Lab, lake: &Lake) -> Context {
    let yaml = lab.config_yaml("", None);
    let (head, _) = yaml
        .split_once("destination:\n")
        .expect("the configuration ends with its destination");
    let yaml = format!("{head}destination:\n{}", lake.destination_yaml());
    let config = load_config_text(&yaml, "second deployment", &MapEnv::new())
        .await
        .unwrap_or_else(|e| panic!("configuration loads: {e}\n{yaml}"));
    Context::new(config).expect("context")
}

async fn identity(context: &Context) -> LakeIdentity {
    context
        .destination
        .read_identity()
        .await
        .expect("the identity reads")
        .expect("the lake has an identity")
}

fn sync_requests(lab: &Lab) -> usize {
    lab.emulator
        .control()
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with(SYNC_PATH))
        .count()
}

fn assert_caught_up_without_resets(summary: &RunSummary, label: &str) {
    assert!(summary.is_success(), "{label}: {summary:#?}");
    assert_eq!(summary.cursor_resets, 0, "{label}: {summary:#?}");
    for stream in &summary.streams {
        assert_eq!(
            stream.status,
            StreamStatus::CaughtUp,
            "{label}: {stream:#?}"
        );
    }
}

/// Lake A syncs; lake B (same state table) then fails every stream permanently without a
/// single sync request, and its status says why; lake A keeps syncing changes without a
/// resync. On the old code B started every stream over (`TableBehindState`) and re-read
/// every view, on every run.
async fn a_second_lake_leaves_the_first_lakes_rows_alone(lab: Lab, second: Lake) {
    let first = lab.context("").await;
    let summary = jobs::sync(
        &SyncJob::from_context(&first),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{summary:#?}");
    let first_id = identity(&first).await;
    let row_before = lab.state_row(PUMP_NODES);
    assert_eq!(row_before["columns"]["lakeId"], first_id.lake_id.as_str());
    assert_eq!(
        row_before["columns"]["lakeLocation"],
        first.destination.location()
    );

    let other = context_for(&lab, &second).await;
    let control = lab.emulator.control();
    for run in 1..=2 {
        control.clear_request_log();
        let refused = jobs::sync(
            &SyncJob::from_context(&other),
            &slice(),
            &SyncOptions::default(),
        )
        .await;
        assert_eq!(sync_requests(&lab), 0, "run {run}: nothing is re-read");
        assert_eq!(refused.streams.len(), 5, "{refused:#?}");
        assert_eq!(refused.cursor_resets, 0, "{refused:#?}");
        let other_id = identity(&other).await;
        assert_ne!(other_id.lake_id, first_id.lake_id);
        for stream in &refused.streams {
            assert_eq!(stream.status, StreamStatus::Failed, "{stream:#?}");
            assert_eq!(stream.rows, 0, "{stream:#?}");
            let error = stream.error.as_ref().expect("the failure");
            assert_eq!(error.cause, Cause::StateOfAnotherLake, "{error:?}");
            let json = serde_json::to_value(error).expect("failure serializes");
            assert_eq!(json["retryable"], false, "{json}");
            for part in [
                first_id.lake_id.as_str(),
                first.destination.location().as_str(),
                other_id.lake_id.as_str(),
                other.destination.location().as_str(),
                "state/streams",
                "extractor.state-store.raw.table",
            ] {
                assert!(error.message.contains(part), "{part}: {}", error.message);
            }
        }
        assert_eq!(
            lab.state_row(PUMP_NODES)["columns"],
            row_before["columns"],
            "run {run}: the first lake's row is left as it was"
        );
    }

    let report = status::gather(&other, &StatusOptions::default()).await;
    assert_eq!(report.streams.len(), 5);
    for stream in &report.streams {
        assert_eq!(stream.agreement, Agreement::OtherLake, "{stream:#?}");
        assert_eq!(stream.progress, Progress::Failed, "{stream:#?}");
        assert_eq!(stream.raw_seq, None, "not the other lake's progress");
        let error = stream.error.as_deref().unwrap_or_default();
        assert!(
            error.contains(&first_id.lake_id) && error.contains("belongs to another lake"),
            "{stream:#?}"
        );
    }
    let own = status::gather(&first, &StatusOptions::default()).await;
    for stream in &own.streams {
        assert_eq!(stream.agreement, Agreement::Agree, "{stream:#?}");
        assert_eq!(stream.progress, Progress::CaughtUp, "{stream:#?}");
        assert!(stream.error.is_none(), "{stream:#?}");
    }

    // The first lake keeps working: only the changes are read, no generation starts over.
    lab.update_and_delete_pumps(PUMPS);
    let again = jobs::sync(
        &SyncJob::from_context(&first),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert_caught_up_without_resets(&again, "the first lake after the second one ran");
    let pumps = again
        .streams
        .iter()
        .find(|s| s.stream == PUMP_NODES)
        .expect("Pump stream");
    assert_eq!(pumps.generation, 1, "{pumps:#?}");
    assert!(
        pumps.rows > 0 && pumps.rows <= 2 * PUMPS as u64,
        "only the changes: {pumps:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_local_lakes_sharing_a_state_table() {
    let lab = Lab::start(PUMPS, None).await;
    let second = Lake::local(&lab.dir.path().join("second"));
    a_second_lake_leaves_the_first_lakes_rows_alone(lab, second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_and_an_s3_lake_sharing_a_state_table() {
    let Some(second) = Lake::s3().await else {
        return;
    };
    let lab = Lab::start(PUMPS, None).await;
    a_second_lake_leaves_the_first_lakes_rows_alone(lab, second).await;
}

/// Rows written before rows named their lake carry no `lakeId`: the first lake that starts
/// a stream adopts its row (continuing where it was, without a resync) and writes its id
/// into it; from then on another lake is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_names_no_lake_is_adopted_by_the_first_lake() {
    let lab = Lab::start(PUMPS, None).await;
    let first = lab.context("").await;
    let summary = jobs::sync(
        &SyncJob::from_context(&first),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{summary:#?}");
    let keys: Vec<String> = summary.streams.iter().map(|s| s.stream.clone()).collect();
    for key in &keys {
        let mut row = lab.state_row(key);
        let columns = row["columns"].as_object_mut().expect("columns");
        for column in ["lakeId", "lakeLocation", "seal"] {
            assert!(columns.remove(column).is_some(), "{key}: {column}");
        }
        lab.put_state_row(&row).await;
    }

    let updates = sample_model::updates(PUMPS, 1);
    let pump_updates = updates["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| {
            item["externalId"]
                .as_str()
                .is_some_and(|x| x.starts_with("pump-"))
        })
        .count();
    lab.emulator
        .control()
        .apply_instances(updates)
        .expect("updates");
    let adopted = jobs::sync(
        &SyncJob::from_context(&first),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert_caught_up_without_resets(&adopted, "adopting");
    let pumps = adopted
        .streams
        .iter()
        .find(|s| s.stream == PUMP_NODES)
        .expect("Pump stream");
    assert_eq!(
        pumps.rows, pump_updates as u64,
        "only the changes: {pumps:#?}"
    );
    assert_eq!(pumps.generation, 1, "{pumps:#?}");
    let first_id = identity(&first).await;
    for key in &keys {
        let row = lab.state_row(key);
        assert_eq!(row["columns"]["lakeId"], first_id.lake_id.as_str(), "{row}");
        assert!(row["columns"]["seal"].is_string(), "{row}");
    }

    let second = Lake::local(&lab.dir.path().join("second"));
    let other = context_for(&lab, &second).await;
    let refused = jobs::sync(
        &SyncJob::from_context(&other),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(
        refused.streams.iter().all(|s| s
            .error
            .as_ref()
            .is_some_and(|e| e.cause == Cause::StateOfAnotherLake)),
        "{refused:#?}"
    );
}

/// A lake's first runs race to write its identity; on S3 the conditional create lets one
/// win and every run ends with the winner's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_runs_on_s3_agree_on_one_identity() {
    let Some(lake) = Lake::s3().await else {
        return;
    };
    let lab = Lab::start(1, Some(lake)).await;
    let context = lab.context("").await;
    let runs = (0..8).map(|_| {
        let destination = context.destination.clone();
        tokio::spawn(async move { destination.establish_identity().await })
    });
    let ids: std::collections::BTreeSet<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .map(|joined| joined.expect("task").expect("identity").lake_id)
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let stored: Value = serde_json::to_value(identity(&context).await).expect("identity");
    assert_eq!(stored["lakeId"], json!(ids.first().expect("one id")));
    assert_eq!(stored["location"], context.destination.location());
}
