//! `snapshot --fan-out N`: the state machine of `template.yaml`, run on this machine.
//!
//! Plan in this process, then every unit in a child process of this binary
//! (`snapshot --unit <id>`), at most N at a time, most stale first, then finalize in this
//! process with the units' outcomes. A unit that fails in a way a retry can fix is run
//! again with the state machine's backoff; one that fails for good, or keeps failing, is
//! recorded and the others go on, as in the map.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cdf_s3_replicator::context::Context;
use cdf_s3_replicator::failure::Retry;
use cdf_s3_replicator::job::{Deadline, JobInputs};
use cdf_s3_replicator::jobs::PublishOptions;
use cdf_s3_replicator::jobs::fan_out::{self, FinalizeReport};
use cdf_s3_replicator::snapshot::units::{UnitError, UnitOutcome, UnitPlan, WorkUnit};
use serde_json::Value;
use tokio::sync::Semaphore;

/// Attempts per unit, and the wait before the second one (doubling after), as the
/// `RunUnit` state's `Retry` of `template.yaml` does.
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(10);

/// Lines of a failed child's standard error kept in its outcome.
const ERROR_LINES: usize = 5;

/// What a fanned-out run did: the plan, and (when it had units or no problem) the finalize
/// step's report.
pub enum FanOutRun {
    /// The plan could plan nothing: the run stops there, as the state machine does.
    PlanFailed(UnitPlan),
    /// The units ran and the run was finalized (boxed: a report is much larger than a plan).
    Finalized(Box<FinalizeReport>),
}

/// Runs the whole sequence. `config` is passed on to the children.
pub async fn run(
    context: &Context,
    config: &Path,
    inputs: &JobInputs,
    options: &PublishOptions,
    workers: usize,
) -> anyhow::Result<FanOutRun> {
    let plan = fan_out::plan_units(context, &inputs.selection).await;
    if plan.units.is_empty() && !plan.plan_errors.is_empty() {
        return Ok(FanOutRun::PlanFailed(plan));
    }
    let program = std::env::current_exe().context("finding this program to run the units")?;
    let workers = Workers {
        slots: Arc::new(Semaphore::new(workers.max(1))),
        program,
        config: config.to_path_buf(),
        deadline: inputs.deadline,
    };
    // The shards of sharded rebuilds first, as the state machine's first map: their
    // outcomes are not the run's (a part whose shards failed reads the raw table itself).
    for outcome in workers.run_all(&plan.shards).await? {
        if !outcome.success {
            eprintln!(
                "rebuild shard {} failed; its parts read the raw table themselves",
                outcome.unit
            );
        }
    }
    let outcomes = workers.run_all(&plan.units).await?;
    Ok(FanOutRun::Finalized(Box::new(
        fan_out::finalize(context, inputs, options, Some(&outcomes)).await,
    )))
}

/// Child processes for units, at most as many at once as there are slots.
struct Workers {
    slots: Arc<Semaphore>,
    program: PathBuf,
    config: PathBuf,
    deadline: Deadline,
}

impl Workers {
    /// Runs every one of `units` in its own child process and collects their outcomes.
    async fn run_all(&self, units: &[WorkUnit]) -> anyhow::Result<Vec<UnitOutcome>> {
        let tasks: Vec<_> = units
            .iter()
            .map(|unit| {
                let (slots, program, config, id, deadline) = (
                    self.slots.clone(),
                    self.program.clone(),
                    self.config.clone(),
                    unit.id.clone(),
                    self.deadline,
                );
                tokio::spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    run_with_retries(&program, &config, &id, deadline).await
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.context("a unit's task")?);
        }
        Ok(outcomes)
    }
}

/// One unit, again after a failure a retry can fix, up to [`ATTEMPTS`] times, and never
/// after the run's deadline: a retry that would start after it is left to the next run.
async fn run_with_retries(
    program: &Path,
    config: &Path,
    id: &str,
    deadline: Deadline,
) -> UnitOutcome {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let outcome = run_child(program.to_path_buf(), config.to_path_buf(), id, deadline).await;
        let retryable = outcome
            .error
            .as_ref()
            .is_some_and(|e| e.retry() == Retry::Helps);
        let out_of_time = deadline.remaining().is_some_and(|left| left <= backoff);
        if outcome.success || !retryable || attempt >= ATTEMPTS || out_of_time {
            return outcome;
        }
        eprintln!(
            "[{id}] attempt {attempt} failed ({}); retrying in {} s",
            outcome
                .error
                .as_ref()
                .map(|e| e.error_type.as_str())
                .unwrap_or_default(),
            backoff.as_secs()
        );
        tokio::time::sleep(backoff).await;
        backoff *= 2;
        attempt += 1;
    }
}

/// `snapshot --unit <id>` in a child process, with the time left before the run's
/// deadline as its `--time-budget`, and what it amounts to.
async fn run_child(program: PathBuf, config: PathBuf, id: &str, deadline: Deadline) -> UnitOutcome {
    let unit = id.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(program);
        command
            .args(["snapshot", "--config"])
            .arg(config)
            .args(["--unit", &unit]);
        if let Some(left) = deadline.remaining() {
            command.args(["--time-budget", &left.as_secs().to_string()]);
        }
        command.output()
    })
    .await;
    match output {
        Ok(Ok(output)) => {
            forward_stderr(id, &output);
            outcome_of(id, &output)
        }
        Ok(Err(error)) => UnitOutcome::failed(
            id,
            UnitError {
                error_type: "Retryable.ProcessFailed".into(),
                message: format!("the unit's process could not be started: {error}"),
            },
        ),
        Err(error) => UnitOutcome::failed(
            id,
            UnitError {
                error_type: "Retryable.ProcessFailed".into(),
                message: format!("the unit's task failed: {error}"),
            },
        ),
    }
}

/// The unit's report on standard output when it printed one (exit 0 or 2); otherwise a
/// failure by exit status: 1 (refused: an unknown id, a bad configuration) and 101 (a
/// panic) are permanent, a signal (killed, out of memory) can pass.
fn outcome_of(id: &str, output: &Output) -> UnitOutcome {
    let reported = serde_json::from_slice::<Value>(&output.stdout)
        .ok()
        .and_then(|report| serde_json::from_value::<UnitOutcome>(report["outcome"].clone()).ok());
    if let Some(outcome) = reported
        && matches!(output.status.code(), Some(0 | 2))
    {
        return outcome;
    }
    let error_type = match output.status.code() {
        Some(1) => "Permanent.ProcessFailed",
        Some(101) => "Permanent.Internal",
        _ => "Retryable.ProcessFailed",
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(ERROR_LINES)..].join("\n");
    UnitOutcome::failed(
        id,
        UnitError {
            error_type: error_type.into(),
            message: format!("the unit's process ended with {}: {tail}", output.status),
        },
    )
}

/// The child's log, each line marked with its unit, after the child ended (so that the
/// lines of parallel units do not interleave).
fn forward_stderr(id: &str, output: &Output) {
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        eprintln!("[{id}] {line}");
    }
}
