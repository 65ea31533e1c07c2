//! A publish run split into units for many workers: plan → units → finalize.
//!
//! The same three steps run wherever the workers are: the snapshot function invoked by a
//! Step Functions Distributed Map (one invocation per unit, see `template.yaml`), or
//! `cdf-s3-replicator snapshot --fan-out N` (one child process per unit). Together they do
//! what [`super::publish`] does in one process: the units publish the views, and finalize
//! registers the catalog, reports the run and maintains the raw tables.

use serde::Serialize;

use super::{PublishOptions, PublishReport};
use crate::context::Context;
use crate::failure::FailureCounts;
use crate::job::{JobInputs, JobOutcome, Metrics, ViewSelection};
use crate::snapshot::SnapshotSummary;
use crate::snapshot::units::{self, UnitNotPlanned, UnitOutcome, UnitPlan, UnitsSummary};

/// The units of the selected views, most stale first, and the shards to run before them
/// (a plan that starts a sharded full rebuild records it in the lake).
pub async fn plan_units(context: &Context, selection: &ViewSelection) -> UnitPlan {
    let plan = super::plan(context).await.for_views(selection);
    let settings = crate::snapshot::PublishSettings::from(&context.config.extractor.snapshot);
    units::plan_units(&context.destination, &plan, &settings).await
}

/// The plan step as an outcome of the snapshot job: its detail is the plan itself (the
/// `units` a Step Functions map reads). A plan that could plan nothing fails (retryable when
/// CDF was unavailable); otherwise the finalize step reports the models and views it could
/// not plan. It has no figures of its own: the finalize step reports the run's.
pub fn plan_outcome(plan: &UnitPlan) -> JobOutcome {
    let failed = plan.units.is_empty() && !plan.plan_errors.is_empty();
    let summary = format!(
        "{} units, {} shards, {} plan errors{}",
        plan.units.len(),
        plan.shards.len(),
        plan.plan_errors.len(),
        plan.plan_errors
            .iter()
            .map(|e| format!("; {e}"))
            .collect::<String>()
    );
    JobOutcome {
        job: "snapshot",
        success: !failed,
        succeeded: plan.units.len() as u64,
        behind: 0,
        failed: if failed {
            plan.plan_errors.len() as u64
        } else {
            0
        },
        dry_run: false,
        summary,
        failures: if failed {
            FailureCounts::of(&plan.plan_errors)
        } else {
            FailureCounts::default()
        },
        duration_ms: 0,
        metrics: Metrics::default(),
        detail: serde_json::to_value(plan).unwrap_or_default(),
    }
}

/// What one unit did: the outcome the finalize step collects, and the unit's own summary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitReport {
    /// What the finalize step needs of it.
    pub outcome: UnitOutcome,
    /// The unit's published files, as a whole run reports them.
    pub snapshot: SnapshotSummary,
}

impl UnitReport {
    /// Whether the unit's files are published and current.
    pub fn is_success(&self) -> bool {
        self.snapshot.is_success()
    }

    /// The unit's run as an outcome of the snapshot job, whose detail is the report
    /// (`{"outcome": ..., "snapshot": ...}`: the map keeps the `outcome` for finalize).
    pub fn job_outcome(&self) -> JobOutcome {
        JobOutcome {
            detail: serde_json::to_value(self).unwrap_or_default(),
            ..self.snapshot.outcome()
        }
    }
}

/// Runs the unit `id` of the current plan, with the `inputs`' deadline and progress (a
/// unit names its view, so their selection is not read); with a deadline, a file that
/// cannot finish before it is left behind for the next run. Fails only when no unit of the
/// plan has that id.
pub async fn run_unit(
    context: &Context,
    id: &str,
    inputs: &JobInputs,
) -> Result<UnitReport, UnitNotPlanned> {
    let plan = super::plan(context).await;
    let snapshot = units::run_unit(context, &plan, id, inputs).await?;
    Ok(UnitReport {
        outcome: UnitOutcome::of(id, &snapshot),
        snapshot,
    })
}

/// What the finalize step did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalizeReport {
    /// The units' outcomes, when they were passed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<UnitsSummary>,
    /// The run as a whole run reports it: `snapshot` (figures summed over the units, the
    /// catalog) and `maintenance`.
    #[serde(flatten)]
    pub publish: PublishReport,
}

impl FinalizeReport {
    /// Whether every planned unit published, the catalog registered, and the asked-for
    /// maintenance succeeded.
    pub fn is_success(&self) -> bool {
        self.publish.is_success()
    }

    /// The run as one outcome, as [`PublishReport::outcome`] with the units: their count
    /// leads the summary line and the detail holds them next to `snapshot` and
    /// `maintenance`. The snapshot's figures are the run's, summed over the units.
    pub fn outcome(&self) -> JobOutcome {
        let mut outcome = self.publish.outcome();
        if let Some(units) = &self.units {
            outcome.summary = format!(
                "{} of {} units published; {}",
                units.succeeded, units.planned, outcome.summary
            );
            if let serde_json::Value::Object(detail) = &mut outcome.detail {
                detail.insert(
                    "units".to_owned(),
                    serde_json::to_value(units).unwrap_or_default(),
                );
            }
        }
        outcome
    }
}

/// After the units: the catalog and the run's report (with the units' `outcomes` when given),
/// then, unless `options.maintenance` is `None`, maintenance of the raw tables of the
/// `inputs`' views in the time left, as [`super::publish`] does after publishing.
pub async fn finalize(
    context: &Context,
    inputs: &JobInputs,
    options: &PublishOptions,
    outcomes: Option<&[UnitOutcome]>,
) -> FinalizeReport {
    let plan = super::plan(context).await;
    let selected = plan.for_views(&inputs.selection);
    let (units, snapshot) = units::finalize(context, &selected, outcomes).await;
    let (maintenance, verify) = super::after_publishing(context, &plan, inputs, options).await;
    FinalizeReport {
        units,
        publish: PublishReport {
            snapshot,
            maintenance,
            verify,
        },
    }
}
