//! Which stream and generation wrote each raw data file, and where its rows sit in arrival
//! order, read from the Delta log.
//!
//! Arrival order is (commit version, position of the file in the commit, row in the file):
//! the sync writes each page's rows in the order CDF returned them (tombstones first), so
//! the last arrival of a key is its current state.
//!
//! Generations: each stream commit records the stream (`appId`) and its `generation`; the
//! commit holding the last backfill page of a generation says `backfillComplete`. Once a
//! stream has completed generation `g`, its rows from generations before `g` no longer
//! count: an instance that the completed backfill did not return was deleted meanwhile (its
//! tombstone may have been purged before the stream could see it).
//!
//! Compaction rewrites files of one stream without changing data. Its commit carries
//! `cdfS3Replicator.compaction = {appId, generation, firstVersion, lastVersion}`; the new
//! file's rows arrive at `lastVersion`, the newest commit they came from.
//!
//! All of this is read through the commit format of [`crate::lake::commit_metadata`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::lake::{CompactionInfo, VersionChanges};

/// Where a file's rows sit in arrival order and who wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOrigin {
    /// The commit version the rows arrived with.
    pub version: u64,
    /// Position of the file among the commit's added files.
    pub(crate) position: u32,
    /// The stream that wrote the rows; `None` for commits written by other tools.
    pub(crate) stream: Option<String>,
    /// The stream's generation; `None` when the commit does not say.
    pub generation: Option<u64>,
}

impl FileOrigin {
    #[cfg(test)]
    /// The sort key of arrival order.
    pub(crate) fn order(&self) -> (u64, u32) {
        (self.version, self.position)
    }
}

/// What one stream's generations look like, as far as the published file is concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationState {
    /// The newest generation whose backfill completed; 0 when none has yet.
    pub completed_generation: u64,
    /// The oldest generation whose rows count (are at least `completed_generation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lowest_generation: Option<u64>,
}

/// A generation completion that invalidates rows already published: the stream has
/// counted rows of an older generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supersession {
    /// The stream key.
    pub stream: String,
    /// The generation whose backfill completed.
    pub generation: u64,
    /// The commit version that completed it.
    pub version: u64,
}

impl GenerationState {
    /// Whether rows of `generation` count.
    pub(crate) fn counts(&self, generation: u64) -> bool {
        generation >= self.completed_generation
    }

    /// Takes one commit of the stream into account. Returns `true` when the commit
    /// completes a generation newer than rows counted so far, which then stop counting.
    pub(crate) fn observe(&mut self, generation: u64, backfill_complete: bool) -> bool {
        if !self.counts(generation) {
            return false;
        }
        self.lowest_generation = Some(
            self.lowest_generation
                .map_or(generation, |l| l.min(generation)),
        );
        if backfill_complete && generation > self.completed_generation {
            self.completed_generation = generation;
            let superseded = self.lowest_generation.is_some_and(|l| l < generation);
            self.lowest_generation = Some(generation);
            return superseded;
        }
        false
    }
}

/// Per stream key.
pub type StreamStates = BTreeMap<String, GenerationState>;

/// Who wrote a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOrigin {
    /// An append of a sync stream.
    Stream {
        /// The stream key (the commit's `txn` appId).
        app_id: String,
        /// The stream's generation; `None` when the commit does not say.
        generation: Option<u64>,
        /// The commit is the first of a new generation.
        opens_generation: bool,
        /// The commit completes the generation's backfill.
        backfill_complete: bool,
    },
    /// A compaction of one stream's files; no data change.
    Compaction {
        /// The stream whose files were compacted.
        app_id: String,
        /// The generation of the compacted rows.
        generation: Option<u64>,
        /// The newest commit whose rows the compacted file holds.
        last_version: u64,
    },
    /// Anything else (table creation, maintenance without data, other tools).
    Other,
}

impl CommitOrigin {
    /// Reads the origin from the replicator metadata the commit carries.
    pub fn of(changes: &VersionChanges) -> Self {
        if let Some(compaction) = CompactionInfo::of_commit(changes) {
            return CommitOrigin::Compaction {
                app_id: compaction.app_id,
                generation: Some(compaction.generation),
                last_version: compaction.last_version,
            };
        }
        match &changes.stream_commit {
            Some(stream) => CommitOrigin::Stream {
                app_id: stream.app_id.clone(),
                generation: stream.metadata.stream_generation(),
                opens_generation: stream.metadata.opens_generation(),
                backfill_complete: stream.metadata.backfill_complete(),
            },
            None => CommitOrigin::Other,
        }
    }
}

/// The origin of every file added in a range of commits, and the streams' generation state
/// after them.
#[derive(Debug, Clone, Default)]
pub struct LogIndex {
    /// Per added file path.
    pub origins: HashMap<String, FileOrigin>,
    /// Each stream's generation state after the last commit read.
    pub streams: StreamStates,
    #[expect(dead_code, reason = "kept in the Debug output of the value")]
    /// The oldest commit that could be read (older ones were removed by log retention).
    pub(crate) first_version: u64,
    /// The first commit that completed a generation while older rows of its stream were
    /// counted: a published file built before it holds instances that may be gone.
    pub superseded: Option<Supersession>,
    /// Per stream and generation: whether the first readable commit of that generation
    /// is the one that opened it (then every commit of the generation is readable).
    first_commit_opens: HashMap<(String, u64), bool>,
}

impl LogIndex {
    /// Indexes `commits` (in version order), starting from `streams`.
    pub fn build(commits: &[VersionChanges], streams: StreamStates) -> Self {
        let mut index = LogIndex {
            streams,
            first_version: commits.first().map_or(0, |c| c.version),
            ..LogIndex::default()
        };
        for commit in commits {
            index.add_commit(commit);
        }
        index
    }

