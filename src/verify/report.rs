//! What `verify` found: the JSON report (serde types), the terminal table and the job
//! outcome with its metrics.
//!
//! # Divergence classes
//!
//! A divergence is a published file that disagrees with CDF in a way that lag cannot
//! explain; each has a class (camelCase in the report, CamelCase in metric names):
//!
//! - `staleFile`: the file's footer says it was built from an older table version than its
//!   manifest entry claims (a file left behind by a failed or overlapping upload);
//! - `manifestMismatch`: the manifest, the file's footer and the raw table disagree in
//!   another way: a newer footer, no footer stamp, another row count, or a table version
//!   the raw table does not have;
//! - `foreignCommit`: a commit in the raw table's retained log that changed data but was
//!   written neither by a sync stream nor by compaction or maintenance;
//! - `countMismatch`: the file has fewer rows than CDF's live instances that did not change
//!   since the watermark;
//! - `valueMismatch`: a sampled row with CDF's version differs from CDF in a column's value
//!   or type;
//! - `outdatedRow`: a sampled row holds another version than CDF, and CDF's version is not
//!   newer than the watermark (the file missed a change it should hold);
//! - `deletedButPublished`: a sampled row's instance was deleted in CDF before the
//!   watermark, or is gone without a trace (purged: older than CDF's 3-day retention);
//! - `missingFromFile`: a sampled CDF instance, unchanged since before the watermark, is
//!   not in the file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::watermark::Watermark;
use crate::failure::{Failure, FailureCounts};
use crate::job::{JobOutcome, Metrics, Unit};

/// How many examples a file's report keeps per class.
pub const EXAMPLES_PER_CLASS: usize = 5;

/// Why a file disagrees with CDF (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DivergenceClass {
    /// The file is older than its manifest entry.
    StaleFile,
    /// Manifest, footer and raw table disagree otherwise.
    ManifestMismatch,
    /// The raw table was changed by someone other than the replicator.
    ForeignCommit,
    /// Fewer rows than the unchanged live instances of CDF.
    CountMismatch,
    /// Same version, other value or type.
    ValueMismatch,
    /// Another version than CDF's, which is older than the watermark.
    OutdatedRow,
    /// Deleted (or purged) in CDF before the watermark, still published.
    DeletedButPublished,
    /// In CDF since before the watermark, not in the file.
    MissingFromFile,
}

impl DivergenceClass {
    /// Every class, in report order.
    pub const ALL: [DivergenceClass; 8] = [
        DivergenceClass::StaleFile,
        DivergenceClass::ManifestMismatch,
        DivergenceClass::ForeignCommit,
        DivergenceClass::CountMismatch,
        DivergenceClass::ValueMismatch,
        DivergenceClass::OutdatedRow,
        DivergenceClass::DeletedButPublished,
        DivergenceClass::MissingFromFile,
    ];

    /// The name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            DivergenceClass::StaleFile => "staleFile",
            DivergenceClass::ManifestMismatch => "manifestMismatch",
            DivergenceClass::ForeignCommit => "foreignCommit",
            DivergenceClass::CountMismatch => "countMismatch",
            DivergenceClass::ValueMismatch => "valueMismatch",
            DivergenceClass::OutdatedRow => "outdatedRow",
            DivergenceClass::DeletedButPublished => "deletedButPublished",
            DivergenceClass::MissingFromFile => "missingFromFile",
        }
    }

    /// The metric counting this class (`VerifyDivergences` counts all of them).
    pub fn metric_name(self) -> &'static str {
        match self {
            DivergenceClass::StaleFile => "VerifyDivergencesStaleFile",
            DivergenceClass::ManifestMismatch => "VerifyDivergencesManifestMismatch",
            DivergenceClass::ForeignCommit => "VerifyDivergencesForeignCommit",
            DivergenceClass::CountMismatch => "VerifyDivergencesCountMismatch",
            DivergenceClass::ValueMismatch => "VerifyDivergencesValueMismatch",
            DivergenceClass::OutdatedRow => "VerifyDivergencesOutdatedRow",
            DivergenceClass::DeletedButPublished => "VerifyDivergencesDeletedButPublished",
            DivergenceClass::MissingFromFile => "VerifyDivergencesMissingFromFile",
        }
    }
}

/// One divergence, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Example {
    /// `space/externalId` of the instance, when the divergence is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The column (or the figure: `tableVersion`, `rows`, `version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// What the lake holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lake: Option<String>,
    /// What CDF holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdf: Option<String>,
}

