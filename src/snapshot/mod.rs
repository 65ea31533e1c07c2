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
//! - A run with a deadline publishes the most stale views first ([`order`]) and starts no
//!   merge it cannot finish before the deadline ([`budget`]); what it leaves is reported
//!   behind and comes first next time.
//! - Files are written straight to their final key, so a crash leaves the previous file
//!   and manifest readable ([`writer`], [`view`]).
//! - Each file carries its build state in its footer ([`stamp`]); a manifest entry counts
//!   only while it names the object at the key, and a run writes the manifest only if its
//!   files are still in place and the manifest is still the one it read. Two snapshot runs
//!   that overlap therefore end with file == manifest ([`view`]).
//! - A file of more than `extractor.snapshot.part-rows` rows is a folder of parts
//!   (`nodes/part-00003-of-00016.parquet`), split by a documented hash of the key
//!   ([`parts`]); each part is skipped, merged or rebuilt on its own ([`partitioned`]). The
//!   manifest is the commit point of a change of form; the old form's objects are removed
//!   after the manifest and the catalog name the new one ([`retire`]).
//! - A run can be split into units (one view each, or one part each of a view in parts) that
//!   many workers publish at once, with the same result: plan, units, finalize ([`units`]);
//!   a unit publishes the objects its [`scope`] names.

pub mod arrival;
mod budget;
mod build;
pub mod catalog;
mod cores;
mod decode;
mod dedup;
mod dictionary;
mod encode;
pub(crate) mod error;
mod file;
mod incremental;
mod keys;
mod kway;
pub(crate) mod manifest;
mod order;
mod partitioned;
pub mod parts;
mod piece_entry;
pub(crate) mod plan;
pub(crate) mod reader;
mod rebuild;
mod resume;
mod retire;
mod scope;
mod shards;
mod sorter;
mod spill;
pub mod stamp;
pub(crate) mod summary;
pub mod units;
mod view;
mod work_store;
pub mod writer;

use std::path::PathBuf;

use tokio::time::Instant;

use self::budget::Budget;
pub(crate) use self::error::SnapshotResult;
pub use self::kway::BatchSink;
pub use self::plan::{TableTarget, ViewTarget, plan_views};
pub use self::summary::{FileAction, FileReport, PartsReport, SnapshotSummary, ViewReport};
use crate::config::SnapshotSettings;
use crate::context::Context;
use crate::job::{Deadline, JobInputs};
use crate::lake::{Destination, WriteOptions};
use crate::plan::Plan;
use crate::progress::Progress;

/// What a snapshot run should do, beyond its [`JobInputs`] and the configuration: nothing
/// yet. The run's deadline is [`JobInputs::deadline`]: no merge or rebuild starts that
/// cannot finish before it less `extractor.deadline-margin`, and a full rebuild stops there
/// keeping its progress; the work left is reported behind and comes first next time.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {}

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
    /// Rows above which a view's file is published as a folder of parts
    /// (`extractor.snapshot.part-rows`; see [`parts`]).
    pub part_rows: u64,
}

/// How a run with a deadline estimates its work and keeps a full rebuild's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceSettings {
    /// Raw bytes a full rebuild reads between two checkpoints of its sorted runs to the
    /// lake (only in a run with a deadline). Default: four memory budgets.
    pub checkpoint_bytes: u64,
    /// Throughput the estimates assume, in bytes per second (see the snapshot's budget).
    pub assumed_bytes_per_second: u64,
}

impl SliceSettings {
    /// The defaults for `settings`.
    pub fn of(settings: &PublishSettings) -> Self {
        Self {
            checkpoint_bytes: settings.memory_budget_bytes.saturating_mul(4).max(1),
            assumed_bytes_per_second: budget::ASSUMED_BYTES_PER_SECOND,
        }
    }
}

impl From<&SnapshotSettings> for PublishSettings {
    fn from(settings: &SnapshotSettings) -> Self {
        Self {
            memory_budget_bytes: settings.memory_budget_bytes,
            temp_dir: settings.temp_dir.clone(),
            threads: None,
            part_rows: settings.part_rows,
        }
    }
}

