//! What a job did, in the one shape that the CLI, the Lambda functions and the metrics read
//! without knowing which job ran.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::failure::{Cause, FailureCounts};

/// CloudWatch units of the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A number of things.
    Count,
    /// A size.
    Bytes,
    /// A duration.
    Milliseconds,
}

impl Unit {
    /// The CloudWatch name of the unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One figure of a run, as a metric. Its name is a contract with `template.yaml`, whose
/// alarms and dashboard refer to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric name.
    pub name: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// Its value in this run.
    pub value: f64,
}

/// The figures of a run, in the order its job reports them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metrics(pub Vec<Metric>);

impl Metrics {
    /// Adds a figure.
    pub fn push(&mut self, name: &'static str, unit: Unit, value: f64) {
        self.0.push(Metric { name, unit, value });
    }

    /// Adds a count.
    pub fn count(&mut self, name: &'static str, n: impl TryInto<u64>) {
        let n = n.try_into().unwrap_or(u64::MAX);
        self.push(name, Unit::Count, n as f64);
    }
}

/// What one job (or a sequence of jobs, like publishing then maintaining) did.
///
/// Every job counts its parts (streams, views, tables) as succeeded, behind (the deadline
/// or another run came first; the next run continues them) or failed, and keeps its own
/// figures in `detail`: the response of a Lambda invocation and what the CLI prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobOutcome {
    /// Which job: `sync`, `snapshot`, `maintenance`, or the first of a sequence.
    pub job: &'static str,
    /// Whether the run did everything that was asked, or left nothing that a later run
    /// must repair: no failed part, no plan error.
    pub success: bool,
    /// Parts done.
    pub succeeded: u64,
    /// Parts the next run continues.
    pub behind: u64,
    /// Parts that failed; their failures are in `detail`.
    pub failed: u64,
    /// Nothing was written: the run only planned.
    pub dry_run: bool,
    /// One line for logs and the extraction pipeline run.
    pub summary: String,
    /// Every failure of the run, by cause.
    #[serde(serialize_with = "by_cause_name")]
    pub failures: FailureCounts,
    /// How long the run took.
    pub duration_ms: u64,
    /// The job's figures as metrics.
    #[serde(skip)]
    pub metrics: Metrics,
    /// The job's own summary: every figure, per part.
    pub detail: Value,
}

fn by_cause_name<S: serde::Serializer>(
    failures: &FailureCounts,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let named: BTreeMap<&str, u64> = failures
        .by_cause
        .iter()
        .map(|(cause, n)| (Cause::as_str(*cause), *n))
        .collect();
    named.serialize(serializer)
}

impl JobOutcome {
    /// The outcome of a sequence of jobs run on one plan (publishing, then maintenance): the
    /// parts, failures, durations and metrics of all, the detail as one object with a member
    /// per job (`null` for a job that was not run).
    pub fn sequence(steps: Vec<(&'static str, Option<JobOutcome>)>) -> JobOutcome {
        let mut detail = serde_json::Map::new();
        let mut lines = Vec::new();
        let mut outcome = JobOutcome {
            job: steps.first().map_or("", |(name, _)| name),
            success: true,
            succeeded: 0,
            behind: 0,
            failed: 0,
            dry_run: false,
            summary: String::new(),
            failures: FailureCounts::default(),
            duration_ms: 0,
            metrics: Metrics::default(),
            detail: Value::Null,
        };
        for (index, (name, step)) in steps.into_iter().enumerate() {
            let Some(step) = step else {
                detail.insert(name.to_owned(), Value::Null);
                continue;
            };
            lines.push(match index {
                0 => step.summary,
                _ => format!("{name}: {}", step.summary),
            });
            outcome.success &= step.success;
            outcome.succeeded += step.succeeded;
            outcome.behind += step.behind;
            outcome.failed += step.failed;
            outcome.dry_run |= step.dry_run;
            for (cause, n) in step.failures.by_cause {
                *outcome.failures.by_cause.entry(cause).or_insert(0) += n;
            }
            outcome.duration_ms += step.duration_ms;
            outcome.metrics.0.extend(step.metrics.0);
            detail.insert(name.to_owned(), step.detail);
        }
        outcome.summary = lines.join("; ");
        outcome.detail = Value::Object(detail);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Failure;

    fn outcome(job: &'static str, success: bool, failures: &[Failure]) -> JobOutcome {
        let mut metrics = Metrics::default();
        metrics.count("Parts", 1u64);
        JobOutcome {
            job,
            success,
            succeeded: 2,
            behind: 1,
            failed: u64::from(!success),
            dry_run: false,
            summary: format!("{job} line"),
            failures: FailureCounts::of(failures),
            duration_ms: 10,
            metrics,
            detail: serde_json::json!({ "job": job }),
        }
    }

    #[test]
    fn a_sequence_adds_up_its_steps_and_keeps_each_detail() {
        let failed = Failure::new(Cause::CommitConflict, "x");
        let both = JobOutcome::sequence(vec![
            ("snapshot", Some(outcome("snapshot", true, &[]))),
            (
                "maintenance",
                Some(outcome("maintenance", false, &[failed])),
            ),
        ]);
        assert_eq!(both.job, "snapshot");
        assert!(!both.success);
        assert_eq!((both.succeeded, both.behind, both.failed), (4, 2, 1));
        assert_eq!(both.summary, "snapshot line; maintenance: maintenance line");
        assert_eq!(both.failures.by_cause.get(&Cause::CommitConflict), Some(&1));
        assert_eq!(both.duration_ms, 20);
        assert_eq!(both.metrics.0.len(), 2);
        assert_eq!(both.detail["maintenance"]["job"], "maintenance");

        let alone = JobOutcome::sequence(vec![
            ("snapshot", Some(outcome("snapshot", true, &[]))),
            ("maintenance", None),
        ]);
        assert!(alone.success);
        assert_eq!(alone.summary, "snapshot line");
        assert!(alone.detail["maintenance"].is_null());
        assert_eq!(alone.detail["snapshot"]["job"], "snapshot");
    }

    #[test]
    fn serializes_the_failures_by_cause_name() {
        let text = serde_json::to_value(outcome(
            "sync",
            false,
            &[Failure::new(Cause::ViewNotFound, "a")],
        ))
        .unwrap();
        assert_eq!(text["failures"]["ViewNotFound"], 1);
        assert_eq!(text["job"], "sync");
        assert!(text.get("metrics").is_none());
    }
}
