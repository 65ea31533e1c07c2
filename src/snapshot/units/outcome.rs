//! What one unit did, small enough that a Distributed Map can collect one per unit, and the
//! summary of a whole fanned-out run built from them.
//!
//! A unit's invocation returns its whole snapshot summary, but the state machine keeps only
//! the [`UnitOutcome`] (Step Functions passes at most 256 KiB between states). A unit whose
//! invocation failed has no response: the state machine records its error type and message
//! instead (`{"unit": ..., "success": false, "error": {"errorType": ..., "message": ...}}`),
//! and so does the local runner for a child process that failed.

use serde::{Deserialize, Serialize};

use crate::failure::{Cause, Failure, Retry};
use crate::snapshot::{SnapshotSummary, ViewReport};

/// One unit's result, as the finalize step receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitOutcome {
    /// The unit id.
    pub unit: String,
    /// Whether every file of the unit is published and current.
    pub success: bool,
    /// Files rebuilt from the whole raw table.
    #[serde(default)]
    pub files_rebuilt: usize,
    /// Files merged incrementally.
    #[serde(default)]
    pub files_merged: usize,
    /// Files left as they were (their raw table did not change).
    #[serde(default)]
    pub files_unchanged: usize,
    /// Files that failed.
    #[serde(default)]
    pub files_failed: usize,
    /// Rows in the files the unit wrote.
    #[serde(default)]
    pub rows: u64,
    /// Bytes of the files the unit wrote.
    #[serde(default)]
    pub bytes: u64,
    /// Why the unit failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<UnitError>,
}

/// Why a unit failed: the error type of its invocation (`Retryable.*` / `Permanent.*`, or a
/// Step Functions or Lambda error such as `States.Timeout`) and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitError {
    /// The error type.
    pub error_type: String,
    /// What failed. From Step Functions this is the `Cause` text, which for a Lambda error
    /// is the JSON of `errorType` and `errorMessage`; [`UnitError::text`] unwraps it.
    #[serde(default)]
    pub message: String,
}

impl UnitError {
    /// Whether running the unit again can succeed. Only `Permanent.*` types say it cannot;
    /// everything else (a timeout, a throttled or failed Lambda invoke) can pass.
    pub fn retry(&self) -> Retry {
        if self.error_type.starts_with("Permanent.") {
            Retry::Useless
        } else {
            Retry::Helps
        }
    }

    /// The message, taken out of a Lambda error's `{"errorMessage": ...}` when it is one.
    pub fn text(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.message)
            .ok()
            .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| self.message.clone())
    }
}

impl UnitOutcome {
    /// The outcome of a unit that ran in this process.
    pub(crate) fn of(unit: &str, summary: &SnapshotSummary) -> Self {
        let failures = summary.failures();
        let error = failures.verdict().map(|_| {
            // The cause that decides whether a retry helps: any transient one, else the first.
            let retry = if failures.count(Retry::Helps) > 0 {
                Retry::Helps
            } else {
                Retry::Useless
            };
            let cause = failures
                .by_cause
                .keys()
                .find(|c| c.retry() == retry)
                .copied()
                .unwrap_or(Cause::Internal);
            UnitError {
                error_type: format!("{retry}.{cause}"),
                message: summary.one_line(),
            }
        });
        Self {
            unit: unit.to_owned(),
            success: summary.is_success(),
            files_rebuilt: summary.files_rebuilt,
            files_merged: summary.files_incremental,
            files_unchanged: summary.files_skipped,
            files_failed: summary.files_failed,
            rows: summary.rows,
            bytes: summary.bytes,
            error,
        }
    }

    /// The outcome of a unit whose run produced no summary (its process or invocation
    /// failed).
    pub fn failed(unit: impl Into<String>, error: UnitError) -> Self {
        Self {
            unit: unit.into(),
            success: false,
            files_rebuilt: 0,
            files_merged: 0,
            files_unchanged: 0,
            files_failed: 0,
            rows: 0,
            bytes: 0,
            error: Some(error),
        }
    }

    /// The unit's failure, for the run's summary: a unit failed as a whole, for a reason its
    /// own invocation reported in detail.
    fn failure(&self) -> Option<Failure> {
        if self.success {
            return None;
        }
        let error = self.error.clone().unwrap_or(UnitError {
            error_type: "Retryable.Unknown".into(),
            message: "the unit reported no error".into(),
        });
        let cause = match error.retry() {
            Retry::Helps => Cause::UnitIncomplete,
            Retry::Useless => Cause::UnitFailed,
        };
        // The run summary names the unit in front of the message.
        Some(Failure::new(
            cause,
            format!("{}: {}", error.error_type, error.text()),
        ))
    }
}

