//! What one maintenance run did, per table and in total, as returned to the caller (CLI,
//! Lambda) and logged.

use serde::Serialize;

use crate::failure::{Failure, FailureCounts};
use crate::job::{JobOutcome, Metrics, Unit};

use crate::lake::{CompactedGroup, CompactionInfo, CompactionOutcome};

/// How a table's maintenance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TableStatus {
    /// Every requested step ran.
    Done,
    /// The table does not exist yet (its streams never committed): nothing to maintain.
    Missing,
    /// At least one step failed; `errors` says which and why. Other steps still ran.
    Failed,
    /// Dry run: the figures say what would be done; nothing was written or deleted.
    Planned,
    /// The deadline came before every requested step ran; the next run continues.
    Deferred,
}

/// One compaction commit (or, in a dry run, one planned group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactionCommit {
    #[serde(flatten)]
    pub(crate) info: CompactionInfo,
    /// The Delta version of the commit; `None` when planned, skipped or not found again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) delta_version: Option<u64>,
    pub(crate) bytes_removed: u64,
    pub(crate) bytes_written: u64,
    pub(crate) rows: u64,
    /// Commit races lost before it landed or was skipped.
    pub(crate) conflicts: u32,
    /// Why the group was skipped (a concurrent commit removed one of its files, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) skipped: Option<String>,
}

impl From<&CompactedGroup> for CompactionCommit {
    fn from(group: &CompactedGroup) -> Self {
        let (delta_version, conflicts, skipped) = match &group.outcome {
            CompactionOutcome::Committed {
                delta_version,
                conflicts,
            } => (*delta_version, *conflicts, None),
            CompactionOutcome::Skipped { reason, conflicts } => {
                (None, *conflicts, Some(reason.clone()))
            }
        };
        Self {
            info: group.info.clone(),
            delta_version,
            bytes_removed: group.bytes_removed,
            bytes_written: group.bytes_written,
            rows: group.rows,
            conflicts,
            skipped,
        }
    }
}

/// One table's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableReport {
    /// `<space>/<model>/<version>/<view folder>/<nodes|edges>`.
    pub table: String,
    pub status: TableStatus,
    /// The table version when maintenance started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<u64>,
    /// Active data files before and after.
    pub(crate) files_before: usize,
    pub files_after: usize,
    /// Small files merged (or, in a dry run, that would be merged) and files written.
    pub files_compacted: usize,
    pub files_written: usize,
    pub(crate) bytes_compacted: u64,
    pub(crate) bytes_written: u64,
    pub(crate) compactions: Vec<CompactionCommit>,
    /// The version a checkpoint was written for (in a dry run: would be written for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_version: Option<u64>,
    /// Data files deleted by vacuum (in a dry run: that would be deleted).
    pub(crate) files_vacuumed: usize,
    /// Expired log files deleted.
    pub logs_deleted: usize,
    pub errors: Vec<Failure>,
}

impl TableReport {
    pub(crate) fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            status: TableStatus::Done,
            version: None,
            files_before: 0,
            files_after: 0,
            files_compacted: 0,
            files_written: 0,
            bytes_compacted: 0,
            bytes_written: 0,
            compactions: Vec::new(),
            checkpoint_version: None,
            files_vacuumed: 0,
            logs_deleted: 0,
            errors: Vec::new(),
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceSummary {
    /// Whether `extractor.maintenance.enabled` was off, so nothing ran.
    pub(crate) disabled: bool,
    pub(crate) dry_run: bool,
    /// Tables visited, whatever their status.
    pub tables_total: usize,
    pub(crate) tables_failed: usize,
    /// Tables the deadline left (partly) undone.
    pub tables_deferred: usize,
    /// Small files merged over all tables (in a dry run: that would be merged).
    pub files_compacted: usize,
    /// Files the compactions wrote in their place.
    pub files_written: usize,
    pub(crate) bytes_compacted: u64,
    pub(crate) bytes_written: u64,
    pub(crate) checkpoints: usize,
    /// Data files deleted by vacuum over all tables (in a dry run: that would be deleted).
    pub files_vacuumed: usize,
    /// Expired log files deleted over all tables.
    pub logs_deleted: usize,
    /// Problems planning the tables (a model or view that could not be resolved).
    pub(crate) plan_errors: Vec<Failure>,
    /// The figures of each table.
    pub tables: Vec<TableReport>,
    pub(crate) duration_ms: u64,
}

impl MaintenanceSummary {
    pub(crate) fn from_reports(
        mut tables: Vec<TableReport>,
        plan_errors: Vec<Failure>,
        dry_run: bool,
        duration_ms: u64,
    ) -> Self {
        // Error texts quote S3 and Delta answers, which may echo a secret or token.
        for table in &mut tables {
            table.errors = std::mem::take(&mut table.errors)
                .into_iter()
                .map(Failure::redacted)
                .collect();
        }
        let plan_errors: Vec<Failure> = plan_errors.into_iter().map(Failure::redacted).collect();
        Self {
            disabled: false,
            dry_run,
            tables_total: tables.len(),
            tables_failed: tables
                .iter()
                .filter(|t| t.status == TableStatus::Failed)
                .count(),
            tables_deferred: tables
                .iter()
                .filter(|t| t.status == TableStatus::Deferred)
                .count(),
            files_compacted: tables.iter().map(|t| t.files_compacted).sum(),
            files_written: tables.iter().map(|t| t.files_written).sum(),
            bytes_compacted: tables.iter().map(|t| t.bytes_compacted).sum(),
            bytes_written: tables.iter().map(|t| t.bytes_written).sum(),
            checkpoints: tables
                .iter()
                .filter(|t| t.checkpoint_version.is_some())
                .count(),
            files_vacuumed: tables.iter().map(|t| t.files_vacuumed).sum(),
            logs_deleted: tables.iter().map(|t| t.logs_deleted).sum(),
            plan_errors,
            tables,
            duration_ms,
        }
    }

