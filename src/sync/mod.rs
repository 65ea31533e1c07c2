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
use std::time::Duration;

use tokio::time::Instant;

use self::scheduler::{Turn, run_turns};
use self::state_store::StateRow;
pub(crate) use self::state_store::StateStore;
pub(crate) use self::stream::StreamContext;
use self::stream::StreamRun;
pub use self::summary::{RunSummary, StreamReport, StreamStatus};
use crate::cdf::CdfClient;
use crate::config::SpaceSelection;
use crate::context::Context;
use crate::failure::{Cause, Failure};
use crate::job::{Deadline, JobInputs};
use crate::plan::{Plan, StreamSpec};
use crate::progress::Progress;

/// What a sync run should do, beyond its [`JobInputs`] and the configuration.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Streams (by stream key or view externalId) to restart with a full backfill. Such a
    /// stream goes first; a resync that another sync gets ahead of is tried again, and one
    /// that does not take effect in the run fails its stream.
    pub force_resync: Vec<String>,
    /// Resolve models and plan streams, but read and write nothing.
    pub dry_run: bool,
}

/// The sync's settings, built from the configuration.
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

impl SyncJob {
    /// The sync settings of the context's configuration, with its CDF client and lake.
    pub fn from_context(context: &Context) -> SyncJob {
        let config = &context.config;
        let extractor = &config.extractor;
        SyncJob {
            streams: StreamContext {
                client: context.client.clone(),
                destination: context.destination.clone(),
                state_store: StateStore::new(
                    context.client.clone(),
                    &extractor.state_store.database,
                    &extractor.state_store.table,
                ),
                write_options: context.raw_write_options(),
                row_budget: extractor.ingest_batch_size,
                byte_budget: usize::try_from(extractor.ingest_batch_bytes).unwrap_or(usize::MAX),
                deadline_margin: extractor.deadline_margin,
                membership_scan_interval: extractor.membership_scan_interval,
                progress: Progress::none(),
            },
            data_modeling: config.data_modeling.clone(),
            page_size: extractor.sync_page_size,
            parallelism: extractor.parallelism as usize,
            extraction_pipeline: config.cognite.extraction_pipeline.clone(),
        }
    }
}

/// Attempts a forced resync gets in one run. Another sync that loaded the stream's state
/// before the resync recorded its new generation commits the old generation first, and the
/// resync's first commit is refused; the next attempt starts from that commit, and by then
/// the other sync's next commit is the one refused.
const RESYNC_ATTEMPTS: u32 = 3;

/// The least time the last checkpoints (and the run report) get after the streams stop
/// reading, however small `deadline-margin` is: a run whose reads go on to the deadline
/// (a margin of 0 s) still saves its state, a few seconds late, rather than leaving RAW
/// behind the Delta log.
const CHECKPOINT_TIME: Duration = Duration::from_secs(5);

impl SyncJob {
    /// When the streams stop reading pages: the run's deadline less `deadline-margin`,
    /// which is kept for the last commit and checkpoint of each stream.
    pub(crate) fn read_deadline(&self, deadline: Deadline) -> Deadline {
        deadline.less(self.streams.deadline_margin)
    }

    /// When the state rows and the run report must be written by: the deadline, or
    /// [`CHECKPOINT_TIME`] after the reads stop when the margin is shorter than that.
    fn write_deadline(&self, deadline: Deadline) -> Deadline {
        let reads_end = self.read_deadline(deadline);
        deadline.or_later(match reads_end.instant() {
            Some(at) => Deadline::at(at + CHECKPOINT_TIME),
            None => Deadline::none(),
        })
    }

    /// The job for one run: its CDF calls bound to the run's deadline (a page read, with
    /// retries, `Retry-After` and the request itself, ends by [`SyncJob::read_deadline`],
    /// the state rows by [`SyncJob::write_deadline`]), reporting to the run's progress.
    fn for_run(&self, inputs: &JobInputs) -> SyncJob {
        let mut job = self.clone();
        job.streams.client = bound(&self.streams.client, self.read_deadline(inputs.deadline));
        job.streams.state_store = match self.write_deadline(inputs.deadline).instant() {
            Some(at) => self.streams.state_store.with_deadline(at),
            None => self.streams.state_store.clone(),
        };
        job.streams.progress = inputs.progress.clone();
        job
    }
}

