//! A snapshot run in units, for many workers: plan → units → finalize.
//!
//! A whole snapshot run publishes every view one after the other, then registers the
//! catalog (and the job around it maintains the raw tables). When the views together take
//! longer than one Lambda invocation may run, the same work is split:
//!
//! 1. **plan** ([`plan_units`]): the units of the run, most stale first, each with an
//!    estimate of the raw data it reads;
//! 2. **units** ([`run_unit`]): each unit, anywhere, in any order, at the same time as the
//!    others: a unit publishes one view's files and manifest, exactly as a whole run
//!    publishes that view, without the catalog and without maintenance; a view in parts
//!    gets one unit per part and one per single file instead, each building only its own
//!    object and no manifest ([`crate::snapshot::scope`]);
//! 3. **finalize** ([`finalize`]): the manifests of the views in parts, assembled from what
//!    their units left, the catalog registration of the published views, and one summary
//!    of the units' outcomes ([`UnitOutcome`]); the job around it maintains the raw tables
//!    after it.
//!
//! The steps share no state but the lake: each resolves the plan from CDF itself, and a unit
//! is named by an id ([`id`]) that the step running it matches against its own plan. Units
//! of different views touch different objects; two runs of the same unit at once are safe
//! for the same reason two overlapping snapshot runs are ([`super::view`]). The result
//! equals a whole run's: the same files, manifests and catalog tables.

pub mod direct;
mod id;
mod outcome;
mod staleness;

use futures::{StreamExt, stream};
use serde::Serialize;
use tokio::time::Instant;

pub use self::outcome::{UnitError, UnitOutcome, UnitsSummary};
pub use self::staleness::Staleness;
use self::staleness::ViewState;
use self::staleness::view_state;
use super::{PublishSettings, SnapshotSummary, ViewReport, ViewTarget, catalog, plan_views};
use crate::context::Context;
use crate::failure::Failure;
use crate::job::JobInputs;
use crate::lake::Destination;
use crate::lake::InstanceKind;
use crate::plan::Plan;
use crate::snapshot::scope::{Forms, Scope};

/// What a unit does. The kind is the first part of the unit id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UnitKind {
    /// Publishes one view: both files and the manifest.
    View,
    /// Publishes one part of a view's file in parts, without the manifest.
    Part,
    /// Publishes the single file of a view whose other kind is in parts, without the
    /// manifest.
    File,
    /// Sorts one shard of the raw files of a sharded full rebuild into one run per part
    /// ([`crate::snapshot::shards`]); runs before the part units.
    Shard,
}

impl UnitKind {
    /// The kind's name, as unit ids and plans spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::View => "view",
            UnitKind::Part => "part",
            UnitKind::File => "file",
            UnitKind::Shard => "shard",
        }
    }
}

/// One unit of a snapshot run, as the plan lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkUnit {
    /// The id to run it by (`view:<space>:<model>/<version>:<view folder>`).
    pub id: String,
    /// What it does.
    pub kind: UnitKind,
    /// `space:model/version` of its data model.
    pub model: String,
    /// The view folder it publishes.
    pub view: String,
    /// The kind of file a `part` or `file` unit publishes (`nodes`, `edges`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The part a `part` unit publishes: `[index, count]`, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<[u32; 2]>,
    /// The shard a `shard` unit sorts: `[index, count]`, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<[u32; 2]>,
    /// The estimated work: bytes of the active files of the raw tables the unit reads (the
    /// view's, or for a `part` or `file` unit its kind's), which a full rebuild reads (an
    /// incremental merge reads only its new commits).
    pub cost: u64,
    /// Rows of those files (changes, tombstones included).
    pub raw_rows: u64,
    /// How far behind the published files are.
    pub staleness: Staleness,
    /// When the view's manifest was written, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
}

