//! What one sync invocation did, as returned to the caller (CLI, Lambda) and logged.

use serde::Serialize;

use crate::failure::{Failure, FailureCounts};
use crate::job::{JobOutcome, Metrics, Unit};

/// How a stream's part of the invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamStatus {
    /// The last page was short: nothing else was waiting.
    CaughtUp,
    /// The deadline came first; the stream continues in the next invocation.
    Behind,
    /// Another sync committed the same step first; this invocation left the stream alone.
    Superseded,
    /// The stream failed; the error says why. Other streams were not affected.
    Failed,
    /// Dry run: the plan was checked, nothing was read or written.
    Planned,
}

impl StreamStatus {
    /// The name in JSON (`caughtUp`): summaries, responses, logs' fields.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::CaughtUp => "caughtUp",
            StreamStatus::Behind => "behind",
            StreamStatus::Superseded => "superseded",
            StreamStatus::Failed => "failed",
            StreamStatus::Planned => "planned",
        }
    }

    /// The name for people (`caught up`): progress lines, tables and one-line summaries,
    /// spelled as `status` spells a stream's progress.
    pub fn label(self) -> &'static str {
        match self {
            StreamStatus::CaughtUp => "caught up",
            other => other.as_str(),
        }
    }
}

/// One stream's figures.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamReport {
    /// The stream key (model, view, instance type).
    pub stream: String,
    /// How the stream's part ended.
    pub status: StreamStatus,
    /// The stream's generation at the end (a new one starts with each full backfill).
    pub generation: u64,
    /// Instances written to the stream's Delta table.
    pub rows: u64,
    /// Instances that could not be written to the stream's table and went to the view's
    /// quarantine (`rejected`) table instead.
    pub rows_quarantined: u64,
    pub(crate) bytes: u64,
    /// Delta commits made by this invocation.
    pub commits: u64,
    /// Data files written (normally one per commit).
    pub(crate) files: u64,
    /// CDF sync pages read.
    pub pages: u64,
    /// Times the stream had to start a new generation (expired or invalid cursor, changed
    /// query, lost state) in this invocation.
    pub cursor_resets: u64,
    /// Milliseconds between now and the newest `lastUpdatedTime` the stream has seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) lag_ms: Option<i64>,
    /// Why the stream failed (status `failed`) or was superseded; redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// What the stream's membership scan did in this invocation.
    #[serde(skip_serializing_if = "MembershipReport::is_idle")]
    pub membership: MembershipReport,
}

/// What a stream's membership scan did in one invocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipReport {
    /// Members listed and table instances checked.
    pub checked: u64,
    /// Instances committed in their current state because the table lacked them (they
    /// entered the query without a change of their own) or held another version.
    pub refreshed: u64,
    /// Exit rows committed for instances that no longer match the query.
    pub exited: u64,
    /// CDF requests the scan made.
    pub requests: u64,
    /// Passes completed in this invocation.
    pub passes_completed: u64,
    /// A pass is still in progress at the end of the invocation; the next one resumes it.
    pub pass_pending: bool,
}

impl MembershipReport {
    fn is_idle(&self) -> bool {
        self == &Self::default()
    }
}

impl StreamReport {
    pub(crate) fn new(stream: impl Into<String>, status: StreamStatus) -> Self {
        Self {
            stream: stream.into(),
            status,
            generation: 0,
            rows: 0,
            rows_quarantined: 0,
            bytes: 0,
            commits: 0,
            files: 0,
            pages: 0,
            cursor_resets: 0,
            lag_ms: None,
            error: None,
            membership: MembershipReport::default(),
        }
    }

    pub(crate) fn failed(stream: impl Into<String>, error: Failure) -> Self {
        Self {
            error: Some(error),
            ..Self::new(stream, StreamStatus::Failed)
        }
    }
}

