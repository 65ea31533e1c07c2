//! Commit metadata format 1, as existing tables hold it
//! (`tests/fixtures/delta/commit-metadata-v1`, written before the format had a number): read
//! through the commit format, and written byte for byte (plus `formatVersion`) by new commits.

use std::path::Path;

use cdf_s3_replicator::lake::{
    CompactionCommitInfo, CompactionInfo, LakeTable, Phase, StreamCheckpoint, StreamCommit,
    StreamCommitInfo, StreamMetadata,
};
use cdf_s3_replicator::snapshot::arrival::{
    CommitOrigin, GenerationState, LogIndex, StreamStates, Supersession,
};
use serde_json::Map;
use url::Url;

use super::{batch, committed, local_lake, open, options};

const FIXTURE_APP: &str = "plant_schema/PlantModel/1/Pump/nodes";

/// A copy of one fixture table's log, so that nothing a test does can change the fixture.
fn fixture_copy(kind: &str) -> (tempfile::TempDir, Url) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/delta/commit-metadata-v1")
        .join(kind)
        .join("_delta_log");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(kind).join("_delta_log");
    std::fs::create_dir_all(&log).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), log.join(entry.file_name())).unwrap();
    }
    let url = Url::from_directory_path(dir.path().join(kind)).unwrap();
    (dir, url)
}

async fn open_fixture(url: &Url) -> LakeTable {
    LakeTable::open_with_storage_options(url.clone(), Default::default(), options())
        .await
        .unwrap()
}

/// The checkpoint the fixture's sync stored with txn version `seq`.
fn fixture_checkpoint(seq: i64) -> StreamCheckpoint {
    let (cursor, phase, generation, rows_total, last_success) = match seq {
        1 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6ImIiLCJwb3MiOjAsInMwIjoyNCwiaWF0IjoxNzk2MTgzNjU4NDExLCJuIjoxLCJsayI6WyJwbGFudF9kYXRhIiwicHVtcC0wMDAxIl0sInNpZyI6ImYyOTk1YjA2NDQzY2JkMTkifQ",
            Phase::Backfill,
            1,
            2,
            1796183658412,
        ),
        2 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6ImIiLCJwb3MiOjAsInMwIjoyNCwiaWF0IjoxNzk2MTgzNjU4NTE1LCJuIjozLCJsayI6WyJwbGFudF9kYXRhIiwicHVtcC0wMDAzIl0sInNpZyI6IjMwODEwZDM2NGM3NzY1ZTUifQ",
            Phase::Backfill,
            1,
            3,
            1796183658516,
        ),
        3 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6InMiLCJwb3MiOjI0LCJzMCI6MjQsImlhdCI6MTc5NjE4MzY1ODU3MCwibiI6NSwic2lnIjoiZmQ5YjNmY2NiZDNhYzAyOCJ9",
            Phase::Streaming,
            1,
            3,
            1796183658571,
        ),
        4 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6ImIiLCJwb3MiOjAsInMwIjoyNCwiaWF0IjoxNzk2MTgzNjU4Njg4LCJuIjoxMSwibGsiOlsicGxhbnRfZGF0YSIsInB1bXAtMDAwMSJdLCJzaWciOiI2ZDM4NDA5NjRkZWYzZDZiIn0",
            Phase::Backfill,
            2,
            5,
            1796183658689,
        ),
        5 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6ImIiLCJwb3MiOjAsInMwIjoyNCwiaWF0IjoxNzk2MTgzNjU4NzgyLCJuIjoxMywibGsiOlsicGxhbnRfZGF0YSIsInB1bXAtMDAwMyJdLCJzaWciOiI5M2FjMjhiOWQ5NWZjM2MxIn0",
            Phase::Backfill,
            2,
            6,
            1796183658783,
        ),
        6 => (
            "eyJ2IjoxLCJxaCI6IjI2YzdhM2ViOTk3NjY1NDkiLCJwaCI6InMiLCJwb3MiOjI0LCJzMCI6MjQsImlhdCI6MTc5NjE4MzY1ODg2NSwibiI6MTUsInNpZyI6IjFiZDY3M2YzOTFjYzAyMWEifQ",
            Phase::Streaming,
            2,
            6,
            1796183658866,
        ),
        other => panic!("the fixture has no stream commit {other}"),
    };
    StreamCheckpoint {
        cursor: Some(cursor.into()),
        phase,
        generation,
        seq,
        query_hash: "a1eb3adbaba65f69".into(),
        rows_total,
        caught_up: false,
        last_success: Some(last_success),
        newest_change: Some(1796183658334),
        last_error: None,
        ..StreamCheckpoint::default()
    }
}