/// The units of a run, in the order to start them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitPlan {
    /// Most stale first: unpublished views, then views behind their raw tables (the oldest
    /// manifest first), then current ones; the largest first among equals.
    pub units: Vec<WorkUnit>,
    /// Shards of sharded full rebuilds, to run (all at once) before `units`: a part unit
    /// of such a kind then merges its shards' runs instead of reading the whole raw table.
    pub shards: Vec<WorkUnit>,
    /// Models and views that could not be planned: they have no unit.
    pub plan_errors: Vec<Failure>,
}

/// A unit id that names no unit of the run's plan: a view removed from the model or the
/// configuration since the plan was made, or a mistyped id. Retrying cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unit `{id}` is not a unit of this run's plan, which has {planned} units{problems}; run a plan for the current ids"
)]
pub struct UnitNotPlanned {
    /// The id asked for.
    pub id: String,
    /// How many units the plan has.
    pub planned: usize,
    /// The plan's problems, when a model or view could not be planned (`; ...`).
    problems: String,
}

/// How many views are examined at once while planning: enough to hide S3 latency.
const CONCURRENT_VIEWS: usize = 8;

/// The order of the plan: staleness, then the oldest manifest (none first), then the
/// largest cost.
fn ordering_key(unit: &WorkUnit) -> (Staleness, Option<String>, std::cmp::Reverse<u64>) {
    (
        unit.staleness,
        unit.published_at.clone(),
        std::cmp::Reverse(unit.cost),
    )
}

/// The units of `plan`'s views, most stale first: one per view, or for a view with a kind
/// in parts (`part_rows`, as a whole run decides it) one per part and one per single file.
/// Never fails as a whole: a lake that cannot be opened is a problem of the plan.
pub(crate) async fn plan_units(
    destination: &Destination,
    plan: &Plan,
    settings: &PublishSettings,
) -> UnitPlan {
    let part_rows = settings.part_rows;
    let mut plan_errors: Vec<Failure> = plan.problems().to_vec();
    let targets = plan_views(plan.streams());
    let store = match destination.object_store() {
        Ok(store) => store,
        Err(error) => {
            plan_errors.push(Failure::lake("publish destination", &error));
            return UnitPlan {
                units: Vec::new(),
                shards: Vec::new(),
                plan_errors: redacted(plan_errors),
            };
        }
    };
    let states: Vec<ViewState> = stream::iter(targets.iter())
        .map(|target| {
            let store = &store;
            async move { view_state(destination, store, target, part_rows).await }
        })
        .buffered(CONCURRENT_VIEWS)
        .collect()
        .await;
    let mut units: Vec<WorkUnit> = Vec::new();
    let mut shards: Vec<WorkUnit> = Vec::new();
    for (target, state) in targets.iter().zip(&states) {
        units.extend(units_of(target, state));
        shards.extend(shard_units(destination, settings, target, state).await);
    }
    // Stable: equals keep the plan's order.
    units.sort_by_key(ordering_key);
    UnitPlan {
        units,
        shards,
        plan_errors: redacted(plan_errors),
    }
}

/// The shard units of the kinds of one view whose every part needs a full rebuild: the
/// shards still to run of a build for each ([`crate::snapshot::shards::plan`]). A build that cannot be
/// started leaves the kind without shards: its part units then read the raw table.
async fn shard_units(
    destination: &Destination,
    settings: &PublishSettings,
    target: &ViewTarget,
    state: &ViewState,
) -> Vec<WorkUnit> {
    if !state.rebuilds_all_parts.contains(&true) {
        return Vec::new();
    }
    let ctx = match super::unit_context(
        destination,
        settings,
        super::budget::Budget::default(),
        Scope::Whole,
    ) {
        Ok(ctx) => ctx,
        Err(error) => {
            tracing::warn!(view = %target.folder, %error, "could not plan rebuild shards; the parts read the raw table");
            return Vec::new();
        }
    };
    let mut units = Vec::new();
    for (slot, kind) in [InstanceKind::Nodes, InstanceKind::Edges]
        .into_iter()
        .enumerate()
    {
        if !state.rebuilds_all_parts[slot] {
            continue;
        }
        let count = state.forms.of(kind);
        let planned = super::shards::plan(&ctx, target, target.table(kind), count).await;
        let (build, left) = match planned {
            Ok(Some(planned)) => planned,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(view = %target.folder, %kind, %error, "could not plan rebuild shards; the parts read the raw table");
                continue;
            }
        };
        let shards = build.shards();
        let cost = state.kind_bytes[slot] / u64::from(shards.max(1));
        units.extend(left.into_iter().map(|shard| WorkUnit {
            id: id::shard_id(target, kind, &build.build_id, shard, shards),
            kind: UnitKind::Shard,
            model: target.model_label(),
            view: target.folder.name().to_owned(),
            file: Some(kind.as_str().to_owned()),
            part: None,
            shard: Some([shard, shards]),
            cost,
            raw_rows: state.raw_rows,
            staleness: state.staleness,
            published_at: state.published_at.clone(),
        }));
    }
    units
}

