//! CloudWatch metrics as Embedded Metric Format (EMF) log lines.
//!
//! Lambda sends every stdout line to CloudWatch Logs, which turns a JSON line with an `_aws`
//! block into metrics: no API calls, no extra permissions, no latency in the function.
//! Namespace [`NAMESPACE`], one dimension `Function` (the function's name), one line per
//! invocation that ran. Sync dry runs emit nothing, so they never move an alarm.
//!
//! The names are a contract with `template.yaml`, whose alarms and dashboard refer to them by
//! string: `metric_names` (compiled for the tests) lists them per function, and a test checks the template against it.

use std::io::Write;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use crate::failure::{FailureCounts, Retry};
use crate::job::{JobOutcome, Metric, Unit};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "CdfS3Replicator";
/// The one dimension: the Lambda function name.
pub(crate) const DIMENSION: &str = "Function";

#[cfg(test)]
/// Every metric of a sync run, in the order `RunSummary::metrics` pushes them (`Lag` only
/// once some stream has seen a change).
pub(crate) const SYNC_METRICS: &[&str] = &[
    "Rows",
    "RowsQuarantined",
    "Bytes",
    "Commits",
    "Files",
    "StreamsTotal",
    "StreamsCaughtUp",
    "StreamsBehind",
    "StreamsSuperseded",
    "StreamsFailed",
    "PlanErrors",
    "CursorResets",
    "MembershipRefreshed",
    "MembershipExited",
    "Lag",
    "RunDuration",
];

#[cfg(test)]
/// Every metric of a snapshot run, in the order `SnapshotSummary::metrics` pushes them.
pub(crate) const SNAPSHOT_METRICS: &[&str] = &[
    "Rows",
    "Bytes",
    "ViewsTotal",
    "ViewsFailed",
    "ViewsBehind",
    "FilesRebuilt",
    "FilesMerged",
    "FilesUnchanged",
    "FilesFailed",
    "FilesBehind",
    "PlanErrors",
    "RunDuration",
];

#[cfg(test)]
/// The metrics the snapshot function adds when maintenance ran, in the order
/// `MaintenanceSummary::metrics` pushes them.
pub(crate) const MAINTENANCE_METRICS: &[&str] = &[
    "TablesMaintained",
    "TablesMaintenanceFailed",
    "TablesDeferred",
    "FilesCompacted",
    "BytesCompacted",
    "Checkpoints",
    "FilesVacuumed",
    "MaintenanceDuration",
];

#[cfg(test)]
/// Emitted by both functions after their own figures: failures by whether a retry helps.
/// The per-cause counts (`Failures<Cause>`, [`crate::failure::Cause::metric_name`]) come on
/// top, only for causes that occurred, and are left to ad-hoc graphs and alarms.
pub(crate) const FAILURE_METRICS: &[&str] = &["FailuresRetryable", "FailuresPermanent"];

#[cfg(test)]
/// Which of the two functions emits a metric; the `Function` dimension tells them apart in
/// CloudWatch, since both emit `Rows`, `Bytes`, `PlanErrors` and `RunDuration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum FunctionKind {
    Sync,
    Snapshot,
}

#[cfg(test)]
/// Every metric name a function can emit: what alarms and dashboards may refer to.
pub(crate) fn metric_names(kind: FunctionKind) -> Vec<&'static str> {
    match kind {
        FunctionKind::Sync => [SYNC_METRICS, FAILURE_METRICS].concat(),
        FunctionKind::Snapshot => [SNAPSHOT_METRICS, MAINTENANCE_METRICS, FAILURE_METRICS].concat(),
    }
}

/// The metrics of one invocation: the figures of the job that ran, then its failures.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct MetricSet {
    pub(crate) metrics: Vec<Metric>,
}

impl MetricSet {
    /// The figures of whichever job ran (see [`JobOutcome::metrics`]), then its failures.
    pub(crate) fn of(outcome: &JobOutcome) -> Self {
        let mut set = Self {
            metrics: outcome.metrics.0.clone(),
        };
        set.extend_with_failures(&outcome.failures);
        set
    }

    fn push(&mut self, name: &'static str, unit: Unit, value: f64) {
        self.metrics.push(Metric { name, unit, value });
    }

    /// The run's failures: how many a retry can fix (`FailuresRetryable`) and how many need
    /// a change first (`FailuresPermanent`), always, so alarms see zeros; and one
    /// `Failures<Cause>` count per cause that occurred (see [`crate::failure::Cause`]).
    pub(crate) fn extend_with_failures(&mut self, failures: &FailureCounts) {
        self.push(
            "FailuresRetryable",
            Unit::Count,
            failures.count(Retry::Helps) as f64,
        );
        self.push(
            "FailuresPermanent",
            Unit::Count,
            failures.count(Retry::Useless) as f64,
        );
        for (cause, n) in &failures.by_cause {
            self.push(cause.metric_name(), Unit::Count, *n as f64);
        }
    }