fn fixture_stream_commit(seq: i64, opens: bool, complete: bool) -> StreamCommitInfo {
    let checkpoint = fixture_checkpoint(seq);
    StreamCommitInfo {
        format_version: 1,
        app_id: FIXTURE_APP.into(),
        txn_version: seq,
        metadata: StreamMetadata::data_commit(&checkpoint, opens, complete),
        other: Map::new(),
    }
}

fn fixture_compaction(generation: u64, first: u64, last: u64) -> CompactionCommitInfo {
    CompactionCommitInfo {
        format_version: 1,
        compaction: CompactionInfo {
            app_id: FIXTURE_APP.into(),
            generation,
            first_version: first,
            last_version: last,
            source_files: 2,
        },
        other: Map::new(),
    }
}

#[tokio::test]
async fn existing_v1_tables_read_through_the_commit_format() {
    let (_dir, url) = fixture_copy("nodes");
    let table = open_fixture(&url).await;
    assert_eq!(table.version(), Some(8));
    let changes = table.changes_since(None).await.unwrap();
    assert_eq!(changes.len(), 9);

    // Version 0 creates the table; 1-3 are generation 1, 4-6 the resync's generation 2.
    assert!(changes[0].stream_commit.is_none());
    assert_eq!(CompactionCommitInfo::read(&changes[0].commit_info), None);
    let flags = [
        (true, false),
        (false, false),
        (false, true),
        (true, false),
        (false, false),
        (false, true),
    ];
    for (seq, (opens, complete)) in (1..=6).zip(flags) {
        let commit = &changes[seq as usize];
        assert_eq!(
            commit.stream_commit,
            Some(fixture_stream_commit(seq, opens, complete)),
            "version {seq}"
        );
        assert_eq!(CompactionInfo::of_commit(commit), None, "version {seq}");
    }
    // Versions 7 and 8 compact each generation's first two files.
    for (version, expected) in [
        (7, fixture_compaction(1, 1, 2)),
        (8, fixture_compaction(2, 4, 5)),
    ] {
        let commit = &changes[version];
        assert!(commit.stream_commit.is_none(), "version {version}");
        assert_eq!(
            CompactionCommitInfo::read(&commit.commit_info),
            Some(expected.clone())
        );
        assert_eq!(CompactionInfo::of_commit(commit), Some(expected.compaction));
    }

    // A sync resumes from the newest commit of the stream.
    assert_eq!(table.txn_version(FIXTURE_APP).await.unwrap(), Some(6));
    let last = table
        .last_stream_commit(FIXTURE_APP, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((last.delta_version, last.txn_version), (6, 6));
    assert_eq!(last.metadata.checkpoint, Some(fixture_checkpoint(6)));

    // The snapshot sees generation 2 completed at version 6, superseding generation 1.
    let origins: Vec<CommitOrigin> = changes.iter().map(CommitOrigin::of).collect();
    assert_eq!(origins[0], CommitOrigin::Other);
    assert_eq!(
        origins[4],
        CommitOrigin::Stream {
            app_id: FIXTURE_APP.into(),
            generation: Some(2),
            opens_generation: true,
            backfill_complete: false,
        }
    );
    assert_eq!(
        origins[8],
        CommitOrigin::Compaction {
            app_id: FIXTURE_APP.into(),
            generation: Some(2),
            last_version: 5,
        }
    );
    let index = LogIndex::build(&changes, StreamStates::new());
    assert_eq!(
        index.streams[FIXTURE_APP],
        GenerationState {
            completed_generation: 2,
            lowest_generation: Some(2),
        }
    );
    assert_eq!(
        index.superseded,
        Some(Supersession {
            stream: FIXTURE_APP.into(),
            generation: 2,
            version: 6,
        })
    );
    assert!(!index.keeps_unattributed(&[FIXTURE_APP.to_string()]));
    let compacted: Vec<(u64, Option<u64>, bool)> = [7, 8]
        .iter()
        .map(|&v| {
            let origin = &index.origins[&changes[v].adds[0].path];
            (origin.version, origin.generation, index.qualifies(origin))
        })
        .collect();
    assert_eq!(compacted, [(2, Some(1), false), (5, Some(2), true)]);

    // The quarantine table: one commit per generation, before the data commit it goes with.
    let (_dir, url) = fixture_copy("rejected");
    let rejected = open_fixture(&url).await;
    let changes = rejected.changes_since(None).await.unwrap();
    let quarantined: Vec<Option<StreamCommitInfo>> =
        changes.iter().map(|c| c.stream_commit.clone()).collect();
    let quarantine = |txn_version, generation| StreamCommitInfo {
        format_version: 1,
        app_id: FIXTURE_APP.into(),
        txn_version,
        metadata: StreamMetadata::quarantine_commit(generation),
        other: Map::new(),
    };
    assert_eq!(
        quarantined,
        [None, Some(quarantine(2, 1)), Some(quarantine(5, 2))]
    );
}

/// The value of `"key":` in JSON text, exactly as written.
fn raw_value<'a>(text: &'a str, key: &str) -> &'a str {
    let start = text.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in text[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return &text[start..=start + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced JSON after {key}")
}

fn commit_text(url: &Url, version: u64) -> String {
    let path = url
        .to_file_path()
        .unwrap()
        .join(format!("_delta_log/{version:020}.json"));
    std::fs::read_to_string(path).unwrap()
}

/// New commits write the bytes of format 1 plus `"formatVersion":1`: what an older
/// deployment reads, and what this one reads from existing tables.
#[tokio::test]
async fn new_commits_write_the_bytes_of_format_1_and_their_version() {
    let (_dir, nodes) = fixture_copy("nodes");
    let (_dir2, rejected) = fixture_copy("rejected");
    let old_data = commit_text(&nodes, 1);
    let old_data = raw_value(&old_data, "cdfS3Replicator");
    let old_quarantine = commit_text(&rejected, 1);
    let old_quarantine = raw_value(&old_quarantine, "cdfS3Replicator");

    let lake = local_lake();
    let mut table = open(&lake.destination, &lake.url).await;
    for (txn_version, metadata) in [
        (
            1,
            StreamMetadata::data_commit(&fixture_checkpoint(1), true, false),
        ),
        (2, StreamMetadata::quarantine_commit(1)),
    ] {
        let outcome = table
            .append(
                &[batch(0..2)],
                StreamCommit {
                    app_id: FIXTURE_APP.into(),
                    txn_version,
                    metadata,
                },
            )
            .await
            .unwrap();
        committed(&outcome);
    }
    let new_data = commit_text(&lake.url, 1);
    let new_data = raw_value(&new_data, "cdfS3Replicator");
    assert!(new_data.contains(r#","formatVersion":1,"#), "{new_data}");
    assert_eq!(new_data.replacen(r#""formatVersion":1,"#, "", 1), old_data);
    let new_quarantine = commit_text(&lake.url, 2);
    let new_quarantine = raw_value(&new_quarantine, "cdfS3Replicator");
    assert_eq!(
        new_quarantine.replacen(r#""formatVersion":1,"#, "", 1),
        old_quarantine
    );

    // Compaction records: the same bytes as the fixture's, plus the version.
    let old_compaction = commit_text(&nodes, 7);
    let old_compaction = raw_value(&old_compaction, "cdfS3Replicator");
    let (key, value) = fixture_compaction(1, 1, 2).to_commit_info().unwrap();
    assert_eq!(key, "cdfS3Replicator");
    let new_compaction = serde_json::to_string(&value).unwrap();
    assert_eq!(
        new_compaction.replacen(r#","formatVersion":1"#, "", 1),
        old_compaction
    );
}
