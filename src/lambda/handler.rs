//! One invocation: payload → secret → configuration → run → summary, metrics and response.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::Instrument;

use crate::cdf::CdfError;
use crate::config::{Config, EnvSource, Layered};
use crate::context::{ClientCache, Context, ContextError, LoadError};
use crate::failure::Verdict;
use crate::job::{JobInputs, JobOutcome};
use crate::jobs::fan_out;
use crate::jobs::{self, PublishOptions, ScheduledVerify};
use crate::maintenance::MaintenanceOptions;
use crate::sync::{SyncJob, SyncOptions};

use super::FunctionKind;
use super::config_source::{ConfigSource, ConfigSourceError};
use super::error::FunctionError;
use super::event::{FanOutStep, Payload, PayloadError, Request, Trigger, parse_payload};
use super::logging::{LogControl, panic_message};
use super::metrics::{MetricSet, MetricsSink};
use super::secrets::SecretSource;
use crate::clock::now_ms;

/// What the runtime tells about one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The AWS request id, repeated in the logs and metrics of the invocation.
    pub request_id: String,
    /// When Lambda ends the invocation (the function timeout).
    pub deadline: SystemTime,
}

/// Runtime deadlines below this (epoch ms, September 2001) cannot be instants.
const EARLIEST_ABSOLUTE_DEADLINE_MS: u64 = 1_000_000_000_000;

impl Invocation {
    /// From the runtime API's `Lambda-Runtime-Deadline-Ms`: epoch milliseconds in AWS. Local
    /// runtime emulators (`cargo lambda watch` sends `600000`) put a duration there instead;
    /// a value too small to be an instant is read as that many milliseconds from now, so a
    /// local run gets the time its emulator means rather than a deadline in 1970.
    pub fn from_runtime_deadline(request_id: impl Into<String>, deadline_ms: u64) -> Self {
        let deadline = if deadline_ms < EARLIEST_ABSOLUTE_DEADLINE_MS {
            SystemTime::now() + Duration::from_millis(deadline_ms)
        } else {
            SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms)
        };
        Self {
            request_id: request_id.into(),
            deadline,
        }
    }
}

/// The parts of a function that live as long as its container.
pub struct FunctionSetup {
    /// Which function this container runs.
    pub kind: FunctionKind,
    /// The value of the metrics' `Function` dimension (the Lambda function name).
    pub name: String,
    /// Variables for `${VAR}` that win over the secret (the process environment).
    pub env: Box<dyn EnvSource + Send + Sync>,
    /// Where each invocation reads its configuration; an error fails every invocation with it
    /// (the container still starts, so the error reaches the caller).
    pub config_source: Result<ConfigSource, ConfigSourceError>,
    /// The CDF credentials secret, when one is configured.
    pub secrets: Option<SecretSource>,
    /// Where the EMF metrics lines go (standard output in Lambda).
    pub metrics: Arc<dyn MetricsSink>,
    /// Changes the log level when a configuration asks for one.
    pub logs: LogControl,
}

/// A Lambda function: built once per container, invoked many times.
pub struct Function {
    setup: FunctionSetup,
    clients: ClientCache,
}

/// What a finished run produced, before it becomes the response: the job's outcome, and
/// whether its figures are the run's metrics (the plan and unit steps of a snapshot split
/// into units have none: the finalize step emits the run's, summed over the units, so that
/// the snapshot metrics mean the same with and without the fan-out).
struct Ran {
    outcome: JobOutcome,
    metered: bool,
}

impl From<JobOutcome> for Ran {
    fn from(outcome: JobOutcome) -> Self {
        Self {
            outcome,
            metered: true,
        }
    }
}

impl Function {
    /// A function with no CDF client yet: the first invocation builds it from its configuration.
    pub fn new(setup: FunctionSetup) -> Self {
        Self {
            setup,
            clients: ClientCache::default(),
        }
    }

