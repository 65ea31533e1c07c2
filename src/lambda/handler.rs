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
use crate::failure::FailureCounts;
use crate::jobs::fan_out::{self, FinalizeReport, UnitReport};
use crate::jobs::{self, PublishOptions, PublishReport};
use crate::maintenance::MaintenanceOptions;
use crate::snapshot::units::UnitPlan;
use crate::sync::{RunSummary, SyncOptions};

use super::FunctionKind;
use super::config_source::{ConfigSource, ConfigSourceError};
use super::error::FunctionError;
use super::event::{FanOutStep, Payload, PayloadError, Request, Trigger, parse_payload};
use super::logging::{LogControl, panic_message};
use super::metrics::{MetricSet, MetricsSink};
use super::secrets::SecretSource;

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

/// What a finished run produced, before it becomes the response.
enum Report {
    Sync {
        summary: RunSummary,
        dry_run: bool,
    },
    /// The snapshot and (unless the payload said `maintenance: false`) maintenance.
    Snapshot(PublishReport),
    /// The units of a snapshot run split into units.
    UnitPlan(UnitPlan),
    /// One unit of such a run.
    Unit(UnitReport),
    /// The finalize step of such a run.
    Finalize(FinalizeReport),
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
            Ok(report) => self.finish(report, invocation, elapsed_ms),
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