    fn add_commit(&mut self, commit: &VersionChanges) {
        let (stream, generation, version) = match CommitOrigin::of(commit) {
            CommitOrigin::Stream {
                app_id,
                generation,
                opens_generation,
                backfill_complete,
            } => {
                if let Some(generation) = generation {
                    self.first_commit_opens
                        .entry((app_id.clone(), generation))
                        .or_insert(opens_generation);
                    let superseding = self
                        .streams
                        .entry(app_id.clone())
                        .or_default()
                        .observe(generation, backfill_complete);
                    if superseding && self.superseded.is_none() {
                        self.superseded = Some(Supersession {
                            stream: app_id.clone(),
                            generation,
                            version: commit.version,
                        });
                    }
                }
                (Some(app_id), generation, commit.version)
            }
            CommitOrigin::Compaction {
                app_id,
                generation,
                last_version,
            } => (Some(app_id), generation, last_version),
            CommitOrigin::Other => (None, None, commit.version),
        };
        for (position, add) in commit.adds.iter().enumerate() {
            self.origins.insert(
                add.path.clone(),
                FileOrigin {
                    version,
                    position: u32::try_from(position).unwrap_or(u32::MAX),
                    stream: stream.clone(),
                    generation,
                },
            );
        }
    }

    /// Whether the rows of a file with this origin count.
    pub fn qualifies(&self, origin: &FileOrigin) -> bool {
        match (&origin.stream, origin.generation) {
            (Some(stream), Some(generation)) => self
                .streams
                .get(stream)
                .is_none_or(|state| state.counts(generation)),
            _ => true,
        }
    }

    /// Whether an active file whose commit is older than the readable log still counts.
    ///
    /// Such a file's stream and generation are unknown. It is certainly superseded when
    /// every stream of the table has completed a generation that opened within the
    /// readable log: then all rows of the counting generations are in readable commits,
    /// and the file belongs to an older generation. Otherwise it is kept.
    pub fn keeps_unattributed(&self, table_streams: &[String]) -> bool {
        if table_streams.is_empty() {
            return true;
        }
        !table_streams.iter().all(|stream| {
            self.streams.get(stream).is_some_and(|state| {
                state.completed_generation > 0
                    && self
                        .first_commit_opens
                        .get(&(stream.clone(), state.completed_generation))
                        .copied()
                        .unwrap_or(false)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::{DataFile, StreamCommitInfo};
    use serde_json::{Map, json};

    fn commit(
        version: u64,
        app: &str,
        generation: u64,
        complete: bool,
        files: &[&str],
    ) -> VersionChanges {
        let stream = json!({"appId": app, "txnVersion": version, "metadata":
            {"generation": generation, "backfillComplete": complete, "opensGeneration": false}});
        VersionChanges {
            version,
            timestamp_ms: None,
            operation: None,
            adds: files
                .iter()
                .map(|f| DataFile {
                    path: (*f).into(),
                    size: None,
                    data_change: true,
                    num_records: None,
                })
                .collect(),
            removes: Vec::new(),
            txns: Vec::new(),
            stream_commit: Some(StreamCommitInfo::deserialize(stream).unwrap()),
            metadata_changed: false,
            commit_info: Map::new(),
        }
    }

    #[test]
    fn completing_a_newer_generation_drops_older_rows() {
        let commits = [
            commit(1, "s", 1, false, &["a"]),
            commit(2, "s", 1, true, &["b"]),
            commit(3, "s", 1, false, &["c"]),
            commit(4, "s", 2, false, &["d"]),
            commit(5, "s", 2, true, &["e"]),
        ];
        let index = LogIndex::build(&commits, StreamStates::new());
        let kept: Vec<&str> = ["a", "b", "c", "d", "e"]
            .into_iter()
            .filter(|f| index.qualifies(&index.origins[*f]))
            .collect();
        assert_eq!(kept, ["d", "e"]);
        assert_eq!(
            index.streams["s"],
            GenerationState {
                completed_generation: 2,
                lowest_generation: Some(2)
            }
        );
    }

    #[test]
    fn a_generation_in_backfill_keeps_the_older_rows() {
        let commits = [
            commit(1, "s", 1, true, &["a"]),
            commit(2, "s", 2, false, &["b"]),
        ];
        let index = LogIndex::build(&commits, StreamStates::new());
        assert!(index.qualifies(&index.origins["a"]));
        assert!(index.qualifies(&index.origins["b"]));
        assert_eq!(index.streams["s"].lowest_generation, Some(1));
    }

    #[test]
    fn the_first_completion_supersedes_nothing() {
        let mut state = GenerationState::default();
        assert!(!state.observe(1, false));
        assert!(!state.observe(1, true));
        assert!(!state.observe(2, false));
        assert!(state.observe(2, true));
        assert!(!state.counts(1));
    }

    #[test]
    fn compaction_files_arrive_at_their_last_version() {
        let mut compaction = commit(9, "x", 0, false, &["big"]);
        compaction.stream_commit = None;
        compaction.commit_info = json!({"cdfS3Replicator": {"compaction":
            {"appId": "s", "generation": 1, "firstVersion": 1, "lastVersion": 4}}})
        .as_object()
        .cloned()
        .unwrap();
        let index = LogIndex::build(
            &[commit(5, "s", 1, false, &["late"]), compaction],
            StreamStates::new(),
        );
        let big = &index.origins["big"];
        assert_eq!(
            (big.version, big.stream.as_deref(), big.generation),
            (4, Some("s"), Some(1))
        );
        assert!(big.order() < index.origins["late"].order());
    }
}