/// The whole invocation.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Streams planned for this invocation.
    pub streams_total: usize,
    /// Streams that ended [`StreamStatus::CaughtUp`].
    pub streams_caught_up: usize,
    /// Streams that ended [`StreamStatus::Behind`] or [`StreamStatus::Superseded`]: the next
    /// invocation continues them.
    pub streams_behind: usize,
    /// Streams that ended [`StreamStatus::Failed`].
    pub streams_failed: usize,
    /// Instances written over all streams.
    pub rows: u64,
    /// Instances quarantined over all streams (see [`StreamReport::rows_quarantined`]).
    pub rows_quarantined: u64,
    /// Bytes of data files written over all streams.
    pub bytes: u64,
    /// Delta commits over all streams.
    pub commits: u64,
    /// Data files written over all streams.
    pub files: u64,
    /// New generations started over all streams (see [`StreamReport::cursor_resets`]).
    pub cursor_resets: u64,
    /// The largest lag over all streams, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_lag_ms: Option<i64>,
    /// Membership scans over all streams (see [`StreamReport::membership`]).
    pub membership: MembershipTotals,
    pub(crate) duration_ms: u64,
    /// Problems that stopped a view or model from being planned at all (unknown model,
    /// missing view), each naming what failed.
    pub plan_errors: Vec<Failure>,
    /// Every stream's report, sorted by stream key.
    pub streams: Vec<StreamReport>,
    /// A dry run: planned only.
    #[serde(skip)]
    pub(crate) dry_run: bool,
}

/// The membership scans of a run, summed over its streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipTotals {
    /// Instances refreshed (see [`MembershipReport::refreshed`]).
    pub refreshed: u64,
    /// Exit rows written (see [`MembershipReport::exited`]).
    pub exited: u64,
    /// CDF requests of the scans.
    pub requests: u64,
    /// Passes completed.
    pub passes_completed: u64,
    /// Streams whose pass continues in the next invocation.
    pub passes_pending: u64,
}

impl MembershipTotals {
    fn of(streams: &[StreamReport]) -> Self {
        streams.iter().fold(Self::default(), |total, s| Self {
            refreshed: total.refreshed + s.membership.refreshed,
            exited: total.exited + s.membership.exited,
            requests: total.requests + s.membership.requests,
            passes_completed: total.passes_completed + s.membership.passes_completed,
            passes_pending: total.passes_pending + u64::from(s.membership.pass_pending),
        })
    }
}

impl RunSummary {
    pub(crate) fn from_reports(
        mut streams: Vec<StreamReport>,
        plan_errors: Vec<Failure>,
        duration_ms: u64,
    ) -> Self {
        streams.sort_by(|a, b| a.stream.cmp(&b.stream));
        // Error texts quote CDF, S3 and Delta answers, which may echo a secret or token.
        for stream in &mut streams {
            stream.error = stream.error.take().map(Failure::redacted);
        }
        let plan_errors: Vec<Failure> = plan_errors.into_iter().map(Failure::redacted).collect();
        let count = |status| streams.iter().filter(|s| s.status == status).count();
        Self {
            streams_total: streams.len(),
            streams_caught_up: count(StreamStatus::CaughtUp),
            streams_behind: count(StreamStatus::Behind) + count(StreamStatus::Superseded),
            streams_failed: count(StreamStatus::Failed),
            rows: streams.iter().map(|s| s.rows).sum(),
            rows_quarantined: streams.iter().map(|s| s.rows_quarantined).sum(),
            bytes: streams.iter().map(|s| s.bytes).sum(),
            commits: streams.iter().map(|s| s.commits).sum(),
            files: streams.iter().map(|s| s.files).sum(),
            cursor_resets: streams.iter().map(|s| s.cursor_resets).sum(),
            max_lag_ms: streams.iter().filter_map(|s| s.lag_ms).max(),
            membership: MembershipTotals::of(&streams),
            duration_ms,
            plan_errors,
            streams,
            dry_run: false,
        }
    }

    /// True when every stream and every configured view could be served.
    pub fn is_success(&self) -> bool {
        self.streams_failed == 0 && self.plan_errors.is_empty()
    }

    /// Every failure of the run: the plan's, then each failed stream's (a superseded
    /// stream's note is not a failure).
    pub(crate) fn failures(&self) -> FailureCounts {
        FailureCounts::of(
            self.plan_errors.iter().chain(
                self.streams
                    .iter()
                    .filter(|s| s.status == StreamStatus::Failed)
                    .filter_map(|s| s.error.as_ref()),
            ),
        )
    }

    /// The run in the shape every job reports: streams caught up, behind (superseded ones
    /// included) and failed (with the models and views that could not be planned).
    pub fn outcome(&self) -> JobOutcome {
        JobOutcome {
            job: "sync",
            success: self.is_success(),
            succeeded: self.streams_caught_up as u64,
            behind: self.streams_behind as u64,
            failed: (self.streams_failed + self.plan_errors.len()) as u64,
            dry_run: self.dry_run,
            summary: self.one_line(),
            failures: self.failures(),
            duration_ms: self.duration_ms,
            metrics: self.metrics(),
            detail: serde_json::to_value(self).unwrap_or_default(),
        }
    }

