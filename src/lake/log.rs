//! Reading the Delta log: the active files of the loaded snapshot, and what each commit
//! changed. The snapshot stage uses this to merge only the commits after the version it last
//! published, instead of rereading the whole table.

use deltalake::logstore::LogStore as _;
use futures::{StreamExt, TryStreamExt, stream};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::commit_metadata::{
    COMMIT_INFO_KEY, CompactionCommitInfo, CompactionInfo, StreamCommitInfo,
};
use super::error::{LakeError, LakeResult};
use super::table::LakeTable;

/// How many commit files are fetched at once when reading a range of versions.
const CONCURRENT_COMMIT_READS: usize = 16;

/// A data file that is part of the loaded snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveFile {
    /// Path relative to the table root (decoded; use with [`LakeTable::object_store`]).
    pub path: String,
    /// File size in bytes.
    pub(crate) size: i64,
    /// Row count from the file statistics, when recorded.
    pub num_records: Option<u64>,
    /// Modification time, epoch milliseconds.
    pub(crate) modification_time_ms: i64,
}

/// A data file added or removed by one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Path relative to the table root (decoded; use with [`LakeTable::object_store`]).
    pub path: String,
    /// File size in bytes, when recorded.
    pub(crate) size: Option<i64>,
    /// `false` for rewrites that do not change the table's data (compaction).
    pub data_change: bool,
    /// Row count from the file statistics, when recorded.
    pub num_records: Option<u64>,
}

/// A `txn` action: an application's exactly-once marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTransaction {
    /// The application (stream) key.
    pub app_id: String,
    /// The application's sequence number.
    pub version: i64,
    /// When the action was written, epoch milliseconds, if recorded.
    pub(crate) last_updated: Option<i64>,
}

/// Everything one commit did.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionChanges {
    /// The Delta version.
    pub version: u64,
    /// Commit timestamp (commitInfo), epoch milliseconds.
    pub(crate) timestamp_ms: Option<i64>,
    /// The Delta operation name, for example `STREAMING UPDATE`, `OPTIMIZE`, `VACUUM START`.
    pub operation: Option<String>,
    /// Files added, in commit order.
    pub adds: Vec<DataFile>,
    /// Files removed.
    pub removes: Vec<DataFile>,
    /// `txn` actions.
    pub txns: Vec<AppTransaction>,
    /// The stream metadata, for commits written by [`LakeTable::append`].
    pub stream_commit: Option<StreamCommitInfo>,
    /// Whether the commit changed the table metadata (schema evolution, creation).
    pub metadata_changed: bool,
    /// The full commitInfo action.
    pub commit_info: Map<String, Value>,
}

