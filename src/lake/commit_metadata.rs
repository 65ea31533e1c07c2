//! What the replicator stores in each Delta commit, defined once.
//!
//! The commit metadata is the one on-disk contract that existing tables depend on for as
//! long as they exist: a sync resumes from it after a crash, the snapshot reads generations
//! and their completion from it, and compaction reads which stream and generation each file
//! holds. Every commit the replicator writes carries one object under the commitInfo key
//! [`COMMIT_INFO_KEY`] (`cdfS3Replicator`), in one of two shapes:
//!
//! - A stream commit ([`StreamCommitInfo`]; data, quarantine and progress-only appends):
//!   `{"appId", "txnVersion", "metadata", "formatVersion"}`, where `appId` and `txnVersion`
//!   repeat the commit's `txn` action and `metadata` is a [`StreamMetadata`]:
//!   - of a sync data commit: `{"cdfS3Replicator": <StreamCheckpoint>, "generation",
//!     "opensGeneration", "backfillComplete"}`;
//!   - of a quarantine commit: `{"generation"}`.
//! - A compaction ([`CompactionCommitInfo`]): `{"compaction": {"appId", "generation",
//!   "firstVersion", "lastVersion", "sourceFiles"}, "formatVersion"}`.
//!
//! Compatibility, in both directions:
//! - Commits written before the format had a number carry no `formatVersion`; they are
//!   version 1, the format described here. New commits write `"formatVersion": 1` next to
//!   the other keys, which readers of version 1 skip like any key they do not know, so an
//!   older deployment keeps reading tables that a newer one writes to.
//! - A key this code does not know never fails a read: in the envelope and the metadata it
//!   is kept (`other`), inside the checkpoint and the compaction record it is ignored. So a
//!   newer writer's commit still reads here, as far as the keys known here go.
//! - A known metadata key whose value has another type reads as absent, as the readers of
//!   version 1 always did; only a broken envelope (`appId`, `txnVersion`, `metadata` not an
//!   object) fails, because then the commit cannot be attributed to its stream.
//! - A key that changes meaning or disappears needs a new [`FORMAT_VERSION`] and a new
//!   fixture next to `tests/fixtures/delta/commit-metadata-v1/`, which pins version 1 as
//!   it is found in existing tables.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The commitInfo key under which every replicator commit stores its object. The same name
/// is also the key of the stream checkpoint inside [`StreamMetadata`] (see there).
pub(crate) const COMMIT_INFO_KEY: &str = "cdfS3Replicator";

/// The format this code writes. Commits without a `formatVersion` are version 1.
pub const FORMAT_VERSION: u32 = 1;

/// The key of a compaction record inside the [`COMMIT_INFO_KEY`] object.
const COMPACTION_KEY: &str = "compaction";
/// The key that marks the [`COMMIT_INFO_KEY`] object of a stream commit.
const APP_ID_KEY: &str = "appId";

fn format_version_1() -> u32 {
    1
}

/// Whether a stream is still reading the instances that existed when its generation began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Reading the instances that existed when the generation began; the snapshot does not
    /// yet drop instances the stream has not seen.
    #[default]
    Backfill,
    /// The backfill completed; only changes arrive.
    Streaming,
}

/// Everything a stream needs to resume. Stored in the metadata of each of the stream's
/// commits ([`StreamMetadata::checkpoint`]) and, in the same serialization, as the columns
/// of the stream's row in the CDF RAW state table; both copies must stay readable by every
/// version, which is why the type lives with the commit format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct StreamCheckpoint {
    /// The newest sync cursor; `None` starts the generation's backfill from the beginning.
    pub cursor: Option<String>,
    /// Backfill or streaming, within the current generation.
    pub phase: Phase,
    /// Starts at 1 and goes up each time the stream has to start over (expired or invalid
    /// cursor, changed query, lost state); the snapshot drops instances that a completed
    /// backfill of a newer generation no longer contains.
    pub generation: u64,
    /// Delta `txn` version of the stream's last commit; 0 before the first one.
    pub seq: i64,
    /// Hash of the sync query; a different query cannot continue an old cursor.
    pub query_hash: String,
    /// Rows committed over the stream's lifetime.
    pub rows_total: u64,
    /// The last call returned a short page: nothing more was waiting.
    pub caught_up: bool,
    /// Epoch milliseconds of the last call that succeeded.
    pub last_success: Option<i64>,
    /// Epoch milliseconds of the newest `lastUpdatedTime` seen, for the lag metric.
    pub newest_change: Option<i64>,
    /// The message of the last failed call, cleared by the next success; for the status report.
    pub last_error: Option<String>,
    /// The membership scan of the current generation (absent until its first pass).
    #[serde(skip_serializing_if = "MembershipScan::is_unset")]
    pub membership: MembershipScan,
}

