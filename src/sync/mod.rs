//! Sync: CDF views to Delta tables, exactly once, in time slices.
//!
//! The streams come from the [`crate::plan`] of the invocation:
//! - [`state`] and [`state_store`]: checkpoints in RAW and their reconciliation with Delta;
//! - [`stream`]: one stream's page loop, commits and checkpoints;
//! - [`scheduler`]: turns of many streams under a deadline;
//! - [`summary`]: what an invocation did.

pub(crate) mod scheduler;
pub mod state;
pub(crate) mod state_store;
pub(crate) mod stream;
pub mod summary;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use self::scheduler::{Turn, run_turns};
use self::state_store::StateRow;
pub(crate) use self::state_store::StateStore;
pub(crate) use self::stream::StreamContext;
use self::stream::StreamRun;
pub use self::summary::{RunSummary, StreamReport, StreamStatus};
use crate::config::SpaceSelection;
use crate::failure::{Cause, Failure};
use crate::plan::{Plan, StreamSpec};

/// What an invocation should do, beyond the configuration.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// No turn starts after this instant (less the configured margin).
    pub deadline: Instant,
    /// Only streams of these views (by view externalId); `None` for all.
    pub views: Option<Vec<String>>,
    /// Streams (by stream key or view externalId) to restart with a full backfill.
    pub force_resync: Vec<String>,
    /// Resolve models and plan streams, but read and write nothing.
    pub dry_run: bool,
}

impl SyncOptions {
    /// Every stream, full runs (no forced resync), real reads and writes, until `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Self {
            deadline,
            views: None,
            force_resync: Vec::new(),
            dry_run: false,
        }
    }
}

/// The configuration-derived parts of a sync run.
#[derive(Debug, Clone)]
pub struct SyncJob {
    /// What the streams share: CDF client, destination, state store, write settings.
    pub streams: StreamContext,
    pub(crate) data_modeling: Vec<SpaceSelection>,
    pub(crate) page_size: u32,
    pub(crate) parallelism: usize,
    /// Extraction pipeline that gets one run report per invocation.
    pub(crate) extraction_pipeline: Option<String>,
}

/// Runs one time slice over the streams of `plan`: every stream gets turns until it is
/// caught up or the deadline nears. Never fails as a whole because of one view: problems are
/// reported per view or stream in the summary.
pub(crate) async fn run(job: &SyncJob, plan: &Plan, options: &SyncOptions) -> RunSummary {
    let started = Instant::now();
    let plan = plan.for_views(options.views.as_deref());
    let mut plan_errors = plan.problems().to_vec();
    plan_errors.extend(
        plan.unknown_names("resync", &options.force_resync, |spec, name| {
            spec.key == name || spec.view.external_id == name
        }),
    );
    let specs = plan.streams().to_vec();
    let reports = if options.dry_run {
        specs
            .iter()
            .map(|s| StreamReport::new(s.key.clone(), StreamStatus::Planned))
            .collect()
    } else {
        match job.streams.state_store.load_all().await {
            Ok(states) => run_streams(job, options, specs, states).await,
            Err(error) => {
                // Without the state rows every stream would look deleted and restart: refuse.
                plan_errors.push(Failure::cdf(
                    format!(
                        "cannot read the state table {}",
                        job.streams.state_store.location()
                    ),
                    &error,
                ));
                Vec::new()
            }
        }
    };
    let summary =
        RunSummary::from_reports(reports, plan_errors, started.elapsed().as_millis() as u64);
    if !options.dry_run {
        job.streams
            .client
            .report_invocation(
                job.extraction_pipeline.as_deref(),
                summary.is_success(),
                summary.one_line(),
            )
            .await;
    }
    summary
}

/// A stream waiting for its first turn, or one between turns.
enum Queued {
    New {
        spec: Arc<StreamSpec>,
        state_row: Option<Box<StateRow>>,
        force: bool,
    },
    Running(Box<StreamRun>),
}

impl Queued {
    fn key(&self) -> &str {
        match self {
            Queued::New { spec, .. } => &spec.key,
            Queued::Running(run) => run.key(),
        }
    }
}

async fn run_streams(
    job: &SyncJob,
    options: &SyncOptions,
    specs: Vec<StreamSpec>,
    mut states: HashMap<String, StateRow>,
) -> Vec<StreamReport> {
    let mut queue: Vec<Queued> = specs
        .into_iter()
        .map(|spec| {
            let force = options
                .force_resync
                .iter()
                .any(|f| f == &spec.key || f == &spec.view.external_id);
            let state_row = states.remove(&spec.key).map(Box::new);
            Queued::New {
                spec: Arc::new(spec),
                state_row,
                force,
            }
        })
        .collect();
    // Longest-waiting first: never-run streams, then the oldest last success.
    queue.sort_by_key(|queued| match queued {
        Queued::New { state_row, .. } => state_row
            .as_ref()
            .and_then(|s| s.checkpoint.last_success)
            .unwrap_or(i64::MIN),
        Queued::Running(run) => run.last_success().unwrap_or(i64::MIN),
    });
    let ctx = Arc::new(job.streams.clone());
    let deadline = options.deadline;
    let turn_deadline = deadline
        .checked_sub(ctx.deadline_margin)
        .unwrap_or(deadline);
    let (mut reports, unfinished) = run_turns(
        queue,
        job.parallelism,
        turn_deadline,
        move |queued: Queued| {
            let ctx = ctx.clone();
            async move {
                let run = match queued {
                    Queued::Running(run) => *run,
                    Queued::New {
                        spec,
                        state_row,
                        force,
                    } => {
                        let key = spec.key.clone();
                        match StreamRun::start(&ctx, spec, state_row.map(|row| *row), force).await {
                            Ok(run) => run,
                            Err(error) => return Turn::Done(StreamReport::failed(key, error)),
                        }
                    }
                };
                match run.turn(&ctx, deadline).await {
                    Turn::Again(run) => Turn::Again(Queued::Running(Box::new(run))),
                    Turn::Done(report) => Turn::Done(report),
                }
            }
        },
        |panic| {
            StreamReport::failed(
                "<unknown stream>",
                Failure::new(Cause::Internal, format!("a stream panicked: {panic}")),
            )
        },
    )
    .await;
    reports.extend(unfinished.streams.into_iter().map(|queued| match queued {
        Queued::Running(run) => run.into_report(StreamStatus::Behind),
        other => StreamReport::new(other.key().to_owned(), StreamStatus::Behind),
    }));
    reports
}
