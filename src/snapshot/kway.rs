//! K-way merge of sorted runs into one sorted stream with one row per key.
//!
//! Every run is sorted by key and holds each key at most once. Runs are given oldest
//! first: when several runs hold a key, the newest run's row is the key's latest state.
//! The final merge drops keys whose latest row is a tombstone; intermediate merges (more
//! runs than the fan-in) keep tombstones, which must still delete rows of older runs.
//!
//! The winning run keeps emitting while its keys stay below every other run's current key,
//! so merging a large previous file with a few changes costs little more than copying it.
//! Emitted rows are noted as (batch, row) positions and gathered column by column once an
//! output batch is full: one copy per row, however finely the runs interleave. Output
//! batches hold exactly [`SPILL_BATCH_ROWS`] rows (the last one fewer), so what the sink
//! receives depends on the merged rows only, not on how they were split into runs.

use std::future::Future;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::interleave_record_batch;
use deltalake::arrow::datatypes::SchemaRef;
use futures::StreamExt;

use super::error::{SnapshotError, SnapshotResult};
use super::keys::{BatchKeys, KeyColumns};
use super::reader::BatchStream;
use super::spill::{RunWriter, SPILL_BATCH_ROWS};

/// Where merged batches go.
pub trait BatchSink {
    /// Takes one merged batch, in key order after the batches before it.
    fn write(&mut self, batch: RecordBatch) -> impl Future<Output = SnapshotResult<()>> + Send;
}

impl BatchSink for RunWriter {
    #[allow(clippy::manual_async_fn)]
    fn write(&mut self, batch: RecordBatch) -> impl Future<Output = SnapshotResult<()>> + Send {
        async move { RunWriter::write(self, &batch) }
    }
}

/// Whether the merge output keeps tombstones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tombstones {
    /// Final output: deleted keys disappear.
    Drop,
    /// Intermediate run: deletions still have to meet older runs.
    Keep,
}

struct Cursor<'a> {
    stream: BatchStream<'a>,
    batch: Option<(RecordBatch, BatchKeys)>,
    row: usize,
    /// Where the current batch sits among the output's source batches, once a row of it
    /// was emitted.
    slot: Option<usize>,
}

impl Cursor<'_> {
    /// Moves to the next non-empty batch, or to the end of the run.
    async fn load(&mut self, keys: &KeyColumns) -> SnapshotResult<()> {
        self.row = 0;
        self.batch = None;
        self.slot = None;
        while let Some(batch) = self.stream.next().await {
            let batch = batch?;
            if batch.num_rows() > 0 {
                let view = keys.view(&batch)?;
                self.batch = Some((batch, view));
                break;
            }
        }
        Ok(())
    }

    async fn advance(&mut self, by: usize, keys: &KeyColumns) -> SnapshotResult<()> {
        self.row += by;
        if self
            .batch
            .as_ref()
            .is_some_and(|(batch, _)| self.row >= batch.num_rows())
        {
            self.load(keys).await?;
        }
        Ok(())
    }

    fn key(&self) -> Option<(&str, &str)> {
        self.batch.as_ref().map(|(_, keys)| keys.key(self.row))
    }
}

