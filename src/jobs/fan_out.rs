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
use crate::maintenance::{self, MaintenanceOptions};
use crate::snapshot::SnapshotSummary;
use crate::snapshot::units::{self, UnitNotPlanned, UnitOutcome, UnitPlan, UnitsSummary};

/// The units of the configured views (or of `views`), most stale first.
pub async fn plan_units(context: &Context, views: Option<&[String]>) -> UnitPlan {
    let plan = super::plan(context).await.for_views(views);
    units::plan_units(&context.destination, &plan).await
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
}

/// Runs the unit `id` of the current plan. Fails only when no unit of the plan has that id.
pub async fn run_unit(context: &Context, id: &str) -> Result<UnitReport, UnitNotPlanned> {
    let plan = super::plan(context).await;
    let snapshot = units::run_unit(context, &plan, id).await?;
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

    pub(crate) fn one_line(&self) -> String {
        match &self.units {
            Some(units) => format!(
                "{} of {} units published; {}",
                units.succeeded,
                units.planned,
                self.publish.one_line()
            ),
            None => self.publish.one_line(),
        }
    }

    /// The failures of the units, the catalog and maintenance.
    pub(crate) fn failures(&self) -> FailureCounts {
        self.publish.failures()
    }
}

/// After the units: the catalog and the run's report (with the units' `outcomes` when given),
/// then, unless `options.maintenance` is `None`, maintenance of the raw tables, as
/// [`super::publish`] does after publishing.
pub async fn finalize(
    context: &Context,
    options: &PublishOptions,
    outcomes: Option<&[UnitOutcome]>,
) -> FinalizeReport {
    let plan = super::plan(context).await;
    let selected = plan.for_views(options.views.as_deref());
    let (units, snapshot) = units::finalize(context, &selected, outcomes).await;
    let maintenance = match &options.maintenance {
        Some(maintenance) => {
            let maintenance = MaintenanceOptions {
                views: options.views.clone(),
                ..maintenance.clone()
            };
            Some(maintenance::run(context, &plan, &maintenance).await)
        }
        None => None,
    };
    FinalizeReport {
        units,
        publish: PublishReport {
            snapshot,
            maintenance,
        },
    }
}
