//! What one snapshot invocation did, as returned to the caller (CLI, Lambda) and logged.

use serde::Serialize;

use super::catalog::CatalogReport;
use crate::failure::{Failure, FailureCounts};
use crate::job::{JobOutcome, Metrics, Unit};
use crate::lake::InstanceKind;

/// What happened to one published file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FileAction {
    /// The raw table did not change since the published file: nothing was written.
    Skipped,
    /// Only the commits after the published version were read and merged into the
    /// previous file.
    Incremental,
    /// The file was built from every active file of the raw table.
    Rebuilt,
    /// The file could not be published; the previous file (if any) is still in place.
    Failed,
    /// The run's deadline came before the file could be built: the previous file (if any)
    /// is still in place, and the next run takes this file first. Not a failure, like a
    /// sync stream that is behind. A full rebuild that started keeps its progress.
    Behind,
}

/// One published file (`nodes.parquet` or `edges.parquet`) of one view.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    pub(crate) kind: &'static str,
    /// What happened to the file.
    pub action: FileAction,
    /// Rows in the published file (live instances).
    pub rows: u64,
    /// Size of the published file in bytes (of the previous file when skipped).
    pub bytes: u64,
    /// The raw table's Delta version the file reflects; `None` while the table does not exist.
    pub source_version: Option<u64>,
    /// The version the previous file reflected, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<u64>,
    /// Delta commits read from the log.
    pub commits_read: u64,
    /// Raw data files read.
    pub files_read: u64,
    /// Raw rows read (changes, tombstones included).
    pub rows_read: u64,
    /// Sorted runs spilled to local temp space.
    pub spilled_runs: u64,
    pub(crate) duration_ms: u64,
    /// Why a file was rebuilt rather than merged incrementally, or why the manifest's entry
    /// for it was not trusted (it did not name the file at the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the file failed (action `failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// What happened to each part, when the file is published in parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<PartsReport>,
}

/// The parts of a file published in parts: how many, and what happened to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartsReport {
    /// How many parts the file has.
    pub count: u32,
    /// Parts built from every active file of the raw table.
    pub rebuilt: u32,
    /// Parts the new commits changed, merged into their previous part.
    pub merged: u32,
    /// Parts left as they were: the new commits hold none of their instances (their
    /// manifest entry moves on to the new version), or nothing changed at all.
    pub unchanged: u32,
}

impl FileReport {
    pub(crate) fn new(kind: InstanceKind, action: FileAction) -> Self {
        Self {
            kind: kind.as_str(),
            action,
            rows: 0,
            bytes: 0,
            source_version: None,
            previous_version: None,
            commits_read: 0,
            files_read: 0,
            rows_read: 0,
            spilled_runs: 0,
            duration_ms: 0,
            reason: None,
            error: None,
            parts: None,
        }
    }

    pub(crate) fn failed(kind: InstanceKind, error: Failure) -> Self {
        Self {
            error: Some(error),
            ..Self::new(kind, FileAction::Failed)
        }
    }

    /// A file left for the next run; `reason` says why (the estimate and the time left).
    pub(crate) fn behind(kind: InstanceKind, reason: String) -> Self {
        Self {
            reason: Some(reason),
            ..Self::new(kind, FileAction::Behind)
        }
    }
}

/// One view: its two files and whether its manifest was written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewReport {
    /// `space:model/version` of the data model.
    pub(crate) model: String,
    /// The view's folder under the model (its externalId, space-qualified when ambiguous).
    pub view: String,
    /// One report per file the view has (`nodes`, `edges`).
    pub files: Vec<FileReport>,
    /// Whether `_manifest.json` was (re)written by this invocation.
    pub manifest_written: bool,
    /// How many times the view was published: more than 1 when another snapshot run
    /// published it at the same time and this one started over.
    pub attempts: u32,
    pub(crate) duration_ms: u64,
    /// A failure that concerns the whole view (for example the manifest write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<Failure>,
    /// The view's publish folder, when objects of a replaced form may be left in it (the
    /// manifest changed, or names parts): removed once the catalog points at the new form.
    #[serde(skip)]
    pub(crate) retire: Option<String>,
}