/// Runs one shard of a sharded rebuild, until the `inputs`' deadline: a summary with one
/// view whose error says why the shard failed, if it did.
async fn run_shard(
    context: &Context,
    target: &ViewTarget,
    (kind, build, shard): (InstanceKind, &str, u32),
    inputs: &JobInputs,
) -> SnapshotSummary {
    let started = Instant::now();
    let settings = PublishSettings::from(&context.config.extractor.snapshot);
    let budget = super::budget::Budget::until(
        inputs
            .deadline
            .less(context.config.extractor.deadline_margin),
    );
    let result = match super::unit_context(&context.destination, &settings, budget, Scope::Whole) {
        Ok(ctx) => super::shards::run_shard(&ctx, target, target.table(kind), build, shard).await,
        Err(error) => Err(error),
    };
    let mut report = ViewReport {
        model: target.model_label(),
        view: target.folder.to_string(),
        files: Vec::new(),
        manifest_written: false,
        attempts: 1,
        duration_ms: started.elapsed().as_millis() as u64,
        error: None,
        retire: None,
    };
    if let Err(error) = result {
        tracing::warn!(view = %target.folder, %kind, build, shard, %error, "the rebuild shard failed");
        report.error = Some(error.to_failure().context(format!("{kind} shard {shard}")));
    }
    SnapshotSummary::from_reports(
        vec![report],
        Vec::new(),
        started.elapsed().as_millis() as u64,
    )
}

/// The units of one view in `state`: the whole view, or each of its objects when a kind
/// is in parts.
fn units_of(target: &ViewTarget, state: &ViewState) -> Vec<WorkUnit> {
    let unit = |id: String, kind: UnitKind, cost: u64| WorkUnit {
        id,
        kind,
        model: target.model_label(),
        view: target.folder.name().to_owned(),
        file: None,
        part: None,
        shard: None,
        cost,
        raw_rows: state.raw_rows,
        staleness: state.staleness,
        published_at: state.published_at.clone(),
    };
    if !state.forms.has_parts() {
        return vec![unit(
            id::unit_id(UnitKind::View, target),
            UnitKind::View,
            state.raw_bytes,
        )];
    }
    state
        .forms
        .pieces()
        .iter()
        .map(|piece| {
            let cost = state.kind_bytes[usize::from(piece.kind == InstanceKind::Edges)];
            let kind = match piece.part {
                Some(_) => UnitKind::Part,
                None => UnitKind::File,
            };
            WorkUnit {
                file: Some(piece.kind.as_str().to_owned()),
                part: piece.part.map(|p| [p.index, p.count]),
                ..unit(id::piece_id(target, piece), kind, cost)
            }
        })
        .collect()
}

