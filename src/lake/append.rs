//! Exactly-once appends: the data files, a `txn` action and the stream metadata land in one
//! Delta commit, or not at all.
//!
//! The model is kafka-delta-ingest's: a stream (the app) numbers its commits with a strictly
//! increasing txn version. Before writing, the table's txn version for the stream is checked;
//! if it already reached this commit's version, the commit happened before (for example just
//! before a crash, ahead of the external checkpoint) and nothing is written. A concurrent
//! writer that slips in between is caught by the commit itself: delta-rs refuses a commit
//! whose `txn` appId was also written by a commit it did not read, and S3 refuses a second
//! `_delta_log/<version>.json` (put-if-absent). The loser reloads, re-checks and retries.

use std::collections::HashSet;

use deltalake::DeltaTableError;
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{Action, Add, MetadataExt as _, Transaction};
use deltalake::protocol::{DeltaOperation, OutputMode};
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter, WriteMode};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::commit_metadata::{StreamCommitInfo, StreamMetadata};
use super::error::{LakeError, LakeResult};
use super::schema_evolution::{self, SchemaPlan};
use super::table::{LOST_COMMIT, LakeTable, is_commit_race};

/// Identifies one commit of one stream, and what to remember with it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamCommit {
    /// The stream key; becomes the `txn` appId.
    pub app_id: String,
    /// The stream's commit sequence number; strictly increasing per `app_id`.
    pub txn_version: i64,
    /// What the stream remembers with the commit (checkpoint, generation, flags), stored
    /// in commitInfo as [`StreamCommitInfo`].
    pub metadata: StreamMetadata,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The commit landed.
    Committed(CommitReport),
    /// The table already holds this stream at `table_txn_version >= txn_version`; nothing
    /// was written.
    AlreadyCommitted {
        /// The stream's txn version in the table.
        table_txn_version: i64,
        /// Commit races lost before this was discovered (0 when the first check found it).
        conflicts: u32,
    },
}

/// Details of a landed commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitReport {
    /// The Delta version of the commit.
    pub delta_version: u64,
    /// Rows written.
    pub rows: u64,
    /// Data files written (normally one).
    pub files: usize,
    /// Bytes of data files written.
    pub(crate) bytes: u64,
    /// Columns added to the table schema by this commit.
    pub added_columns: Vec<String>,
    /// Whether this commit created the table.
    pub created_table: bool,
    /// Commit races lost (and retried) before this commit landed.
    pub conflicts: u32,
}

impl LakeTable {
    /// Appends `batches` with a `txn` action and stream metadata in one commit.
    ///
    /// All batches must share one schema. Batches with zero rows still count for the schema
    /// (and may create the table or add columns); an append of only empty batches commits
    /// just the txn and metadata, which records progress (for example the opening of a new
    /// generation whose backfill is empty). The table is created on the first append.
    pub async fn append(
        &mut self,
        batches: &[RecordBatch],
        commit: StreamCommit,
    ) -> LakeResult<CommitOutcome> {
        if commit.txn_version < 0 || commit.app_id.is_empty() {
            return Err(LakeError::InvalidTxnVersion {
                app_id: commit.app_id,
                txn_version: commit.txn_version,
            });
        }
        if let Some(first) = batches.first()
            && let Some(index) = batches
                .iter()
                .position(|b| b.schema().fields() != first.schema().fields())
        {
            return Err(LakeError::MixedBatchSchemas {
                url: self.url.to_string(),
                index,
            });
        }

        let commit_info = StreamCommitInfo::new(
            commit.app_id.clone(),
            commit.txn_version,
            commit.metadata.clone(),
        )
        .to_commit_info()
        .map_err(|source| LakeError::CommitMetadata {
            url: self.url.to_string(),
            source,
        })?;

        let mut created_table = false;
        let mut conflicts = 0u32;
        loop {
            if !self.exists() {
                let Some(first) = batches.first() else {
                    return Err(LakeError::TableMissing {
                        url: self.url.to_string(),
                    });
                };
                let schema = schema_evolution::delta_schema_of(self.url.as_str(), &first.schema())?;
                created_table = self.create(&schema).await?;
            }

            if let Some(table_txn_version) = self.txn_version(&commit.app_id).await?
                && table_txn_version >= commit.txn_version
            {
                return Ok(CommitOutcome::AlreadyCommitted {
                    table_txn_version,
                    conflicts,
                });
            }

            let plan = self.plan_schema(batches)?;
            let adds = self.write_files(batches, &plan).await?;
            crate::failpoint::hit("after-data-upload");
            match self.commit(&adds, &plan, &commit, &commit_info).await {
                Ok(delta_version) => {
                    self.checkpoint_if_due(delta_version).await;
                    return Ok(CommitOutcome::Committed(CommitReport {
                        delta_version,
                        rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
                        files: adds.len(),
                        bytes: adds.iter().map(|a| a.size.max(0) as u64).sum(),
                        added_columns: plan.added_columns,
                        created_table,
                        conflicts,
                    }));
                }
                Err(error) if is_commit_race(&error) => {
                    conflicts += 1;
                    tracing::warn!(
                        table = %self.url,
                        app_id = %commit.app_id,
                        txn_version = commit.txn_version,
                        attempt = conflicts,
                        error = %error,
                        "lost a commit race; reloading and re-checking"
                    );
                    self.refresh().await?;
                    if let Some(table_txn_version) = self.txn_version(&commit.app_id).await?
                        && table_txn_version >= commit.txn_version
                    {
                        // Another writer committed this stream's data, or this writer did
                        // and only the response to its PUT was lost. Only in the first case
                        // are the files unreferenced.
                        if !self.references_any(&adds)? {
                            self.delete_orphans(&added_paths(&adds), LOST_COMMIT).await;
                        }
                        return Ok(CommitOutcome::AlreadyCommitted {
                            table_txn_version,
                            conflicts,
                        });
                    }
                    // No commit carries this txn version, so these files are unreferenced.
                    self.delete_orphans(&added_paths(&adds), LOST_COMMIT).await;
                    if conflicts >= self.options.max_commit_attempts {
                        return Err(LakeError::Conflict {
                            url: self.url.to_string(),
                            app_id: commit.app_id,
                            txn_version: commit.txn_version,
                            attempts: conflicts,
                            last_error: error.to_string(),
                        });
                    }
                    // Writers that collided once tend to collide again when they retry in
                    // lockstep; a random pause spreads them out.
                    let pause_ms = rand::random_range(0..50u64 << conflicts.min(5));
                    tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
                }
                Err(error) => {
                    // The commit may or may not have landed (a timeout after the PUT); the
                    // files stay, and the next attempt's txn check tells which.
                    return Err(LakeError::delta(&self.url, "committing an append", error));
                }
            }
        }
    }

