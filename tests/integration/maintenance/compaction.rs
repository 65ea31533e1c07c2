//! Compaction keeps every version's rows and the arrival order, and compacts generations
//! apart; each compaction commit is checked against the log and the files.

use std::collections::{BTreeMap, HashSet};

use cdf_emulator::sample_model;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::{CompactionInfo, LakeTable};
use cdf_s3_replicator::maintenance::{MaintenanceOptions, TableStatus};
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake, python};

use super::{
    TABLES, TINY_BATCHES, assert_success, compaction_commits, duckdb_latest, local_table_dir, only,
    open_table, read, slice, sync_ok, version_multisets,
};

/// Checks every compaction commit of a table against the log and the files: it carries no
/// txn, rewrites with `dataChange=false`, replaced files of exactly the stream and generation
/// it names, only data of that stream lies inside its version range, and the merged file
/// holds the replaced rows in arrival order (local lakes only: the files are read by path).
async fn check_compaction_commits(
    lab: &Lab,
    table: &LakeTable,
    folder: &str,
    kind: &str,
) -> Vec<CompactionInfo> {
    let label = format!("{folder}/{kind}");
    let log = table.changes_since(None).await.unwrap();
    let mut infos = Vec::new();
    for (commit, info) in compaction_commits(&log) {
        assert!(commit.txns.is_empty(), "{label}: no txn in a compaction");
        assert!(commit.stream_commit.is_none());
        assert_eq!(commit.operation.as_deref(), Some("OPTIMIZE"));
        assert_eq!(commit.adds.len(), 1);
        assert_eq!(commit.removes.len(), info.source_files);
        assert!(
            commit
                .adds
                .iter()
                .chain(&commit.removes)
                .all(|f| !f.data_change)
        );
        let removed: HashSet<&str> = commit.removes.iter().map(|r| r.path.as_str()).collect();
        // Where the replaced files came from, in arrival order: the sync commits of the
        // range, or earlier compactions of it.
        let mut sources = Vec::new();
        for source in &log[info.first_version as usize..commit.version as usize] {
            let added: Vec<&str> = source
                .adds
                .iter()
                .filter(|a| removed.contains(a.path.as_str()))
                .map(|a| a.path.as_str())
                .collect();
            if added.is_empty() {
                continue;
            }
            match (CompactionInfo::of_commit(source), &source.stream_commit) {
                (Some(earlier), _) => {
                    assert_eq!(
                        (&earlier.app_id, earlier.generation),
                        (&info.app_id, info.generation),
                        "{label}"
                    );
                    assert!(
                        earlier.first_version >= info.first_version
                            && earlier.last_version <= info.last_version
                    );
                }
                (None, Some(stream)) => {
                    assert!(source.version <= info.last_version, "{label}");
                    assert_eq!(stream.app_id, info.app_id, "{label}");
                    assert_eq!(stream.metadata.generation, Some(info.generation), "{label}");
                }
                (None, None) => panic!("{label}: a replaced file of an unknown commit"),
            }
            sources.push((
                CompactionInfo::of_commit(source).map_or(source.version, |e| e.first_version),
                added,
            ));
        }
        sources.sort_by_key(|(first, _)| *first);
        let sources: Vec<&str> = sources.into_iter().flat_map(|(_, paths)| paths).collect();
        assert_eq!(sources.len(), info.source_files, "{label}");
        // No other stream's (or generation's) data arrived inside the range.
        for other in &log[info.first_version as usize..=info.last_version as usize] {
            if let Some(stream) = &other.stream_commit
                && other.adds.iter().any(|a| a.data_change)
            {
                assert_eq!(
                    stream.app_id, info.app_id,
                    "{label}: version {}",
                    other.version
                );
                assert_eq!(stream.metadata.generation, Some(info.generation), "{label}");
            }
        }
        if let Lake::Local(_) = lab.lake {
            let dir = local_table_dir(lab, folder, kind);
            if sources.iter().all(|p| dir.join(p).exists()) {
                let mut paths: Vec<String> = sources
                    .iter()
                    .map(|p| dir.join(p).display().to_string())
                    .collect();
                paths.push(dir.join(&commit.adds[0].path).display().to_string());
                let rows = read(lab, "files", json!({ "paths": paths }));
                let rows = rows.as_array().unwrap();
                let (merged, sources) = rows.split_last().unwrap();
                let concatenated: Vec<&Value> =
                    sources.iter().flat_map(|f| f.as_array().unwrap()).collect();
                let merged: Vec<&Value> = merged.as_array().unwrap().iter().collect();
                assert_eq!(
                    merged, concatenated,
                    "{label}: rows of {info:?} in arrival order"
                );
            }
        }
        infos.push(info);
    }
    infos
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_version_and_the_arrival_order() {
    if python().is_none() {
        return;
    }
    const PUMPS: usize = 40;
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    let control = lab.emulator.control();
    control
        .apply_instances(sample_model::updates(PUMPS, 1))
        .unwrap();
    control
        .delete_instances(sample_model::deletions(PUMPS))
        .unwrap();
    sync_ok(&context).await;

    // Before: every version's row multiset, DuckDB's latest, the file count.
    let mut before = BTreeMap::new();
    for (folder, kind, _) in TABLES {
        let table = open_table(&context, folder, kind).await;
        let latest = table.version().unwrap();
        let versions: Vec<u64> = (0..=latest).collect();
        let files = table.active_files().unwrap().len();
        assert!(
            files >= 2,
            "{folder}/{kind}: tiny batches give several files"
        );
        before.insert(
            (folder, kind),
            (
                latest,
                files,
                version_multisets(&lab, folder, kind, &versions),
                duckdb_latest(&lab, folder, kind),
            ),
        );
    }

    // A dry run plans without writing.
    let dry = jobs::maintenance(
        &context,
        &JobInputs::everything(),
        &MaintenanceOptions {
            dry_run: true,
            ..MaintenanceOptions::default()
        },
    )
    .await;
    assert_success(&dry);
    assert!(dry.files_compacted > 0, "{dry:#?}");
    assert!(dry.tables.iter().all(|t| t.status == TableStatus::Planned));
    // A run whose deadline has passed defers every table.
    let late = jobs::maintenance(
        &context,
        &JobInputs::until(Instant::now()),
        &MaintenanceOptions::default(),
    )
    .await;
    assert_eq!(late.tables_deferred, TABLES.len(), "{late:#?}");
    for (folder, kind, _) in TABLES {
        let table = open_table(&context, folder, kind).await;
        assert_eq!(
            table.version(),
            Some(before[&(folder, kind)].0),
            "dry and late runs write nothing"
        );
    }

    let summary =
        jobs::maintenance(&context, &JobInputs::everything(), &only(true, true, false)).await;
    assert_success(&summary);
    assert!(
        summary.files_compacted > summary.files_written,
        "{summary:#?}"
    );
    eprintln!("{}", summary.one_line());

    for (folder, kind, _) in TABLES {
        let (old_latest, old_files, old_versions, old_duckdb) = &before[&(folder, kind)];
        let label = format!("{folder}/{kind}");
        let report = summary
            .tables
            .iter()
            .find(|t| t.table.ends_with(&format!("views/{folder}/{kind}")))
            .unwrap_or_else(|| panic!("{label} in the summary"));
        assert_eq!(report.status, TableStatus::Done, "{report:#?}");
        let mut table = open_table(&context, folder, kind).await;
        let latest = table.version().unwrap();
        let files = table.active_files().unwrap().len();
        assert!(
            files < *old_files,
            "{label}: {old_files} files before, {files} after"
        );
        assert_eq!(files, report.files_after, "{label}");
        assert_eq!(
            old_files - report.files_compacted + report.files_written,
            files,
            "{label}"
        );
        // Every version that existed reads the same rows; every new version reads the
        // rows of the old latest.
        let versions: Vec<u64> = (0..=latest).collect();
        let now = version_multisets(&lab, folder, kind, &versions);
        for version in versions {
            let expected = &old_versions[&version.min(*old_latest)];
            assert_eq!(&now[&version], expected, "{label} version {version}");
        }
        assert_eq!(
            &duckdb_latest(&lab, folder, kind),
            old_duckdb,
            "{label} DuckDB"
        );
        if latest >= 4 {
            assert!(report.checkpoint_version.is_some(), "{report:#?}");
            assert_eq!(
                table.last_checkpoint_version().await.unwrap(),
                report.checkpoint_version
            );
        }

        let infos = check_compaction_commits(&lab, &table, folder, kind).await;
        assert_eq!(infos.len(), report.files_written, "{label}");
        // The table refreshes fine after the checkpoint.
        table.refresh().await.unwrap();
    }

    // The sync continues over compaction commits, and a second compaction merges the new
    // files with the earlier merged ones.
    control
        .apply_instances(sample_model::updates(PUMPS, 2))
        .unwrap();
    sync_ok(&context).await;
    let again =
        jobs::maintenance(&context, &JobInputs::everything(), &only(true, true, false)).await;
    assert_success(&again);
    let mut merged_again = false;
    for (folder, kind, _) in TABLES {
        let table = open_table(&context, folder, kind).await;
        let infos = check_compaction_commits(&lab, &table, folder, kind).await;
        // A merged file that is still small is merged again with the newer files.
        merged_again |= infos
            .windows(2)
            .any(|w| w[1].first_version <= w[0].first_version);
    }
    assert!(merged_again, "{again:#?}");
    lab.assert_all_tables_match("after two compactions");
    // An idle sync still writes nothing: its resume point survived the compactions.
    let idle = sync_ok(&context).await;
    assert_eq!((idle.rows, idle.commits), (0, 0), "{idle:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generations_are_compacted_apart() {
    if python().is_none() {
        return;
    }
    const PUMPS: usize = 40;
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    // A forced resync starts generation 2 of the Pump streams with a full backfill; the
    // rows of generation 1 stay in the table as history.
    let resync = SyncOptions {
        force_resync: vec!["Pump".into()],
        ..SyncOptions::default()
    };
    let summary = jobs::sync(&SyncJob::from_context(&context), &slice(), &resync).await;
    assert!(summary.is_success(), "{summary:#?}");
    assert!(
        summary.streams.iter().any(|s| s.generation == 2),
        "{summary:#?}"
    );

    let table = open_table(&context, "Pump", "nodes").await;
    let latest = table.version().unwrap();
    let versions: Vec<u64> = (0..=latest).collect();
    let before = version_multisets(&lab, "Pump", "nodes", &versions);

    let compacted = jobs::maintenance(
        &context,
        &JobInputs::everything(),
        &only(true, false, false),
    )
    .await;
    assert_success(&compacted);
    let table = open_table(&context, "Pump", "nodes").await;
    let infos = check_compaction_commits(&lab, &table, "Pump", "nodes").await;
    let generations: HashSet<u64> = infos.iter().map(|i| i.generation).collect();
    assert_eq!(generations, HashSet::from([1, 2]), "{infos:#?}");
    let now = version_multisets(&lab, "Pump", "nodes", &versions);
    // (The truth comparison does not apply here: a resync writes every row again, in the
    // new generation, which only the snapshot's generation filter resolves.)
    assert_eq!(now, before);
}