/// Publishes the one unit `id` of `plan`: its view's files and manifest (or, for a unit of
/// one object, that object alone), as a whole run publishes them, without the catalog,
/// without maintenance and without reporting an extraction-pipeline run (the finalize step
/// does both for the whole run).
pub(crate) async fn run_unit(
    context: &Context,
    plan: &Plan,
    id: &str,
    inputs: &JobInputs,
) -> Result<SnapshotSummary, UnitNotPlanned> {
    let started = Instant::now();
    let targets = plan_views(plan.streams());
    if let Some((target, (kind, build, shard))) = targets
        .iter()
        .find_map(|t| id::shard_of(id, t).map(|found| (t, found)))
    {
        let summary = run_shard(context, target, (kind, &build, shard), inputs).await;
        tracing::info!(unit = id, summary = %summary.one_line(), "snapshot unit finished");
        return Ok(summary);
    }
    let found = targets.iter().find_map(|t| {
        if id::unit_id(UnitKind::View, t) == id {
            Some((t, Scope::Whole))
        } else {
            id::piece_of(id, t).map(|piece| (t, Scope::Piece(piece)))
        }
    });
    let Some((target, scope)) = found else {
        let problems: Vec<String> = plan.problems().iter().map(|p| p.to_string()).collect();
        return Err(UnitNotPlanned {
            id: id.to_owned(),
            planned: targets.len(),
            problems: if problems.is_empty() {
                String::new()
            } else {
                crate::secret::redact(&format!("; {}", problems.join("; ")))
            },
        });
    };
    let settings = PublishSettings::from(&context.config.extractor.snapshot);
    let (reports, errors) = match super::publish_observed(
        &context.destination,
        std::slice::from_ref(target),
        &settings,
        &super::SliceSettings::of(&settings),
        // As in a whole run: no file starts that cannot finish the margin before the
        // deadline.
        super::budget::Budget::until(
            inputs
                .deadline
                .less(context.config.extractor.deadline_margin),
        ),
        &inputs.progress,
        scope,
    )
    .await
    {
        Ok(reports) => (reports, Vec::new()),
        Err(error) => (
            Vec::new(),
            vec![error.to_failure().context("publish destination")],
        ),
    };
    let summary =
        SnapshotSummary::from_reports(reports, errors, started.elapsed().as_millis() as u64);
    tracing::info!(unit = id, summary = %summary.one_line(), "snapshot unit finished");
    Ok(summary)
}

/// After the units: writes the manifests of the views published in pieces, registers the
/// catalog tables of the published views and reports one extraction-pipeline run for the
/// whole run.
///
/// With the units' `outcomes`, the summary counts each planned unit once (a planned unit
/// without an outcome fails it: it did not run, or its result was lost) and the views whose
/// unit succeeded are registered, as a whole run registers the views it published. Without
/// them (a finalize run by hand), the views that have a manifest are registered and the
/// summary holds the catalog and the plan's problems only. Either way a view published in
/// pieces gets its manifest here, from what its units left at the keys
/// ([`crate::snapshot::scope`]), and is registered once that manifest names every object.
pub(crate) async fn finalize(
    context: &Context,
    plan: &Plan,
    outcomes: Option<&[UnitOutcome]>,
) -> (Option<UnitsSummary>, SnapshotSummary) {
    let started = Instant::now();
    let targets = plan_views(plan.streams());
    let part_rows = PublishSettings::from(&context.config.extractor.snapshot).part_rows;
    let views = planned_views(&context.destination, &targets, outcomes, part_rows).await;
    let ids: Vec<String> = views.iter().flat_map(|v| v.ids.iter().cloned()).collect();
    let plan_errors = plan.problems().to_vec();
    let (units, mut summary) = match outcomes {
        Some(outcomes) => {
            let (units, summary) = outcome::summary_of_outcomes(
                &ids,
                outcomes,
                plan_errors,
                started.elapsed().as_millis() as u64,
            );
            (Some(units), summary)
        }
        None => (
            None,
            SnapshotSummary::from_reports(Vec::new(), plan_errors, 0),
        ),
    };
    let mut published_views: Vec<ViewReport> = Vec::new();
    for (target, view) in targets.iter().zip(&views) {
        if let Some(forms) = view.assemble {
            let report = assemble(context, target, forms).await;
            let pieces_succeeded = outcomes.is_some_and(|outcomes| {
                view.ids
                    .iter()
                    .all(|id| outcomes.iter().any(|o| &o.unit == id && o.success))
            });
            if report.is_success() {
                published_views.push(report);
            } else if pieces_succeeded {
                // The units did their part; the view still is not published as a whole.
                summary.views_failed += 1;
                summary.views.push(report);
            }
            continue;
        }
        let published = match outcomes {
            Some(outcomes) => view
                .ids
                .iter()
                .any(|id| outcomes.iter().any(|o| &o.unit == id && o.success)),
            None => view.has_manifest,
        };
        if published {
            published_views.push(published_marker(target));
        }
    }
    summary.catalog = catalog::register_configured(
        &context.config,
        &context.destination,
        &targets,
        &published_views,
    )
    .await;
    super::retire::after_publish(
        &context.destination,
        &published_views,
        summary.catalog.as_deref(),
    )
    .await;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    let line = match &units {
        Some(units) => format!(
            "{} of {} units published ({} failed, {} without outcome); {}",
            units.succeeded,
            units.planned,
            units.failed,
            units.missing.len(),
            summary.one_line()
        ),
        None => summary.one_line(),
    };
    tracing::info!(summary = %line, "snapshot finalize finished");
    context
        .client
        .report_invocation(
            context.config.cognite.extraction_pipeline.as_deref(),
            summary.is_success(),
            format!("snapshot: {line}"),
        )
        .await;
    (units, summary)
}

