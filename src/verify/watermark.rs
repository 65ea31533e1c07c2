//! The watermark of a published file: the CDF time up to which the file is known complete.
//!
//! # The rule
//!
//! A stream's sync call that returns a short page (`caughtUp` in its checkpoint) at time
//! `L` (`lastSuccess`) has received every change of its query that CDF had made visible by
//! `L`. Its rows are in the raw table once the commit carrying that checkpoint is, so a
//! file built from table version `V` holds every change of the stream up to
//!
//! - the `lastSuccess` of the stream's newest commit at or before `V` whose checkpoint says
//!   `caughtUp` (later commits of the stream only add newer changes), or, when later:
//! - the `lastSuccess` of the stream's state row in RAW, if that row is caught up, has no
//!   error, and names the stream's newest commit at or before `V` as its last one while
//!   the table has no newer commit of the stream: then the stream kept polling, caught up,
//!   without anything to commit since the file's version.
//!
//! The file's watermark is the minimum over the streams writing its table; it is unknown
//! while any of them has neither (a backfill that never caught up). A CDF change newer
//! than the watermark may be missing from the file: that is lag, not divergence.
//!
//! No allowance is subtracted: `lastSuccess` is taken on the replicator's clock and
//! `lastUpdatedTime` on CDF's, so the rule assumes both clocks are set (NTP); a clock
//! ahead of CDF's by `d` turns changes of the last `d` before a sync call into false
//! divergences, which a rerun after the next sync clears.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::lake::{StreamCheckpoint, VersionChanges};

/// One stream's state row in RAW, as far as the watermark needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawCheckpoint {
    /// The stream's checkpoint as the row stores it.
    pub checkpoint: StreamCheckpoint,
}

/// The watermark of one file and where it came from.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Watermark {
    /// Epoch milliseconds; `None` while some stream of the table never caught up.
    pub at: Option<i64>,
    /// Each stream's own watermark.
    pub streams: BTreeMap<String, Option<i64>>,
}

/// The watermark of a file built from table version `file_version`, from the retained
/// commits of its raw table (any order), the streams that write the table and their state
/// rows (see the module documentation).
pub fn of_file(
    commits: &[VersionChanges],
    streams: &[String],
    file_version: u64,
    raw: &BTreeMap<String, RawCheckpoint>,
) -> Watermark {
    let mut per_stream = BTreeMap::new();
    for stream in streams {
        per_stream.insert(
            stream.clone(),
            stream_watermark(commits, stream, file_version, raw.get(stream)),
        );
    }
    let at = if per_stream.is_empty() || per_stream.values().any(Option::is_none) {
        None
    } else {
        per_stream.values().flatten().min().copied()
    };
    Watermark {
        at,
        streams: per_stream,
    }
}