    /// Runs one invocation and returns the response document (the run summary), or the
    /// failure to report. Panics are caught and reported as [`FunctionError::Panic`]; the
    /// container stays usable. Logs one summary line and, for runs that did work, one EMF
    /// metrics line.
    pub async fn invoke(
        &self,
        payload: impl Into<Payload>,
        invocation: &Invocation,
    ) -> Result<Value, FunctionError> {
        let payload = payload.into();
        let span = tracing::info_span!(
            "invocation",
            requestId = %invocation.request_id,
            function = %self.setup.kind
        );
        let started = Instant::now();
        // Boxed: the sync future is deep, and the runtime nests it further.
        let run = Box::pin(self.run(payload, invocation).instrument(span.clone()));
        let outcome = AssertUnwindSafe(run)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(FunctionError::Panic(panic_message(panic.as_ref()))));
        let _entered = span.enter();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(outcome) => self.finish(outcome, invocation, elapsed_ms),
            Err(error) => {
                tracing::error!(
                    outcome = "error",
                    error_type = %error.error_type(),
                    error = %error,
                    duration_ms = elapsed_ms,
                    "{} invocation failed",
                    self.setup.kind
                );
                Err(error)
            }
        }
    }

    async fn run(&self, payload: Payload, invocation: &Invocation) -> Result<Ran, FunctionError> {
        let request = parse_payload(self.setup.kind, &payload)?;
        log_request(&request, invocation);
        let config = self.load_config().await?;
        self.setup.logs.apply_config_level(config.logger.level);
        for warning in &config.warnings {
            tracing::warn!("configuration: {warning}");
        }
        let mut context = self.context(config)?;
        // Every CDF call of the invocation ends before Lambda's deadline: a throttled or slow
        // CDF ends the run with what it did instead of having it killed by the timeout.
        context.client = context
            .client
            .with_deadline(Instant::now() + remaining(invocation.deadline, None));
        if let Err(error) = context.client.authenticate().await {
            self.forget_refused_secret(&error).await;
            return Err(ContextError::Cdf(error).into());
        }
        match self.setup.kind {
            FunctionKind::Sync => Ok(self.run_sync(&context, request, invocation).await?.into()),
            FunctionKind::Snapshot if request.fan_out.is_some() => {
                self.run_fan_out_step(&context, request, invocation).await
            }
            FunctionKind::Snapshot => Ok(self
                .run_snapshot(&context, request, invocation)
                .await?
                .into()),
        }
    }

    /// Reloads the configuration: the secret (cached), then the source, then (with
    /// `type: remote`) the extraction pipeline's configuration.
    async fn load_config(&self) -> Result<Config, FunctionError> {
        let source = self.setup.config_source.clone()?;
        let secret = match &self.setup.secrets {
            Some(secrets) => Some(secrets.variables().await?),
            None => None,
        };
        let process: &dyn EnvSource = &*self.setup.env;
        let layered;
        let env: &dyn EnvSource = match &secret {
            Some(secret) => {
                layered = Layered(process, secret.as_ref());
                &layered
            }
            None => process,
        };
        match source.load(env, &self.clients).await {
            Ok(config) => Ok(config),
            Err(error) => {
                if let LoadError::RemoteFetch { source, .. } = &error {
                    self.forget_refused_secret(source).await;
                }
                Err(error.into())
            }
        }
    }

    /// When CDF refused the credentials, reads the secret again next time, in case it was
    /// rotated after this container read it.
    async fn forget_refused_secret(&self, error: &CdfError) {
        if let Some(secrets) = &self.setup.secrets
            && matches!(error.root(), CdfError::Auth { .. })
            && !error.is_retryable()
        {
            secrets.forget().await;
        }
    }

    /// The clients for this configuration, reusing the container's CDF client when the
    /// connection settings are unchanged.
    fn context(&self, config: Config) -> Result<Context, FunctionError> {
        Ok(Context::with_clients(config, &self.clients)?)
    }

    /// One sync slice until the invocation's deadline (or the payload's budget). The sync
    /// keeps `extractor.deadline-margin` of it for its last commits and checkpoints, so at
    /// least that much must be left.
    async fn run_sync(
        &self,
        context: &Context,
        request: Request,
        invocation: &Invocation,
    ) -> Result<JobOutcome, FunctionError> {
        let left = remaining(invocation.deadline, request.time_budget);
        if !request.dry_run {
            enough_time(left, context.config.extractor.deadline_margin)?;
        }
        let inputs = JobInputs::until(Instant::now() + left).with_selection(request.selection);
        let options = SyncOptions {
            force_resync: request.resync,
            dry_run: request.dry_run,
        };
        let job = SyncJob::from_context(context);
        Ok(jobs::sync(&job, &inputs, &options).await.outcome())
    }

    /// Publishes, then (unless the payload says `maintenance: false`) maintains the raw
    /// tables in the time left. Both obey the invocation's deadline (or the payload's
    /// budget) less `extractor.deadline-margin`: the snapshot starts no file it cannot
    /// finish by then and leaves the rest for the next invocation; maintenance starts no
    /// table or step after it. `extractor.maintenance.enabled: false` turns maintenance off
    /// for every run.
    async fn run_snapshot(
        &self,
        context: &Context,
        request: Request,
        invocation: &Invocation,
    ) -> Result<JobOutcome, FunctionError> {
        let inputs = job_inputs(&request, invocation);
        let options = publish_options(&request, context);
        let plan = jobs::plan(context).await;
        Ok(jobs::publish(context, &plan, &inputs, &options)
            .await
            .outcome())
    }

    /// One step of a snapshot run split into units, each an outcome of the snapshot job: the
    /// plan's detail is the list of units the state machine's map reads, a unit's is its
    /// `{"outcome", "snapshot"}` (the map keeps the `outcome` for finalize), and finalize's
    /// is the whole run's. Only finalize emits metrics (see [`Ran`]).
    async fn run_fan_out_step(
        &self,
        context: &Context,
        mut request: Request,
        invocation: &Invocation,
    ) -> Result<Ran, FunctionError> {
        let inputs = job_inputs(&request, invocation);
        match request.fan_out.take() {
            Some(FanOutStep::Plan) => Ok(Ran {
                outcome: fan_out::plan_outcome(
                    &fan_out::plan_units(context, &inputs.selection).await,
                ),
                metered: false,
            }),
            Some(FanOutStep::Unit(id)) => match fan_out::run_unit(context, &id, &inputs).await {
                Ok(report) => Ok(Ran {
                    outcome: report.job_outcome(),
                    metered: false,
                }),
                // Permanent: the same id names nothing in the same plan next time either.
                Err(error) => Err(PayloadError {
                    key: Some("unit".into()),
                    message: error.to_string(),
                }
                .into()),
            },
            Some(FanOutStep::Finalize { outcomes }) => {
                let options = publish_options(&request, context);
                Ok(
                    fan_out::finalize(context, &inputs, &options, outcomes.as_deref())
                        .await
                        .outcome()
                        .into(),
                )
            }
            None => Ok(self
                .run_snapshot(context, request, invocation)
                .await?
                .into()),
        }
    }

    /// One EMF line per invocation, tagged with the request id so a metric leads to its logs.
    fn emit_metrics(&self, metrics: &MetricSet, invocation: &Invocation) {
        let emf = metrics.to_emf(
            &self.setup.name,
            now_ms(),
            &[("requestId", json!(invocation.request_id))],
        );
        self.setup.metrics.emit(&emf.to_string());
    }

    /// Metrics line, summary line, and the response or the failure it amounts to, the same
    /// for every job.
    fn finish(
        &self,
        ran: Ran,
        invocation: &Invocation,
        elapsed_ms: u64,
    ) -> Result<Value, FunctionError> {
        let metered = ran.metered && !ran.outcome.dry_run;
        let outcome = ran.outcome;
        // A dry run only planned: it never moves an alarm.
        if metered {
            self.emit_metrics(&MetricSet::of(&outcome), invocation);
        }
        let failures: Vec<String> = outcome
            .failures
            .by_cause
            .iter()
            .map(|(cause, n)| format!("{cause}={n}"))
            .collect();
        tracing::info!(
            outcome = if outcome.success { "success" } else { "failed" },
            job = outcome.job,
            dry_run = outcome.dry_run,
            succeeded = outcome.succeeded,
            behind = outcome.behind,
            failed = outcome.failed,
            failures = %failures.join(","),
            run_ms = outcome.duration_ms,
            duration_ms = elapsed_ms,
            "{} finished: {}",
            outcome.job,
            outcome.summary
        );
        respond(outcome)
    }
}

