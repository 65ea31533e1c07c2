//! External sort of rows that arrive in order: buffer up to a memory budget, sort and keep
//! the last row per key, spill as a run, repeat; hand the runs (oldest first) to the merge.
//!
//! Memory: at most one budget of buffered batches, plus one batch per run during merges.
//! No spill directory is created unless the rows outgrow the budget.

use std::path::PathBuf;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;

use super::dedup::SortBuffer;
use super::error::{SnapshotError, SnapshotResult};
use super::keys::KeyColumns;
use super::kway::{Tombstones, merge};
use super::reader::BatchStream;
use super::spill::{SPILL_BATCH_ROWS, SpillDir, SpillFile};

/// Runs merged at once. Each open run holds one batch in memory; more runs are first
/// merged in groups into longer runs.
pub(crate) const MAX_FAN_IN: usize = 16;

/// Where and how much the sorter may buffer, and how many threads sort.
#[derive(Debug, Clone)]
pub(crate) struct SortSettings {
    /// Rows buffered before a run is sorted and spilled, across all threads.
    pub(crate) memory_budget_bytes: usize,
    pub(crate) temp_dir: PathBuf,
    /// Threads that decode, sort and encode (at least 1). The output does not depend on it.
    pub(crate) threads: usize,
}

/// The sorted runs of a sort, oldest first, and the directory their files live in.
pub(crate) struct Runs {
    pub(crate) streams: Vec<BatchStream<'static>>,
    /// Removes the spill directory once the runs have been merged (dropped).
    pub(crate) spill_dir: Option<SpillDir>,
    /// Runs written to local disk, intermediate merges included.
    pub(crate) spilled_runs: u64,
}

pub(crate) struct Sorter {
    schema: SchemaRef,
    keys: KeyColumns,
    settings: SortSettings,
    buffer: SortBuffer,
    spill_dir: Option<SpillDir>,
    files: Vec<SpillFile>,
    spilled_runs: u64,
}

impl Sorter {
    pub(crate) fn new(schema: SchemaRef, keys: KeyColumns, settings: SortSettings) -> Self {
        Self {
            buffer: SortBuffer::new(schema.clone(), keys),
            schema,
            keys,
            settings,
            spill_dir: None,
            files: Vec::new(),
            spilled_runs: 0,
        }
    }