fn stream_watermark(
    commits: &[VersionChanges],
    stream: &str,
    file_version: u64,
    raw: Option<&RawCheckpoint>,
) -> Option<i64> {
    let mut of_stream: Vec<(&VersionChanges, Option<&StreamCheckpoint>)> = commits
        .iter()
        .filter_map(|commit| {
            let info = commit.stream_commit.as_ref()?;
            (info.app_id == stream).then_some((commit, info.metadata.checkpoint.as_ref()))
        })
        .collect();
    of_stream.sort_by_key(|(commit, _)| commit.version);
    let at_or_before: Vec<&(&VersionChanges, Option<&StreamCheckpoint>)> = of_stream
        .iter()
        .filter(|(commit, _)| commit.version <= file_version)
        .collect();
    let from_log = at_or_before
        .iter()
        .rev()
        .filter_map(|(_, checkpoint)| *checkpoint)
        .find(|checkpoint| checkpoint.caught_up)
        .and_then(|checkpoint| checkpoint.last_success);
    let newest_before = at_or_before.last().map(|(commit, _)| *commit);
    let nothing_newer = of_stream.iter().all(|(c, _)| c.version <= file_version);
    let from_raw = match (raw, newest_before) {
        (Some(raw), Some(newest)) if nothing_newer => {
            let names_it = newest
                .txns
                .iter()
                .any(|txn| txn.app_id == stream && txn.version == raw.checkpoint.seq);
            let clean = raw.checkpoint.caught_up && raw.checkpoint.last_error.is_none();
            (names_it && clean)
                .then_some(raw.checkpoint.last_success)
                .flatten()
        }
        _ => None,
    };
    from_log.max(from_raw)
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::lake::{StreamCommitInfo, StreamMetadata};

    fn commit(version: u64, stream: &str, seq: i64, caught_up: bool, at: i64) -> VersionChanges {
        let checkpoint = StreamCheckpoint {
            seq,
            caught_up,
            last_success: Some(at),
            generation: 1,
            ..StreamCheckpoint::default()
        };
        VersionChanges {
            version,
            timestamp_ms: Some(at),
            operation: Some("WRITE".into()),
            adds: Vec::new(),
            removes: Vec::new(),
            txns: vec![crate::lake::AppTransaction {
                app_id: stream.into(),
                version: seq,
                last_updated: None,
            }],
            stream_commit: Some(StreamCommitInfo::new(
                stream,
                seq,
                StreamMetadata::data_commit(&checkpoint, false, false),
            )),
            metadata_changed: false,
            commit_info: Map::new(),
        }
    }

    fn raw(seq: i64, caught_up: bool, at: i64) -> RawCheckpoint {
        RawCheckpoint {
            checkpoint: StreamCheckpoint {
                seq,
                caught_up,
                last_success: Some(at),
                ..StreamCheckpoint::default()
            },
        }
    }

    #[test]
    fn the_newest_caught_up_commit_at_or_before_the_file_counts() {
        let log = [
            commit(1, "a", 1, true, 100),
            commit(2, "a", 2, false, 200),
            commit(3, "a", 3, true, 300),
        ];
        let streams = ["a".to_owned()];
        let none = BTreeMap::new();
        assert_eq!(of_file(&log, &streams, 2, &none).at, Some(100));
        assert_eq!(of_file(&log, &streams, 3, &none).at, Some(300));
        // Before any caught-up commit: unknown.
        assert_eq!(of_file(&log[1..], &streams, 2, &none).at, None);
    }

    #[test]
    fn the_state_row_extends_it_only_when_nothing_was_committed_since() {
        let log = [commit(1, "a", 1, true, 100), commit(2, "a", 2, false, 200)];
        let streams = ["a".to_owned()];
        let caught_up = BTreeMap::from([("a".to_owned(), raw(2, true, 900))]);
        assert_eq!(of_file(&log, &streams, 2, &caught_up).at, Some(900));
        // The file predates the stream's newest commit: the row says nothing about it.
        assert_eq!(of_file(&log, &streams, 1, &caught_up).at, Some(100));
        // A row that is behind, failed, or names another commit adds nothing.
        let behind = BTreeMap::from([("a".to_owned(), raw(2, false, 900))]);
        assert_eq!(of_file(&log, &streams, 2, &behind).at, Some(100));
        let other = BTreeMap::from([("a".to_owned(), raw(7, true, 900))]);
        assert_eq!(of_file(&log, &streams, 2, &other).at, Some(100));
        let mut failed = raw(2, true, 900);
        failed.checkpoint.last_error = Some("boom".into());
        let failed = BTreeMap::from([("a".to_owned(), failed)]);
        assert_eq!(of_file(&log, &streams, 2, &failed).at, Some(100));
    }

    #[test]
    fn the_file_watermark_is_the_oldest_of_its_streams() {
        let log = [commit(1, "a", 1, true, 500), commit(2, "b", 1, true, 300)];
        let both = ["a".to_owned(), "b".to_owned()];
        let mark = of_file(&log, &both, 2, &BTreeMap::new());
        assert_eq!(mark.at, Some(300));
        assert_eq!(mark.streams["a"], Some(500));
        // A stream that never caught up leaves the file without a watermark.
        let three = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(of_file(&log, &three, 2, &BTreeMap::new()).at, None);
    }
}