/// What the finalize step knows of one view's units.
struct PlannedView {
    /// The view's unit ids: those the outcomes name, or without outcomes for the view,
    /// those a plan gives out now.
    ids: Vec<String>,
    /// The forms to assemble the manifest from, when the view was published in pieces.
    assemble: Option<Forms>,
    /// Whether the view had a usable manifest when it was planned here (known only for a
    /// view the outcomes do not mention, which is all a finalize without outcomes needs).
    has_manifest: bool,
}

/// The units of each target. The outcomes say which units the run's plan gave out; a view
/// they do not mention (a finalize without outcomes, or a unit lost with its map) gets the
/// units a plan gives out now, read from the lake as the plan step reads it.
async fn planned_views(
    destination: &Destination,
    targets: &[ViewTarget],
    outcomes: Option<&[UnitOutcome]>,
    part_rows: u64,
) -> Vec<PlannedView> {
    let store = destination.object_store().ok();
    stream::iter(targets)
        .map(|target| {
            let store = store.as_ref();
            async move {
                let named: Vec<&str> = outcomes
                    .unwrap_or_default()
                    .iter()
                    .map(|o| o.unit.as_str())
                    .filter(|id| {
                        *id == id::unit_id(UnitKind::View, target)
                            || id::piece_of(id, target).is_some()
                    })
                    .collect();
                if !named.is_empty() {
                    let pieces: Vec<_> = named
                        .iter()
                        .filter_map(|id| id::piece_of(id, target))
                        .collect();
                    let assemble = (!pieces.is_empty()).then(|| {
                        let mut forms = Forms { nodes: 1, edges: 1 };
                        for piece in &pieces {
                            let count = piece.part.map_or(1, |p| p.count);
                            match piece.kind {
                                InstanceKind::Nodes => forms.nodes = count,
                                InstanceKind::Edges => forms.edges = count,
                            }
                        }
                        forms
                    });
                    let mut ids: Vec<String> = named.iter().map(|id| (*id).to_owned()).collect();
                    ids.sort();
                    ids.dedup();
                    return PlannedView {
                        ids,
                        assemble,
                        has_manifest: false,
                    };
                }
                let Some(store) = store else {
                    return PlannedView {
                        ids: vec![id::unit_id(UnitKind::View, target)],
                        assemble: None,
                        has_manifest: false,
                    };
                };
                let state = view_state(destination, store, target, part_rows).await;
                PlannedView {
                    ids: units_of(target, &state).into_iter().map(|u| u.id).collect(),
                    assemble: state.forms.has_parts().then_some(state.forms),
                    // Only a usable manifest has a time.
                    has_manifest: state.published_at.is_some(),
                }
            }
        })
        .buffered(CONCURRENT_VIEWS)
        .collect()
        .await
}