/// Where each planned unit stands after a fanned-out run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitsSummary {
    /// Units of this run's plan.
    pub planned: usize,
    /// Units that reported success.
    pub succeeded: usize,
    /// Units that failed (their failures are in the run's view errors).
    pub failed: usize,
    /// Planned units without any outcome: not run, or lost with a failed map.
    pub missing: Vec<String>,
}

/// The snapshot summary of a fanned-out run: one view report per unit outcome (without its
/// files: the figures are summed from the outcomes), a failure for each failed or missing
/// unit, and the plan's problems.
pub(crate) fn summary_of_outcomes(
    planned: &[String],
    outcomes: &[UnitOutcome],
    plan_errors: Vec<Failure>,
    duration_ms: u64,
) -> (UnitsSummary, SnapshotSummary) {
    let mut views = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        views.push(ViewReport {
            model: String::new(),
            view: outcome.unit.clone(),
            files: Vec::new(),
            manifest_written: outcome.success,
            attempts: 1,
            duration_ms: 0,
            error: outcome.failure(),
            retire: None,
        });
    }
    let missing: Vec<String> = planned
        .iter()
        .filter(|id| !outcomes.iter().any(|o| &o.unit == *id))
        .cloned()
        .collect();
    for id in &missing {
        views.push(ViewReport {
            model: String::new(),
            view: id.clone(),
            files: Vec::new(),
            manifest_written: false,
            attempts: 0,
            duration_ms: 0,
            error: Some(Failure::new(
                Cause::UnitIncomplete,
                "the unit reported no outcome; the next run publishes it",
            )),
            retire: None,
        });
    }
    let mut summary = SnapshotSummary::from_reports(views, plan_errors, duration_ms);
    let sum = |f: fn(&UnitOutcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    summary.files_rebuilt = sum(|o| o.files_rebuilt);
    summary.files_incremental = sum(|o| o.files_merged);
    summary.files_skipped = sum(|o| o.files_unchanged);
    summary.files_failed = sum(|o| o.files_failed);
    summary.rows = outcomes.iter().map(|o| o.rows).sum();
    summary.bytes = outcomes.iter().map(|o| o.bytes).sum();
    let units = UnitsSummary {
        planned: planned.len(),
        succeeded: outcomes.iter().filter(|o| o.success).count(),
        failed: outcomes.iter().filter(|o| !o.success).count(),
        missing,
    };
    (units, summary)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_caught_lambda_error_reads_back_with_its_message_and_retry() {
        let outcome: UnitOutcome = serde_json::from_value(json!({
            "unit": "view:s:M/1:Pump", "success": false,
            "error": {
                "errorType": "Permanent.SchemaConflict",
                "message": "{\"errorType\":\"Permanent.SchemaConflict\",\"errorMessage\":\"Pump/nodes: no\"}"
            }
        }))
        .unwrap();
        let error = outcome.error.clone().unwrap();
        assert_eq!(error.retry(), Retry::Useless);
        assert_eq!(error.text(), "Pump/nodes: no");
        let failure = outcome.failure().unwrap();
        assert_eq!(failure.cause, Cause::UnitFailed);
        assert_eq!(failure.message, "Permanent.SchemaConflict: Pump/nodes: no");
        for transient in [
            "Retryable.RunIncomplete",
            "States.Timeout",
            "Lambda.TooManyRequestsException",
        ] {
            let error = UnitError {
                error_type: transient.into(),
                message: "x".into(),
            };
            assert_eq!(error.retry(), Retry::Helps, "{transient}");
            assert_eq!(error.text(), "x");
        }
    }

    #[test]
    fn the_run_summary_counts_every_planned_unit_once() {
        let ok = UnitOutcome {
            files_rebuilt: 1,
            files_unchanged: 1,
            rows: 5,
            bytes: 100,
            ..UnitOutcome::failed(
                "a",
                UnitError {
                    error_type: String::new(),
                    message: String::new(),
                },
            )
        };
        let ok = UnitOutcome {
            success: true,
            error: None,
            ..ok
        };
        let bad = UnitOutcome::failed(
            "b",
            UnitError {
                error_type: "Retryable.RunIncomplete".into(),
                message: "later".into(),
            },
        );
        let planned = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let (units, summary) = summary_of_outcomes(&planned, &[ok, bad], Vec::new(), 7);
        assert_eq!(units.planned, 3);
        assert_eq!((units.succeeded, units.failed), (1, 1));
        assert_eq!(units.missing, vec!["c".to_owned()]);
        assert_eq!(summary.views_total, 3);
        assert_eq!(summary.views_failed, 2);
        assert_eq!((summary.files_rebuilt, summary.files_skipped), (1, 1));
        assert_eq!((summary.rows, summary.bytes), (5, 100));
        assert!(!summary.is_success());
        assert_eq!(summary.failures().count(Retry::Helps), 2);
        assert_eq!(
            summary.failures().verdict(),
            Some(crate::failure::Verdict::Retryable)
        );
    }
}
