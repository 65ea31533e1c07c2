//! The last row per key within a buffer of batches that arrived in order.
//!
//! A buffer is filled with publish batches in arrival order. Sorting it by key with a
//! stable sort keeps each key's rows in arrival order, so the last row of each run of equal
//! keys is that key's latest state within the buffer (tombstones included: a later buffer
//! or the merge decides whether a deletion removes anything).

use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::interleave_record_batch;
use deltalake::arrow::datatypes::SchemaRef;
use futures::{StreamExt, TryStreamExt, stream};

use super::cores::map_in_parallel;
use super::error::{SnapshotError, SnapshotResult};
use super::keys::KeyColumns;
use super::reader::BatchStream;

/// Batches collected in arrival order, with their memory use.
pub(crate) struct SortBuffer {
    schema: SchemaRef,
    keys: KeyColumns,
    batches: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
}

impl SortBuffer {
    pub(crate) fn new(schema: SchemaRef, keys: KeyColumns) -> Self {
        Self {
            schema,
            keys,
            batches: Vec::new(),
            rows: 0,
            bytes: 0,
        }
    }

    pub(crate) fn push(&mut self, batch: RecordBatch) {
        if batch.num_rows() == 0 {
            return;
        }
        self.rows += batch.num_rows();
        self.bytes += batch.get_array_memory_size();
        self.batches.push(batch);
    }

    /// Memory held by the buffered batches.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Sorts by key and keeps the last arrival of each key, on up to `threads` threads.
    pub(crate) fn finish(self, threads: usize) -> SnapshotResult<SortedBuffer> {
        let views = self
            .batches
            .iter()
            .map(|b| self.keys.view(b))
            .collect::<SnapshotResult<Vec<_>>>()?;
        // Each row with its key and arrival position: (space, externalId, batch, row). The
        // keys are read once here, so comparisons touch only the strings.
        let mut rows: Vec<(&str, &str, u32, u32)> = Vec::with_capacity(self.rows);
        for (b, view) in views.iter().enumerate() {
            // Buffers hold at most a memory budget of rows, far below u32::MAX batches/rows.
            let b = b as u32;
            let count = self.batches[b as usize].num_rows() as u32;
            rows.extend((0..count).map(|r| {
                let (space, external_id) = view.key(r as usize);
                (space, external_id, b, r)
            }));
        }
        // Arrival position breaks ties, so the order is total and the last row of a run
        // of equal keys is the key's latest arrival.
        sort_in_parallel(&mut rows, threads);
        let mut latest: Vec<(usize, usize)> = Vec::with_capacity(rows.len());
        for (i, &(space, external_id, b, r)) in rows.iter().enumerate() {
            let superseded = rows
                .get(i + 1)
                .is_some_and(|next| next.0 == space && next.1 == external_id);
            if !superseded {
                latest.push((b as usize, r as usize));
            }
        }
        drop(rows);
        drop(views);
        Ok(SortedBuffer {
            schema: self.schema,
            batches: self.batches,
            order: latest,
        })
    }
}

/// Rows below which one thread sorts faster than several start.
const PARALLEL_SORT_MIN_ROWS: usize = 1 << 15;

/// Sorts `rows`: `threads` contiguous parts at once, then one merge of the sorted parts
/// (the standard stable sort finds and merges them in a single pass each).
fn sort_in_parallel<T: Ord + Send>(rows: &mut [T], threads: usize) {
    if threads <= 1 || rows.len() < PARALLEL_SORT_MIN_ROWS {
        rows.sort_unstable();
        return;
    }
    let part = rows.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for chunk in rows.chunks_mut(part) {
            scope.spawn(move || chunk.sort_unstable());
        }
    });
    rows.sort();
}

/// A buffer's rows in key order, one row per key, not yet materialized.
pub(crate) struct SortedBuffer {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    order: Vec<(usize, usize)>,
}

impl SortedBuffer {
    pub(crate) fn rows(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows `start..start + len` of the sorted order as one batch.
    pub(crate) fn chunk(&self, start: usize, len: usize) -> SnapshotResult<RecordBatch> {
        let end = (start + len).min(self.order.len());
        let refs: Vec<&RecordBatch> = self.batches.iter().collect();
        if refs.is_empty() {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        interleave_record_batch(&refs, &self.order[start..end])
            .map_err(|e| SnapshotError::arrow("gathering sorted rows", e))
    }

    /// The sorted rows as a stream of batches of `chunk_rows`. Batches are gathered
    /// `threads` at a time on blocking threads, one such wave ahead of the consumer, so the
    /// buffer is never held twice and the merge does not wait for the gathering.
    pub(crate) fn into_stream(self, chunk_rows: usize, threads: usize) -> BatchStream<'static> {
        let this = Arc::new(self);
        let chunk_rows = chunk_rows.max(1);
        let threads = threads.max(1);
        let starts: Vec<usize> = (0..this.rows()).step_by(chunk_rows).collect();
        let waves: Vec<Vec<usize>> = starts.chunks(threads).map(<[usize]>::to_vec).collect();
        stream::iter(waves)
            .map(move |wave| {
                let this = this.clone();
                tokio::task::spawn_blocking(move || {
                    map_in_parallel(wave, threads, |start| this.chunk(start, chunk_rows))
                })
            })
            .buffered(2)
            .map(|gathered| {
                let batches = gathered.map_err(|source| SnapshotError::Worker {
                    context: "gathering sorted rows",
                    source,
                })?;
                Ok::<_, SnapshotError>(stream::iter(batches))
            })
            .try_flatten()
            .boxed()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use deltalake::arrow::array::{Array, AsArray, Int64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use futures::TryStreamExt;

    pub(crate) fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("space", DataType::Utf8, false),
            Field::new("externalId", DataType::Utf8, false),
            Field::new("deletedTime", DataType::Int64, true),
            Field::new("value", DataType::Int64, true),
        ]))
    }

    pub(crate) fn batch(rows: &[(&str, Option<i64>, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec!["s"; rows.len()])),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn keeps_the_last_arrival_per_key_in_key_order() {
        let keys = KeyColumns::of(&schema(), "t").unwrap();
        let mut buffer = SortBuffer::new(schema(), keys);
        buffer.push(batch(&[("b", None, 1), ("a", None, 2), ("b", Some(5), 3)]));
        buffer.push(batch(&[("c", Some(1), 4), ("b", None, 5), ("a", None, 6)]));
        let sorted = buffer.finish(1).unwrap();
        let batches: Vec<RecordBatch> = sorted.into_stream(2, 2).try_collect().await.unwrap();
        assert_eq!(batches.len(), 2);
        let all = deltalake::arrow::compute::concat_batches(&schema(), &batches).unwrap();
        let ids: Vec<&str> = all.column(1).as_string::<i32>().iter().flatten().collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let values = all.column(3).as_primitive::<Int64Type>();
        assert_eq!(values.values().to_vec(), [6, 5, 4]);
        // The tombstone of c is kept: a later buffer or the merge resolves it.
        assert!(all.column(2).is_valid(2));
    }
}