    /// The EMF document: the `_aws` directive, the dimension value, each metric as a
    /// top-level member, and `properties` (searchable in Logs Insights, not metrics).
    pub(crate) fn to_emf(
        &self,
        function: &str,
        timestamp_ms: i64,
        properties: &[(&str, Value)],
    ) -> Value {
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
            .collect();
        let mut document = Map::new();
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": definitions,
                }],
            }),
        );
        document.insert(DIMENSION.into(), Value::from(function));
        for (name, value) in properties {
            document.insert((*name).into(), value.clone());
        }
        for metric in &self.metrics {
            document.insert(metric.name.into(), json!(metric.value));
        }
        Value::Object(document)
    }
}

/// Where EMF lines go.
pub trait MetricsSink: Send + Sync {
    /// Writes one EMF document (one line, no newline). Must not fail: a lost metrics line does
    /// not fail the invocation.
    fn emit(&self, line: &str);
}

/// Standard output, one line per document; CloudWatch Logs extracts the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StdoutSink;

impl MetricsSink for StdoutSink {
    fn emit(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        // Losing a metrics line must not fail the invocation whose work is already done.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
}

/// Keeps the lines in memory, for tests and local tools.
#[derive(Debug, Default)]
pub struct MemorySink {
    lines: Mutex<Vec<String>>,
}

impl MemorySink {
    /// The lines emitted so far, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl MetricsSink for MemorySink {
    fn emit(&self, line: &str) {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line.to_owned());
    }
}

