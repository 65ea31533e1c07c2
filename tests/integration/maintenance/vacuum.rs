//! Vacuum deletes only the files compaction replaced, log cleanup keeps the retention window,
//! and a stream whose newest commit left the log starts a new generation.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cdf_emulator::sample_model;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::maintenance::MaintenanceOptions;
use cdf_s3_replicator::snapshot::SnapshotOptions;
use serde_json::json;

use crate::support::{Lab, neighbour_commits, published_file_spec, python};

use super::{
    TABLES, TINY_BATCHES, assert_success, compaction_commits, duckdb_latest, local_table_dir, only,
    open_table, sync_ok, version_multisets,
};

fn parquet_files(dir: &Path) -> HashSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".parquet"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_with_zero_retention_deletes_only_replaced_files() {
    if python().is_none() {
        return;
    }
    const PUMPS: usize = 30;
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    let compacted = jobs::maintenance(
        &context,
        &JobInputs::everything(),
        &only(true, false, false),
    )
    .await;
    assert_success(&compacted);
    assert!(compacted.files_compacted > 0);

    let mut latest = BTreeMap::new();
    for (folder, kind, _) in TABLES {
        let table = open_table(&context, folder, kind).await;
        let version = table.version().unwrap();
        latest.insert(
            (folder, kind),
            (
                version_multisets(&lab, folder, kind, &[version])[&version].clone(),
                duckdb_latest(&lab, folder, kind),
            ),
        );
    }

    // With the configured retention (7 days) nothing is old enough.
    let kept = jobs::maintenance(
        &context,
        &JobInputs::everything(),
        &only(false, false, true),
    )
    .await;
    assert_success(&kept);
    assert_eq!(kept.files_vacuumed, 0, "{kept:#?}");

    let zero = MaintenanceOptions {
        vacuum_retention: Some(Duration::ZERO),
        ..only(false, false, true)
    };
    let dry = jobs::maintenance(
        &context,
        &JobInputs::everything(),
        &MaintenanceOptions {
            dry_run: true,
            ..zero.clone()
        },
    )
    .await;
    assert_success(&dry);
    assert_eq!(dry.files_vacuumed, compacted.files_compacted, "{dry:#?}");

    let mut before = BTreeMap::new();
    for (folder, kind, _) in TABLES {
        before.insert(
            (folder, kind),
            parquet_files(&local_table_dir(&lab, folder, kind)),
        );
    }
    let vacuumed = jobs::maintenance(&context, &JobInputs::everything(), &zero).await;
    assert_success(&vacuumed);
    assert_eq!(
        vacuumed.files_vacuumed, compacted.files_compacted,
        "{vacuumed:#?}"
    );

    for (folder, kind, _) in TABLES {
        let label = format!("{folder}/{kind}");
        let dir = local_table_dir(&lab, folder, kind);
        let table = open_table(&context, folder, kind).await;
        let active: HashSet<String> = table
            .active_files()
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        let on_disk = parquet_files(&dir);
        assert_eq!(on_disk, active, "{label}: exactly the active files remain");
        let deleted: HashSet<&String> = before[&(folder, kind)].difference(&on_disk).collect();
        let log = table.changes_since(None).await.unwrap();
        let replaced: HashSet<&String> = compaction_commits(&log)
            .iter()
            .flat_map(|(c, _)| c.removes.iter().map(|r| &r.path))
            .collect();
        assert_eq!(
            deleted, replaced,
            "{label}: vacuum deleted the replaced files"
        );
        // Every commit file is still there: the log is kept for the table's log retention.
        assert_eq!(log.len() as u64, table.version().unwrap() + 1, "{label}");
        let version = table.version().unwrap();
        let (rows, duckdb) = &latest[&(folder, kind)];
        assert_eq!(
            &version_multisets(&lab, folder, kind, &[version])[&version],
            rows,
            "{label}"
        );
        assert_eq!(&duckdb_latest(&lab, folder, kind), duckdb, "{label} DuckDB");
    }
    assert_eq!(vacuumed.logs_deleted, 0);
    lab.assert_all_tables_match("after vacuum");
}