/// The client with its calls bound to `deadline`, if there is one, and to its interrupt.
pub(crate) fn bound(client: &CdfClient, deadline: Deadline) -> CdfClient {
    let client = match deadline.instant() {
        Some(at) => client.with_deadline(at),
        None => client.clone(),
    };
    match deadline.interrupt() {
        Some(interrupt) => client.with_interrupt(interrupt),
        None => client,
    }
}

/// Runs one time slice over the streams of `plan`: every stream gets turns until it is
/// caught up or the deadline nears. Never fails as a whole because of one view: problems are
/// reported per view or stream in the summary.
pub(crate) async fn run(
    job: &SyncJob,
    plan: &Plan,
    inputs: &JobInputs,
    options: &SyncOptions,
) -> RunSummary {
    let started = Instant::now();
    // The run report may use the margin too: it is sent after the last checkpoint.
    let reporter = bound(&job.streams.client, job.write_deadline(inputs.deadline));
    let job = &job.for_run(inputs);
    let plan = plan.for_views(&inputs.selection);
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
            Ok(states) => run_streams(job, inputs.deadline, options, specs, states).await,
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
    let summary = RunSummary {
        dry_run: options.dry_run,
        ..RunSummary::from_reports(reports, plan_errors, started.elapsed().as_millis() as u64)
    };
    if !options.dry_run {
        reporter
            .report_invocation(
                job.extraction_pipeline.as_deref(),
                summary.is_success(),
                summary.one_line(),
            )
            .await;
    }
    summary
}

/// An operator's request to restart a stream with a full backfill, and how it went so far.
#[derive(Debug, Clone, Default)]
struct ForcedResync {
    /// Attempts made so far.
    attempts: u32,
    /// The report of the last attempt, whose first commit another sync got ahead of.
    lost: Option<Box<StreamReport>>,
}

/// What follows a forced stream's turn.
#[derive(Debug)]
enum AfterTurn {
    /// The stream is done for this run, with this report.
    Done(StreamReport),
    /// The resync lost its race: queue the stream for another attempt.
    Again(ForcedResync),
}

impl ForcedResync {
    /// What to do with the report of an attempt: done, or another attempt. A forced stream
    /// that made its first commit started its new generation, whatever happens later; one
    /// that was superseded before it did is still in the old generation, so the request has
    /// not taken effect.
    fn after_turn(mut self, report: StreamReport) -> AfterTurn {
        self.attempts += 1;
        if report.status != StreamStatus::Superseded || report.commits > 0 {
            return AfterTurn::Done(report);
        }
        if self.attempts < RESYNC_ATTEMPTS {
            tracing::warn!(stream = %report.stream, attempt = self.attempts, "another sync committed to the stream before the requested resync did; trying the resync again");
            self.lost = Some(Box::new(report));
            return AfterTurn::Again(self);
        }
        AfterTurn::Done(self.not_done(report))
    }

    /// The report of a stream whose requested resync did not happen in this run: failed, so
    /// that the operator who asked learns it (exit status, error type), never superseded.
    fn not_done(&self, report: StreamReport) -> StreamReport {
        let why = report
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "another sync committed to the stream first".to_owned());
        let failure = Failure::new(
            Cause::CommitConflict,
            format!(
                "the requested resync did not take effect in {} attempts, another sync committed to the stream first ({why}); request it again when no other sync of the stream runs",
                self.attempts,
            ),
        );
        StreamReport {
            status: StreamStatus::Failed,
            error: Some(failure),
            ..report
        }
    }

    /// The report of a forced stream the deadline left waiting for its (next) attempt.
    fn unfinished(&self, key: &str) -> StreamReport {
        match &self.lost {
            Some(report) => self.not_done((**report).clone()),
            None => StreamReport::failed(
                key,
                Failure::new(
                    Cause::DeadlineReached,
                    "the requested resync did not start: the run's deadline came before the stream's turn; request it again with more time",
                ),
            ),
        }
    }
}

