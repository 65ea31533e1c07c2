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

/// Where and how much the sorter may buffer.
#[derive(Debug, Clone)]
pub(crate) struct SortSettings {
    pub(crate) memory_budget_bytes: usize,
    pub(crate) temp_dir: PathBuf,
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
        let sorted = sort(buffer).await?;
        let dir = self.dir()?;
        let file = dir.write_sorted(sorted).await?;
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
            self.merge_level().await?;
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
            streams.push(sort(buffer).await?.into_stream(SPILL_BATCH_ROWS));
        }
        Ok(Runs {
            streams,
            spill_dir: self.spill_dir.take(),
            spilled_runs: self.spilled_runs,
        })
    }

    /// Merges consecutive groups of runs into longer runs, keeping tombstones (they must
    /// still meet older runs) and the arrival order of the groups.
    async fn merge_level(&mut self) -> SnapshotResult<()> {
        let files = std::mem::take(&mut self.files);
        let mut merged = Vec::new();
        let mut group = Vec::with_capacity(MAX_FAN_IN);
        let mut files = files.into_iter().peekable();
        while let Some(file) = files.next() {
            group.push(file);
            if group.len() == MAX_FAN_IN || files.peek().is_none() {
                let runs = std::mem::take(&mut group);
                if runs.len() == 1 {
                    merged.extend(runs);
                    continue;
                }
                let streams = runs
                    .into_iter()
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
                merged.push(writer.finish()?);
                self.spilled_runs += 1;
            }
        }
        self.files = merged;
        Ok(())
    }
}

/// Sorts a buffer on a blocking thread (it is CPU work on up to a budget of rows).
async fn sort(buffer: SortBuffer) -> SnapshotResult<super::dedup::SortedBuffer> {
    tokio::task::spawn_blocking(move || buffer.finish())
        .await
        .map_err(|e| SnapshotError::Spill {
            path: "<memory>".into(),
            context: "sorting a buffer",
            source: std::io::Error::other(e.to_string()),
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
        // 40 runs, merged in groups of 16 twice (40 → 3 runs) before the final merge.
        assert_eq!(runs.spilled_runs, 43);
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