/// Merges `runs` (oldest first) into `sink`; returns the rows written.
pub(crate) async fn merge<S: BatchSink + Send>(
    runs: Vec<BatchStream<'_>>,
    schema: SchemaRef,
    keys: KeyColumns,
    tombstones: Tombstones,
    sink: &mut S,
) -> SnapshotResult<u64> {
    let mut cursors: Vec<Cursor<'_>> = runs
        .into_iter()
        .map(|stream| Cursor {
            stream,
            batch: None,
            row: 0,
            slot: None,
        })
        .collect();
    for cursor in &mut cursors {
        cursor.load(&keys).await?;
    }
    let mut out = Output::new(schema);
    loop {
        // The smallest key; among equal keys the newest run.
        let mut winner: Option<usize> = None;
        for (i, cursor) in cursors.iter().enumerate() {
            let Some(key) = cursor.key() else { continue };
            let better = match winner.and_then(|w| cursors[w].key()) {
                None => true,
                Some(best) => key <= best,
            };
            if better {
                winner = Some(i);
            }
        }
        let Some(w) = winner else { break };

        // Older runs' rows of the same key are superseded.
        let superseded: Vec<usize> = {
            let winning_key = cursors[w].key();
            (0..w)
                .filter(|&i| cursors[i].key().is_some() && cursors[i].key() == winning_key)
                .collect()
        };
        for i in superseded {
            cursors[i].advance(1, &keys).await?;
        }

        let (batch, view) = match &cursors[w].batch {
            Some(current) => current,
            None => continue,
        };
        let start = cursors[w].row;
        if tombstones == Tombstones::Drop && view.is_tombstone(start) {
            cursors[w].advance(1, &keys).await?;
            continue;
        }
        // Every other run is now past the winning key: emit while below their smallest key.
        let bound = cursors
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != w)
            .filter_map(|(_, c)| c.key())
            .min();
        // Never past the end of the output batch.
        let last = batch.num_rows().min(start + out.room());
        let mut end = start + 1;
        while end < last
            && bound.is_none_or(|bound| view.key(end) < bound)
            && !(tombstones == Tombstones::Drop && view.is_tombstone(end))
        {
            end += 1;
        }
        let slot = match cursors[w].slot {
            Some(slot) => slot,
            None => {
                let slot = out.add_source(batch.clone());
                cursors[w].slot = Some(slot);
                slot
            }
        };
        out.rows_of(slot, start..end);
        cursors[w].advance(end - start, &keys).await?;
        let forget_sources = if out.room() == 0 {
            out.flush(sink).await?;
            true
        } else if out.holds_too_many_sources(cursors.len()) {
            out.compact()?;
            true
        } else {
            false
        };
        if forget_sources {
            for cursor in &mut cursors {
                cursor.slot = None;
            }
        }
    }
    out.flush(sink).await?;
    Ok(out.rows)
}

/// The rows of the next output batch, as positions in the batches they come from.
struct Output {
    schema: SchemaRef,
    sources: Vec<RecordBatch>,
    positions: Vec<(usize, usize)>,
    rows: u64,
}

impl Output {
    fn new(schema: SchemaRef) -> Self {
        Self {
            schema,
            sources: Vec::new(),
            positions: Vec::with_capacity(SPILL_BATCH_ROWS),
            rows: 0,
        }
    }

    fn add_source(&mut self, batch: RecordBatch) -> usize {
        self.sources.push(batch);
        self.sources.len() - 1
    }

    fn rows_of(&mut self, slot: usize, rows: std::ops::Range<usize>) {
        self.positions.extend(rows.map(|row| (slot, row)));
    }

    /// Rows the output batch still takes.
    fn room(&self) -> usize {
        SPILL_BATCH_ROWS.saturating_sub(self.positions.len())
    }

    /// Whether the noted rows come from so many batches that holding them costs more than
    /// copying the rows (runs that mostly skip rows, deleted or superseded, pile them up).
    fn holds_too_many_sources(&self, runs: usize) -> bool {
        self.sources.len() > 2 * runs + 4
    }

    fn gather(&self) -> SnapshotResult<RecordBatch> {
        let sources: Vec<&RecordBatch> = self.sources.iter().collect();
        let batch = interleave_record_batch(&sources, &self.positions)
            .map_err(|e| SnapshotError::arrow("gathering merged rows", e))?;
        RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
            .map_err(|e| SnapshotError::arrow("gathering merged rows", e))
    }

    /// Copies the noted rows into one batch, which becomes the only source; the cursors
    /// register their current batch again when they next emit.
    fn compact(&mut self) -> SnapshotResult<()> {
        let batch = self.gather()?;
        self.positions = (0..batch.num_rows()).map(|row| (0, row)).collect();
        self.sources = vec![batch];
        Ok(())
    }

    /// Gathers the noted rows into one batch for the sink and forgets the sources.
    async fn flush<S: BatchSink>(&mut self, sink: &mut S) -> SnapshotResult<()> {
        if !self.positions.is_empty() {
            let batch = self.gather()?;
            self.rows += batch.num_rows() as u64;
            self.positions.clear();
            self.sources.clear();
            sink.write(batch).await?;
        }
        self.sources.clear();
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::snapshot::dedup::tests::{batch, schema};
    use deltalake::arrow::array::{AsArray, RecordBatch};
    use deltalake::arrow::datatypes::Int64Type;
    use futures::stream;

    /// Collects what a merge writes.
    #[derive(Default)]
    pub(crate) struct Collect(pub(crate) Vec<RecordBatch>);

    impl BatchSink for Collect {
        #[allow(clippy::manual_async_fn)]
        fn write(&mut self, batch: RecordBatch) -> impl Future<Output = SnapshotResult<()>> + Send {
            async move {
                self.0.push(batch);
                Ok(())
            }
        }
    }

    impl Collect {
        pub(crate) fn rows(&self) -> Vec<(String, i64)> {
            self.0
                .iter()
                .flat_map(|b| {
                    let ids = b.column(1).as_string::<i32>().clone();
                    let values = b.column(3).as_primitive::<Int64Type>().clone();
                    (0..b.num_rows())
                        .map(move |i| (ids.value(i).to_owned(), values.value(i)))
                        .collect::<Vec<_>>()
                })
                .collect()
        }
    }

    fn run(batches: Vec<RecordBatch>) -> BatchStream<'static> {
        Box::pin(stream::iter(batches.into_iter().map(Ok)))
    }