/// A stream waiting for its first turn, or one between turns.
enum Queued {
    New {
        spec: Arc<StreamSpec>,
        state_row: Option<Box<StateRow>>,
        /// Set when an operator asked for a full resync of the stream.
        resync: Option<ForcedResync>,
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
    deadline: Deadline,
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
                resync: force.then(ForcedResync::default),
            }
        })
        .collect();
    // Streams an operator asked to resync first, then longest-waiting first: never-run
    // streams, then the oldest last success.
    queue.sort_by_key(|queued| match queued {
        Queued::New {
            state_row, resync, ..
        } => (
            resync.is_none(),
            state_row
                .as_ref()
                .and_then(|s| s.checkpoint.last_success)
                .unwrap_or(i64::MIN),
        ),
        Queued::Running(run) => (true, run.last_success().unwrap_or(i64::MIN)),
    });
    let ctx = Arc::new(job.streams.clone());
    let turn_deadline = job.read_deadline(deadline);
    let deadline = deadline.instant_or_far();
    let (mut reports, unfinished) = run_turns(
        queue,
        job.parallelism,
        turn_deadline,
        move |queued: Queued| {
            let ctx = ctx.clone();
            async move {
                let (run, retry) = match queued {
                    Queued::Running(run) => (*run, None),
                    Queued::New {
                        spec,
                        state_row,
                        resync,
                    } => {
                        let key = spec.key.clone();
                        let force = resync.is_some();
                        let retry = resync.map(|resync| (resync, spec.clone(), state_row.clone()));
                        match StreamRun::start(&ctx, spec, state_row.map(|row| *row), force).await {
                            Ok(run) => (run, retry),
                            Err(error) => return Turn::Done(StreamReport::failed(key, error)),
                        }
                    }
                };
                match run.turn(&ctx, deadline).await {
                    Turn::Again(run) => Turn::Again(Queued::Running(Box::new(run))),
                    Turn::Done(report) => match retry {
                        None => Turn::Done(report),
                        Some((resync, spec, state_row)) => match resync.after_turn(report) {
                            AfterTurn::Done(report) => Turn::Done(report),
                            AfterTurn::Again(resync) => Turn::Again(Queued::New {
                                spec,
                                state_row,
                                resync: Some(resync),
                            }),
                        },
                    },
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
        Queued::New {
            spec,
            resync: Some(resync),
            ..
        } => resync.unfinished(&spec.key),
        other => StreamReport::new(other.key().to_owned(), StreamStatus::Behind),
    }));
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    impl AfterTurn {
        fn done(self) -> StreamReport {
            match self {
                AfterTurn::Done(report) => report,
                AfterTurn::Again(resync) => panic!("another attempt: {resync:?}"),
            }
        }

        fn again(self) -> ForcedResync {
            match self {
                AfterTurn::Again(resync) => resync,
                AfterTurn::Done(report) => panic!("done: {report:?}"),
            }
        }
    }

    fn report(status: StreamStatus, commits: u64) -> StreamReport {
        StreamReport {
            commits,
            error: (status == StreamStatus::Superseded)
                .then(|| Failure::new(Cause::CommitConflict, "another sync committed step 4")),
            ..StreamReport::new("s/M/1/V/nodes", status)
        }
    }

    #[test]
    fn a_resync_superseded_before_its_first_commit_is_tried_again_then_fails() {
        let mut resync = ForcedResync::default();
        for attempt in 1..RESYNC_ATTEMPTS {
            resync = resync
                .after_turn(report(StreamStatus::Superseded, 0))
                .again();
            assert_eq!(resync.attempts, attempt);
        }
        let last = resync
            .after_turn(report(StreamStatus::Superseded, 0))
            .done();
        assert_eq!(last.status, StreamStatus::Failed);
        let error = last.error.expect("says why");
        assert_eq!(error.cause, Cause::CommitConflict);
        assert!(
            error
                .message
                .contains("resync did not take effect in 3 attempts")
                && error.message.contains("another sync committed step 4"),
            "{error}"
        );
    }

    #[test]
    fn a_resync_that_committed_or_ended_otherwise_is_reported_as_it_is() {
        for (status, commits) in [
            (StreamStatus::Superseded, 1),
            (StreamStatus::CaughtUp, 1),
            (StreamStatus::Behind, 0),
            (StreamStatus::Failed, 0),
        ] {
            let done = ForcedResync::default()
                .after_turn(report(status, commits))
                .done();
            assert_eq!(done.status, status);
        }
    }

    #[test]
    fn a_resync_the_deadline_left_waiting_fails() {
        let never_started = ForcedResync::default().unfinished("s/M/1/V/nodes");
        assert_eq!(never_started.status, StreamStatus::Failed);
        assert_eq!(
            never_started.error.map(|e| e.cause),
            Some(Cause::DeadlineReached)
        );
        let lost = ForcedResync::default()
            .after_turn(report(StreamStatus::Superseded, 0))
            .again();
        let waiting = lost.unfinished("s/M/1/V/nodes");
        assert_eq!(waiting.status, StreamStatus::Failed);
        assert_eq!(waiting.error.map(|e| e.cause), Some(Cause::CommitConflict));
    }
}