/// How far a stream's membership scan got: the periodic comparison of its table with the
/// instances that match its query now, which catches what sync never reports (an instance
/// that leaves the query, or enters it through a `nested` filter, without a change of its
/// own). Saved with every checkpoint, so a pass resumes where an invocation stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct MembershipScan {
    /// Epoch milliseconds at which the last complete pass (or the generation's backfill,
    /// which is a fresh listing too) ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_pass: Option<i64>,
    /// The pass in progress (boxed: most checkpoints have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<Box<MembershipPass>>,
}

impl MembershipScan {
    fn is_unset(&self) -> bool {
        self == &Self::default()
    }
}

/// A membership pass in progress. It lists the query's members (by list cursor), fetching
/// those the table lacks or holds in another version, then checks the table's live
/// instances in key order, writing an exit row for each that no longer matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct MembershipPass {
    /// Epoch milliseconds at which the pass started.
    pub started: i64,
    /// The list cursor of the members listing; `None` with `listed == false`: from the start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_cursor: Option<String>,
    /// The members listing is complete; the pass is checking the table's instances.
    pub listed: bool,
    /// The last table key checked for an exit, `[space, externalId]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_up_to: Option<(String, String)>,
    /// Instances committed because the table lacked them or held another version.
    pub refreshed: u64,
    /// Exit rows committed.
    pub exited: u64,
}

/// The metadata a stream stores with a commit, under `metadata` of its [`StreamCommitInfo`].
///
/// Every field is optional because the commits differ: a sync data commit has all of them,
/// a quarantine commit only [`generation`](Self::generation), and commits written with the
/// lake API by other callers whatever they put into [`other`](Self::other).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamMetadata {
    /// The stream's checkpoint after this commit, from which a sync resumes when the RAW
    /// copy is older or gone. (Its key is [`COMMIT_INFO_KEY`] again, as it always was.)
    #[serde(
        rename = "cdfS3Replicator",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub checkpoint: Option<StreamCheckpoint>,
    /// The generation of the rows in this commit (a copy of the checkpoint's, at the top
    /// so that quarantine commits, which have no checkpoint, say it too).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub generation: Option<u64>,
    /// The first commit of a generation: the snapshot can tell that every commit of the
    /// generation is in the readable log.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub opens_generation: Option<bool>,
    /// The commit holding the last backfill page of its generation: from here on the
    /// snapshot forgets the stream's older generations.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub backfill_complete: Option<bool>,
    /// Keys not known here, kept as they were.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl StreamMetadata {
    /// The metadata of a sync data commit that leaves the stream at `checkpoint`.
    pub fn data_commit(
        checkpoint: &StreamCheckpoint,
        opens_generation: bool,
        backfill_complete: bool,
    ) -> Self {
        Self {
            checkpoint: Some(checkpoint.clone()),
            generation: Some(checkpoint.generation),
            opens_generation: Some(opens_generation),
            backfill_complete: Some(backfill_complete),
            other: Map::new(),
        }
    }

    /// The metadata of a quarantine commit of rows of `generation`.
    pub fn quarantine_commit(generation: u64) -> Self {
        Self {
            generation: Some(generation),
            ..Self::default()
        }
    }

    /// The generation of the commit: the top-level one, or, for a commit that carries only
    /// a checkpoint, the checkpoint's (0 there means it was not recorded).
    pub(crate) fn stream_generation(&self) -> Option<u64> {
        self.generation.or_else(|| {
            self.checkpoint
                .as_ref()
                .map(|checkpoint| checkpoint.generation)
                .filter(|&generation| generation > 0)
        })
    }

    /// Whether the commit says it opens its generation.
    pub(crate) fn opens_generation(&self) -> bool {
        self.opens_generation.unwrap_or(false)
    }

    /// Whether the commit says it completes its generation's backfill.
    pub(crate) fn backfill_complete(&self) -> bool {
        self.backfill_complete.unwrap_or(false)
    }
}