impl Example {
    /// An example about instance `key`.
    pub fn of_key(key: &(String, String)) -> Self {
        Self {
            key: Some(format!("{}/{}", key.0, key.1)),
            column: None,
            lake: None,
            cdf: None,
        }
    }

    /// An example about a figure rather than an instance.
    pub fn of_figure(column: &str, lake: impl ToString, cdf: impl ToString) -> Self {
        Self {
            key: None,
            column: Some(column.to_owned()),
            lake: Some(lake.to_string()),
            cdf: Some(cdf.to_string()),
        }
    }

    /// The same, naming `column`.
    pub fn column(mut self, column: &str) -> Self {
        self.column = Some(column.to_owned());
        self
    }

    /// The same, with the lake's and CDF's sides.
    pub fn values(mut self, lake: impl ToString, cdf: impl ToString) -> Self {
        self.lake = Some(lake.to_string());
        self.cdf = Some(cdf.to_string());
        self
    }
}

/// The divergences of one class in one file.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassDivergences {
    /// How many were found.
    pub count: u64,
    /// The first [`EXAMPLES_PER_CLASS`] of them.
    pub examples: Vec<Example>,
}

/// The lag found in one file: differences that changes after the watermark explain.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    /// Sampled instances whose difference is lag.
    pub count: u64,
    /// The oldest of them: now less CDF's `lastUpdatedTime` (or `deletedTime`) of the
    /// change the file does not hold yet, in milliseconds.
    pub max_age_ms: Option<i64>,
}

impl Lag {
    /// Adds one lagging instance whose change happened at `changed_at` (epoch ms).
    pub fn add(&mut self, now: i64, changed_at: i64) {
        self.count += 1;
        let age = (now - changed_at).max(0);
        self.max_age_ms = Some(self.max_age_ms.map_or(age, |m| m.max(age)));
    }
}

/// The row count of the file against CDF's live count.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Rows of the file (every part).
    pub file_rows: u64,
    /// Live instances CDF reports for the table's queries now.
    pub cdf_live: u64,
    /// `fileRows - cdfLive`.
    pub difference: i64,
    /// Live instances changed (created or updated) after the watermark; `null` without one.
    pub changed_since_watermark: Option<u64>,
    /// Instances unchanged since the watermark that the file lacks at least:
    /// `cdfLive - changedSinceWatermark - fileRows` when positive. Extra rows are not
    /// counted here: instances deleted after the watermark explain them, and the sample
    /// tells those from divergences.
    pub unexplained: u64,
    /// Where `cdfLive` comes from: `aggregate` (the count API) or `listing` (the key
    /// listing of several streams' queries, without duplicates).
    pub source: &'static str,
}

/// What became of one file in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FileState {
    /// Compared with CDF.
    Verified,
    /// Verified by an earlier run of the same cycle ([`super::VerifyProgress`]).
    VerifiedEarlier,
    /// No manifest entry: nothing published to verify.
    NotPublished,
    /// Not reached before the deadline; the next run of the cycle does it.
    Pending,
    /// Could not be verified; `error` says why.
    Failed,
}

impl FileState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FileState::Verified => "verified",
            FileState::VerifiedEarlier => "verified earlier",
            FileState::NotPublished => "not published",
            FileState::Pending => "pending",
            FileState::Failed => "failed",
        }
    }
}

/// One published file's verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileVerification {
    /// `space:model/version`.
    pub model: String,
    /// The view folder.
    pub view: String,
    /// `nodes` or `edges`.
    pub kind: String,
    /// What became of it.
    pub state: FileState,
    /// The raw table version its manifest entry names.
    pub table_version: Option<u64>,
    /// Its watermark, when it was verified.
    pub watermark: Option<Watermark>,
    /// Distinct instances sampled (the file's and CDF's samples together).
    pub sampled: u64,
    /// A fingerprint of the sampled keys (FNV-1a of the sorted keys, hex): equal in two
    /// runs exactly when they sampled the same instances, which a repeated `--seed` does.
    pub sample_digest: Option<String>,
    /// Sampled instances equal in the file and in CDF.
    pub matched: u64,
    /// Sampled instances whose difference is lag.
    pub lag: Lag,
    /// The count check.
    pub counts: Option<Counts>,
    /// Divergences by class.
    pub divergences: BTreeMap<DivergenceClass, ClassDivergences>,
    /// Why it could not be verified.
    pub error: Option<Failure>,
}

