//! Table maintenance on its own schedule: compaction of small raw files, checkpoints, and
//! vacuum plus log cleanup under a retention.
//!
//! - [`plan`]: the tables to visit, from the streams of the [`crate::plan`];
//! - [`table`]: the steps on one table;
//! - [`summary`]: what a run did, per table and in total.
//!
//! Every step is safe next to a running sync: compaction only rewrites files with
//! `dataChange=false` and never lands over a concurrent change to its files (see
//! [`crate::lake::LakeTable::compact`]); checkpoints and log cleanup only add or delete
//! log files that no reader inside the retention needs; vacuum only deletes files that a
//! commit older than the retention removed, never files a sync is still writing.

pub(crate) mod plan;
pub(crate) mod summary;
pub(crate) mod table;

use std::time::Duration;

use futures::StreamExt as _;
use tokio::time::Instant;

pub(crate) use self::plan::tables_of;
pub use self::summary::{MaintenanceSummary, TableStatus};
use self::table::TableSettings;
use crate::context::Context;
use crate::lake::{CompactionOptions, DEFAULT_MAX_LOG_SCAN, DEFAULT_TARGET_FILE_SIZE};
use crate::plan::Plan;

/// What a maintenance run should do, beyond the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceOptions {
    /// Only the tables of these views (by view externalId); `None` for all.
    pub views: Option<Vec<String>>,
    /// Merge small raw files.
    pub compact: bool,
    /// Delete files removed longer ago than the retention, and expired log files.
    pub vacuum: bool,
    /// Write a checkpoint where `checkpoint-interval` commits were made since the last.
    pub checkpoint: bool,
    /// Plan and report, but write and delete nothing.
    pub dry_run: bool,
    /// Replaces `extractor.maintenance.vacuum-retention-hours` for this run (for example a
    /// one-off cleanup with a shorter retention).
    pub vacuum_retention: Option<Duration>,
    /// Size of a compacted file; files at least this large are left alone. Default
    /// [`DEFAULT_TARGET_FILE_SIZE`].
    pub target_file_size: Option<u64>,
    /// No table and no step starts after this instant (a Lambda's remaining time); the
    /// tables and steps left over are reported as deferred and run next time.
    pub deadline: Option<Instant>,
}

impl Default for MaintenanceOptions {
    /// Every step, for every table.
    fn default() -> Self {
        Self {
            views: None,
            compact: true,
            vacuum: true,
            checkpoint: true,
            dry_run: false,
            vacuum_retention: None,
            target_file_size: None,
            deadline: None,
        }
    }
}

/// Runs the requested steps on every raw table of `plan`. Never fails as a whole because of
/// one table: problems are reported per table (or per model and view while planning) in the
/// summary. Does nothing when `extractor.maintenance.enabled` is off.
pub(crate) async fn run(
    context: &Context,
    plan: &Plan,
    options: &MaintenanceOptions,
) -> MaintenanceSummary {
    let started = Instant::now();
    let configured = &context.config.extractor.maintenance;
    if !configured.enabled {
        return MaintenanceSummary {
            disabled: true,
            dry_run: options.dry_run,
            ..MaintenanceSummary::default()
        };
    }
    let plan = plan.for_views(options.views.as_deref());
    let plan_errors = plan.problems().to_vec();
    let targets = tables_of(plan.streams());
    let job = context.sync_job();
    let settings = TableSettings {
        destination: job.streams.destination.clone(),
        write_options: job.streams.write_options.clone(),
        compaction: CompactionOptions {
            target_file_size: options.target_file_size.unwrap_or(DEFAULT_TARGET_FILE_SIZE),
            min_files: configured.compact_min_files,
            max_log_scan: DEFAULT_MAX_LOG_SCAN,
            max_commit_attempts: job.streams.write_options.max_commit_attempts,
        },
        checkpoint_interval: configured.checkpoint_interval,
        vacuum_retention: options
            .vacuum_retention
            .unwrap_or(configured.vacuum_retention),
    };
    let parallelism = job.parallelism.max(1);
    let reports = futures::stream::iter(targets)
        .map(|target| {
            let settings = &settings;
            async move {
                let report = table::maintain(&target, settings, options).await;
                // Most views never quarantine anything: only a quarantine table that exists
                // is worth a line in the report (a deferred one was not even opened, and
                // comes back next time).
                let absent = report.status == TableStatus::Missing
                    || report.status == TableStatus::Deferred && report.version.is_none();
                if target.kind.is_none() && absent {
                    None
                } else {
                    Some(report)
                }
            }
        })
        .buffered(parallelism)
        .filter_map(std::future::ready)
        .collect::<Vec<_>>()
        .await;
    let summary = MaintenanceSummary::from_reports(
        reports,
        plan_errors,
        options.dry_run,
        started.elapsed().as_millis() as u64,
    );
    tracing::info!(summary = %summary.one_line(), "maintenance finished");
    summary
}

impl MaintenanceOptions {
    /// Whether the deadline (if any) has passed.
    pub(crate) fn deadline_passed(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }
}