    fn plan_schema(&self, batches: &[RecordBatch]) -> LakeResult<SchemaPlan> {
        let url = self.url.as_str();
        let state = self
            .table
            .snapshot()
            .map_err(|e| LakeError::delta(&url, "reading the schema", e))?;
        let table_schema = state.schema();
        match batches.first() {
            Some(first) => schema_evolution::plan(url, &table_schema, &first.schema()),
            None => {
                let arrow = state.snapshot().arrow_schema();
                schema_evolution::plan(url, &table_schema, &arrow)
            }
        }
    }

    /// Writes all rows into one Parquet file (row groups of `rows_per_row_group`).
    async fn write_files(
        &self,
        batches: &[RecordBatch],
        plan: &SchemaPlan,
    ) -> LakeResult<Vec<Add>> {
        let url = self.url.as_str();
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(Vec::new());
        }
        let mut writer = RecordBatchWriter::for_table(&self.table)
            .map_err(|e| LakeError::delta(&url, "preparing the Parquet writer", e))?
            .with_writer_properties(self.options.writer_properties(&self.url)?);
        let mode = if plan.evolves() {
            WriteMode::MergeSchema
        } else {
            WriteMode::Default
        };
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            let batch = schema_evolution::conform(url, batch, plan)?;
            writer
                .write_with_mode(batch, mode)
                .await
                .map_err(|e| LakeError::delta(&url, "writing a Parquet file", e))?;
        }
        writer
            .flush()
            .await
            .map_err(|e| LakeError::delta(&url, "finishing the Parquet file", e))
    }

    async fn commit(
        &mut self,
        adds: &[Add],
        plan: &SchemaPlan,
        commit: &StreamCommit,
        commit_info: &(String, Value),
    ) -> Result<u64, DeltaTableError> {
        let state = self.table.snapshot()?;
        let mut actions: Vec<Action> = adds.iter().cloned().map(Action::Add).collect();
        if plan.evolves() {
            let metadata = state.metadata().clone().with_schema(&plan.table_schema)?;
            actions.push(Action::Metadata(metadata));
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let properties = CommitProperties::default()
            .with_metadata([commit_info.clone()])
            .with_application_transaction(Transaction::new_with_last_update(
                &commit.app_id,
                commit.txn_version,
                Some(now_ms),
            ));
        let operation = DeltaOperation::StreamingUpdate {
            output_mode: OutputMode::Append,
            query_id: commit.app_id.clone(),
            epoch_id: commit.txn_version,
        };
        self.commit_on_snapshot(properties, actions, operation)
            .await
    }

    /// Writes a checkpoint when the table's checkpoint interval is reached. A failure only
    /// costs read performance, so it is logged, not returned.
    async fn checkpoint_if_due(&mut self, version: u64) {
        let interval = match self.table.snapshot() {
            Ok(state) => state.table_config().checkpoint_interval().get(),
            Err(_) => return,
        };
        if (version + 1).is_multiple_of(interval)
            && let Err(error) = deltalake::checkpoints::create_checkpoint(&self.table, None).await
        {
            tracing::warn!(table = %self.url, version, error = %error, "checkpoint failed");
        }
    }

    /// Whether the loaded snapshot contains any of these files.
    fn references_any(&self, adds: &[Add]) -> LakeResult<bool> {
        if adds.is_empty() {
            return Ok(false);
        }
        let active: HashSet<String> = self
            .active_files()?
            .into_iter()
            .map(|file| file.path)
            .collect();
        Ok(adds.iter().any(|add| {
            let path = percent_decode_str(&add.path).decode_utf8_lossy();
            active.contains(path.as_ref())
        }))
    }
}

fn added_paths(adds: &[Add]) -> Vec<&str> {
    adds.iter().map(|add| add.path.as_str()).collect()
}