/// The inputs of a snapshot run (or of a step of one split into units): the payload's views,
/// until the invocation's deadline (or the payload's budget). The snapshot keeps
/// `extractor.deadline-margin` of it: no file, maintenance table or step starts later than
/// the deadline less the margin.
fn job_inputs(request: &Request, invocation: &Invocation) -> JobInputs {
    let left = remaining(invocation.deadline, request.time_budget);
    JobInputs::until(Instant::now() + left).with_selection(request.selection.clone())
}

/// What a publish run (or the finalize step of one split into units) does beyond its
/// inputs: maintenance of the raw tables after the snapshot, unless the payload says
/// `maintenance: false`, then a verification every `extractor.verify-interval`.
fn publish_options(request: &Request, context: &Context) -> PublishOptions {
    PublishOptions {
        maintenance: match request.maintenance {
            Some(false) => None,
            Some(true) | None => Some(MaintenanceOptions::default()),
        },
        verify: ScheduledVerify::from_config(&context.config),
        ..PublishOptions::default()
    }
}

/// The job's summary as the response, or, when something failed, the failure naming it
/// (the figures are in the summary line) and saying whether a retry can help.
fn respond(outcome: JobOutcome) -> Result<Value, FunctionError> {
    // A run that is not a success always has a failure; should one ever lack it, a retry
    // is the safe advice.
    let verdict = outcome
        .failures
        .verdict()
        .or((!outcome.success).then_some(Verdict::Retryable));
    match verdict {
        Some(verdict) => Err(FunctionError::RunFailed {
            message: outcome.summary,
            verdict,
        }),
        None => Ok(outcome.detail),
    }
}

