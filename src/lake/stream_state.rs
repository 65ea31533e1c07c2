//! A stream's progress as recorded in the Delta log.
//!
//! The sync stage checkpoints each stream in CDF RAW after committing to Delta. If the process
//! dies between the two, the Delta log is ahead: its newest commit for the stream holds the
//! newer txn version and cursor. On start the caller reads both and takes the newer.

use super::commit_metadata::StreamMetadata;
use super::error::{LakeError, LakeResult};
use super::table::LakeTable;

/// Default number of newest commits [`LakeTable::last_stream_commit`] looks through.
pub(crate) const DEFAULT_STREAM_COMMIT_SCAN: u64 = 1000;

/// How many commit files are fetched at once while scanning backwards.
const SCAN_CHUNK: u64 = 8;

/// The newest commit of one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamCommitRecord {
    /// The Delta version of the commit.
    pub delta_version: u64,
    /// The stream's txn version in that commit.
    pub txn_version: i64,
    /// Commit timestamp, epoch milliseconds.
    pub timestamp_ms: Option<i64>,
    /// The metadata the stream stored with the commit (empty if the commit was not written
    /// by this replicator).
    pub metadata: StreamMetadata,
}

impl LakeTable {
    /// The stream's txn version in the loaded snapshot; `None` if it never committed here.
    pub async fn txn_version(&self, app_id: &str) -> LakeResult<Option<i64>> {
        let Some(state) = self.table.state.as_ref() else {
            return Ok(None);
        };
        state
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| LakeError::delta(&self.url, "reading the txn version", e))
    }

    /// The newest commit of the stream, found by scanning the log backwards from the loaded
    /// version and stopping at the first commit whose `txn` action has this appId.
    ///
    /// Returns `None` when the stream never committed here. Scans at most `max_commits`
    /// commits; if the snapshot has a txn version for the stream but its commit is not
    /// among them (or its file was removed by log retention), this fails with
    /// [`LakeError::StreamCommitNotFound`] rather than guessing.
    pub async fn last_stream_commit(
        &self,
        app_id: &str,
        max_commits: u64,
    ) -> LakeResult<Option<StreamCommitRecord>> {
        let Some(txn_version) = self.txn_version(app_id).await? else {
            return Ok(None);
        };
        let Some(newest) = self.version() else {
            return Ok(None);
        };
        let oldest = newest.saturating_sub(max_commits.saturating_sub(1));
        let mut scanned = 0u64;
        let mut upper = newest;
        'scan: loop {
            let lower = upper.saturating_sub(SCAN_CHUNK - 1).max(oldest);
            let versions: Vec<u64> = (lower..=upper).rev().collect();
            let commits =
                futures::future::try_join_all(versions.iter().map(|&v| self.read_commit(v)))
                    .await?;
            for (version, commit) in versions.into_iter().zip(commits) {
                scanned += 1;
                let Some(commit) = commit else {
                    // Removed by log retention: everything older is gone too.
                    break 'scan;
                };
                if let Some(txn) = commit.txns.iter().find(|t| t.app_id == app_id) {
                    let metadata = commit
                        .stream_commit
                        .filter(|s| s.app_id == app_id)
                        .map(|s| s.metadata)
                        .unwrap_or_default();
                    return Ok(Some(StreamCommitRecord {
                        delta_version: version,
                        txn_version: txn.version,
                        timestamp_ms: commit.timestamp_ms,
                        metadata,
                    }));
                }
            }
            if lower == oldest {
                break;
            }
            upper = lower - 1;
        }
        Err(LakeError::StreamCommitNotFound {
            url: self.url.to_string(),
            app_id: app_id.to_string(),
            txn_version,
            scanned,
        })
    }
}