impl FileVerification {
    /// A file in `state` with nothing found yet.
    pub fn new(model: String, view: String, kind: &str, state: FileState) -> Self {
        Self {
            model,
            view,
            kind: kind.to_owned(),
            state,
            table_version: None,
            watermark: None,
            sampled: 0,
            sample_digest: None,
            matched: 0,
            lag: Lag::default(),
            counts: None,
            divergences: BTreeMap::new(),
            error: None,
        }
    }

    /// Records a divergence.
    pub fn diverges(&mut self, class: DivergenceClass, example: Example) {
        let entry = self.divergences.entry(class).or_default();
        entry.count += 1;
        if entry.examples.len() < EXAMPLES_PER_CLASS {
            entry.examples.push(example);
        }
    }

    /// Divergences of every class.
    pub fn divergence_count(&self) -> u64 {
        self.divergences.values().map(|d| d.count).sum()
    }

    /// The unit of resumption: `model|view|kind`.
    pub fn unit(&self) -> String {
        unit_key(&self.model, &self.view, &self.kind)
    }
}

/// The key of a (view, kind) file in [`super::VerifyProgress`].
pub(crate) fn unit_key(model: &str, view: &str, kind: &str) -> String {
    format!("{model}|{view}|{kind}")
}

/// Everything a verify run found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifySummary {
    /// The seed of the samples: `--seed` with it repeats this run's samples.
    pub seed: u64,
    /// Keys sampled per file from each side.
    pub sample: usize,
    /// CDF requests made after planning (aggregate, list, byids, sync, RAW state rows).
    pub requests: u64,
    /// When the run started, epoch milliseconds; ages are relative to it.
    pub started_at_ms: i64,
    /// Every selected file was verified in this cycle (none is pending).
    pub complete: bool,
    /// What the next run of the cycle continues from.
    pub progress: super::VerifyProgress,
    /// Models or views that could not be planned.
    pub plan_errors: Vec<Failure>,
    /// Per view and kind.
    pub files: Vec<FileVerification>,
    /// How long the run took.
    pub duration_ms: u64,
}

impl VerifySummary {
    /// Divergences over every file.
    pub fn divergences(&self) -> u64 {
        self.files
            .iter()
            .map(FileVerification::divergence_count)
            .sum()
    }

    /// Whether the lake agrees with CDF as far as this run could see: no divergence, no
    /// file that failed, no plan error.
    pub fn is_clean(&self) -> bool {
        self.divergences() == 0
            && self.plan_errors.is_empty()
            && self.files.iter().all(|f| f.state != FileState::Failed)
    }

    /// The largest lag age over the files, in milliseconds.
    pub fn lag_max_ms(&self) -> i64 {
        self.files
            .iter()
            .filter_map(|f| f.lag.max_age_ms)
            .max()
            .unwrap_or(0)
    }

    /// One line for logs.
    pub fn one_line(&self) -> String {
        let verified = self
            .files
            .iter()
            .filter(|f| f.state == FileState::Verified)
            .count();
        let pending = self
            .files
            .iter()
            .filter(|f| f.state == FileState::Pending)
            .count();
        format!(
            "{verified} files verified, {pending} pending, {} sampled, {} divergences, {} requests (seed {})",
            self.files.iter().map(|f| f.sampled).sum::<u64>(),
            self.divergences(),
            self.requests,
            self.seed
        )
    }

