//! The checkpoint of one stream and how it is reconciled with the Delta log.
//!
//! Two places remember how far a stream got: its row in the CDF RAW state table and the commit
//! metadata of its last Delta commit. The Delta commit is written first and carries the same
//! information, so a crash between the two writes is healed by taking the newer of the two.
//! The sequence number (`seq`) is the Delta `txn` version of the stream and orders them.
//!
//! The Delta log is the truth about the data: what its commits prove (how many the stream
//! made, in which generation, for which query, in which phase) is never overruled by the
//! RAW row. RAW may only be *ahead* of the log in what no commit records: the newer cursor
//! of pages without rows, and a new generation decided before its first commit. A row that
//! says less than the log (no row, an unreadable row, fewer commits, an older generation,
//! another stream's query) is repaired from the log, with a warning.

/// The checkpoint is part of what each Delta commit stores, so its type is defined with the
/// commit format.
pub use crate::lake::commit_metadata::{MembershipPass, MembershipScan, Phase, StreamCheckpoint};

/// Why a stream starts a new generation instead of continuing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RestartReason {
    /// Neither RAW nor the Delta log knows the stream.
    FirstRun,
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

/// What the RAW row said that the Delta log contradicts. The stream continues from the
/// log's checkpoint instead, and the row is rewritten from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Repair {
    /// No usable row (never written, deleted, or unreadable), though the stream has commits.
    Missing,
    /// The row records fewer commits than the log holds: a run stopped between a Delta
    /// commit and its RAW write, or an older row was put back.
    Behind { row_seq: i64, log_seq: i64 },
    /// At the same commit, the row names an older generation than the log. Resuming from it
    /// would label new rows with a generation the snapshot already left behind.
    OlderGeneration { row: u64, log: u64 },
    /// At the same commit and generation, the row is for another query: another stream's
    /// cursor.
    OtherQuery,
    /// At the same commit, generation and query, the row names another phase or row count.
    Disagrees,
    /// The row names a newer generation than the log, which it may (a generation begins
    /// before its first commit), but also a cursor, which no commit of that generation
    /// proves: the generation begins again from its first page.
    UnprovenCursor,
}

impl std::fmt::Display for Repair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repair::Missing => f.write_str("there is no usable RAW row, but the Delta log has commits"),
            Repair::Behind { row_seq, log_seq } => write!(
                f,
                "the RAW row records {row_seq} commits, the Delta log {log_seq}"
            ),
            Repair::OlderGeneration { row, log } => write!(
                f,
                "at the same commit, the RAW row names generation {row}, the Delta log {log}"
            ),
            Repair::OtherQuery => f.write_str(
                "at the same commit and generation, the RAW row is for another query (another stream's cursor)",
            ),
            Repair::Disagrees => f.write_str(
                "at the same commit, the RAW row names another phase or row count than the Delta log",
            ),
            Repair::UnprovenCursor => f.write_str(
                "the RAW row names a generation without commits, with a cursor no commit proves",
            ),
        }
    }
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

/// Where a stream resumes, and what of its RAW row had to be repaired from the log.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reconciled {
    pub(crate) resume: Resume,
    pub(crate) repaired: Option<Repair>,
}

impl Reconciled {
    fn new(resume: Resume) -> Self {
        Self {
            resume,
            repaired: None,
        }
    }
}