/// Sets a file's modification time `days` days back (local lakes only).
fn age(path: &Path, days: u32) {
    let status = Command::new("touch")
        .arg("-d")
        .arg(format!("{days} days ago"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_cleanup_keeps_the_retention_window() {
    if python().is_none() {
        return;
    }
    const PUMPS: usize = 30;
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    let checkpointed = jobs::maintenance(
        &context,
        &JobInputs::everything(),
        &only(false, true, false),
    )
    .await;
    assert_success(&checkpointed);
    lab.emulator
        .control()
        .apply_instances(sample_model::updates(PUMPS, 1))
        .unwrap();
    sync_ok(&context).await;

    let (folder, kind) = ("WorkOrder", "nodes");
    let table = open_table(&context, folder, kind).await;
    let checkpoint = table.last_checkpoint_version().await.unwrap().unwrap();
    let latest = table.version().unwrap();
    assert!(latest > checkpoint, "commits after the checkpoint");
    let rows = version_multisets(&lab, folder, kind, &[latest])[&latest].clone();
    let duckdb = duckdb_latest(&lab, folder, kind);
    // The commits up to the checkpoint become 40 days old: older than the table's log
    // retention (30 days), younger than a configured retention of 60 days.
    let log_dir = local_table_dir(&lab, folder, kind).join("_delta_log");
    for version in 0..=checkpoint {
        age(&log_dir.join(format!("{version:020}.json")), 40);
    }

    let long = MaintenanceOptions {
        vacuum_retention: Some(Duration::from_secs(60 * 24 * 3600)),
        ..only(false, false, true)
    };
    let kept = jobs::maintenance(&context, &JobInputs::everything(), &long).await;
    assert_success(&kept);
    assert_eq!(
        kept.logs_deleted, 0,
        "younger than the configured retention"
    );

    let cleaned = jobs::maintenance(
        &context,
        &JobInputs::everything(),
        &only(false, false, true),
    )
    .await;
    assert_success(&cleaned);
    let report = cleaned
        .tables
        .iter()
        .find(|t| t.table.ends_with("views/WorkOrder/nodes"))
        .unwrap();
    // Commits older than the checkpoint go; the checkpoint's own commit and all later stay.
    assert_eq!(report.logs_deleted as u64, checkpoint, "{report:#?}");
    for version in 0..=latest {
        let exists = log_dir.join(format!("{version:020}.json")).exists();
        assert_eq!(exists, version >= checkpoint, "commit {version}");
    }

    // Readers start from the checkpoint; the sync resumes; compaction leaves alone what it
    // can no longer place in the log and still merges the newer files.
    assert_eq!(
        version_multisets(&lab, folder, kind, &[latest])[&latest],
        rows
    );
    assert_eq!(duckdb_latest(&lab, folder, kind), duckdb);
    let idle = sync_ok(&context).await;
    assert_eq!(idle.commits, 0, "{idle:#?}");
    let compacted = jobs::maintenance(
        &context,
        &JobInputs::everything(),
        &only(true, false, false),
    )
    .await;
    assert_success(&compacted);
    let table = open_table(&context, folder, kind).await;
    let log = table
        .changes_between(checkpoint, table.version().unwrap())
        .await
        .unwrap();
    for (_, info) in compaction_commits(&log) {
        assert!(
            info.first_version >= checkpoint,
            "{info:?} reaches before the readable log"
        );
    }
    let latest = table.version().unwrap();
    assert_eq!(
        version_multisets(&lab, folder, kind, &[latest])[&latest],
        rows
    );
    lab.assert_all_tables_match("after log cleanup");
}

/// A stream whose newest commit is gone from the log (log cleanup) while RAW is behind it (a
/// crash between that commit and its RAW write, long ago) cannot know its cursor. It starts
/// a new generation numbered above every earlier one instead of failing on every run, and
/// the published files still equal the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_commit_left_the_log_starts_a_new_generation() {
    if python().is_none() {
        return;
    }
    const PUMPS: usize = 20;
    let pump_key = "plant_schema/PlantModel/1/Pump/nodes";
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    let control = lab.emulator.control();
    let stale_row = lab.state_row(pump_key);
    control
        .apply_instances(sample_model::updates(PUMPS, 1))
        .unwrap();
    sync_ok(&context).await;
    neighbour_commits(&lab, "Pump", "nodes", 1, 3).await;

    let mut table = open_table(&context, "Pump", "nodes").await;
    table.create_checkpoint().await.unwrap();
    let checkpoint = table.last_checkpoint_version().await.unwrap().unwrap();
    let log_dir = local_table_dir(&lab, "Pump", "nodes").join("_delta_log");
    for version in 0..checkpoint {
        age(&log_dir.join(format!("{version:020}.json")), 40);
    }
    let removed = table
        .cleanup_logs(Duration::from_secs(30 * 24 * 3600))
        .await
        .unwrap();
    assert!(removed > 0, "the stream's commits left the log");
    lab.put_state_row(&stale_row).await;

    control
        .apply_instances(sample_model::updates(PUMPS, 2))
        .unwrap();
    control
        .delete_instances(sample_model::deletions(PUMPS))
        .unwrap();
    let summary = sync_ok(&context).await;
    let pump = summary
        .streams
        .iter()
        .find(|s| s.stream == pump_key)
        .expect("Pump stream report");
    assert_eq!(pump.cursor_resets, 1, "{pump:#?}");
    assert!(pump.generation > checkpoint, "{pump:#?}");
    let published = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(published.is_success(), "{published:#?}");
    let files = json!({
        "nodes": published_file_spec(&lab, "nodes", Some("Pump"), "Pump", &json!({})),
        "edges": published_file_spec(&lab, "edges", Some("PumpWorkOrder"), "Pump", &json!({})),
    });
    let report = lab.check_published("Pump", files.clone()).expect("python");
    for kind in ["nodes", "edges"] {
        let expected = files[kind]["truth"].as_array().map_or(0, Vec::len);
        for reader in ["pyarrow", "duckdb"] {
            let r = &report["files"][kind][reader];
            assert_eq!(r["mismatch_count"], 0, "Pump/{kind} ({reader}): {r}");
            assert_eq!(r["rows"], expected, "Pump/{kind} ({reader}) rows");
        }
    }
}