fn log_request(request: &Request, invocation: &Invocation) {
    let trigger = match &request.trigger {
        Trigger::Direct => "direct".to_owned(),
        Trigger::EventBridge {
            detail_type,
            source,
            ..
        } => format!("{source}: {detail_type}"),
    };
    tracing::info!(
        %trigger,
        remaining_ms = invocation
            .deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64,
        views = %request.selection,
        resync = ?request.resync,
        dry_run = request.dry_run,
        maintenance = ?request.maintenance,
        step = request.fan_out.as_ref().map(FanOutStep::describe),
        time_budget_s = request.time_budget.map(|b| b.as_secs()),
        "invocation started"
    );
}

/// Time kept free before Lambda's deadline for what follows a run: the summary line, the
/// metrics line and the response.
const RESPONSE_TIME: Duration = Duration::from_secs(1);

/// Time until the invocation's deadline (less [`RESPONSE_TIME`]), shortened to the
/// payload's budget.
fn remaining(invocation_deadline: SystemTime, budget: Option<Duration>) -> Duration {
    let left = invocation_deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .saturating_sub(RESPONSE_TIME);
    budget.map_or(left, |budget| budget.min(left))
}

/// Refuses a run whose time left is not more than `margin`, which the job keeps free for
/// its last writes: it could do nothing.
fn enough_time(left: Duration, margin: Duration) -> Result<(), FunctionError> {
    if left <= margin {
        return Err(FunctionError::NoTimeLeft {
            remaining_ms: left.as_millis(),
            margin_ms: margin.as_millis(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_is_lambdas_or_the_shorter_budget() {
        let in_ten_minutes = SystemTime::now() + Duration::from_secs(600);
        let full = remaining(in_ten_minutes, None);
        assert!(full > Duration::from_secs(590) && full < Duration::from_secs(600));
        let budget = remaining(in_ten_minutes, Some(Duration::from_secs(60)));
        assert_eq!(budget, Duration::from_secs(60));
    }

    #[test]
    fn runtime_deadlines_absolute_and_local() {
        let in_aws = 1_800_000_000_000;
        let aws = Invocation::from_runtime_deadline("r", in_aws);
        assert_eq!(
            aws.deadline,
            SystemTime::UNIX_EPOCH + Duration::from_millis(in_aws)
        );
        let local = Invocation::from_runtime_deadline("r", 600_000);
        let left = local.deadline.duration_since(SystemTime::now()).unwrap();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
    }

    #[test]
    fn no_time_left_after_the_margin_is_an_error() {
        let soon = SystemTime::now() + Duration::from_secs(15);
        let err = enough_time(remaining(soon, None), Duration::from_secs(20)).unwrap_err();
        assert_eq!(err.error_type(), "Permanent.InvalidConfiguration");
        assert!(err.to_string().contains("deadline-margin"), "{err}");
        let past = SystemTime::now() - Duration::from_secs(1);
        assert!(enough_time(remaining(past, None), Duration::ZERO).is_err());
        assert!(enough_time(Duration::from_secs(21), Duration::from_secs(20)).is_ok());
    }
}
