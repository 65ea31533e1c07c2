//! The maintenance steps on one table: compaction first (so that the checkpoint and the
//! vacuum see its result), then a checkpoint, then vacuum and log cleanup. A failed step is
//! reported and the next one still runs: each is useful on its own.

use std::time::Duration;

use super::MaintenanceOptions;
use super::plan::MaintenanceTarget;
use super::summary::{CompactionCommit, TableReport, TableStatus};
use crate::failure::Failure;
use crate::job::Deadline;
use crate::lake::{
    CompactionOptions, CompactionOutcome, Destination, LakeResult, LakeTable, VacuumScope,
    WriteOptions,
};

/// The settings every table of a run shares.
#[derive(Debug, Clone)]
pub(crate) struct TableSettings {
    pub(crate) destination: Destination,
    pub(crate) write_options: WriteOptions,
    pub(crate) compaction: CompactionOptions,
    pub(crate) checkpoint_interval: u64,
    pub(crate) vacuum_retention: Duration,
    /// No table and no step starts after this: the run's deadline less
    /// `extractor.deadline-margin`.
    pub(crate) cutoff: Deadline,
}

/// Maintains one table; never fails, the report carries the errors.
pub(crate) async fn maintain(
    target: &MaintenanceTarget,
    settings: &TableSettings,
    options: &MaintenanceOptions,
) -> TableReport {
    let mut report = TableReport::new(target.path.clone());
    if settings.cutoff.reached() {
        report.status = TableStatus::Deferred;
        return report;
    }
    let mut table = match open(target, settings).await {
        Ok(table) => table,
        Err(error) => {
            report
                .errors
                .push(Failure::lake("opening the table", &error));
            report.status = TableStatus::Failed;
            return report;
        }
    };
    if !table.exists() {
        report.status = TableStatus::Missing;
        return report;
    }
    report.version = table.version();
    report.files_before = count_files(&table, &mut report);

    let mut deferred = false;
    let mut step_due = |wanted: bool| {
        deferred |= wanted && settings.cutoff.reached();
        wanted && !deferred
    };
    if step_due(options.compact) {
        compact(&mut table, settings, options.dry_run, &mut report).await;
    }
    if step_due(options.checkpoint) {
        let result = if options.dry_run {
            table.checkpoint_due(settings.checkpoint_interval).await
        } else {
            table
                .checkpoint_if_behind(settings.checkpoint_interval)
                .await
        };
        match result {
            Ok(version) => report.checkpoint_version = version,
            Err(error) => report.errors.push(Failure::lake("checkpoint", &error)),
        }
    }
    if step_due(options.vacuum) {
        vacuum(&mut table, settings, options.dry_run, &mut report).await;
    }

    if let Err(error) = table.refresh().await {
        report
            .errors
            .push(Failure::lake("reloading the table", &error));
    }
    report.files_after = count_files(&table, &mut report);
    report.status = if !report.errors.is_empty() {
        TableStatus::Failed
    } else if deferred {
        TableStatus::Deferred
    } else if options.dry_run {
        TableStatus::Planned
    } else {
        TableStatus::Done
    };
    if !report.errors.is_empty() {
        tracing::warn!(table = %report.table, errors = ?report.errors, "maintenance step failed");
    }
    report
}

async fn open(target: &MaintenanceTarget, settings: &TableSettings) -> LakeResult<LakeTable> {
    let url = settings.destination.directory_url(&target.path)?;
    LakeTable::open(&settings.destination, url, settings.write_options.clone()).await
}

async fn compact(
    table: &mut LakeTable,
    settings: &TableSettings,
    dry_run: bool,
    report: &mut TableReport,
) {
    let options = &settings.compaction;
    if dry_run {
        match table.plan_compaction(options).await {
            Ok(plan) if plan.candidate_files() >= options.min_files => {
                for group in &plan.groups {
                    report.files_compacted += group.files.len();
                    report.files_written += 1;
                    report.bytes_compacted += group.bytes();
                    report.compactions.push(CompactionCommit {
                        info: group.info.clone(),
                        delta_version: None,
                        bytes_removed: group.bytes(),
                        bytes_written: 0,
                        rows: group.files.iter().filter_map(|f| f.rows).sum(),
                        conflicts: 0,
                        skipped: None,
                    });
                }
            }
            Ok(_) => {}
            Err(error) => report
                .errors
                .push(Failure::lake("planning compaction", &error)),
        }
        return;
    }
    match table.compact(options).await {
        Ok(result) => {
            for group in &result.groups {
                if let CompactionOutcome::Committed { .. } = group.outcome {
                    report.files_compacted += group.info.source_files;
                    report.files_written += 1;
                    report.bytes_compacted += group.bytes_removed;
                    report.bytes_written += group.bytes_written;
                }
                report.compactions.push(CompactionCommit::from(group));
            }
            for (info, error) in &result.failures {
                report.errors.push(Failure::lake(
                    format!(
                        "compacting versions {}..={} of stream {:?}",
                        info.first_version, info.last_version, info.app_id
                    ),
                    error,
                ));
            }
        }
        Err(error) => report.errors.push(Failure::lake("compaction", &error)),
    }
}

async fn vacuum(
    table: &mut LakeTable,
    settings: &TableSettings,
    dry_run: bool,
    report: &mut TableReport,
) {
    match table
        .vacuum(
            settings.vacuum_retention,
            VacuumScope::RemovedFiles,
            dry_run,
        )
        .await
    {
        Ok(vacuumed) => report.files_vacuumed = vacuumed.files.len(),
        Err(error) => report.errors.push(Failure::lake("vacuum", &error)),
    }
    if dry_run {
        return;
    }
    match table.cleanup_logs(settings.vacuum_retention).await {
        Ok(deleted) => report.logs_deleted = deleted,
        Err(error) => report.errors.push(Failure::lake("log cleanup", &error)),
    }
}

fn count_files(table: &LakeTable, report: &mut TableReport) -> usize {
    match table.active_files() {
        Ok(files) => files.len(),
        Err(error) => {
            report
                .errors
                .push(Failure::lake("listing the active files", &error));
            0
        }
    }
}
