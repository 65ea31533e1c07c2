//! Races, step by step: a compaction against another compaction and against an append, and
//! compaction while a sync runs (local directory and S3 server), losing and duplicating
//! nothing.

use cdf_emulator::sample_model;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::{CompactionOptions, CompactionOutcome, LakeTable};
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;

use crate::support::{Lab, Lake, python};

use super::{
    TABLES, TINY_BATCHES, compaction_commits, local_table_dir, only, open_table, slice, sync_ok,
};

async fn races(lake: Option<Lake>) {
    const PUMPS: usize = 30;
    let lab = Lab::start(PUMPS, lake).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    let options = CompactionOptions {
        min_files: 2,
        ..CompactionOptions::default()
    };

    // Two compactions of the same files: the second must not land (it would duplicate
    // every row of the group).
    let mut first = open_table(&context, "WorkOrder", "nodes").await;
    let mut second = open_table(&context, "WorkOrder", "nodes").await;
    let rows_before = row_count(&first);
    let plan_a = first.plan_compaction(&options).await.unwrap();
    let plan_b = second.plan_compaction(&options).await.unwrap();
    assert_eq!(plan_a, plan_b);
    let group = plan_a.groups.first().expect("a group to compact").clone();
    let prepared_a = first.prepare_compaction(&group).await.unwrap();
    let prepared_b = second.prepare_compaction(&group).await.unwrap();
    let loser_output = prepared_b.output_path();
    let won = first.commit_compaction(prepared_a, &options).await.unwrap();
    assert!(
        matches!(
            won,
            CompactionOutcome::Committed {
                delta_version: Some(_),
                conflicts: 0
            }
        ),
        "{won:?}"
    );
    let lost = second
        .commit_compaction(prepared_b, &options)
        .await
        .unwrap();
    match &lost {
        CompactionOutcome::Skipped { reason, conflicts } => {
            assert!(
                reason.contains("removed by a concurrent commit"),
                "{reason}"
            );
            assert_eq!(*conflicts, 1);
        }
        other => panic!("the second compaction of the same files landed: {other:?}"),
    }
    first.refresh().await.unwrap();
    assert_eq!(row_count(&first), rows_before, "no duplicated rows");
    assert!(
        !first
            .active_files()
            .unwrap()
            .iter()
            .any(|f| f.path == loser_output),
        "the loser's file is not referenced"
    );
    if let Lake::Local(_) = lab.lake {
        let dir = local_table_dir(&lab, "WorkOrder", "nodes");
        assert!(
            !dir.join(&loser_output).exists(),
            "the loser's file is deleted"
        );
    }

    // A sync commits between the rewrite and the compaction commit: the compaction
    // re-checks its files and lands after the append; the append is kept.
    let mut table = open_table(&context, "Pump", "nodes").await;
    let plan = table.plan_compaction(&options).await.unwrap();
    let group = plan.groups.first().expect("a group to compact").clone();
    let prepared = table.prepare_compaction(&group).await.unwrap();
    lab.emulator
        .control()
        .apply_instances(sample_model::updates(PUMPS, 1))
        .unwrap();
    let synced = sync_ok(&context).await;
    assert!(synced.commits > 0);
    let outcome = table.commit_compaction(prepared, &options).await.unwrap();
    match outcome {
        CompactionOutcome::Committed {
            delta_version: Some(version),
            conflicts,
        } => {
            assert!(conflicts >= 1, "the sync's commit came first");
            let log = table.changes_since(None).await.unwrap();
            assert!(
                log[..version as usize]
                    .iter()
                    .any(|c| c.stream_commit.is_some() && c.version > group.info.last_version),
                "the append landed before the compaction"
            );
        }
        other => panic!("expected the compaction to land after the append: {other:?}"),
    }
    if python().is_some() {
        lab.assert_all_tables_match("after step-by-step races");
    }
}

fn row_count(table: &LakeTable) -> u64 {
    table
        .active_files()
        .unwrap()
        .iter()
        .map(|f| f.num_records.expect("row count statistics"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_races_are_detected_local() {
    races(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_races_are_detected_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    races(Some(lake)).await;
}

// ---------------------------------------------------------------------------------------
// Compaction while a sync runs
// ---------------------------------------------------------------------------------------

async fn compaction_during_sync(lake: Option<Lake>) {
    const PUMPS: usize = 120;
    let lab = Lab::start(PUMPS, lake).await;
    let context = lab.context(TINY_BATCHES).await;
    let sync_context = context.clone();
    let syncing = tokio::spawn(async move {
        jobs::sync(
            &SyncJob::from_context(&sync_context),
            &slice(),
            &SyncOptions::default(),
        )
        .await
    });
    let mut rounds = 0;
    let mut committed = 0;
    let mut maintenance_errors = Vec::new();
    while !syncing.is_finished() {
        let summary = jobs::maintenance(
            &context,
            &JobInputs::everything(),
            &only(true, false, false),
        )
        .await;
        rounds += 1;
        committed += summary.files_written;
        maintenance_errors.extend(summary.tables.iter().flat_map(|t| t.errors.clone()));
    }
    let first = syncing.await.unwrap();
    assert!(first.is_success(), "{first:#?}");
    assert!(
        maintenance_errors.is_empty(),
        "compaction next to a sync: {maintenance_errors:#?}"
    );
    eprintln!("{rounds} maintenance rounds, {committed} compaction commits during the sync");

    // Again with changes, and with the sync and one compaction started together.
    lab.emulator
        .control()
        .apply_instances(sample_model::updates(PUMPS, 1))
        .unwrap();
    let (job, sync_inputs, compact_only) = (
        SyncJob::from_context(&context),
        slice(),
        only(true, false, false),
    );
    let (sync_options, maintenance_inputs) = (SyncOptions::default(), JobInputs::everything());
    let (second, compaction) = tokio::join!(
        jobs::sync(&job, &sync_inputs, &sync_options),
        jobs::maintenance(&context, &maintenance_inputs, &compact_only)
    );
    assert!(second.is_success(), "{second:#?}");
    assert!(compaction.is_success(), "{compaction:#?}");

    // Both kinds of commit interleaved in some table: a sync commit after a compaction.
    let mut interleaved = false;
    for (folder, kind, _) in TABLES {
        let table = open_table(&context, folder, kind).await;
        let log = table.changes_since(None).await.unwrap();
        let first_compaction = compaction_commits(&log).first().map(|(c, _)| c.version);
        if let Some(first_compaction) = first_compaction {
            interleaved |= log
                .iter()
                .any(|c| c.version > first_compaction && c.stream_commit.is_some());
        }
        // Every row the syncs committed is there exactly once.
        let stream_rows: u64 = [&first, &second]
            .iter()
            .flat_map(|s| s.streams.iter())
            .filter(|s| {
                s.stream.ends_with(&format!("/{folder}/{kind}"))
                    || s.stream.contains(&format!("/{folder}/{kind}/"))
            })
            .map(|s| s.rows)
            .sum();
        assert_eq!(row_count(&table), stream_rows, "{folder}/{kind}");
    }
    assert!(
        interleaved,
        "a sync committed after a compaction in some table"
    );
    if python().is_some() {
        lab.assert_all_tables_match("compaction during sync");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_during_sync_loses_nothing_local() {
    compaction_during_sync(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_during_sync_loses_nothing_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    compaction_during_sync(Some(lake)).await;
}