/// Decides where a stream resumes. `log` is the checkpoint found in the metadata of the
/// stream's newest Delta commit, whose `seq` is the table's `txn` version for the stream
/// (`None`: the stream never committed to the table).
pub(crate) fn reconcile(
    state_row: Option<StreamCheckpoint>,
    log: Option<StreamCheckpoint>,
    query_hash: &str,
) -> Reconciled {
    let (chosen, repaired) = match (state_row, log) {
        (None, None) => {
            return Reconciled::new(Resume::Restart(
                StreamCheckpoint {
                    generation: 1,
                    query_hash: query_hash.to_owned(),
                    ..StreamCheckpoint::default()
                },
                RestartReason::FirstRun,
            ));
        }
        (None, Some(log)) => (log, Some(Repair::Missing)),
        (Some(row), None) if row.seq > 0 => {
            let reason = RestartReason::TableBehindState {
                state_seq: row.seq,
                table_seq: 0,
            };
            let mut restarted = new_generation(&row, query_hash);
            restarted.seq = 0;
            return Reconciled::new(Resume::Restart(restarted, reason));
        }
        // A generation began, nothing committed yet.
        (Some(row), None) => (row, None),
        (Some(row), Some(log)) if row.seq > log.seq => {
            let reason = RestartReason::TableBehindState {
                state_seq: row.seq,
                table_seq: log.seq,
            };
            // Above every generation either copy knows, so that no row of the new one is
            // mistaken for an older generation's.
            let newest = if log.generation > row.generation {
                &log
            } else {
                &row
            };
            let mut restarted = new_generation(newest, query_hash);
            restarted.seq = log.seq;
            return Reconciled::new(Resume::Restart(restarted, reason));
        }
        // The process stopped after a Delta commit but before its RAW write.
        (Some(row), Some(log)) if row.seq < log.seq => {
            let repair = Repair::Behind {
                row_seq: row.seq,
                log_seq: log.seq,
            };
            (log, Some(repair))
        }
        // Equal sequence numbers from here on.
        (Some(row), Some(log)) if row.generation > log.generation => {
            // A new generation was recorded before its first commit.
            let repair = row.cursor.is_some().then_some(Repair::UnprovenCursor);
            let begun = StreamCheckpoint {
                cursor: None,
                phase: Phase::Backfill,
                caught_up: false,
                rows_total: log.rows_total,
                ..row
            };
            (begun, repair)
        }
        (Some(row), Some(log)) if row.generation < log.generation => {
            let repair = Repair::OlderGeneration {
                row: row.generation,
                log: log.generation,
            };
            (log, Some(repair))
        }
        (Some(row), Some(log)) if row.query_hash != log.query_hash => {
            (log, Some(Repair::OtherQuery))
        }
        (Some(row), Some(log)) if row.phase != log.phase || row.rows_total != log.rows_total => {
            (log, Some(Repair::Disagrees))
        }
        // Everything the log proves agrees: RAW may hold a newer cursor from empty pages.
        (Some(row), Some(_)) => (row, None),
    };
    if chosen.query_hash != query_hash {
        return Reconciled {
            resume: Resume::Restart(
                new_generation(&chosen, query_hash),
                RestartReason::QueryChanged,
            ),
            repaired,
        };
    }
    Reconciled {
        resume: Resume::Continue(chosen),
        repaired,
    }
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

    fn continued(reconciled: &Reconciled) -> &StreamCheckpoint {
        match &reconciled.resume {
            Resume::Continue(checkpoint) => checkpoint,
            other => panic!("expected to continue, got {other:?}"),
        }
    }

    #[test]
    fn first_run_starts_generation_one() {
        let resume = reconcile(None, None, "q").resume;
        assert_eq!(resume.checkpoint().generation, 1);
        assert_eq!(resume.checkpoint().cursor, None);
        assert!(matches!(
            resume,
            Resume::Restart(_, RestartReason::FirstRun)
        ));
    }

    #[test]
    fn equal_sequences_prefer_the_state_row_with_its_newer_cursor() {
        let reconciled = reconcile(Some(at(5, "raw")), Some(at(5, "delta")), "q");
        assert_eq!(reconciled.resume, Resume::Continue(at(5, "raw")));
        assert_eq!(reconciled.repaired, None);
    }

    #[test]
    fn a_commit_missing_from_raw_is_taken_from_the_delta_log() {
        let reconciled = reconcile(Some(at(4, "raw")), Some(at(5, "delta")), "q");
        assert_eq!(continued(&reconciled), &at(5, "delta"));
        assert_eq!(
            reconciled.repaired,
            Some(Repair::Behind {
                row_seq: 4,
                log_seq: 5
            })
        );
    }

    /// No row, or one that did not parse (the store leaves those out): the stream does not
    /// start over, it continues where its Delta log says it is.
    #[test]
    fn a_missing_row_is_repaired_from_the_delta_log() {
        let reconciled = reconcile(None, Some(at(5, "delta")), "q");
        assert_eq!(continued(&reconciled), &at(5, "delta"));
        assert_eq!(reconciled.repaired, Some(Repair::Missing));
    }

    /// The finding this guards: a generation lowered by hand at the same `seq` was trusted,
    /// and the stream labelled new rows with a generation the snapshot had left behind.
    #[test]
    fn an_older_generation_at_the_same_commit_is_repaired_from_the_log() {
        let lowered = StreamCheckpoint {
            generation: 1,
            ..at(5, "raw")
        };
        let reconciled = reconcile(Some(lowered), Some(at(5, "delta")), "q");
        assert_eq!(continued(&reconciled), &at(5, "delta"));
        assert_eq!(
            reconciled.repaired,
            Some(Repair::OlderGeneration { row: 1, log: 3 })
        );
    }

    #[test]
    fn another_streams_cursor_is_repaired_from_the_log() {
        // Another stream's row pasted under this key: its query hash is not this stream's.
        let pasted = StreamCheckpoint {
            query_hash: "other".into(),
            ..at(5, "cursor of another stream")
        };
        let reconciled = reconcile(Some(pasted), Some(at(5, "delta")), "q");
        assert_eq!(continued(&reconciled), &at(5, "delta"));
        assert_eq!(reconciled.repaired, Some(Repair::OtherQuery));
    }

    #[test]
    fn a_row_that_disagrees_on_phase_or_rows_is_repaired_from_the_log() {
        let backfill = StreamCheckpoint {
            phase: Phase::Backfill,
            ..at(5, "raw")
        };
        let reconciled = reconcile(Some(backfill), Some(at(5, "delta")), "q");
        assert_eq!(continued(&reconciled), &at(5, "delta"));
        assert_eq!(reconciled.repaired, Some(Repair::Disagrees));
        let rows = StreamCheckpoint {
            rows_total: 7,
            ..at(5, "raw")
        };
        let reconciled = reconcile(Some(rows), Some(at(5, "delta")), "q");
        assert_eq!(reconciled.repaired, Some(Repair::Disagrees));
    }

    /// A new generation is recorded in RAW before its first commit; the next run begins it
    /// from its first page, and a cursor no commit proves is dropped.
    #[test]
    fn a_generation_begun_before_its_first_commit_is_kept_without_a_cursor() {
        let begun = StreamCheckpoint {
            generation: 4,
            cursor: None,
            phase: Phase::Backfill,
            ..at(5, "")
        };
        let reconciled = reconcile(Some(begun.clone()), Some(at(5, "delta")), "q");
        assert_eq!(continued(&reconciled), &begun);
        assert_eq!(reconciled.repaired, None);

        let with_cursor = StreamCheckpoint {
            generation: 4,
            ..at(5, "unproven")
        };
        let reconciled = reconcile(Some(with_cursor), Some(at(5, "delta")), "q");
        assert_eq!(continued(&reconciled), &begun);
        assert_eq!(reconciled.repaired, Some(Repair::UnprovenCursor));
    }

    #[test]
    fn a_table_behind_its_state_restarts_without_reusing_the_cursor() {
        let resume = reconcile(Some(at(7, "raw")), Some(at(5, "delta")), "q").resume;
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
        assert_eq!(
            (checkpoint.seq, checkpoint.cursor, checkpoint.generation),
            (5, None, 4)
        );
        let lost = reconcile(Some(at(7, "raw")), None, "q").resume;
        assert_eq!(lost.checkpoint().seq, 0);
        assert!(matches!(lost, Resume::Restart(..)));
    }

    #[test]
    fn a_restart_numbers_its_generation_above_the_log_when_the_row_says_less() {
        let lowered = StreamCheckpoint {
            generation: 1,
            ..at(7, "raw")
        };
        let resume = reconcile(Some(lowered), Some(at(5, "delta")), "q").resume;
        assert!(matches!(
            resume,
            Resume::Restart(_, RestartReason::TableBehindState { .. })
        ));
        assert_eq!(resume.checkpoint().generation, 4);
    }

    #[test]
    fn a_changed_query_restarts() {
        let resume = reconcile(Some(at(5, "raw")), Some(at(5, "delta")), "other").resume;
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
        let reconciled = reconcile(Some(row.clone()), None, "q");
        assert_eq!(reconciled.resume, Resume::Continue(row));
        assert_eq!(reconciled.repaired, None);
    }
}