    #[tokio::test]
    async fn newest_run_wins_and_deletions_disappear() {
        let keys = KeyColumns::of(&schema(), "t").unwrap();
        let old = run(vec![
            batch(&[("a", None, 1), ("b", None, 1), ("c", None, 1)]),
            batch(&[("d", None, 1), ("e", None, 1)]),
        ]);
        let mid = run(vec![batch(&[("b", Some(9), 2), ("d", None, 2)])]);
        let new = run(vec![
            batch(&[]),
            batch(&[("b", None, 3), ("e", Some(9), 3), ("f", None, 3)]),
        ]);
        let mut sink = Collect::default();
        let rows = merge(
            vec![old, mid, new],
            schema(),
            keys,
            Tombstones::Drop,
            &mut sink,
        )
        .await
        .unwrap();
        assert_eq!(rows, 5);
        let got = sink.rows();
        let expected: Vec<(String, i64)> = [("a", 1), ("b", 3), ("c", 1), ("d", 2), ("f", 3)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(got, expected);
    }

    /// The sink receives full batches whatever the runs: the same rows split into other
    /// runs arrive in the same batches.
    #[tokio::test]
    async fn output_batches_are_full_whatever_the_runs() {
        let keys = KeyColumns::of(&schema(), "t").unwrap();
        let ids: Vec<String> = (0..SPILL_BATCH_ROWS * 2 + 100)
            .map(|i| format!("k{i:06}"))
            .collect();
        let rows = |range: std::ops::Range<usize>, step: usize| -> Vec<RecordBatch> {
            let picked: Vec<(&str, Option<i64>, i64)> = ids[range]
                .iter()
                .enumerate()
                .filter(|(i, _)| i % step == 0)
                .map(|(i, id)| (id.as_str(), None, i as i64))
                .collect();
            picked.chunks(777).map(batch).collect()
        };
        let all = ids.len();
        let one_run = vec![run(rows(0..all, 1))];
        // Interleaved runs (odd and even rows), with a newer run repeating a stretch.
        let mut evens = rows(0..all, 2);
        evens.insert(0, batch(&[]));
        let odds: Vec<RecordBatch> = {
            let picked: Vec<(&str, Option<i64>, i64)> = ids
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(i, id)| (id.as_str(), None, i as i64))
                .collect();
            picked.chunks(5000).map(batch).collect()
        };
        let newer = rows(100..3000, 1);
        let split = vec![run(evens), run(odds), run(newer)];
        let mut sizes = Vec::new();
        for runs in [one_run, split] {
            let mut sink = Collect::default();
            merge(runs, schema(), keys, Tombstones::Drop, &mut sink)
                .await
                .unwrap();
            sizes.push(sink.0.iter().map(|b| b.num_rows()).collect::<Vec<_>>());
            assert_eq!(sink.rows().len(), all);
        }
        assert_eq!(sizes[0], [SPILL_BATCH_ROWS, SPILL_BATCH_ROWS, 100]);
        assert_eq!(sizes[0], sizes[1]);
    }

    #[tokio::test]
    async fn intermediate_merges_keep_tombstones() {
        let keys = KeyColumns::of(&schema(), "t").unwrap();
        let old = run(vec![batch(&[("a", None, 1)])]);
        let new = run(vec![batch(&[("a", Some(5), 2), ("b", Some(5), 2)])]);
        let mut sink = Collect::default();
        let rows = merge(vec![old, new], schema(), keys, Tombstones::Keep, &mut sink)
            .await
            .unwrap();
        assert_eq!(rows, 2);
        assert_eq!(sink.rows(), [("a".to_string(), 2), ("b".to_string(), 2)]);
    }
}
