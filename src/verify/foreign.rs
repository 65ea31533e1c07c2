//! Commits in a raw table that the replicator did not write.
//!
//! Every commit that changes a raw table's data is a sync stream's append (its `txn` and
//! stream metadata), a compaction (its `compaction` record, no data change) or a
//! maintenance step without data change (checkpoints, vacuum). A commit that adds or
//! removes data files with `dataChange` and carries none of the replicator's records was
//! written by someone else: a raw table edited behind the replicator's back, whose rows the
//! next snapshot publishes as if CDF had sent them.

use crate::lake::VersionChanges;
use crate::snapshot::arrival::CommitOrigin;

/// Whether `commit` changed data without being a replicator commit.
pub fn is_foreign(commit: &VersionChanges) -> bool {
    let changes_data = commit
        .adds
        .iter()
        .chain(&commit.removes)
        .any(|file| file.data_change);
    changes_data && matches!(CommitOrigin::of(commit), CommitOrigin::Other)
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::lake::DataFile;

    fn commit(commit_info: serde_json::Value, data_change: bool) -> VersionChanges {
        VersionChanges {
            version: 4,
            timestamp_ms: None,
            operation: Some("WRITE".into()),
            adds: vec![DataFile {
                path: "part-1.parquet".into(),
                size: None,
                data_change,
                num_records: Some(1),
            }],
            removes: Vec::new(),
            txns: Vec::new(),
            stream_commit: crate::lake::StreamCommitInfo::read(
                commit_info.as_object().unwrap_or(&Map::new()),
            )
            .ok()
            .flatten(),
            metadata_changed: false,
            commit_info: commit_info.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn data_written_without_the_replicator_s_records_is_foreign() {
        assert!(is_foreign(&commit(json!({"operation": "WRITE"}), true)));
        // The same file without a data change (an optimize by another tool) is not.
        assert!(!is_foreign(&commit(
            json!({"operation": "OPTIMIZE"}),
            false
        )));
        let stream =
            json!({"cdfS3Replicator": {"appId": "s/m/1/V/nodes", "txnVersion": 3, "metadata": {}}});
        assert!(!is_foreign(&commit(stream, true)));
        let compaction = json!({"cdfS3Replicator": {"compaction": {"appId": "a", "generation": 1, "firstVersion": 1, "lastVersion": 3}}});
        assert!(!is_foreign(&commit(compaction, true)));
    }
}
