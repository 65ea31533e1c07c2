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
use crate::job::JobInputs;
use crate::lake::{
    CompactionOptions, DEFAULT_MAX_LOG_SCAN, DEFAULT_TARGET_FILE_SIZE, Destination, WriteOptions,
};
use crate::plan::Plan;

/// What a maintenance run should do, beyond its [`JobInputs`] and the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceOptions {
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
}

impl Default for MaintenanceOptions {
    /// Every step, for every table.
    fn default() -> Self {
        Self {
            compact: true,
            vacuum: true,
            checkpoint: true,
            dry_run: false,
            vacuum_retention: None,
            target_file_size: None,
        }
    }
}

/// The maintenance settings of a configuration: where the raw tables are, how they are
/// written, and how much of the deadline is kept free.
#[derive(Debug, Clone)]
struct MaintenanceJob {
    enabled: bool,
    destination: Destination,
    write_options: WriteOptions,
    compact_min_files: usize,
    checkpoint_interval: u64,
    vacuum_retention: Duration,
    parallelism: usize,
    deadline_margin: Duration,
}

impl MaintenanceJob {
    fn from_context(context: &Context) -> Self {
        let extractor = &context.config.extractor;
        let configured = &extractor.maintenance;
        Self {
            enabled: configured.enabled,
            destination: context.destination.clone(),
            write_options: context.raw_write_options(),
            compact_min_files: configured.compact_min_files,
            checkpoint_interval: configured.checkpoint_interval,
            vacuum_retention: configured.vacuum_retention,
            parallelism: (extractor.parallelism as usize).max(1),
            deadline_margin: extractor.deadline_margin,
        }
    }

    /// The settings the tables of one run share.
    fn tables(&self, inputs: &JobInputs, options: &MaintenanceOptions) -> TableSettings {
        TableSettings {
            destination: self.destination.clone(),
            write_options: self.write_options.clone(),
            compaction: CompactionOptions {
                target_file_size: options.target_file_size.unwrap_or(DEFAULT_TARGET_FILE_SIZE),
                min_files: self.compact_min_files,
                max_log_scan: DEFAULT_MAX_LOG_SCAN,
                max_commit_attempts: self.write_options.max_commit_attempts,
            },
            checkpoint_interval: self.checkpoint_interval,
            vacuum_retention: options.vacuum_retention.unwrap_or(self.vacuum_retention),
            cutoff: inputs.deadline.less(self.deadline_margin),
        }
    }
}

/// Runs the requested steps on every raw table of `plan`. Never fails as a whole because of
/// one table: problems are reported per table (or per model and view while planning) in the
/// summary. Does nothing when `extractor.maintenance.enabled` is off.
pub(crate) async fn run(
    context: &Context,
    plan: &Plan,
    inputs: &JobInputs,
    options: &MaintenanceOptions,
) -> MaintenanceSummary {
    let started = Instant::now();
    let job = MaintenanceJob::from_context(context);
    if !job.enabled {
        return MaintenanceSummary {
            disabled: true,
            dry_run: options.dry_run,
            ..MaintenanceSummary::default()
        };
    }
    let plan = plan.for_views(&inputs.selection);
    let plan_errors = plan.problems().to_vec();
    let targets = tables_of(plan.streams());
    let settings = job.tables(inputs, options);
    let parallelism = job.parallelism;
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