    /// The run as a job outcome: files verified (succeeded), pending (behind) and failed;
    /// success only without divergence. Metrics: `VerifySampled`, `VerifyDivergences`, one
    /// `VerifyDivergences<Class>` per class, `VerifyLagMax`.
    pub fn outcome(&self) -> JobOutcome {
        let count =
            |state: FileState| self.files.iter().filter(|f| f.state == state).count() as u64;
        let failures: Vec<Failure> = self
            .files
            .iter()
            .filter_map(|f| f.error.clone())
            .chain(self.plan_errors.iter().cloned())
            .collect();
        let mut metrics = Metrics::default();
        metrics.count(
            "VerifySampled",
            self.files.iter().map(|f| f.sampled).sum::<u64>(),
        );
        metrics.count("VerifyDivergences", self.divergences());
        for class in DivergenceClass::ALL {
            let n: u64 = self
                .files
                .iter()
                .filter_map(|f| f.divergences.get(&class))
                .map(|d| d.count)
                .sum();
            metrics.count(class.metric_name(), n);
        }
        metrics.push("VerifyLagMax", Unit::Milliseconds, self.lag_max_ms() as f64);
        JobOutcome {
            job: "verify",
            success: self.is_clean(),
            succeeded: count(FileState::Verified) + count(FileState::VerifiedEarlier),
            behind: count(FileState::Pending),
            failed: count(FileState::Failed),
            dry_run: false,
            summary: self.one_line(),
            failures: FailureCounts::of(&failures),
            duration_ms: self.duration_ms,
            metrics,
            detail: serde_json::to_value(self).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::render;

    fn summary(files: Vec<FileVerification>) -> VerifySummary {
        VerifySummary {
            seed: 42,
            sample: 10,
            requests: 7,
            started_at_ms: 10_000,
            complete: files.iter().all(|f| f.state != FileState::Pending),
            progress: super::super::VerifyProgress::default(),
            plan_errors: Vec::new(),
            files,
            duration_ms: 5,
        }
    }

    fn verified(view: &str) -> FileVerification {
        let mut file =
            FileVerification::new("s:M/1".into(), view.into(), "nodes", FileState::Verified);
        file.sampled = 10;
        file.matched = 10;
        file
    }

    #[test]
    fn divergences_fail_the_outcome_and_count_per_class() {
        let mut diverged = verified("Pump");
        diverged.matched = 8;
        diverged.diverges(
            DivergenceClass::ValueMismatch,
            Example::of_key(&("sp".into(), "p1".into()))
                .column("tag")
                .values("a", "b"),
        );
        diverged.diverges(
            DivergenceClass::MissingFromFile,
            Example::of_key(&("sp".into(), "p2".into())),
        );
        diverged.lag.add(10_000, 4_000);
        let pending =
            FileVerification::new("s:M/1".into(), "Site".into(), "nodes", FileState::Pending);
        let report = summary(vec![diverged, verified("WorkOrder"), pending]);
        assert!(!report.is_clean());
        let outcome = report.outcome();
        assert!(!outcome.success);
        assert_eq!(
            (outcome.succeeded, outcome.behind, outcome.failed),
            (2, 1, 0)
        );
        let metric = |name: &str| {
            outcome
                .metrics
                .0
                .iter()
                .find(|m| m.name == name)
                .map(|m| m.value)
        };
        assert_eq!(metric("VerifySampled"), Some(20.0));
        assert_eq!(metric("VerifyDivergences"), Some(2.0));
        assert_eq!(metric("VerifyDivergencesValueMismatch"), Some(1.0));
        assert_eq!(metric("VerifyDivergencesStaleFile"), Some(0.0));
        assert_eq!(metric("VerifyLagMax"), Some(6_000.0));
        assert_eq!(
            outcome.detail["files"][0]["divergences"]["valueMismatch"]["count"],
            1
        );
        assert_eq!(outcome.detail["seed"], 42);

        let clean = summary(vec![verified("Pump")]);
        assert!(clean.is_clean() && clean.outcome().success);
    }

    #[test]
    fn examples_stop_at_the_cap_but_the_count_goes_on() {
        let mut file = verified("Pump");
        for i in 0..(EXAMPLES_PER_CLASS + 3) {
            file.diverges(
                DivergenceClass::OutdatedRow,
                Example::of_key(&("sp".into(), format!("p{i}"))),
            );
        }
        let found = &file.divergences[&DivergenceClass::OutdatedRow];
        assert_eq!(found.count, (EXAMPLES_PER_CLASS + 3) as u64);
        assert_eq!(found.examples.len(), EXAMPLES_PER_CLASS);
    }

    #[test]
    fn the_table_prints_the_seed_every_file_and_every_example() {
        let mut file = verified("Pump");
        file.diverges(
            DivergenceClass::ValueMismatch,
            Example::of_key(&("sp".into(), "p1".into()))
                .column("tag")
                .values("lake value", "cdf value"),
        );
        let text = render(&summary(vec![file, verified("Site")]));
        assert!(text.contains("seed 42 (repeat with --seed 42)"), "{text}");
        assert!(text.contains("valueMismatch 1"), "{text}");
        assert!(
            text.contains("valueMismatch key=sp/p1 column=tag lake=lake value cdf=cdf value"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.contains("Site") && l.contains("verified")),
            "{text}"
        );
    }
}
