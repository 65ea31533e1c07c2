//! `status` against a real lake (local directory and the S3 server) and the CDF emulator:
//! what it says after a partial backfill, after catching up, after a snapshot, after more
//! changes and after a failing sync, that its figures are the sync summaries', that the CLI
//! prints the documented JSON, and that it writes nothing (no RAW row, no extraction
//! pipeline run, no object in the lake).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use cdf_emulator::FaultSpec;
use cdf_s3_replicator::context::Context;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::snapshot::SnapshotOptions;
use cdf_s3_replicator::status::report::{Agreement, Freshness, Progress, StatusReport};
use cdf_s3_replicator::status::{self, StatusOptions};
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use cdf_s3_replicator::sync::state::Phase;
use cdf_s3_replicator::sync::summary::{RunSummary, StreamStatus};
use futures::TryStreamExt as _;
use serde_json::Value;
use tokio::time::Instant;

use crate::support::{Lab, Lake};

const PUMPS: usize = 60;
const SYNC: &str = "/models/instances/sync";
/// Small pages, a commit every two pages, one stream at a time, no margin: a short slice
/// ends in the middle of the 60-pump backfill.
/// Compaction merges as few as two files, so that maintenance commits to the tables.
const SMALL: &str = "  subscription-batch-size: 10\n  ingest-batch-size: 20\n  parallelism: 1\n  deadline-margin: 0s\n  maintenance:\n    compact-min-files: 2\n";

fn until(secs: u64) -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(secs))
}

/// Every object under the destination prefix with its size and last-modified time.
async fn lake_objects(context: &Context) -> BTreeMap<String, (u64, String)> {
    let store = context.destination.object_store().expect("object store");
    store
        .list(None)
        .map_ok(|meta| {
            (
                meta.location.to_string(),
                (meta.size, meta.last_modified.to_rfc3339()),
            )
        })
        .try_collect()
        .await
        .expect("listing the lake")
}

/// Runs status, checking that it made no write request to CDF and changed nothing in the
/// lake.
async fn read_only_status(lab: &Lab, context: &Context) -> StatusReport {
    let before = lake_objects(context).await;
    let control = lab.emulator.control();
    control.clear_request_log();
    let report = status::gather(context, &StatusOptions::default()).await;
    assert_no_writes(lab, "status");
    assert_eq!(
        lake_objects(context).await,
        before,
        "status changed the lake"
    );
    report
}

/// No RAW insert or delete, no extraction pipeline run, no sync call in the request log.
fn assert_no_writes(lab: &Lab, what: &str) {
    let log = lab.emulator.control().request_log();
    assert!(!log.is_empty(), "{what} read CDF");
    for request in &log {
        let raw_write = request.path.contains("/raw/")
            && request.method == "POST"
            && (request.path.ends_with("/rows") || request.path.ends_with("/delete"));
        assert!(
            !raw_write && !request.path.contains("/extpipes/runs") && !request.path.ends_with(SYNC),
            "{what} made a write request: {} {}",
            request.method,
            request.path
        );
    }
    assert!(
        log.iter()
            .any(|r| r.method == "GET" && r.path.contains("/raw/dbs/state/tables/streams/rows")),
        "{what} read the state rows: {log:#?}"
    );
}

fn stream<'a>(
    report: &'a StatusReport,
    key: &str,
) -> &'a cdf_s3_replicator::status::report::StreamStatus {
    report
        .streams
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("{key} in {report:#?}"))
}

fn file<'a>(
    report: &'a StatusReport,
    view: &str,
    kind: &str,
) -> &'a cdf_s3_replicator::status::report::PublishedFileStatus {
    report
        .views
        .iter()
        .find(|v| v.view == view)
        .and_then(|v| v.files.iter().find(|f| f.kind == kind))
        .unwrap_or_else(|| panic!("{view}/{kind} in {report:#?}"))
}