    /// Whether no row was pushed (or every batch pushed was empty).
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty() && self.buffer.is_empty()
    }

    /// Adds the next batch in arrival order.
    pub(crate) async fn push(&mut self, batch: RecordBatch) -> SnapshotResult<()> {
        self.buffer.push(batch);
        if self.buffer.memory_bytes() >= self.settings.memory_budget_bytes {
            self.spill().await?;
        }
        Ok(())
    }

    async fn spill(&mut self) -> SnapshotResult<()> {
        let buffer = std::mem::replace(
            &mut self.buffer,
            SortBuffer::new(self.schema.clone(), self.keys),
        );
        if buffer.is_empty() {
            return Ok(());
        }
        let threads = self.settings.threads;
        let sorted = sort(buffer, threads).await?;
        let dir = self.dir()?;
        let file = dir.write_sorted(sorted, threads).await?;
        tracing::debug!(rows = file.rows(), "spilled a sorted run");
        self.files.push(file);
        self.spilled_runs += 1;
        Ok(())
    }

    fn dir(&mut self) -> SnapshotResult<&mut SpillDir> {
        if self.spill_dir.is_none() {
            self.spill_dir = Some(SpillDir::create(&self.settings.temp_dir)?);
        }
        match self.spill_dir.as_mut() {
            Some(dir) => Ok(dir),
            None => unreachable!("the spill directory was created above"),
        }
    }

    /// The sorted runs, oldest first: spilled runs, then what is still buffered.
    pub(crate) async fn finish(mut self) -> SnapshotResult<Runs> {
        // Leave room for the buffered run (and a run the caller puts in front).
        while self.files.len() + 2 > MAX_FAN_IN {
            self.merge_runs(self.files.len() + 2 - MAX_FAN_IN).await?;
        }
        let mut streams: Vec<BatchStream<'static>> = Vec::with_capacity(self.files.len() + 1);
        for file in std::mem::take(&mut self.files) {
            streams.push(file.into_stream()?);
        }
        let buffer = std::mem::replace(
            &mut self.buffer,
            SortBuffer::new(self.schema.clone(), self.keys),
        );
        if !buffer.is_empty() {
            let sorted = sort(buffer, self.settings.threads).await?;
            streams.push(
                sorted
                    .into_stream(SPILL_BATCH_ROWS, self.settings.threads)
                    .await?,
            );
        }
        Ok(Runs {
            streams,
            spill_dir: self.spill_dir.take(),
            spilled_runs: self.spilled_runs,
        })
    }

    /// Merges just enough consecutive runs into one to bring the count down by `excess`:
    /// the consecutive window with the fewest rows, so that as few rows as possible are
    /// written twice. Tombstones are kept (they must still meet older runs), and the merged
    /// run takes the window's place, so the runs stay in arrival order.
    async fn merge_runs(&mut self, excess: usize) -> SnapshotResult<()> {
        let width = (excess + 1).min(MAX_FAN_IN).min(self.files.len());
        if width < 2 {
            return Ok(());
        }
        let start = (0..=self.files.len() - width)
            .min_by_key(|&s| {
                self.files[s..s + width]
                    .iter()
                    .map(SpillFile::rows)
                    .sum::<u64>()
            })
            .unwrap_or(0);
        let streams = self
            .files
            .drain(start..start + width)
            .map(SpillFile::into_stream)
            .collect::<SnapshotResult<Vec<_>>>()?;
        let schema = self.schema.clone();
        let mut writer = self.dir()?.run_writer(&schema)?;
        merge(
            streams,
            self.schema.clone(),
            self.keys,
            Tombstones::Keep,
            &mut writer,
        )
        .await?;
        self.files.insert(start, writer.finish()?);
        self.spilled_runs += 1;
        Ok(())
    }
}

/// Sorts a buffer on blocking threads (it is CPU work on up to a budget of rows).
async fn sort(buffer: SortBuffer, threads: usize) -> SnapshotResult<super::dedup::SortedBuffer> {
    tokio::task::spawn_blocking(move || buffer.finish(threads))
        .await
        .map_err(|source| SnapshotError::Worker {
            context: "sorting a buffer",
            source,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::dedup::tests::{batch, schema};
    use crate::snapshot::kway::tests::Collect;

    #[tokio::test]
    async fn spills_past_the_budget_and_merges_to_the_latest_rows() {
        let temp = tempfile::tempdir().unwrap();
        let keys = KeyColumns::of(&schema(), "t").unwrap();
        let settings = SortSettings {
            memory_budget_bytes: 1,
            temp_dir: temp.path().to_path_buf(),
            threads: 2,
        };
        let mut sorter = Sorter::new(schema(), keys, settings);
        // 40 batches: enough runs for two levels of intermediate merges.
        for round in 0..40i64 {
            let id = format!("k{:02}", round % 7);
            let deleted = (round % 5 == 4).then_some(1);
            sorter
                .push(batch(&[(id.as_str(), deleted, round), ("z", None, round)]))
                .await
                .unwrap();
        }
        let runs = sorter.finish().await.unwrap();
        // 40 runs: 16 of them merged into one (25 runs), then 12 more (14 runs, leaving
        // room for the buffered run and one in front of them).
        assert_eq!(runs.spilled_runs, 42);
        assert!(runs.streams.len() < MAX_FAN_IN, "{}", runs.streams.len());
        let mut sink = Collect::default();
        merge(runs.streams, schema(), keys, Tombstones::Drop, &mut sink)
            .await
            .unwrap();
        // Latest round per key: k0 → 35, k1 → 36, k2 → 37, k3 → 38, k4 → 39 (deleted),
        // k5 → 33, k6 → 34 (deleted), z → 39.
        let expected: Vec<(String, i64)> = [
            ("k00", 35),
            ("k01", 36),
            ("k02", 37),
            ("k03", 38),
            ("k05", 33),
            ("z", 39),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
        assert_eq!(sink.rows(), expected);
        drop(runs.spill_dir);
        assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0);
    }
}