/// Writes the manifest of a view published in pieces, describing the objects its units
/// left (nothing is built). The report fails when an object is not in place.
async fn assemble(context: &Context, target: &ViewTarget, forms: Forms) -> ViewReport {
    let settings = PublishSettings::from(&context.config.extractor.snapshot);
    match super::publish_observed(
        &context.destination,
        std::slice::from_ref(target),
        &settings,
        &super::SliceSettings::of(&settings),
        super::budget::Budget::default(),
        &crate::progress::Progress::none(),
        Scope::Assemble(forms),
    )
    .await
    {
        Ok(mut reports) if !reports.is_empty() => {
            let report = reports.remove(0);
            if report.is_success() {
                remove_shard_builds(context, target).await;
            }
            report
        }
        Ok(_) => ViewReport::behind(target),
        Err(error) => {
            let mut report = ViewReport::behind(target);
            report.error = Some(error.to_failure().context("publish destination"));
            report
        }
    }
}

/// The catalog registers the views whose report says they published; a finalize step has
/// no report of the views' files, only whether their unit published them.
fn published_marker(target: &ViewTarget) -> ViewReport {
    ViewReport {
        model: target.model_label(),
        view: target.folder.name().to_owned(),
        files: Vec::new(),
        manifest_written: true,
        attempts: 1,
        duration_ms: 0,
        error: None,
        // The units may have switched a file's form: the old form goes once the catalog
        // names the new one (the retire step compares with the manifest itself).
        retire: Some(crate::lake::layout::publish_paths(&target.model, &target.folder).dir),
    }
}

/// Removes the view's shard builds once its manifest names every part: they served their
/// purpose, or the parts were built without them. A failure only leaves them for the next
/// build to remove.
async fn remove_shard_builds(context: &Context, target: &ViewTarget) {
    let Ok(store) = context.destination.object_store() else {
        return;
    };
    for kind in [InstanceKind::Nodes, InstanceKind::Edges] {
        let dir = super::shards::builds_dir(&target.model, &target.folder, kind);
        if let Err(error) = super::shards::remove(&store, &dir).await {
            tracing::warn!(view = %target.folder, %kind, %error, "could not remove the rebuild shards");
        }
    }
}

fn redacted(failures: Vec<Failure>) -> Vec<Failure> {
    failures.into_iter().map(Failure::redacted).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(id: &str, staleness: Staleness, published_at: Option<&str>, cost: u64) -> WorkUnit {
        WorkUnit {
            id: id.into(),
            kind: UnitKind::View,
            model: "s:M/1".into(),
            view: id.into(),
            file: None,
            part: None,
            shard: None,
            cost,
            raw_rows: 0,
            staleness,
            published_at: published_at.map(str::to_owned),
        }
    }

    #[test]
    fn most_stale_first_then_oldest_manifest_then_largest() {
        let mut units = [
            unit(
                "current",
                Staleness::Current,
                Some("2025-01-01T00:00:00.000Z"),
                9,
            ),
            unit(
                "behind-new",
                Staleness::Behind,
                Some("2025-01-02T00:00:00.000Z"),
                1,
            ),
            unit("new-small", Staleness::Unpublished, None, 1),
            unit(
                "behind-old",
                Staleness::Behind,
                Some("2025-01-01T00:00:00.000Z"),
                1,
            ),
            unit("new-large", Staleness::Unpublished, None, 5),
        ];
        units.sort_by_key(ordering_key);
        let order: Vec<&str> = units.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(
            order,
            [
                "new-large",
                "new-small",
                "behind-old",
                "behind-new",
                "current"
            ]
        );
    }
}
