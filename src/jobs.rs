//! The jobs of a run, composed in one place for the CLI and the Lambda functions.
//!
//! A run resolves the [`Plan`] once and hands it to each job it runs: sync, or publish
//! (snapshot, then maintenance of the raw tables). The entry points differ only in where the
//! configuration, the deadline and the options come from. A publish run can also be split
//! into units for many workers ([`fan_out`]).

pub mod fan_out;

use serde::Serialize;

use crate::context::Context;
use crate::failure::FailureCounts;
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

/// One sync time slice, planned for this slice. Planning reads CDF too, so it ends when the
/// slice stops reading.
pub async fn sync(job: &SyncJob, options: &SyncOptions) -> RunSummary {
    let client = job
        .streams
        .client
        .with_deadline(job.read_deadline(options.deadline));
    let plan = Plan::resolve(&client, &job.data_modeling, job.page_size).await;
    sync::run(job, &plan, options).await
}

/// One snapshot pass, planned for this pass.
pub async fn snapshot(context: &Context, options: &SnapshotOptions) -> SnapshotSummary {
    snapshot::run(context, &plan(context).await, options).await
}

/// One maintenance pass, planned for this pass.
pub async fn maintenance(context: &Context, options: &MaintenanceOptions) -> MaintenanceSummary {
    maintenance::run(context, &plan(context).await, options).await
}

/// What a publish run does: the snapshot of these views, then (unless `None`) maintenance
/// of their raw tables.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Only these views (by view externalId); `None` for all.
    pub views: Option<Vec<String>>,
    /// Maintenance of the raw tables after the snapshot; `None` publishes only.
    pub maintenance: Option<MaintenanceOptions>,
}

impl PublishOptions {
    /// Every view, with every maintenance step and no deadline.
    pub fn everything() -> Self {
        Self {
            views: None,
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

    pub(crate) fn one_line(&self) -> String {
        match &self.maintenance {
            Some(m) => format!(
                "{}; maintenance: {}",
                self.snapshot.one_line(),
                m.one_line()
            ),
            None => self.snapshot.one_line(),
        }
    }

    /// The failures of both steps.
    pub(crate) fn failures(&self) -> FailureCounts {
        let mut counts = self.snapshot.failures();
        if let Some(maintenance) = &self.maintenance {
            for (cause, n) in maintenance.failures().by_cause {
                *counts.by_cause.entry(cause).or_insert(0) += n;
            }
        }
        counts
    }
}

/// Publishes the views of `plan`, then maintains their raw tables with the same plan. The
/// snapshot goes first because it is what readers wait for; maintenance takes the time left
/// (its deadline) and continues next time.
pub async fn publish(context: &Context, plan: &Plan, options: &PublishOptions) -> PublishReport {
    let snapshot = snapshot::run(
        context,
        plan,
        &SnapshotOptions {
            views: options.views.clone(),
        },
    )
    .await;
    let maintenance = match &options.maintenance {
        Some(maintenance) => {
            let maintenance = MaintenanceOptions {
                views: options.views.clone(),
                ..maintenance.clone()
            };
            Some(maintenance::run(context, plan, &maintenance).await)
        }
        None => None,
    };
    PublishReport {
        snapshot,
        maintenance,
    }
}

/// One cycle of a long-running process: a sync slice and, when due, a publish run, both on
/// one plan.
pub async fn cycle(
    context: &Context,
    sync_options: &SyncOptions,
    publish_options: Option<&PublishOptions>,
) -> (RunSummary, Option<PublishReport>) {
    let job = context.sync_job();
    let client = context
        .client
        .with_deadline(job.read_deadline(sync_options.deadline));
    let plan = Plan::resolve(
        &client,
        &context.config.data_modeling,
        context.config.extractor.sync_page_size,
    )
    .await;
    let synced = sync::run(&job, &plan, sync_options).await;
    let published = match publish_options {
        Some(options) => Some(publish(context, &plan, options).await),
        None => None,
    };
    (synced, published)
}
