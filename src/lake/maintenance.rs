//! Table maintenance building blocks: checkpoints, log cleanup and vacuum. All of them work
//! without DataFusion. Compaction is built elsewhere on Arrow and Parquet.

use std::time::Duration;

use deltalake::Path;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::table::config::TablePropertiesExt as _;
use serde::Deserialize;

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

/// Where delta-rs (and every Delta writer) records the newest checkpoint.
const LAST_CHECKPOINT: &str = "_delta_log/_last_checkpoint";

#[derive(Deserialize)]
struct LastCheckpoint {
    version: u64,
}

impl LakeTable {
    /// The version of the newest checkpoint, as recorded in `_delta_log/_last_checkpoint`;
    /// `None` when the table has none (or the hint is unreadable, which Delta readers also
    /// treat as "no checkpoint").
    pub async fn last_checkpoint_version(&self) -> LakeResult<Option<u64>> {
        if !self.exists() {
            return Ok(None);
        }
        let store = self.table.object_store();
        let bytes = match store.get(&Path::from(LAST_CHECKPOINT)).await {
            Ok(result) => result.bytes().await,
            Err(deltalake::ObjectStoreError::NotFound { .. }) => return Ok(None),
            Err(error) => Err(error),
        }
        .map_err(|e| LakeError::delta(&self.url, "reading _last_checkpoint", e.into()))?;
        Ok(serde_json::from_slice::<LastCheckpoint>(&bytes)
            .ok()
            .map(|hint| hint.version))
    }

    /// The loaded version, if at least `interval` commits were made since the newest
    /// checkpoint (or since the table was created); `None` when no checkpoint is due.
    pub(crate) async fn checkpoint_due(&self, interval: u64) -> LakeResult<Option<u64>> {
        let Some(version) = self.version() else {
            return Ok(None);
        };
        let since_last = match self.last_checkpoint_version().await? {
            Some(checkpoint) if checkpoint >= version => return Ok(None),
            Some(checkpoint) => version - checkpoint,
            None => version + 1,
        };
        Ok((since_last >= interval.max(1)).then_some(version))
    }

    /// Writes a checkpoint of the loaded version when [`LakeTable::checkpoint_due`]; returns
    /// the version checkpointed.
    pub(crate) async fn checkpoint_if_behind(&mut self, interval: u64) -> LakeResult<Option<u64>> {
        let due = self.checkpoint_due(interval).await?;
        if due.is_some() {
            self.create_checkpoint().await?;
        }
        Ok(due)
    }

    /// Deletes commit and checkpoint files that are older than `retention` **and** than the
    /// table's `delta.logRetentionDuration` (30 days by default), and older than a checkpoint
    /// that replaces them. Readers that follow the log from a version inside either retention
    /// (the snapshot stage reads the commits after the version it last published) therefore
    /// always find it. Returns how many files were deleted.
    pub async fn cleanup_logs(&mut self, retention: Duration) -> LakeResult<usize> {
        let Some(version) = self.version() else {
            return Ok(0);
        };
        let table_retention = self
            .table
            .snapshot()
            .map_err(|e| LakeError::delta(&self.url, "reading the log retention", e))?
            .table_config()
            .log_retention_duration();
        let keep = retention.max(table_retention);
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let cutoff = chrono::Utc::now()
            .timestamp_millis()
            .saturating_sub(keep_ms);
        deltalake::checkpoints::cleanup_expired_logs_for(
            version,
            self.table.log_store().as_ref(),
            cutoff,
            None,
        )
        .await
        .map_err(|e| LakeError::delta(&self.url, "cleaning up expired log files", e))
    }
}
