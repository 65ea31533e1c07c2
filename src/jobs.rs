//! The jobs of a run, composed in one place for the CLI and the Lambda functions.
//!
//! A run resolves the [`Plan`] once and hands it to each job it runs: sync, or publish
//! (snapshot, then maintenance of the raw tables). Every job takes the same
//! [`JobInputs`] and reports a summary that turns into one [`crate::job::JobOutcome`]; the
//! entry points differ only in where the configuration, the inputs and the options come
//! from. A publish run can also be split into units for many workers ([`fan_out`]).

pub mod fan_out;

use serde::Serialize;

use crate::context::Context;
use crate::job::{JobInputs, JobOutcome};
use crate::maintenance::{self, MaintenanceOptions, MaintenanceSummary};
use crate::plan::Plan;
use crate::snapshot::{self, SnapshotOptions, SnapshotSummary};
use crate::sync::{self, RunSummary, SyncJob, SyncOptions};

/// The streams and tables of the configured models, resolved from CDF.
pub async fn plan(context: &Context) -> Plan {
    Plan::resolve(
        &context.client,
        &context.config.data_modeling,
        context.config.extractor.sync_page_size,
    )
    .await
}

/// The plan of a sync slice. Planning reads CDF too, so it ends when the slice stops
/// reading.
async fn sync_plan(job: &SyncJob, inputs: &JobInputs) -> Plan {
    let client = sync::bound(&job.streams.client, job.read_deadline(inputs.deadline));
    Plan::resolve(&client, &job.data_modeling, job.page_size).await
}

/// One sync time slice, planned for this slice.
pub async fn sync(job: &SyncJob, inputs: &JobInputs, options: &SyncOptions) -> RunSummary {
    sync::run(job, &sync_plan(job, inputs).await, inputs, options).await
}

/// One snapshot pass, planned for this pass.
pub async fn snapshot(
    context: &Context,
    inputs: &JobInputs,
    options: &SnapshotOptions,
) -> SnapshotSummary {
    snapshot::run(context, &plan(context).await, inputs, options).await
}

/// One maintenance pass, planned for this pass.
pub async fn maintenance(
    context: &Context,
    inputs: &JobInputs,
    options: &MaintenanceOptions,
) -> MaintenanceSummary {
    maintenance::run(context, &plan(context).await, inputs, options).await
}

/// What a publish run does: the snapshot, then (unless `None`) maintenance of the raw
/// tables of the same views.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// The snapshot's own options.
    pub snapshot: SnapshotOptions,
    /// Maintenance of the raw tables after the snapshot; `None` publishes only.
    pub maintenance: Option<MaintenanceOptions>,
}

impl PublishOptions {
    /// Every maintenance step after the snapshot.
    pub fn everything() -> Self {
        Self {
            snapshot: SnapshotOptions::default(),
            maintenance: Some(MaintenanceOptions::default()),
        }
    }
}

/// What a publish run did.
#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    /// The published files of every view.
    pub snapshot: SnapshotSummary,
    /// `None` when maintenance was not asked for.
    pub maintenance: Option<MaintenanceSummary>,
}

impl PublishReport {
    /// Whether every view published and every asked-for maintenance step succeeded.
    pub fn is_success(&self) -> bool {
        self.snapshot.is_success() && self.maintenance.as_ref().is_none_or(|m| m.is_success())
    }

    /// Both steps as one outcome, whose detail is `{"snapshot": ..., "maintenance": ...}`.
    pub fn outcome(&self) -> JobOutcome {
        JobOutcome::sequence(vec![
            ("snapshot", Some(self.snapshot.outcome())),
            (
                "maintenance",
                self.maintenance.as_ref().map(MaintenanceSummary::outcome),
            ),
        ])
    }
}

/// Publishes the selected views of `plan`, then maintains their raw tables with the same
/// plan and inputs. The snapshot goes first because it is what readers wait for;
/// maintenance takes the time left before the deadline and continues next time. The
/// snapshot stops starting files `extractor.deadline-margin` before the deadline; what it
/// leaves is reported behind.
pub async fn publish(
    context: &Context,
    plan: &Plan,
    inputs: &JobInputs,
    options: &PublishOptions,
) -> PublishReport {
    let snapshot = snapshot::run(context, plan, inputs, &options.snapshot).await;
    let maintenance = match &options.maintenance {
        Some(maintenance) => Some(maintenance::run(context, plan, inputs, maintenance).await),
        None => None,
    };
    PublishReport {
        snapshot,
        maintenance,
    }
}

/// One cycle of a long-running process: a sync slice and, when due, a publish run, both on
/// one plan. Each has its own inputs: the publish run starts when the slice ends.
pub async fn cycle(
    context: &Context,
    sync: (&JobInputs, &SyncOptions),
    publish: Option<(&JobInputs, &PublishOptions)>,
) -> (RunSummary, Option<PublishReport>) {
    let job = SyncJob::from_context(context);
    let (sync_inputs, sync_options) = sync;
    let plan = sync_plan(&job, sync_inputs).await;
    let synced = sync::run(&job, &plan, sync_inputs, sync_options).await;
    let published = match publish {
        Some((inputs, options)) => Some(self::publish(context, &plan, inputs, options).await),
        None => None,
    };
    (synced, published)
}