    /// No table failed and every configured model and view could be planned.
    pub fn is_success(&self) -> bool {
        self.tables_failed == 0 && self.plan_errors.is_empty()
    }

    /// The run in the shape every job reports: tables done (or missing), deferred by the
    /// deadline, and failed (with the models and views that could not be planned).
    pub fn outcome(&self) -> JobOutcome {
        JobOutcome {
            job: "maintenance",
            success: self.is_success(),
            succeeded: (self.tables_total - self.tables_failed - self.tables_deferred) as u64,
            behind: self.tables_deferred as u64,
            failed: (self.tables_failed + self.plan_errors.len()) as u64,
            dry_run: self.dry_run,
            summary: self.one_line(),
            failures: self.failures(),
            duration_ms: self.duration_ms,
            metrics: self.metrics(),
            detail: serde_json::to_value(self).unwrap_or_default(),
        }
    }

    /// The figures of the run as metrics.
    pub(crate) fn metrics(&self) -> Metrics {
        let mut set = Metrics::default();
        set.count("TablesMaintained", self.tables_total);
        set.count("TablesMaintenanceFailed", self.tables_failed);
        set.count("TablesDeferred", self.tables_deferred);
        set.count("FilesCompacted", self.files_compacted);
        set.push("BytesCompacted", Unit::Bytes, self.bytes_compacted as f64);
        set.count("Checkpoints", self.checkpoints);
        set.count("FilesVacuumed", self.files_vacuumed);
        set.push(
            "MaintenanceDuration",
            Unit::Milliseconds,
            self.duration_ms as f64,
        );
        set
    }

    /// A one-line summary for logs and run reports.
    pub fn one_line(&self) -> String {
        if self.disabled {
            return "maintenance is disabled (extractor.maintenance.enabled: false)".into();
        }
        let mut line = format!(
            "{}{} tables ({} failed, {} deferred): {} small files merged into {}, {} checkpoints, {} files vacuumed, {} log files deleted",
            if self.dry_run { "dry run: " } else { "" },
            self.tables_total,
            self.tables_failed,
            self.tables_deferred,
            self.files_compacted,
            self.files_written,
            self.checkpoints,
            self.files_vacuumed,
            self.logs_deleted,
        );
        let first_error = self
            .plan_errors
            .first()
            .or_else(|| self.tables.iter().find_map(|t| t.errors.first()));
        if let Some(error) = first_error {
            line.push_str("; first error: ");
            line.push_str(&error.message);
        }
        line
    }

    /// Every failure of the run: the plan's and each table's steps'.
    pub(crate) fn failures(&self) -> FailureCounts {
        FailureCounts::of(
            self.plan_errors
                .iter()
                .chain(self.tables.iter().flat_map(|t| t.errors.iter())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_in_camel_case_with_the_compaction_contract_fields() {
        let mut table = TableReport::new("raw/s/M/1/views/V/nodes");
        table.files_before = 12;
        table.files_compacted = 10;
        table.files_written = 1;
        table.checkpoint_version = Some(14);
        table.compactions.push(CompactionCommit {
            info: CompactionInfo {
                app_id: "s/M/1/V/nodes".into(),
                generation: 1,
                first_version: 1,
                last_version: 10,
                source_files: 10,
            },
            delta_version: Some(13),
            bytes_removed: 1000,
            bytes_written: 400,
            rows: 100,
            conflicts: 1,
            skipped: None,
        });
        let summary = MaintenanceSummary::from_reports(vec![table], Vec::new(), false, 5);
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["filesCompacted"], 10);
        assert_eq!(json["checkpoints"], 1);
        let table = &json["tables"][0];
        assert_eq!(table["status"], "done");
        assert_eq!(table["checkpointVersion"], 14);
        let compaction = &table["compactions"][0];
        assert_eq!(compaction["appId"], "s/M/1/V/nodes");
        assert_eq!(compaction["firstVersion"], 1);
        assert_eq!(compaction["sourceFiles"], 10);
        assert_eq!(compaction["deltaVersion"], 13);
        assert!(compaction.get("skipped").is_none());
        assert!(summary.is_success());
        assert!(summary.one_line().contains("10 small files merged into 1"));
    }
}