/// The [`COMMIT_INFO_KEY`] object of a stream commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamCommitInfo {
    /// The format the commit was written in; 1 for commits that do not say.
    #[serde(default = "format_version_1")]
    pub format_version: u32,
    /// The stream key (equals the appId of the commit's txn action).
    pub app_id: String,
    /// The txn version of the commit.
    pub txn_version: i64,
    /// What the stream stored with the commit.
    #[serde(default)]
    pub metadata: StreamMetadata,
    /// Keys not known here, kept as they were.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl StreamCommitInfo {
    /// A stream commit in the current format.
    pub(crate) fn new(
        app_id: impl Into<String>,
        txn_version: i64,
        metadata: StreamMetadata,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            app_id: app_id.into(),
            txn_version,
            metadata,
            other: Map::new(),
        }
    }

    /// The stream commit of a commitInfo, `None` when it has none (a compaction, a commit
    /// of another tool). Fails only when the object names a stream (`appId`) but does not
    /// parse as one.
    pub(crate) fn read(
        commit_info: &Map<String, Value>,
    ) -> Result<Option<Self>, serde_json::Error> {
        commit_info
            .get(COMMIT_INFO_KEY)
            .filter(|value| value.get(APP_ID_KEY).is_some())
            .map(Self::deserialize)
            .transpose()
    }

    /// The commitInfo entry that stores this commit.
    pub(crate) fn to_commit_info(&self) -> Result<(String, Value), serde_json::Error> {
        Ok((COMMIT_INFO_KEY.to_owned(), serde_json::to_value(self)?))
    }
}

/// What a compaction commit replaced: the rows of stream `app_id`, generation `generation`,
/// committed in versions `first_version..=last_version`, now in one file in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactionInfo {
    /// The stream key (the `txn` appId of the replaced commits).
    pub app_id: String,
    /// The stream generation of every replaced row.
    pub generation: u64,
    /// The oldest Delta version whose rows the new file holds.
    pub first_version: u64,
    /// The newest Delta version whose rows the new file holds.
    pub last_version: u64,
    /// How many files the commit replaced. Only reported, never needed to place rows, so a
    /// record without it still reads (as 0), as the snapshot always read such records.
    #[serde(default)]
    pub source_files: usize,
}

/// The [`COMMIT_INFO_KEY`] object of a compaction commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactionCommitInfo {
    /// The format the commit was written in; 1 for commits that do not say.
    #[serde(default = "format_version_1")]
    pub format_version: u32,
    /// What the commit replaced.
    pub compaction: CompactionInfo,
    /// Keys not known here, kept as they were.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl CompactionCommitInfo {
    /// A compaction commit in the current format.
    pub(crate) fn new(compaction: CompactionInfo) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            compaction,
            other: Map::new(),
        }
    }

    /// The compaction recorded in a commitInfo; `None` for every other commit, and for a
    /// compaction record that does not parse (its files then count as a foreign commit's,
    /// which keeps them in place rather than misattributing them).
    pub fn read(commit_info: &Map<String, Value>) -> Option<Self> {
        let value = commit_info.get(COMMIT_INFO_KEY)?;
        value.get(COMPACTION_KEY)?;
        Self::deserialize(value).ok()
    }

    /// The commitInfo entry that stores this commit.
    pub fn to_commit_info(&self) -> Result<(String, Value), serde_json::Error> {
        Ok((COMMIT_INFO_KEY.to_owned(), serde_json::to_value(self)?))
    }
}