    /// The figures of the run as metrics. `Lag` is left out when no stream saw a change yet.
    pub(crate) fn metrics(&self) -> Metrics {
        let mut set = Metrics::default();
        set.count("Rows", self.rows);
        set.count("RowsQuarantined", self.rows_quarantined);
        set.push("Bytes", Unit::Bytes, self.bytes as f64);
        set.count("Commits", self.commits);
        set.count("Files", self.files);
        set.count("StreamsTotal", self.streams_total);
        set.count("StreamsCaughtUp", self.streams_caught_up);
        set.count("StreamsBehind", self.streams_behind);
        // Part of `StreamsBehind`: another sync committed first, which is normal only while
        // two runs overlap; a steady count means runs overlap every time.
        let superseded = self
            .streams
            .iter()
            .filter(|s| s.status == StreamStatus::Superseded)
            .count();
        set.count("StreamsSuperseded", superseded);
        set.count("StreamsFailed", self.streams_failed);
        set.count("PlanErrors", self.plan_errors.len());
        set.count("CursorResets", self.cursor_resets);
        // Instances the membership scan found out of step with CDF without a sync event:
        // exits (left a view filter) and refreshes (entered through a nested filter, or a
        // version the table missed). A steady non-zero count is expected with view filters.
        set.count("MembershipRefreshed", self.membership.refreshed);
        set.count("MembershipExited", self.membership.exited);
        if let Some(lag) = self.max_lag_ms {
            set.push("Lag", Unit::Milliseconds, lag.max(0) as f64);
        }
        set.push("RunDuration", Unit::Milliseconds, self.duration_ms as f64);
        set
    }

    /// One line for the extraction pipeline run message (CDF caps it at 1000 characters).
    pub fn one_line(&self) -> String {
        let mut line = format!(
            "{} streams: {} caught up, {} behind, {} failed; {} rows in {} commits; {} cursor resets",
            self.streams_total,
            self.streams_caught_up,
            self.streams_behind,
            self.streams_failed,
            self.rows,
            self.commits,
            self.cursor_resets
        );
        if self.rows_quarantined > 0 {
            line.push_str(&format!("; {} rows quarantined", self.rows_quarantined));
        }
        if self.membership != MembershipTotals::default() {
            line.push_str(&format!(
                "; membership: {} refreshed, {} exited",
                self.membership.refreshed, self.membership.exited
            ));
        }
        let problems: Vec<String> = self
            .plan_errors
            .iter()
            .map(|e| e.message.clone())
            .chain(
                self.streams
                    .iter()
                    .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.stream))),
            )
            .collect();
        if !problems.is_empty() {
            line.push_str(". Errors: ");
            line.push_str(&problems.join("; "));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn error_texts_never_carry_a_known_secret() {
        let secret = Secret::new("s3cr3t-value-that-an-answer-echoed");
        let echoed = format!(
            "sync failed: 400 Bad Request: unknown client secret {}",
            secret.expose()
        );
        let failure = Failure::new(crate::failure::Cause::CdfRejected, echoed);
        let summary = RunSummary::from_reports(
            vec![StreamReport::failed("s/M/1/V/nodes", failure.clone())],
            vec![failure],
            0,
        );
        let text = serde_json::to_string(&summary).unwrap_or_default();
        assert!(!text.contains(secret.expose()), "{text}");
        assert!(text.contains("***"), "{text}");
    }
}

#[cfg(test)]
mod spelling {
    use super::*;
    use crate::status::report::Progress;

    #[test]
    fn one_spelling_per_state_for_json_and_one_for_people() {
        assert_eq!(StreamStatus::CaughtUp.as_str(), "caughtUp");
        assert_eq!(
            serde_json::to_value(StreamStatus::CaughtUp).unwrap(),
            "caughtUp"
        );
        // People read what `status` prints for a stream's progress.
        assert_eq!(StreamStatus::CaughtUp.label(), "caught up");
        assert_eq!(StreamStatus::CaughtUp.label(), Progress::CaughtUp.as_str());
        assert_eq!(StreamStatus::Behind.label(), Progress::Behind.as_str());
        assert_eq!(StreamStatus::Failed.label(), Progress::Failed.as_str());
        let summary = RunSummary::from_reports(
            vec![StreamReport::new("s/M/1/V/nodes", StreamStatus::CaughtUp)],
            Vec::new(),
            1,
        );
        assert!(
            summary.one_line().contains("1 caught up"),
            "{}",
            summary.one_line()
        );
    }
}
