//! Table maintenance building blocks: checkpoints, log cleanup and vacuum. All of them work
//! without DataFusion. Compaction is built elsewhere on Arrow and Parquet.

use std::time::Duration;

use deltalake::operations::vacuum::VacuumMode;

use super::error::{LakeError, LakeResult};
use super::table::LakeTable;

/// Which files a vacuum may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VacuumScope {
    /// Files removed from the table by a commit (compaction), older than the retention.
    RemovedFiles,
    /// Additionally every file under the table that no commit references (left behind by a
    /// crash or a lost commit race), older than the retention. Lists the whole table.
    AllUnreferenced,
}

/// What a vacuum did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumReport {
    /// Files deleted (or, for a dry run, that would be deleted).
    pub files: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl LakeTable {
    /// Writes a checkpoint of the loaded version, so readers need not replay the whole log.
    pub async fn create_checkpoint(&mut self) -> LakeResult<()> {
        if !self.exists() {
            return Ok(());
        }
        deltalake::checkpoints::create_checkpoint(&self.table, None)
            .await
            .map_err(|e| LakeError::delta(&self.url, "writing a checkpoint", e))
    }

    /// Deletes commit files older than the table's log retention (`delta.logRetentionDuration`,
    /// 30 days by default) that a checkpoint makes unnecessary. Returns how many were deleted.
    pub async fn cleanup_expired_logs(&mut self) -> LakeResult<usize> {
        if !self.exists() {
            return Ok(0);
        }
        deltalake::checkpoints::cleanup_metadata(&self.table, None)
            .await
            .map_err(|e| LakeError::delta(&self.url, "cleaning up expired log files", e))
    }

    /// Deletes data files that are no longer part of the table and older than `retention`.
    ///
    /// The retention is the caller's (configured) choice and may be shorter than the table's
    /// `delta.deletedFileRetentionDuration`: readers that still read a snapshot older than
    /// the retention may then fail, which is the trade-off the configuration makes.
    pub async fn vacuum(
        &mut self,
        retention: Duration,
        scope: VacuumScope,
        dry_run: bool,
    ) -> LakeResult<VacuumReport> {
        if !self.exists() {
            return Ok(VacuumReport {
                files: Vec::new(),
                dry_run,
            });
        }
        let retention =
            chrono::Duration::from_std(retention).map_err(|e| LakeError::InvalidOption {
                option: "vacuum retention",
                value: format!("{retention:?}"),
                reason: e.to_string(),
            })?;
        let mode = match scope {
            VacuumScope::RemovedFiles => VacuumMode::Lite,
            VacuumScope::AllUnreferenced => VacuumMode::Full,
        };
        let (table, metrics) = self
            .table
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_mode(mode)
            .with_dry_run(dry_run)
            .await
            .map_err(|e| LakeError::delta(&self.url, "vacuuming", e))?;
        self.table = table;
        Ok(VacuumReport {
            files: metrics.files_deleted,
            dry_run: metrics.dry_run,
        })
    }
}