/// A value of the wrong type reads as absent, as the readers of format 1 treated it.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn checkpoint() -> StreamCheckpoint {
        StreamCheckpoint {
            cursor: Some("c7".into()),
            phase: Phase::Streaming,
            generation: 2,
            seq: 7,
            query_hash: "q".into(),
            rows_total: 40,
            caught_up: true,
            last_success: Some(1_700),
            newest_change: Some(1_600),
            last_error: None,
            membership: MembershipScan::default(),
        }
    }

    fn commit_info(entry: (String, Value)) -> Map<String, Value> {
        Map::from_iter([entry])
    }

    /// The object as format 1 wrote it before `formatVersion` (key order as serde_json
    /// writes a map: sorted).
    const V1_DATA_COMMIT: &str = r#"{"appId":"s/m/1/V/nodes","metadata":{"backfillComplete":false,"cdfS3Replicator":{"caughtUp":true,"cursor":"c7","generation":2,"lastError":null,"lastSuccess":1700,"newestChange":1600,"phase":"streaming","queryHash":"q","rowsTotal":40,"seq":7},"generation":2,"opensGeneration":true},"txnVersion":7}"#;

    #[test]
    fn a_data_commit_writes_the_keys_of_format_1_and_its_version() {
        let info = StreamCommitInfo::new(
            "s/m/1/V/nodes",
            7,
            StreamMetadata::data_commit(&checkpoint(), true, false),
        );
        let (key, value) = info.to_commit_info().unwrap();
        assert_eq!(key, "cdfS3Replicator");
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            V1_DATA_COMMIT.replacen(r#","metadata""#, r#","formatVersion":1,"metadata""#, 1)
        );
        let mut without_version = value;
        without_version
            .as_object_mut()
            .unwrap()
            .remove("formatVersion");
        assert_eq!(
            serde_json::to_string(&without_version).unwrap(),
            V1_DATA_COMMIT
        );
    }

    #[test]
    fn quarantine_and_compaction_commits_write_the_keys_of_format_1() {
        let quarantine = StreamCommitInfo::new("a", 3, StreamMetadata::quarantine_commit(4));
        assert_eq!(
            serde_json::to_string(&quarantine.to_commit_info().unwrap().1).unwrap(),
            r#"{"appId":"a","formatVersion":1,"metadata":{"generation":4},"txnVersion":3}"#
        );
        let compaction = CompactionCommitInfo::new(CompactionInfo {
            app_id: "a".into(),
            generation: 2,
            first_version: 3,
            last_version: 9,
            source_files: 4,
        });
        assert_eq!(
            serde_json::to_string(&compaction.to_commit_info().unwrap().1).unwrap(),
            r#"{"compaction":{"appId":"a","firstVersion":3,"generation":2,"lastVersion":9,"sourceFiles":4},"formatVersion":1}"#
        );
    }

    #[test]
    fn writing_then_reading_round_trips() {
        let stream = StreamCommitInfo::new(
            "s/m/1/V/nodes",
            7,
            StreamMetadata::data_commit(&checkpoint(), false, true),
        );
        let info = commit_info(stream.to_commit_info().unwrap());
        assert_eq!(StreamCommitInfo::read(&info).unwrap(), Some(stream.clone()));
        assert_eq!(CompactionCommitInfo::read(&info), None);
        assert_eq!(stream.metadata.stream_generation(), Some(2));
        assert!(stream.metadata.backfill_complete() && !stream.metadata.opens_generation());

        let compaction = CompactionCommitInfo::new(CompactionInfo {
            app_id: "s".into(),
            generation: 1,
            first_version: 1,
            last_version: 2,
            source_files: 2,
        });
        let info = commit_info(compaction.to_commit_info().unwrap());
        assert_eq!(CompactionCommitInfo::read(&info), Some(compaction));
        assert_eq!(StreamCommitInfo::read(&info).unwrap(), None);
    }

    #[test]
    fn commits_without_a_format_version_are_version_1() {
        let stream: Value = serde_json::from_str(V1_DATA_COMMIT).unwrap();
        let info = commit_info((COMMIT_INFO_KEY.into(), stream));
        let read = StreamCommitInfo::read(&info).unwrap().unwrap();
        assert_eq!(read.format_version, 1);
        assert_eq!(
            read.metadata,
            StreamMetadata::data_commit(&checkpoint(), true, false)
        );
        assert!(read.other.is_empty() && read.metadata.other.is_empty());

        let info = json!({"cdfS3Replicator": {"compaction": {"appId": "s", "generation": 1,
            "firstVersion": 1, "lastVersion": 4, "sourceFiles": 3}}});
        let read = CompactionCommitInfo::read(info.as_object().unwrap()).unwrap();
        assert_eq!(read.format_version, 1);
        assert_eq!(read.compaction.last_version, 4);
    }

    /// What the readers of format 1 parsed, copied from them: new commits must stay
    /// readable by a deployment that still runs that code.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct V1StreamReader {
        app_id: String,
        txn_version: i64,
        #[serde(default)]
        metadata: Map<String, Value>,
    }

    #[test]
    fn the_readers_of_format_1_read_new_commits() {
        let (_, value) = StreamCommitInfo::new(
            "s",
            7,
            StreamMetadata::data_commit(&checkpoint(), true, false),
        )
        .to_commit_info()
        .unwrap();
        assert!(
            value.get("appId").is_some(),
            "format 1 finds streams by appId"
        );
        let old: V1StreamReader = serde_json::from_value(value).unwrap();
        assert_eq!((old.app_id.as_str(), old.txn_version), ("s", 7));
        let old_checkpoint: StreamCheckpoint =
            serde_json::from_value(old.metadata["cdfS3Replicator"].clone()).unwrap();
        assert_eq!(old_checkpoint, checkpoint());
        assert_eq!(old.metadata["generation"], 2);
        assert_eq!(old.metadata["opensGeneration"], true);
        assert_eq!(old.metadata["backfillComplete"], false);

        let (_, value) = CompactionCommitInfo::new(CompactionInfo {
            app_id: "s".into(),
            generation: 1,
            first_version: 1,
            last_version: 4,
            source_files: 3,
        })
        .to_commit_info()
        .unwrap();
        assert!(
            value.get("appId").is_none(),
            "not taken for a stream commit"
        );
        let old: CompactionInfo = serde_json::from_value(value["compaction"].clone()).unwrap();
        assert_eq!(old.last_version, 4);
    }

    #[test]
    fn unknown_keys_of_a_newer_writer_are_kept_or_ignored() {
        let info = json!({"cdfS3Replicator": {"formatVersion": 9, "appId": "s", "txnVersion": 2,
            "lineage": {"run": "r1"},
            "metadata": {"generation": 3, "backfillComplete": true, "priority": "high",
                "cdfS3Replicator": {"cursor": "c", "generation": 3, "shard": 4}}}});
        let read = StreamCommitInfo::read(info.as_object().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(read.format_version, 9);
        assert_eq!(read.other["lineage"], json!({"run": "r1"}));
        assert_eq!(read.metadata.other["priority"], "high");
        assert_eq!(read.metadata.generation, Some(3));
        assert!(read.metadata.backfill_complete());
        assert_eq!(read.metadata.opens_generation, None);
        let checkpoint = read.metadata.checkpoint.unwrap();
        assert_eq!(
            (checkpoint.cursor.as_deref(), checkpoint.generation),
            (Some("c"), 3)
        );

        let info = json!({"cdfS3Replicator": {"formatVersion": 9, "compaction": {"appId": "s",
            "generation": 1, "firstVersion": 1, "lastVersion": 4, "sourceFiles": 3,
            "bytes": 10}}});
        let read = CompactionCommitInfo::read(info.as_object().unwrap()).unwrap();
        assert_eq!((read.format_version, read.compaction.source_files), (9, 3));
    }

    #[test]
    fn metadata_values_of_another_type_read_as_absent() {
        let info = json!({"cdfS3Replicator": {"appId": "s", "txnVersion": 2, "metadata":
            {"generation": "three", "opensGeneration": 1, "cdfS3Replicator": "not a checkpoint"}}});
        let read = StreamCommitInfo::read(info.as_object().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(read.metadata, StreamMetadata::default());
        assert_eq!(read.metadata.stream_generation(), None);
    }

    #[test]
    fn a_broken_stream_envelope_fails_and_other_commits_are_not_ours() {
        let broken = json!({"cdfS3Replicator": {"appId": "s", "txnVersion": "two"}});
        assert!(StreamCommitInfo::read(broken.as_object().unwrap()).is_err());
        let foreign = json!({"operation": "WRITE", "engineInfo": "spark"});
        assert_eq!(
            StreamCommitInfo::read(foreign.as_object().unwrap()).unwrap(),
            None
        );
        assert_eq!(
            CompactionCommitInfo::read(foreign.as_object().unwrap()),
            None
        );
        let incomplete = json!({"cdfS3Replicator": {"compaction": {"appId": "s"}}});
        assert_eq!(
            CompactionCommitInfo::read(incomplete.as_object().unwrap()),
            None
        );
    }

    #[test]
    fn only_the_checkpoint_gives_the_generation_of_commits_without_one() {
        let metadata = StreamMetadata {
            checkpoint: Some(checkpoint()),
            ..StreamMetadata::default()
        };
        assert_eq!(metadata.stream_generation(), Some(2));
        let unrecorded = StreamMetadata {
            checkpoint: Some(StreamCheckpoint::default()),
            ..StreamMetadata::default()
        };
        assert_eq!(unrecorded.stream_generation(), None);
    }
}