impl ViewReport {
    /// A view the run did not reach before its deadline: both files left as they are.
    pub(crate) fn behind(target: &super::ViewTarget) -> Self {
        let reason = || {
            "the deadline came before the run reached the view; the next snapshot takes it first"
                .to_owned()
        };
        Self {
            model: target.model_label(),
            view: target.folder.to_string(),
            files: [InstanceKind::Nodes, InstanceKind::Edges]
                .into_iter()
                .map(|kind| FileReport::behind(kind, reason()))
                .collect(),
            manifest_written: false,
            attempts: 0,
            duration_ms: 0,
            error: None,
            retire: None,
        }
    }

    /// Whether every file of the view is published and current.
    pub fn is_success(&self) -> bool {
        self.error.is_none() && self.files.iter().all(|f| f.action != FileAction::Failed)
    }

    /// Whether the run's deadline left work on the view for the next run (and nothing
    /// failed).
    pub fn is_behind(&self) -> bool {
        self.is_success() && self.files.iter().any(|f| f.action == FileAction::Behind)
    }

    /// The report of one kind of file, if the view has it.
    pub fn file(&self, kind: InstanceKind) -> Option<&FileReport> {
        self.files.iter().find(|f| f.kind == kind.as_str())
    }
}

/// The whole invocation.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    /// Views planned for this invocation.
    pub views_total: usize,
    /// Views with a failed file or a failure of their own.
    pub views_failed: usize,
    /// Views with a file the deadline left for the next run (and no failure): not a
    /// failure, the next run takes them first.
    pub views_behind: usize,
    /// Files with [`FileAction::Skipped`].
    pub files_skipped: usize,
    /// Files with [`FileAction::Incremental`].
    pub files_incremental: usize,
    /// Files with [`FileAction::Rebuilt`].
    pub files_rebuilt: usize,
    /// Files with [`FileAction::Failed`].
    pub files_failed: usize,
    /// Files with [`FileAction::Behind`].
    pub files_behind: usize,
    /// Rows in the files written by this invocation.
    pub(crate) rows: u64,
    /// Bytes of the files written by this invocation.
    pub(crate) bytes: u64,
    pub(crate) duration_ms: u64,
    /// Problems that stopped a model or view from being planned (unknown model, missing
    /// view), each naming what failed.
    pub plan_errors: Vec<Failure>,
    /// Every view's report.
    pub views: Vec<ViewReport>,
    /// Glue Data Catalog registration after publishing, when configured. A catalog
    /// failure makes the run unsuccessful; the published files stand regardless.
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Boxed: the summary travels inside the Lambda report enum, whose variants stay small.
    pub catalog: Option<Box<CatalogReport>>,
}

impl SnapshotSummary {
    pub(crate) fn from_reports(
        mut views: Vec<ViewReport>,
        plan_errors: Vec<Failure>,
        duration_ms: u64,
    ) -> Self {
        // Error texts quote CDF, S3 and Delta answers, which may echo a secret or token.
        for view in &mut views {
            view.error = view.error.take().map(Failure::redacted);
            for file in &mut view.files {
                file.error = file.error.take().map(Failure::redacted);
            }
        }
        let plan_errors: Vec<Failure> = plan_errors.into_iter().map(Failure::redacted).collect();
        let files = || views.iter().flat_map(|v| v.files.iter());
        let count = |action| files().filter(|f| f.action == action).count();
        let written = || {
            files().filter(|f| matches!(f.action, FileAction::Incremental | FileAction::Rebuilt))
        };
        Self {
            views_total: views.len(),
            views_failed: views.iter().filter(|v| !v.is_success()).count(),
            views_behind: views.iter().filter(|v| v.is_behind()).count(),
            files_skipped: count(FileAction::Skipped),
            files_incremental: count(FileAction::Incremental),
            files_rebuilt: count(FileAction::Rebuilt),
            files_failed: count(FileAction::Failed),
            files_behind: count(FileAction::Behind),
            rows: written().map(|f| f.rows).sum(),
            bytes: written().map(|f| f.bytes).sum(),
            duration_ms,
            plan_errors,
            views,
            catalog: None,
        }
    }