#[derive(Deserialize)]
struct RawAction {
    add: Option<RawFile>,
    remove: Option<RawFile>,
    #[serde(rename = "commitInfo")]
    commit_info: Option<Map<String, Value>>,
    txn: Option<RawTxn>,
    #[serde(rename = "metaData")]
    metadata: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFile {
    path: String,
    size: Option<i64>,
    data_change: Option<bool>,
    stats: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTxn {
    app_id: String,
    version: i64,
    last_updated: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStats {
    num_records: Option<u64>,
}

/// Parses one commit file (newline-delimited JSON actions).
pub(crate) fn parse_commit(url: &str, version: u64, bytes: &[u8]) -> LakeResult<VersionChanges> {
    let malformed = |reason: String| LakeError::MalformedLog {
        url: url.to_string(),
        version,
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| malformed(format!("not UTF-8: {e}")))?;
    let mut changes = VersionChanges {
        version,
        timestamp_ms: None,
        operation: None,
        adds: Vec::new(),
        removes: Vec::new(),
        txns: Vec::new(),
        stream_commit: None,
        metadata_changed: false,
        commit_info: Map::new(),
    };
    for (line_no, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let action: RawAction = serde_json::from_str(line)
            .map_err(|e| malformed(format!("line {}: {e}", line_no + 1)))?;
        if let Some(add) = action.add {
            changes.adds.push(data_file(add, true).map_err(&malformed)?);
        }
        if let Some(remove) = action.remove {
            changes
                .removes
                .push(data_file(remove, true).map_err(&malformed)?);
        }
        if let Some(txn) = action.txn {
            changes.txns.push(AppTransaction {
                app_id: txn.app_id,
                version: txn.version,
                last_updated: txn.last_updated,
            });
        }
        if action.metadata.is_some() {
            changes.metadata_changed = true;
        }
        if let Some(info) = action.commit_info {
            changes.timestamp_ms = info.get("timestamp").and_then(Value::as_i64);
            changes.operation = info
                .get("operation")
                .and_then(Value::as_str)
                .map(str::to_string);
            changes.stream_commit = StreamCommitInfo::read(&info)
                .map_err(|e| malformed(format!("commitInfo.{COMMIT_INFO_KEY}: {e}")))?;
            changes.commit_info = info;
        }
    }
    Ok(changes)
}

fn data_file(raw: RawFile, default_data_change: bool) -> Result<DataFile, String> {
    let path = percent_decode_str(&raw.path)
        .decode_utf8()
        .map_err(|e| {
            format!(
                "file path {:?} is not valid UTF-8 once decoded: {e}",
                raw.path
            )
        })?
        .into_owned();
    let num_records = raw
        .stats
        .as_deref()
        .and_then(|stats| serde_json::from_str::<RawStats>(stats).ok())
        .and_then(|stats| stats.num_records);
    Ok(DataFile {
        path,
        size: raw.size,
        data_change: raw.data_change.unwrap_or(default_data_change),
        num_records,
    })
}

impl LakeTable {
    /// The data files of the loaded snapshot.
    pub fn active_files(&self) -> LakeResult<Vec<ActiveFile>> {
        let Some(state) = self.table.state.as_ref() else {
            return Ok(Vec::new());
        };
        Ok(state
            .log_data()
            .iter()
            .map(|file| ActiveFile {
                path: file.path().into_owned(),
                size: file.size(),
                num_records: file.num_records().map(|n| n as u64),
                modification_time_ms: file.modification_time(),
            })
            .collect())
    }

    /// What commit `version` did. Fails with [`LakeError::LogUnavailable`] when its commit
    /// file is gone (log retention) or does not exist.
    pub async fn version_changes(&self, version: u64) -> LakeResult<VersionChanges> {
        self.read_commit(version)
            .await?
            .ok_or_else(|| LakeError::LogUnavailable {
                url: self.url.to_string(),
                version,
            })
    }

    /// What each commit from `first` to `last` (inclusive) did, in version order.
    pub async fn changes_between(&self, first: u64, last: u64) -> LakeResult<Vec<VersionChanges>> {
        if first > last {
            return Ok(Vec::new());
        }
        stream::iter(first..=last)
            .map(|version| self.version_changes(version))
            .buffered(CONCURRENT_COMMIT_READS)
            .try_collect()
            .await
    }

    /// What each commit after `after` (exclusive; `None` = from the start) up to the loaded
    /// version did. Call [`LakeTable::refresh`] first to include the newest commits.
    pub async fn changes_since(&self, after: Option<u64>) -> LakeResult<Vec<VersionChanges>> {
        let Some(loaded) = self.version() else {
            return Ok(Vec::new());
        };
        let first = after.map_or(0, |v| v + 1);
        self.changes_between(first, loaded).await
    }

    /// Reads and parses one commit file; `None` when it does not exist.
    pub(crate) async fn read_commit(&self, version: u64) -> LakeResult<Option<VersionChanges>> {
        let bytes = self
            .table
            .log_store()
            .read_commit_entry(version)
            .await
            .map_err(|e| LakeError::delta(&self.url, "reading a commit file", e))?;
        bytes
            .map(|bytes| parse_commit(self.url.as_str(), version, &bytes))
            .transpose()
    }
}

impl CompactionInfo {
    /// The compaction recorded by a commit, `None` for every other commit (see
    /// [`CompactionCommitInfo::read`]). Here rather than with the format, which knows nothing
    /// of how the log is read.
    pub fn of_commit(changes: &VersionChanges) -> Option<Self> {
        CompactionCommitInfo::read(&changes.commit_info).map(|info| info.compaction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_adds_removes_txn_and_stream_metadata() {
        let log = concat!(
            r#"{"commitInfo":{"timestamp":17,"operation":"STREAMING UPDATE","cdfS3Replicator":{"appId":"s/m/1/V/nodes","txnVersion":4,"metadata":{"cursor":"c4"}}}}"#,
            "\n",
            r#"{"add":{"path":"part%20one.parquet","size":10,"dataChange":true,"stats":"{\"numRecords\":3}","partitionValues":{},"modificationTime":1}}"#,
            "\n",
            r#"{"remove":{"path":"old.parquet","dataChange":false,"deletionTimestamp":5}}"#,
            "\n",
            r#"{"txn":{"appId":"s/m/1/V/nodes","version":4,"lastUpdated":16}}"#,
            "\n",
            r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}"#,
        );
        let changes = parse_commit("t", 3, log.as_bytes()).unwrap();
        assert_eq!(changes.version, 3);
        assert_eq!(changes.timestamp_ms, Some(17));
        assert_eq!(changes.operation.as_deref(), Some("STREAMING UPDATE"));
        assert_eq!(
            changes.adds,
            [DataFile {
                path: "part one.parquet".into(),
                size: Some(10),
                data_change: true,
                num_records: Some(3),
            }]
        );
        assert!(!changes.removes[0].data_change);
        assert_eq!(changes.txns[0].version, 4);
        let stream = changes.stream_commit.unwrap();
        assert_eq!(stream.app_id, "s/m/1/V/nodes");
        assert_eq!(stream.metadata.other["cursor"], "c4");
        assert_eq!(stream.format_version, 1);
        assert!(!changes.metadata_changed);
    }

    #[test]
    fn malformed_lines_name_the_version() {
        let err = parse_commit("t", 9, b"{not json").unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
    }
}
