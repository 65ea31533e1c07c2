//! A snapshot run in units, for many workers: plan → units → finalize.
//!
//! A whole snapshot run publishes every view one after the other, then registers the
//! catalog (and the job around it maintains the raw tables). When the views together take
//! longer than one Lambda invocation may run, the same work is split:
//!
//! 1. **plan** ([`plan_units`]): the units of the run, most stale first, each with an
//!    estimate of the raw data it reads;
//! 2. **units** ([`run_unit`]): each unit, anywhere, in any order, at the same time as the
//!    others: today one unit publishes one view's files and manifest, exactly as a whole run
//!    publishes that view, without the catalog and without maintenance;
//! 3. **finalize** ([`finalize`]): the catalog registration of the published views, and one
//!    summary of the units' outcomes ([`UnitOutcome`]); the job around it maintains the raw
//!    tables after it.
//!
//! The steps share no state but the lake: each resolves the plan from CDF itself, and a unit
//! is named by an id ([`id`]) that the step running it matches against its own plan. Units
//! of different views touch different objects; two runs of the same unit at once are safe
//! for the same reason two overlapping snapshot runs are ([`super::view`]). The result
//! equals a whole run's: the same files, manifests and catalog tables.

mod id;
mod outcome;
mod staleness;

use futures::{StreamExt, stream};
use serde::Serialize;
use tokio::time::Instant;

pub use self::outcome::{UnitError, UnitOutcome, UnitsSummary};
pub use self::staleness::Staleness;
use self::staleness::view_state;
use super::{PublishSettings, SnapshotSummary, ViewReport, ViewTarget, catalog, plan_views};
use crate::context::Context;
use crate::failure::Failure;
use crate::job::JobInputs;
use crate::lake::Destination;
use crate::plan::Plan;
use crate::snapshot::manifest::{self, ManifestState};

/// What a unit does. The kind is the first part of the unit id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UnitKind {
    /// Publishes one view: both files and the manifest.
    View,
}

impl UnitKind {
    /// The kind's name, as unit ids and plans spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::View => "view",
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
    /// The estimated work: bytes of the active files of the view's raw tables, which a full
    /// rebuild reads (an incremental merge reads only its new commits).
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

/// The units of `plan`'s views, most stale first. Never fails as a whole: a lake that
/// cannot be opened is a problem of the plan.
pub(crate) async fn plan_units(destination: &Destination, plan: &Plan) -> UnitPlan {
    let mut plan_errors: Vec<Failure> = plan.problems().to_vec();
    let targets = plan_views(plan.streams());
    let store = match destination.object_store() {
        Ok(store) => store,
        Err(error) => {
            plan_errors.push(Failure::lake("publish destination", &error));
            return UnitPlan {
                units: Vec::new(),
                plan_errors: redacted(plan_errors),
            };
        }
    };
    let mut units: Vec<WorkUnit> = stream::iter(targets.iter())
        .map(|target| {
            let store = &store;
            async move {
                let state = view_state(destination, store, target).await;
                WorkUnit {
                    id: id::unit_id(UnitKind::View, target),
                    kind: UnitKind::View,
                    model: target.model_label(),
                    view: target.folder.name().to_owned(),
                    cost: state.raw_bytes,
                    raw_rows: state.raw_rows,
                    staleness: state.staleness,
                    published_at: state.published_at,
                }
            }
        })
        .buffered(CONCURRENT_VIEWS)
        .collect()
        .await;
    // Stable: equals keep the plan's order.
    units.sort_by_key(ordering_key);
    UnitPlan {
        units,
        plan_errors: redacted(plan_errors),
    }
}

/// Publishes the one unit `id` of `plan`: its view's files and manifest, as a whole run
/// publishes them, without the catalog, without maintenance and without reporting an
/// extraction-pipeline run (the finalize step does both for the whole run).
pub(crate) async fn run_unit(
    context: &Context,
    plan: &Plan,
    id: &str,
    inputs: &JobInputs,
) -> Result<SnapshotSummary, UnitNotPlanned> {
    let started = Instant::now();
    let targets = plan_views(plan.streams());
    let Some(target) = targets
        .iter()
        .find(|t| id::unit_id(UnitKind::View, t) == id)
    else {
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

/// After the units: registers the catalog tables of the published views and reports one
/// extraction-pipeline run for the whole run.
///
/// With the units' `outcomes`, the summary counts each planned unit once (a planned unit
/// without an outcome fails it: it did not run, or its result was lost) and the views whose
/// unit succeeded are registered, as a whole run registers the views it published. Without
/// them (a finalize run by hand), the views that have a manifest are registered and the
/// summary holds the catalog and the plan's problems only.
pub(crate) async fn finalize(
    context: &Context,
    plan: &Plan,
    outcomes: Option<&[UnitOutcome]>,
) -> (Option<UnitsSummary>, SnapshotSummary) {
    let started = Instant::now();
    let targets = plan_views(plan.streams());
    let ids: Vec<String> = targets
        .iter()
        .map(|t| id::unit_id(UnitKind::View, t))
        .collect();
    let plan_errors = plan.problems().to_vec();
    let (units, mut summary, published) = match outcomes {
        Some(outcomes) => {
            let (units, summary) = outcome::summary_of_outcomes(
                &ids,
                outcomes,
                plan_errors,
                started.elapsed().as_millis() as u64,
            );
            let published: Vec<bool> = ids
                .iter()
                .map(|id| outcomes.iter().any(|o| &o.unit == id && o.success))
                .collect();
            (Some(units), summary, published)
        }
        None => {
            let summary = SnapshotSummary::from_reports(Vec::new(), plan_errors, 0);
            let published = have_manifests(&context.destination, &targets).await;
            (None, summary, published)
        }
    };
    let published_views: Vec<ViewReport> = targets
        .iter()
        .zip(&published)
        .filter(|(_, published)| **published)
        .map(|(target, _)| published_marker(target))
        .collect();
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

/// Whether each view has a usable manifest (so its files are in place).
async fn have_manifests(destination: &Destination, targets: &[ViewTarget]) -> Vec<bool> {
    let Ok(store) = destination.object_store() else {
        return vec![false; targets.len()];
    };
    stream::iter(targets)
        .map(|target| {
            let store = &store;
            async move {
                let paths = destination.publish_paths(&target.model, &target.folder);
                matches!(
                    manifest::read(store, &paths.manifest).await,
                    ManifestState::Found(_)
                )
            }
        })
        .buffered(CONCURRENT_VIEWS)
        .collect()
        .await
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