    async fn run(
        &self,
        payload: Payload,
        invocation: &Invocation,
    ) -> Result<Report, FunctionError> {
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
            FunctionKind::Sync => self.run_sync(&context, request, invocation).await,
            FunctionKind::Snapshot if request.fan_out.is_some() => {
                self.run_fan_out_step(&context, request, invocation).await
            }
            FunctionKind::Snapshot => self.run_snapshot(&context, request, invocation).await,
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

    async fn run_sync(
        &self,
        context: &Context,
        request: Request,
        invocation: &Invocation,
    ) -> Result<Report, FunctionError> {
        let margin = context.config.extractor.deadline_margin;
        let deadline = if request.dry_run {
            Instant::now() + remaining(invocation.deadline, request.time_budget)
        } else {
            deadline(invocation.deadline, request.time_budget, margin)?
        };
        let options = SyncOptions {
            deadline,
            views: request.views,
            force_resync: request.resync,
            dry_run: request.dry_run,
        };
        let summary = jobs::sync(&context.sync_job(), &options).await;
        Ok(Report::Sync {
            summary,
            dry_run: request.dry_run,
        })
    }

    /// Publishes, then (unless the payload says `maintenance: false`) maintains the raw
    /// tables in the time left: maintenance starts no table or step later than the
    /// invocation's deadline less `extractor.deadline-margin`, and continues next time.
    /// `extractor.maintenance.enabled: false` turns maintenance off for every run.
    async fn run_snapshot(
        &self,
        context: &Context,
        request: Request,
        invocation: &Invocation,
    ) -> Result<Report, FunctionError> {
        let options = publish_options(context, request, invocation);
        let plan = jobs::plan(context).await;
        Ok(Report::Snapshot(
            jobs::publish(context, &plan, &options).await,
        ))
    }

    /// One step of a snapshot run split into units. The plan and the units emit no metrics:
    /// the finalize step emits the run's, summed over the units, so that the snapshot
    /// metrics mean the same with and without the fan-out.
    async fn run_fan_out_step(
        &self,
        context: &Context,
        mut request: Request,
        invocation: &Invocation,
    ) -> Result<Report, FunctionError> {
        match request.fan_out.take() {
            Some(FanOutStep::Plan) => Ok(Report::UnitPlan(
                fan_out::plan_units(context, request.views.as_deref()).await,
            )),
            Some(FanOutStep::Unit(id)) => match fan_out::run_unit(context, &id).await {
                Ok(report) => Ok(Report::Unit(report)),
                // Permanent: the same id names nothing in the same plan next time either.
                Err(error) => Err(PayloadError {
                    key: Some("unit".into()),
                    message: error.to_string(),
                }
                .into()),
            },
            Some(FanOutStep::Finalize { outcomes }) => {
                let options = publish_options(context, request, invocation);
                Ok(Report::Finalize(
                    fan_out::finalize(context, &options, outcomes.as_deref()).await,
                ))
            }
            None => self.run_snapshot(context, request, invocation).await,
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

    /// Metrics line, summary line, and the response or the failure it amounts to.
    fn finish(
        &self,
        report: Report,
        invocation: &Invocation,
        elapsed_ms: u64,
    ) -> Result<Value, FunctionError> {
        match report {
            Report::Sync { summary, dry_run } => {
                if !dry_run {
                    let mut metrics = MetricSet::for_sync(&summary);
                    metrics.extend_with_failures(&summary.failures());
                    self.emit_metrics(&metrics, invocation);
                }
                let success = summary.is_success();
                tracing::info!(
                    outcome = if success { "success" } else { "failed" },
                    dry_run,
                    streams_total = summary.streams_total,
                    streams_caught_up = summary.streams_caught_up,
                    streams_behind = summary.streams_behind,
                    streams_failed = summary.streams_failed,
                    plan_errors = summary.plan_errors.len(),
                    rows = summary.rows,
                    bytes = summary.bytes,
                    commits = summary.commits,
                    cursor_resets = summary.cursor_resets,
                    max_lag_ms = summary.max_lag_ms,
                    run_ms = summary.duration_ms,
                    duration_ms = elapsed_ms,
                    "sync finished: {}",
                    summary.one_line()
                );
                respond(&summary, success, &summary.failures(), || {
                    summary.one_line()
                })
            }
            Report::Snapshot(report) => {
                let mut metrics = MetricSet::for_snapshot(&report.snapshot);
                if let Some(maintenance) = &report.maintenance {
                    metrics.extend_with_maintenance(maintenance);
                }
                metrics.extend_with_failures(&report.failures());
                self.emit_metrics(&metrics, invocation);
                let success = report.is_success();
                let one_line = report.one_line();
                let (summary, maintenance) = (&report.snapshot, &report.maintenance);
                tracing::info!(
                    outcome = if success { "success" } else { "failed" },
                    views_total = summary.views_total,
                    views_failed = summary.views_failed,
                    files_rebuilt = summary.files_rebuilt,
                    files_incremental = summary.files_incremental,
                    files_skipped = summary.files_skipped,
                    files_failed = summary.files_failed,
                    plan_errors = summary.plan_errors.len(),
                    rows = summary.rows,
                    bytes = summary.bytes,
                    maintenance = maintenance.is_some(),
                    tables_failed = maintenance.as_ref().map(|m| m.tables_failed),
                    tables_deferred = maintenance.as_ref().map(|m| m.tables_deferred),
                    files_compacted = maintenance.as_ref().map(|m| m.files_compacted),
                    files_vacuumed = maintenance.as_ref().map(|m| m.files_vacuumed),
                    run_ms = summary.duration_ms,
                    duration_ms = elapsed_ms,
                    "snapshot finished: {one_line}"
                );
                respond(&report, success, &report.failures(), || one_line)
            }
            Report::UnitPlan(plan) => {
                // A plan that could plan nothing fails (retryable when CDF was unavailable);
                // otherwise the finalize step reports the models and views it could not plan.
                let failed = plan.units.is_empty() && !plan.plan_errors.is_empty();
                let failures = if failed {
                    FailureCounts::of(&plan.plan_errors)
                } else {
                    FailureCounts::default()
                };
                let one_line = format!(
                    "{} units, {} plan errors{}",
                    plan.units.len(),
                    plan.plan_errors.len(),
                    plan.plan_errors
                        .iter()
                        .map(|e| format!("; {e}"))
                        .collect::<String>()
                );
                tracing::info!(
                    outcome = if failed { "failed" } else { "success" },
                    units = plan.units.len(),
                    plan_errors = plan.plan_errors.len(),
                    duration_ms = elapsed_ms,
                    "snapshot plan finished: {one_line}"
                );
                respond(&plan, !failed, &failures, || one_line)
            }
            Report::Unit(report) => {
                let success = report.is_success();
                let one_line = report.snapshot.one_line();
                tracing::info!(
                    outcome = if success { "success" } else { "failed" },
                    unit = %report.outcome.unit,
                    files_rebuilt = report.outcome.files_rebuilt,
                    files_incremental = report.outcome.files_merged,
                    files_skipped = report.outcome.files_unchanged,
                    files_failed = report.outcome.files_failed,
                    rows = report.outcome.rows,
                    bytes = report.outcome.bytes,
                    duration_ms = elapsed_ms,
                    "snapshot unit finished: {one_line}"
                );
                respond(&report, success, &report.snapshot.failures(), || one_line)
            }
            Report::Finalize(report) => {
                let mut metrics = MetricSet::for_snapshot(&report.publish.snapshot);
                if let Some(maintenance) = &report.publish.maintenance {
                    metrics.extend_with_maintenance(maintenance);
                }
                metrics.extend_with_failures(&report.failures());
                self.emit_metrics(&metrics, invocation);
                let success = report.is_success();
                let one_line = report.one_line();
                tracing::info!(
                    outcome = if success { "success" } else { "failed" },
                    units_planned = report.units.as_ref().map(|u| u.planned),
                    units_succeeded = report.units.as_ref().map(|u| u.succeeded),
                    units_failed = report.units.as_ref().map(|u| u.failed),
                    units_missing = report.units.as_ref().map(|u| u.missing.len()),
                    duration_ms = elapsed_ms,
                    "snapshot finalize finished: {one_line}"
                );
                respond(&report, success, &report.failures(), || one_line)
            }
        }
    }
}

/// What a publish run (or the finalize step of one split into units) does: the payload's
/// views, and (unless the payload says `maintenance: false`) maintenance in the time left,
/// starting no table or step later than the invocation's deadline less
/// `extractor.deadline-margin`.
fn publish_options(context: &Context, request: Request, invocation: &Invocation) -> PublishOptions {
    let margin = context.config.extractor.deadline_margin;
    let maintenance_deadline =
        Instant::now() + remaining(invocation.deadline, request.time_budget).saturating_sub(margin);
    PublishOptions {
        views: request.views,
        maintenance: match request.maintenance {
            Some(false) => None,
            Some(true) | None => Some(MaintenanceOptions {
                deadline: Some(maintenance_deadline),
                ..MaintenanceOptions::default()
            }),
        },
    }
}

/// The summary as the response, or, when something failed, the failure naming it (the
/// figures are in the summary line) and saying whether a retry can help.
fn respond<S: serde::Serialize>(
    summary: &S,
    success: bool,
    failures: &FailureCounts,
    one_line: impl FnOnce() -> String,
) -> Result<Value, FunctionError> {
    // A run that is not a success always has a failure; should one ever lack it, a retry
    // is the safe advice.
    let verdict = failures
        .verdict()
        .or((!success).then_some(crate::failure::Verdict::Retryable));
    if let Some(verdict) = verdict {
        return Err(FunctionError::RunFailed {
            message: one_line(),
            verdict,
        });
    }
    serde_json::to_value(summary).map_err(|e| FunctionError::RunFailed {
        message: format!("the summary could not be encoded: {e}"),
        verdict: crate::failure::Verdict::Permanent(crate::failure::Cause::Internal),
    })
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
        views = ?request.views,
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

/// The run's deadline: Lambda's (or the payload's budget, if shorter). The sync engine keeps
/// `extractor.deadline-margin` of it free for the last flush and checkpoint, so at least
/// that much must be left.
fn deadline(
    invocation_deadline: SystemTime,
    budget: Option<Duration>,
    margin: Duration,
) -> Result<Instant, FunctionError> {
    let left = remaining(invocation_deadline, budget);
    if left <= margin {
        return Err(FunctionError::NoTimeLeft {
            remaining_ms: left.as_millis(),
            margin_ms: margin.as_millis(),
        });
    }
    Ok(Instant::now() + left)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_lambdas_or_the_shorter_budget() {
        let in_ten_minutes = SystemTime::now() + Duration::from_secs(600);
        let margin = Duration::from_secs(20);
        let full = deadline(in_ten_minutes, None, margin).unwrap();
        let left = full - Instant::now();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
        let budget = deadline(in_ten_minutes, Some(Duration::from_secs(60)), margin).unwrap();
        assert!(budget - Instant::now() <= Duration::from_secs(60));
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
        let err = deadline(soon, None, Duration::from_secs(20)).unwrap_err();
        assert_eq!(err.error_type(), "Permanent.InvalidConfiguration");
        assert!(err.to_string().contains("deadline-margin"), "{err}");
        let past = SystemTime::now() - Duration::from_secs(1);
        assert!(deadline(past, None, Duration::ZERO).is_err());
    }
}