/// Publishes the selected views of `plan`. Never fails as a whole: each view's problems are
/// reported in the summary and the other views go on.
pub(crate) async fn run(
    context: &Context,
    plan: &Plan,
    inputs: &JobInputs,
    _options: &SnapshotOptions,
) -> SnapshotSummary {
    let started = Instant::now();
    let plan = plan.for_views(&inputs.selection);
    let mut plan_errors = plan.problems().to_vec();
    let targets = plan_views(plan.streams());
    let settings = PublishSettings::from(&context.config.extractor.snapshot);
    // No file starts that cannot finish `extractor.deadline-margin` before the deadline: the
    // margin covers what a file's estimate missed, and the writes after the last file.
    let deadline = inputs
        .deadline
        .less(context.config.extractor.deadline_margin);
    let reports = match publish_observed(
        &context.destination,
        &targets,
        &settings,
        &SliceSettings::of(&settings),
        Budget::until(deadline),
        &inputs.progress,
        scope::Scope::Whole,
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
    retire::after_publish(
        &context.destination,
        &summary.views,
        summary.catalog.as_deref(),
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

/// Publishes planned views one after the other (each holds at most the memory budget),
/// then removes the objects of forms their files no longer have. Fails only when the
/// destination's object store cannot be set up.
pub async fn publish_views(
    destination: &Destination,
    targets: &[ViewTarget],
    settings: &PublishSettings,
) -> SnapshotResult<Vec<ViewReport>> {
    publish_views_until(destination, targets, settings, Deadline::none()).await
}

/// [`publish_views`] with a deadline, already less any margin the caller keeps (see
/// [`SnapshotOptions`]): the most stale views first, and what does not fit reported behind.
pub async fn publish_views_until(
    destination: &Destination,
    targets: &[ViewTarget],
    settings: &PublishSettings,
    deadline: Deadline,
) -> SnapshotResult<Vec<ViewReport>> {
    publish_sliced(
        destination,
        targets,
        settings,
        &SliceSettings::of(settings),
        deadline,
    )
    .await
}

/// [`publish_views_until`] with explicit checkpoints and estimates.
pub async fn publish_sliced(
    destination: &Destination,
    targets: &[ViewTarget],
    settings: &PublishSettings,
    slices: &SliceSettings,
    deadline: Deadline,
) -> SnapshotResult<Vec<ViewReport>> {
    publish_observed(
        destination,
        targets,
        settings,
        slices,
        Budget::until(deadline),
        &Progress::none(),
        scope::Scope::Whole,
    )
    .await
}

/// What every publish step of one view needs: the store, the sort's settings, the time.
fn publish_context<'a>(
    destination: &'a Destination,
    settings: &PublishSettings,
    slices: &SliceSettings,
    budget: Budget,
    scope: scope::Scope,
) -> SnapshotResult<file::PublishContext<'a>> {
    Ok(file::PublishContext {
        destination,
        store: destination.object_store()?,
        sort: sorter::SortSettings {
            memory_budget_bytes: usize::try_from(settings.memory_budget_bytes)
                .unwrap_or(usize::MAX),
            temp_dir: settings.temp_dir.clone(),
            threads: settings.threads.unwrap_or_else(cores::available).max(1),
        },
        table_options: WriteOptions::default(),
        budget,
        part_rows: settings.part_rows,
        checkpoint_bytes: slices.checkpoint_bytes,
        scope,
    })
}

/// [`publish_context`] with the configuration's slice settings: what a unit step needs.
fn unit_context<'a>(
    destination: &'a Destination,
    settings: &PublishSettings,
    budget: Budget,
    scope: scope::Scope,
) -> SnapshotResult<file::PublishContext<'a>> {
    publish_context(
        destination,
        settings,
        &SliceSettings::of(settings),
        budget,
        scope,
    )
}

/// [`publish_views`], reporting each view to `progress` as it starts and ends. With a
/// deadline, views go most stale first and the reports come in that order.
async fn publish_observed(
    destination: &Destination,
    targets: &[ViewTarget],
    settings: &PublishSettings,
    slices: &SliceSettings,
    budget: Budget,
    progress: &Progress,
    scope: scope::Scope,
) -> SnapshotResult<Vec<ViewReport>> {
    let budget = budget.assuming(slices.assumed_bytes_per_second);
    let ctx = publish_context(destination, settings, slices, budget, scope)?;
    // Without a deadline every view gets done: the plan's order saves a manifest read each.
    let ordered: Vec<&ViewTarget> = if budget.time_left().is_some() {
        order::most_stale_first(destination, &ctx.store, targets).await
    } else {
        targets.iter().collect()
    };
    let mut reports = Vec::with_capacity(targets.len());
    for target in ordered {
        if budget.is_over() {
            // Not even a look: the files stay as they are and the view keeps its place.
            reports.push(ViewReport::behind(target));
            continue;
        }
        let (model, folder) = (target.model_label(), target.folder.to_string());
        progress.view_started(&model, &folder);
        let report = view::publish_view(&ctx, target).await;
        let rows = report.files.iter().map(|f| f.rows).sum();
        progress.view_finished(&model, &folder, rows, report.is_success());
        reports.push(report);
    }
    Ok(reports)
}
