//! The checkpoint of one stream and how it is reconciled with the Delta log.
//!
//! Two places remember how far a stream got: its row in the CDF RAW state table and the commit
//! metadata of its last Delta commit. The Delta commit is written first and carries the same
//! information, so a crash between the two writes is healed by taking the newer of the two.
//! The sequence number (`seq`) is the Delta `txn` version of the stream and orders them.

/// The checkpoint is part of what each Delta commit stores, so its type is defined with the
/// commit format.
pub use crate::lake::commit_metadata::{MembershipPass, MembershipScan, Phase, StreamCheckpoint};

/// Why a stream starts a new generation instead of continuing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RestartReason {
    /// Neither RAW nor the Delta log knows the stream.
    FirstRun,
    /// The RAW row is gone but the table has commits: the documented way to force a resync.
    StateRowDeleted,
    /// RAW says more was committed than the table holds (the table was deleted or replaced).
    TableBehindState { state_seq: i64, table_seq: i64 },
    /// The configured query changed (for example a different view version).
    QueryChanged,
    /// An operator asked for a full resync.
    Forced,
    /// The stream's newest commit (and with it its cursor) is older than the Delta log
    /// retention, and RAW does not have it either.
    CommitOutOfReach { table_seq: i64 },
}

/// The outcome of comparing the RAW row with the Delta log at the start of a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resume {
    /// Continue from this checkpoint.
    Continue(StreamCheckpoint),
    /// Start a new generation (full backfill) from this checkpoint, whose cursor is cleared.
    Restart(StreamCheckpoint, RestartReason),
}

impl Resume {
    pub(crate) fn checkpoint(&self) -> &StreamCheckpoint {
        match self {
            Resume::Continue(checkpoint) | Resume::Restart(checkpoint, _) => checkpoint,
        }
    }
}

/// Decides where a stream resumes. `table` is the checkpoint found in the metadata of the
/// stream's newest Delta commit, whose `seq` is the table's `txn` version for the stream.
pub(crate) fn reconcile(
    state_row: Option<StreamCheckpoint>,
    table: Option<StreamCheckpoint>,
    query_hash: &str,
) -> Resume {
    let chosen = match (state_row, table) {
        (None, None) => {
            return Resume::Restart(
                StreamCheckpoint {
                    generation: 1,
                    query_hash: query_hash.to_owned(),
                    ..StreamCheckpoint::default()
                },
                RestartReason::FirstRun,
            );
        }
        (None, Some(table)) => {
            return Resume::Restart(
                new_generation(&table, query_hash),
                RestartReason::StateRowDeleted,
            );
        }
        (Some(row), None) if row.seq > 0 => {
            let reason = RestartReason::TableBehindState {
                state_seq: row.seq,
                table_seq: 0,
            };
            let mut restarted = new_generation(&row, query_hash);
            restarted.seq = 0;
            return Resume::Restart(restarted, reason);
        }
        (Some(row), None) => row,
        (Some(row), Some(table)) if row.seq > table.seq => {
            let reason = RestartReason::TableBehindState {
                state_seq: row.seq,
                table_seq: table.seq,
            };
            let mut restarted = new_generation(&row, query_hash);
            restarted.seq = table.seq;
            return Resume::Restart(restarted, reason);
        }
        // Equal sequence numbers: RAW may hold a newer cursor from empty pages.
        (Some(row), Some(table)) if row.seq == table.seq => row,
        // The process stopped after a Delta commit but before its RAW write.
        (Some(_), Some(table)) => table,
    };
    if chosen.query_hash != query_hash {
        return Resume::Restart(
            new_generation(&chosen, query_hash),
            RestartReason::QueryChanged,
        );
    }
    Resume::Continue(chosen)
}

/// The checkpoint that begins the generation after `previous`: same sequence (the txn
/// version only ever grows), no cursor, backfill phase.
pub(crate) fn new_generation(previous: &StreamCheckpoint, query_hash: &str) -> StreamCheckpoint {
    StreamCheckpoint {
        cursor: None,
        phase: Phase::Backfill,
        generation: previous.generation + 1,
        seq: previous.seq,
        query_hash: query_hash.to_owned(),
        rows_total: previous.rows_total,
        caught_up: false,
        last_success: previous.last_success,
        newest_change: previous.newest_change,
        last_error: previous.last_error.clone(),
        // A new generation's backfill lists every member anew.
        membership: MembershipScan::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: i64, cursor: &str) -> StreamCheckpoint {
        StreamCheckpoint {
            cursor: Some(cursor.to_owned()),
            phase: Phase::Streaming,
            generation: 3,
            seq,
            query_hash: "q".into(),
            ..StreamCheckpoint::default()
        }
    }

    #[test]
    fn first_run_starts_generation_one() {
        let resume = reconcile(None, None, "q");
        assert_eq!(resume.checkpoint().generation, 1);
        assert_eq!(resume.checkpoint().cursor, None);
        assert!(matches!(
            resume,
            Resume::Restart(_, RestartReason::FirstRun)
        ));
    }

    #[test]
    fn equal_sequences_prefer_the_state_row_with_its_newer_cursor() {
        let resume = reconcile(Some(at(5, "raw")), Some(at(5, "delta")), "q");
        assert_eq!(resume, Resume::Continue(at(5, "raw")));
    }

    #[test]
    fn a_commit_missing_from_raw_is_taken_from_the_delta_log() {
        let resume = reconcile(Some(at(4, "raw")), Some(at(5, "delta")), "q");
        assert_eq!(resume, Resume::Continue(at(5, "delta")));
    }

    #[test]
    fn deleting_the_state_row_forces_a_new_generation() {
        let resume = reconcile(None, Some(at(5, "delta")), "q");
        let Resume::Restart(checkpoint, RestartReason::StateRowDeleted) = resume else {
            panic!("expected a restart, got {resume:?}");
        };
        assert_eq!(
            (checkpoint.generation, checkpoint.seq, checkpoint.cursor),
            (4, 5, None)
        );
    }

    #[test]
    fn a_table_behind_its_state_restarts_without_reusing_the_cursor() {
        let resume = reconcile(Some(at(7, "raw")), Some(at(5, "delta")), "q");
        let Resume::Restart(
            checkpoint,
            RestartReason::TableBehindState {
                state_seq: 7,
                table_seq: 5,
            },
        ) = resume
        else {
            panic!("expected a restart, got {resume:?}");
        };
        assert_eq!((checkpoint.seq, checkpoint.cursor), (5, None));
        let lost = reconcile(Some(at(7, "raw")), None, "q");
        assert_eq!(lost.checkpoint().seq, 0);
        assert!(matches!(lost, Resume::Restart(..)));
    }

    #[test]
    fn a_changed_query_restarts() {
        let resume = reconcile(Some(at(5, "raw")), Some(at(5, "delta")), "other");
        let Resume::Restart(checkpoint, RestartReason::QueryChanged) = resume else {
            panic!("expected a restart, got {resume:?}");
        };
        assert_eq!(
            (checkpoint.generation, checkpoint.query_hash.as_str()),
            (4, "other")
        );
    }

    #[test]
    fn a_state_row_without_commits_continues() {
        let row = StreamCheckpoint {
            seq: 0,
            ..at(0, "c")
        };
        assert_eq!(
            reconcile(Some(row.clone()), None, "q"),
            Resume::Continue(row)
        );
    }
}