    /// True when every configured view was planned and published or left behind by the
    /// deadline (the next run continues it, as sync does with a stream that is behind),
    /// and (when configured) every catalog table registered.
    pub fn is_success(&self) -> bool {
        self.views_failed == 0
            && self.plan_errors.is_empty()
            && self.catalog.as_ref().is_none_or(|c| c.is_success())
    }

    /// The report of one view, by folder name.
    pub fn view(&self, folder: &str) -> Option<&ViewReport> {
        self.views.iter().find(|v| v.view == folder)
    }

    /// Every failure of the run: the plan's, each view's and each file's, and the catalog's.
    pub(crate) fn failures(&self) -> FailureCounts {
        FailureCounts::of(
            self.plan_errors
                .iter()
                .chain(self.views.iter().flat_map(|v| {
                    v.error
                        .iter()
                        .chain(v.files.iter().filter_map(|f| f.error.as_ref()))
                }))
                .chain(self.catalog.iter().flat_map(|c| c.failures())),
        )
    }

    /// The run in the shape every job reports: views published and failed (with the models
    /// and views that could not be planned).
    pub fn outcome(&self) -> JobOutcome {
        JobOutcome {
            job: "snapshot",
            success: self.is_success(),
            succeeded: self
                .views_total
                .saturating_sub(self.views_failed + self.views_behind)
                as u64,
            behind: self.views_behind as u64,
            failed: (self.views_failed + self.plan_errors.len()) as u64,
            dry_run: false,
            summary: self.one_line(),
            failures: self.failures(),
            duration_ms: self.duration_ms,
            metrics: self.metrics(),
            detail: serde_json::to_value(self).unwrap_or_default(),
        }
    }

    /// The figures of the run as metrics: rows and bytes of the files written, files by
    /// what happened to them.
    pub(crate) fn metrics(&self) -> Metrics {
        let mut set = Metrics::default();
        set.count("Rows", self.rows);
        set.push("Bytes", Unit::Bytes, self.bytes as f64);
        set.count("ViewsTotal", self.views_total);
        set.count("ViewsFailed", self.views_failed);
        set.count("ViewsBehind", self.views_behind);
        set.count("FilesRebuilt", self.files_rebuilt);
        set.count("FilesMerged", self.files_incremental);
        set.count("FilesUnchanged", self.files_skipped);
        set.count("FilesFailed", self.files_failed);
        set.count("FilesBehind", self.files_behind);
        set.count("PlanErrors", self.plan_errors.len());
        set.push("RunDuration", Unit::Milliseconds, self.duration_ms as f64);
        set
    }

    /// One line for logs and the extraction pipeline run message.
    pub fn one_line(&self) -> String {
        let mut line = format!(
            "{} views ({} failed, {} behind): {} files rebuilt, {} merged, {} unchanged, {} failed, {} behind; {} rows, {} bytes written",
            self.views_total,
            self.views_failed,
            self.views_behind,
            self.files_rebuilt,
            self.files_incremental,
            self.files_skipped,
            self.files_failed,
            self.files_behind,
            self.rows,
            self.bytes
        );
        let problems: Vec<String> = self
            .plan_errors
            .iter()
            .map(|e| e.message.clone())
            .chain(self.views.iter().flat_map(|v| {
                let view_error = v.error.as_ref().map(|e| format!("{}: {e}", v.view));
                let file_errors = v.files.iter().filter_map(move |f| {
                    f.error
                        .as_ref()
                        .map(|e| format!("{}/{}: {e}", v.view, f.kind))
                });
                view_error.into_iter().chain(file_errors)
            }))
            .collect();
        if !problems.is_empty() {
            line.push_str(". Errors: ");
            line.push_str(&problems.join("; "));
        }
        if let Some(catalog) = &self.catalog {
            line.push_str(". ");
            line.push_str(&catalog.one_line());
        }
        line
    }
}
