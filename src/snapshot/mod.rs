//! The publish layer: per view, the latest state of every live instance as
//! `publish/<space>/<model>/<version>/<view>/{nodes,edges}.parquet`, plus `_manifest.json`
//! written last.
//!
//! - Latest = the change that arrived last for (`space`, `externalId`), by Delta commit
//!   version, then position in the commit ([`arrival`]). Deleted instances are removed; so
//!   are instances that a stream's completed new-generation backfill no longer returned.
//! - Files are sorted by (`space`, `externalId`), flat ([`crate::schema::publish`]: lists as
//!   JSON text), Snappy-compressed with statistics ([`writer`]).
//! - Incremental: an unchanged table is skipped; otherwise only the commits after the
//!   manifest's version are read and stream-merged into the previous file ([`incremental`]).
//!   A completed generation, a schema change, a missing log or an unusable previous state
//!   falls back to a full rebuild ([`rebuild`]), which sorts in memory-budget-sized runs
//!   spilled to local disk ([`sorter`], [`spill`], [`kway`]).
//! - Files are written straight to their final key, so a crash leaves the previous file
//!   and manifest readable ([`writer`], [`view`]).
//! - Each file carries its build state in its footer ([`stamp`]); a manifest entry counts
//!   only while it names the object at the key, and a run writes the manifest only if its
//!   files are still in place and the manifest is still the one it read. Two snapshot runs
//!   that overlap therefore end with file == manifest ([`view`]).

pub mod arrival;
mod build;
pub mod catalog;
mod cores;
mod decode;
mod dedup;
mod encode;
pub(crate) mod error;
mod file;
mod incremental;
mod keys;
mod kway;
pub(crate) mod manifest;
pub(crate) mod plan;
mod reader;
mod rebuild;
mod sorter;
mod spill;
pub mod stamp;
pub(crate) mod summary;
mod view;
pub mod writer;

use std::path::PathBuf;

use tokio::time::Instant;

pub(crate) use self::error::SnapshotResult;
pub use self::kway::BatchSink;
pub use self::plan::{TableTarget, ViewTarget, plan_views};
pub use self::summary::{FileAction, FileReport, SnapshotSummary, ViewReport};
use crate::config::SnapshotSettings;
use crate::context::Context;
use crate::lake::{Destination, WriteOptions};
use crate::plan::Plan;
use crate::progress::Progress;

/// What an invocation should do, beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    /// Only these views (by view externalId); `None` for all configured views.
    pub views: Option<Vec<String>>,
}

/// How files are built: the memory the sort may hold before spilling, where it spills, and
/// how many threads do the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSettings {
    /// Bytes of sorted rows a rebuild holds in memory before it spills a run to `temp_dir`
    /// (all threads together).
    pub memory_budget_bytes: u64,
    /// Local directory for spilled runs (`extractor.snapshot.temp-dir`, default the system
    /// temp directory): it must have room for the sorted rows of the table being rebuilt.
    pub temp_dir: PathBuf,
    /// Threads that decode, sort and encode; `None` for every core the process may use.
    /// The files written are the same whatever the count.
    pub threads: Option<usize>,
}

impl From<&SnapshotSettings> for PublishSettings {
    fn from(settings: &SnapshotSettings) -> Self {
        Self {
            memory_budget_bytes: settings.memory_budget_bytes,
            temp_dir: settings.temp_dir.clone(),
            threads: None,
        }
    }
}

/// Publishes every view of `plan` (or the selected ones). Never fails as a whole: each
/// view's problems are reported in the summary and the other views go on.
pub(crate) async fn run(
    context: &Context,
    plan: &Plan,
    options: &SnapshotOptions,
) -> SnapshotSummary {
    let started = Instant::now();
    let plan = plan.for_views(options.views.as_deref());
    let mut plan_errors = plan.problems().to_vec();
    let targets = plan_views(plan.streams());
    let settings = PublishSettings::from(&context.config.extractor.snapshot);
    let reports = match publish_observed(
        &context.destination,
        &targets,
        &settings,
        &context.progress,
    )
    .await
    {
        Ok(reports) => reports,
        Err(error) => {
            plan_errors.push(error.to_failure().context("publish destination"));
            Vec::new()
        }
    };
    let mut summary =
        SnapshotSummary::from_reports(reports, plan_errors, started.elapsed().as_millis() as u64);
    summary.catalog = catalog::register_configured(
        &context.config,
        &context.destination,
        &targets,
        &summary.views,
    )
    .await;
    tracing::info!(summary = %summary.one_line(), "snapshot finished");
    context
        .client
        .report_invocation(
            context.config.cognite.extraction_pipeline.as_deref(),
            summary.is_success(),
            format!("snapshot: {}", summary.one_line()),
        )
        .await;
    summary
}

/// Publishes planned views one after the other (each holds at most the memory budget).
/// Fails only when the destination's object store cannot be set up.
pub async fn publish_views(
    destination: &Destination,
    targets: &[ViewTarget],
    settings: &PublishSettings,
) -> SnapshotResult<Vec<ViewReport>> {
    publish_observed(destination, targets, settings, &Progress::none()).await
}

/// [`publish_views`], reporting each view to `progress` as it starts and ends.
async fn publish_observed(
    destination: &Destination,
    targets: &[ViewTarget],
    settings: &PublishSettings,
    progress: &Progress,
) -> SnapshotResult<Vec<ViewReport>> {
    let ctx = file::PublishContext {
        destination,
        store: destination.object_store()?,
        sort: sorter::SortSettings {
            memory_budget_bytes: usize::try_from(settings.memory_budget_bytes)
                .unwrap_or(usize::MAX),
            temp_dir: settings.temp_dir.clone(),
            threads: settings.threads.unwrap_or_else(cores::available).max(1),
        },
        table_options: WriteOptions::default(),
    };
    let mut reports = Vec::with_capacity(targets.len());
    for target in targets {
        let (model, folder) = (target.model_label(), target.folder.to_string());
        progress.view_started(&model, &folder);
        let report = view::publish_view(&ctx, target).await;
        let rows = report.files.iter().map(|f| f.rows).sum();
        progress.view_finished(&model, &folder, rows, report.is_success());
        reports.push(report);
    }
    Ok(reports)
}