/// Rows each stream committed over the given summaries.
fn rows_by_stream(summaries: &[&RunSummary]) -> BTreeMap<String, u64> {
    let mut rows = BTreeMap::new();
    for summary in summaries {
        for s in &summary.streams {
            *rows.entry(s.stream.clone()).or_default() += s.rows;
        }
    }
    rows
}

async fn status_follows_the_lake(lab: Lab) {
    let context = lab.context(SMALL).await;
    let job = SyncJob::from_context(&context);
    let control = lab.emulator.control();

    // Nothing ran yet: every stream and file is shown as such, not as an error.
    let fresh = read_only_status(&lab, &context).await;
    assert_eq!(fresh.streams.len(), 5, "{fresh:#?}");
    assert!(fresh.state_error.is_none() && fresh.plan_errors.is_empty());
    for s in &fresh.streams {
        assert_eq!(
            (s.progress, s.agreement, s.phase, s.error.as_deref()),
            (Progress::NotStarted, Agreement::NotStarted, None, None),
            "{s:#?}"
        );
    }
    assert!(
        fresh
            .views
            .iter()
            .flat_map(|v| &v.files)
            .all(|f| f.freshness == Freshness::Unpublished && f.error.is_none()),
        "{fresh:#?}"
    );

    // A one-second slice of 300 ms pages over the Pump streams (60 nodes and 120 edges in
    // pages of 10) ends in the middle of their backfill, however fast the machine is.
    control.add_fault(FaultSpec::delay(SYNC, 300, 1_000_000));
    let partial = jobs::sync(
        &job,
        &until(1).with_views(["Pump"]).expect("a view name"),
        &SyncOptions::default(),
    )
    .await;
    control.clear_faults();
    assert_eq!(partial.streams_failed, 0, "{partial:#?}");
    let report = read_only_status(&lab, &context).await;
    let mut backfilling = 0;
    for summary in &partial.streams {
        let s = stream(&report, &summary.stream);
        if summary.generation == 0 {
            // Never got a turn in the slice.
            assert_eq!(s.progress, Progress::NotStarted, "{s:#?}");
            continue;
        }
        assert_eq!(s.generation, Some(summary.generation), "{s:#?}");
        assert_eq!(s.rows, Some(summary.rows), "{s:#?}");
        match summary.status {
            StreamStatus::CaughtUp => {
                assert_eq!(
                    (s.phase, s.progress),
                    (Some(Phase::Streaming), Progress::CaughtUp)
                );
            }
            StreamStatus::Behind => {
                assert_eq!(s.progress, Progress::Behind, "{s:#?}");
                if s.phase == Some(Phase::Backfill) {
                    backfilling += 1;
                }
            }
            other => panic!("{other:?} in a partial slice: {summary:#?}"),
        }
        let expected = if summary.commits > 0 {
            Agreement::Agree
        } else {
            Agreement::NoCommits
        };
        assert_eq!(s.agreement, expected, "{s:#?}");
    }
    assert!(
        backfilling > 0,
        "a stream is behind in its backfill: {report:#?}"
    );

    // Catching up: every stream streaming and caught up, with the rows of both summaries.
    let rest = jobs::sync(&job, &until(300), &SyncOptions::default()).await;
    assert!(rest.is_success(), "{rest:#?}");
    let report = read_only_status(&lab, &context).await;
    let rows = rows_by_stream(&[&partial, &rest]);
    for s in &report.streams {
        assert_eq!(
            (s.phase, s.progress, s.agreement, s.generation),
            (
                Some(Phase::Streaming),
                Progress::CaughtUp,
                Agreement::Agree,
                Some(1)
            ),
            "{s:#?}"
        );
        assert_eq!(s.rows, rows.get(&s.key).copied(), "{s:#?}");
        assert!(s.rows.unwrap_or(0) > 0, "{s:#?}");
        assert!(s.last_success.is_some() && s.lag_ms.is_some() && s.last_error.is_none());
        assert_eq!(s.raw_seq, s.delta_seq, "{s:#?}");
    }
    assert!(
        report
            .views
            .iter()
            .flat_map(|v| &v.files)
            .all(|f| f.freshness == Freshness::Unpublished),
        "nothing is published before the first snapshot: {report:#?}"
    );

    // After a snapshot every file is current and has an age.
    let published = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(published.is_success(), "{published:#?}");
    let report = read_only_status(&lab, &context).await;
    for view in &report.views {
        for f in &view.files {
            assert_eq!(f.freshness, Freshness::Current, "{}: {f:#?}", view.view);
            assert!(f.age_ms.is_some() && f.published_at.is_some(), "{f:#?}");
            assert!(f.last_modified.is_some(), "{f:#?}");
            assert_eq!(f.published_version, f.table_version, "{f:#?}");
        }
    }
    let pumps = file(&report, "Pump", "nodes");
    assert_eq!(pumps.rows, Some(PUMPS as u64), "{pumps:#?}");

    // Compaction after the snapshot moves the table versions on without changing data:
    // the files stay current.
    let maintained = jobs::maintenance(
        &context,
        &JobInputs::everything(),
        &cdf_s3_replicator::maintenance::MaintenanceOptions {
            vacuum: false,
            ..Default::default()
        },
    )
    .await;
    assert!(maintained.is_success(), "{maintained:#?}");
    let report = read_only_status(&lab, &context).await;
    let mut compacted = 0;
    for f in report.views.iter().flat_map(|v| &v.files) {
        assert_eq!(f.freshness, Freshness::Current, "after maintenance: {f:#?}");
        compacted += usize::from(f.table_version > f.published_version);
    }
    assert!(
        compacted > 0,
        "maintenance committed to some table: {report:#?}"
    );
    let pumps = file(&report, "Pump", "nodes");
    assert_eq!(
        pumps.table_rows,
        stream(&report, "plant_schema/PlantModel/1/Pump/nodes").rows,
        "one stream writes the Pump nodes table"
    );

    // Changes synced after the snapshot (pumps and work orders): their files are behind.
    lab.update_and_delete_pumps(PUMPS);
    let changes = jobs::sync(&job, &until(300), &SyncOptions::default()).await;
    assert!(changes.is_success(), "{changes:#?}");
    let report = read_only_status(&lab, &context).await;
    let pumps = file(&report, "Pump", "nodes");
    assert_eq!(pumps.freshness, Freshness::Behind, "{pumps:#?}");
    assert!(pumps.table_version > pumps.published_version, "{pumps:#?}");
    assert_eq!(
        file(&report, "WorkOrder", "nodes").freshness,
        Freshness::Behind
    );
    // No stream writes Site edges: its empty file cannot fall behind.
    assert_eq!(file(&report, "Site", "edges").freshness, Freshness::Current);
    let rows = rows_by_stream(&[&partial, &rest, &changes]);
    for s in &report.streams {
        assert_eq!(s.rows, rows.get(&s.key).copied(), "{s:#?}");
    }

    // A failing sync: each stream shows its error, without the secret CDF echoed.
    let body = r#"{"error":{"code":403,"message":"Forbidden for client secret emulator-secret"}}"#;
    control.add_fault(FaultSpec::raw(SYNC, 403, body, 1_000_000));
    let failed = jobs::sync(&job, &until(300), &SyncOptions::default()).await;
    control.clear_faults();
    assert_eq!(failed.streams_failed, 5, "{failed:#?}");
    let report = read_only_status(&lab, &context).await;
    for s in &report.streams {
        assert_eq!(s.progress, Progress::Failed, "{s:#?}");
        let error = s.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("403"), "{s:#?}");
        assert!(!error.contains("emulator-secret"), "{s:#?}");
        assert_eq!(s.agreement, Agreement::Agree, "{s:#?}");
    }
    let table = cdf_s3_replicator::status::render::render(&report);
    assert!(
        table.contains("failed") && !table.contains("emulator-secret"),
        "{table}"
    );

    // The CLI: documented JSON fields, exit code 0, and still no write.
    let config = lab.config_file(SMALL);
    control.clear_request_log();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"))
            .args(["status", "--json", "--config"])
            .arg(config)
            .output()
            .expect("CLI runs")
    })
    .await
    .expect("CLI task");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_no_writes(&lab, "status --json");
    let json: Value = serde_json::from_slice(&output.stdout).expect("status --json is JSON");
    for field in [
        "generatedAt",
        "generatedAtMs",
        "stateTable",
        "planErrors",
        "streams",
        "views",
    ] {
        assert!(json.get(field).is_some(), "{field} in {json:#}");
    }
    assert_eq!(json["stateTable"], "state/streams");
    let streams = json["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 5);
    for s in streams {
        for field in [
            "key",
            "model",
            "view",
            "table",
            "tablePath",
            "phase",
            "progress",
            "generation",
            "rows",
            "lastSuccess",
            "lastSuccessMs",
            "lastSuccessAgeMs",
            "lagMs",
            "lastError",
            "checkpointSource",
            "agreement",
            "rawSeq",
            "deltaSeq",
            "queryChanged",
            "error",
        ] {
            assert!(s.get(field).is_some(), "{field} in {s:#}");
        }
        assert_eq!(s["phase"], "streaming", "{s:#}");
        assert_eq!(s["progress"], "failed", "{s:#}");
        assert_eq!(s["agreement"], "agree", "{s:#}");
    }
    let pump_nodes = json["views"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["view"] == "Pump")
        .flat_map(|v| v["files"].as_array().cloned().unwrap_or_default())
        .find(|f| f["kind"] == "nodes")
        .expect("Pump nodes file");
    for field in [
        "path",
        "freshness",
        "publishedAt",
        "ageMs",
        "lastModified",
        "publishedVersion",
        "tableVersion",
        "rows",
        "tableRows",
        "error",
    ] {
        assert!(pump_nodes.get(field).is_some(), "{field} in {pump_nodes:#}");
    }
    assert_eq!(pump_nodes["freshness"], "behind", "{pump_nodes:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_local_lake() {
    status_follows_the_lake(Lab::start(PUMPS, None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_an_s3_lake() {
    let Some(lake) = Lake::s3().await else { return };
    status_follows_the_lake(Lab::start(PUMPS, Some(lake)).await).await;
}

/// A state row that does not parse, and one whose error text holds a secret: both are
/// shown in their stream's row, the secret redacted, and the rest of the report stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_and_secret_bearing_state_rows_stay_in_their_row() {
    let lab = Lab::start(5, None).await;
    let context = lab.context("").await;
    let summary = jobs::sync(
        &SyncJob::from_context(&context),
        &until(300),
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{summary:#?}");
    let site = "plant_schema/PlantModel/1/Site/nodes";
    let pump = "plant_schema/PlantModel/1/Pump/nodes";
    let mut broken = lab.state_row(site);
    broken["columns"]["generation"] = Value::from("not a number");
    lab.put_state_row(&broken).await;
    let mut leaky = lab.state_row(pump);
    leaky["columns"]["lastError"] = Value::from("sync failed: echoed emulator-secret");
    lab.put_state_row(&leaky).await;

    let report = read_only_status(&lab, &context).await;
    let s = stream(&report, site);
    assert_eq!(s.agreement, Agreement::Unknown, "{s:#?}");
    assert!(
        s.error
            .as_deref()
            .unwrap_or_default()
            .contains("does not parse"),
        "{s:#?}"
    );
    let p = stream(&report, pump);
    assert_eq!(p.progress, Progress::Failed, "{p:#?}");
    assert_eq!(p.last_error.as_deref(), Some("sync failed: echoed ***"));
    let others = report
        .streams
        .iter()
        .filter(|s| s.key != site && s.key != pump);
    for s in others {
        assert_eq!(s.progress, Progress::CaughtUp, "{s:#?}");
    }
}
