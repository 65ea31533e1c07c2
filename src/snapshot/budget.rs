//! The snapshot's deadline: which file may still start, and how long a file is expected to
//! take.
//!
//! A run with a deadline (a Lambda invocation's time less `extractor.deadline-margin`, or
//! the CLI's `--time-budget`) starts no file whose estimated cost exceeds the time left;
//! such a file is reported [`super::FileAction::Behind`] and keeps its previous state, and
//! the next run takes it first ([`super::order`]). A full rebuild is the exception: it is
//! resumable ([`super::resume`]), so it starts whenever time is left, stops at the deadline
//! and keeps its sorted runs for the next run.
//!
//! # Estimates
//!
//! A file's cost is estimated from the bytes it must read, at [`ASSUMED_BYTES_PER_SECOND`],
//! plus [`FIXED_COST`] per file:
//!
//! - an incremental merge reads and rewrites the previous file, and reads the raw files
//!   added since the previous file was built (by modification time, with
//!   [`CLOCK_SLACK`]; a compacted file counts as new, which only overestimates);
//! - a full rebuild is resumable and checks the time before each raw file it reads: the
//!   file, plus writing out what it sorted so far ([`super::resume`]), and before its final
//!   merge: every sorted run read and the published file written.
//!
//! The rate is a few times slower than what a release build measures on two cores (the
//! `snapshot` bench: 15 MiB/s of raw Parquet for a full rebuild, 50 MiB/s for a merge), so
//! that a slower store, a busier machine or a wider view still ends before the deadline. The
//! estimate is deliberately simple: the deadline margin absorbs what it misses, and the
//! worst an underestimate costs is one file finishing after the deadline but before the
//! margin runs out.

use std::time::Duration;

use super::manifest::FileEntry;
use crate::job::Deadline;
use crate::lake::{LakeResult, LakeTable};

/// Throughput assumed for reading raw Parquet and writing the published file.
pub(crate) const ASSUMED_BYTES_PER_SECOND: u64 = 8 * 1024 * 1024;

/// Cost of any file beyond its bytes: footers, the upload's completion, the manifest.
pub(crate) const FIXED_COST: Duration = Duration::from_millis(200);

/// Raw files modified up to this long before the previous build started count as added
/// since (clocks of writers and of the store differ a little).
pub(crate) const CLOCK_SLACK: Duration = Duration::from_secs(300);

/// The time a run may spend: no deadline, or an instant after which nothing starts; and
/// the throughput its estimates assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    deadline: Deadline,
    bytes_per_second: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self::until(Deadline::none())
    }
}

impl Budget {
    pub(crate) fn until(deadline: Deadline) -> Self {
        Self {
            deadline,
            bytes_per_second: ASSUMED_BYTES_PER_SECOND,
        }
    }

    /// The same deadline, with estimates at another throughput.
    pub(crate) fn assuming(self, bytes_per_second: u64) -> Self {
        Self {
            bytes_per_second: bytes_per_second.max(1),
            ..self
        }
    }

    /// Time left before the deadline (none once the run is interrupted); `None` without
    /// a deadline.
    pub(crate) fn time_left(&self) -> Option<Duration> {
        self.deadline.remaining()
    }

    /// Whether the deadline has passed.
    pub(crate) fn is_over(&self) -> bool {
        self.time_left().is_some_and(|left| left.is_zero())
    }

    /// The estimated time to read (and write) `bytes`, plus [`FIXED_COST`].
    pub(crate) fn cost_of(&self, bytes: u64) -> Duration {
        FIXED_COST + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64)
    }

    /// Whether work on `bytes` may start now: `Err` says why not.
    pub(crate) fn admit(&self, bytes: u64) -> Result<(), Shortfall> {
        let cost = self.cost_of(bytes);
        match self.time_left() {
            Some(left) if cost > left => Err(Shortfall { cost, left }),
            _ => Ok(()),
        }
    }
}

/// Work that did not fit in the time left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shortfall {
    pub(crate) cost: Duration,
    pub(crate) left: Duration,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the deadline came first: it needs about {:.1} s and {:.1} s were left; the next snapshot takes it first",
            self.cost.as_secs_f64(),
            self.left.as_secs_f64()
        )
    }
}

/// The bytes an incremental merge onto `previous` reads and writes: the previous file read
/// and written again, and the raw files modified since its build started (less
/// [`CLOCK_SLACK`]).
pub(crate) fn merge_bytes(table: &LakeTable, previous: &FileEntry) -> LakeResult<u64> {
    let since_ms = chrono::DateTime::parse_from_rfc3339(&previous.written_at)
        .map(|t| t.timestamp_millis() - CLOCK_SLACK.as_millis() as i64)
        // A build time nobody can read: every raw file counts.
        .unwrap_or(i64::MIN);
    let added: u64 = table
        .active_files()?
        .iter()
        .filter(|file| file.modification_time_ms >= since_ms)
        .map(|file| u64::try_from(file.size).unwrap_or(0))
        .sum();
    Ok(previous.bytes.saturating_mul(2).saturating_add(added))
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    #[test]
    fn costs_grow_with_bytes_from_a_fixed_floor() {
        let budget = Budget::default();
        assert_eq!(budget.cost_of(0), FIXED_COST);
        let ten_seconds = budget.cost_of(10 * ASSUMED_BYTES_PER_SECOND);
        assert_eq!(ten_seconds, FIXED_COST + Duration::from_secs(10));
        let slow = budget.assuming(ASSUMED_BYTES_PER_SECOND / 2);
        assert_eq!(
            slow.cost_of(ASSUMED_BYTES_PER_SECOND),
            FIXED_COST + Duration::from_secs(2)
        );
    }

    #[tokio::test]
    async fn work_is_admitted_only_when_it_fits_the_time_left() {
        let unbounded = Budget::default();
        assert!(unbounded.admit(u64::MAX / 2).is_ok());
        assert!(!unbounded.is_over());

        let budget = Budget::until(Deadline::after(Duration::from_secs(60)));
        assert!(budget.admit(ASSUMED_BYTES_PER_SECOND).is_ok());
        let shortfall = budget.admit(600 * ASSUMED_BYTES_PER_SECOND).unwrap_err();
        assert!(shortfall.left <= Duration::from_secs(60));
        assert!(shortfall.to_string().contains("600.2 s"), "{shortfall}");

        let over = Budget::until(Deadline::at(Instant::now()));
        assert!(over.is_over());
        assert!(over.admit(0).is_err());
    }
}