#[cfg(test)]
mod template_check;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::MaintenanceSummary;
    use crate::snapshot::SnapshotSummary;
    use crate::sync::{RunSummary, StreamReport, StreamStatus};

    #[test]
    fn sync_summary_as_emf() {
        let mut behind = StreamReport::new("s/m/1/Pump/nodes", StreamStatus::Behind);
        behind.rows = 1500;
        behind.rows_quarantined = 3;
        behind.bytes = 64_000;
        behind.commits = 2;
        behind.files = 2;
        behind.cursor_resets = 1;
        behind.lag_ms = Some(42_000);
        let done = StreamReport::new("s/m/1/Valve/nodes", StreamStatus::CaughtUp);
        let summary = RunSummary::from_reports(vec![behind, done], Vec::new(), 1234);

        let emf = MetricSet::of(&summary.outcome()).to_emf(
            "cdf-s3-sync",
            1_700_000_000_000,
            &[("requestId", json!("req-1"))],
        );
        let directive = &emf["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(emf["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(emf["Function"], "cdf-s3-sync");
        assert_eq!(emf["requestId"], "req-1");
        assert_eq!(emf["Rows"], 1500.0);
        assert_eq!(emf["RowsQuarantined"], 3.0);
        assert_eq!(emf["Bytes"], 64_000.0);
        assert_eq!(emf["StreamsBehind"], 1.0);
        assert_eq!(emf["StreamsCaughtUp"], 1.0);
        assert_eq!(emf["CursorResets"], 1.0);
        assert_eq!(emf["Lag"], 42_000.0);
        assert_eq!(emf["RunDuration"], 1234.0);
        // Every metric member has a definition with a unit, and vice versa.
        let defined: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["Name"].as_str().unwrap())
            .collect();
        for name in &defined {
            assert!(emf[*name].is_number(), "{name}");
        }
        assert!(defined.contains(&"Lag") && defined.contains(&"Bytes"));
        let units: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["Unit"].as_str().unwrap())
            .collect();
        assert!(units.contains(&"Milliseconds") && units.contains(&"Bytes"));
    }

    #[test]
    fn snapshot_summary_as_emf() {
        let summary = SnapshotSummary::from_reports(
            Vec::new(),
            vec![crate::failure::Failure::new(
                crate::failure::Cause::InvalidRequest,
                "views: `Turbine` matches no stream of this run (views: Pump)",
            )],
            77,
        );
        let emf = MetricSet::of(&summary.outcome()).to_emf("cdf-s3-snapshot", 1, &[]);
        assert_eq!(emf["PlanErrors"], 1.0);
        assert_eq!(emf["ViewsTotal"], 0.0);
        assert_eq!(emf["RunDuration"], 77.0);
        assert_eq!(emf["Function"], "cdf-s3-snapshot");
        let metrics = emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        // The snapshot's figures, then its failures: both counts and the one cause.
        assert_eq!(
            metrics.len(),
            SNAPSHOT_METRICS.len() + FAILURE_METRICS.len() + 1
        );
        assert_eq!(emf["FailuresPermanent"], 1.0);
        assert_eq!(emf["FailuresInvalidRequest"], 1.0);
    }

    fn names(set: &MetricSet) -> Vec<&'static str> {
        set.metrics.iter().map(|m| m.name).collect()
    }

    #[test]
    fn the_name_lists_are_what_the_sets_push() {
        // Lag is the one optional sync metric: a stream that has seen a change brings it in.
        let mut seen = StreamReport::new("s/m/1/Pump/nodes", StreamStatus::CaughtUp);
        seen.lag_ms = Some(1);
        let sync = RunSummary::from_reports(vec![seen], Vec::new(), 1);
        let mut set = MetricSet {
            metrics: sync.metrics().0,
        };
        assert_eq!(names(&set), SYNC_METRICS);
        set.extend_with_failures(&sync.failures());
        assert_eq!(names(&set), metric_names(FunctionKind::Sync));
        assert_eq!(
            names(&MetricSet::of(&sync.outcome())),
            metric_names(FunctionKind::Sync)
        );

        let snapshot = SnapshotSummary::from_reports(Vec::new(), Vec::new(), 1);
        assert_eq!(
            names(&MetricSet {
                metrics: snapshot.metrics().0
            }),
            SNAPSHOT_METRICS
        );
        let maintenance = MaintenanceSummary::from_reports(Vec::new(), Vec::new(), false, 1);
        assert_eq!(
            names(&MetricSet {
                metrics: maintenance.metrics().0
            }),
            MAINTENANCE_METRICS
        );
        let published = crate::jobs::PublishReport {
            snapshot,
            maintenance: Some(maintenance),
        };
        assert_eq!(
            names(&MetricSet::of(&published.outcome())),
            metric_names(FunctionKind::Snapshot)
        );
        // One value per name in a document: EMF keeps the metrics as top-level members.
        for kind in [FunctionKind::Sync, FunctionKind::Snapshot] {
            let all = metric_names(kind);
            let unique: std::collections::BTreeSet<_> = all.iter().collect();
            assert_eq!(unique.len(), all.len(), "{kind:?}");
        }
    }

    #[test]
    fn superseded_streams_are_counted_apart_and_within_behind() {
        let reports = vec![
            StreamReport::new("s/m/1/A/nodes", StreamStatus::Superseded),
            StreamReport::new("s/m/1/B/nodes", StreamStatus::Superseded),
            StreamReport::new("s/m/1/C/nodes", StreamStatus::Behind),
            StreamReport::new("s/m/1/D/nodes", StreamStatus::CaughtUp),
        ];
        let summary = RunSummary::from_reports(reports, Vec::new(), 5);
        let emf = MetricSet::of(&summary.outcome()).to_emf("f", 0, &[]);
        assert_eq!(emf["StreamsSuperseded"], 2.0);
        assert_eq!(emf["StreamsBehind"], 3.0);
        assert_eq!(emf["StreamsCaughtUp"], 1.0);
        assert_eq!(emf["StreamsTotal"], 4.0);
    }

    #[test]
    fn failures_are_counted_by_retryability_and_cause() {
        use crate::failure::{Cause, Failure};
        let failures = [
            Failure::new(Cause::ViewNotFound, "a"),
            Failure::new(Cause::ViewNotFound, "b"),
            Failure::new(Cause::CdfUnavailable, "c"),
        ];
        let mut set = MetricSet::default();
        set.extend_with_failures(&FailureCounts::of(&failures));
        let emf = set.to_emf("f", 0, &[]);
        assert_eq!(emf["FailuresRetryable"], 1.0);
        assert_eq!(emf["FailuresPermanent"], 2.0);
        assert_eq!(emf["FailuresViewNotFound"], 2.0);
        assert_eq!(emf["FailuresCdfUnavailable"], 1.0);

        let mut none = MetricSet::default();
        none.extend_with_failures(&FailureCounts::default());
        let emf = none.to_emf("f", 0, &[]);
        assert_eq!(emf["FailuresRetryable"], 0.0);
        assert_eq!(emf["FailuresPermanent"], 0.0);
    }

    #[test]
    fn lag_is_left_out_when_unknown() {
        let summary = RunSummary::from_reports(Vec::new(), Vec::new(), 5);
        let emf = MetricSet::of(&summary.outcome()).to_emf("f", 0, &[]);
        assert!(emf.get("Lag").is_none());
        assert_eq!(emf["StreamsTotal"], 0.0);
    }
}
