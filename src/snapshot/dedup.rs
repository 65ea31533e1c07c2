//! The last row per key within a buffer of batches that arrived in order.
//!
//! A buffer is filled with publish batches in arrival order. Sorting it by key with a
//! stable sort keeps each key's rows in arrival order, so the last row of each run of equal
//! keys is that key's latest state within the buffer (tombstones included: a later buffer
//! or the merge decides whether a deletion removes anything).

use deltalake::arrow::array::{Array, ArrayRef, RecordBatch};
use deltalake::arrow::compute::interleave;
use deltalake::arrow::datatypes::SchemaRef;
use futures::{StreamExt, stream};

use super::cores::map_in_parallel;
use super::error::{SnapshotError, SnapshotResult};
use super::keys::{BatchKeys, KeyColumns};
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
        // Each row with its sort key and arrival position. Comparing strings dominates a
        // sort, so the key leads with integers that decide most comparisons: the rank of
        // the space among the buffer's spaces, and the 8 bytes of externalId that follow
        // the prefix every externalId of the buffer shares. Both orders agree with the
        // strings' byte order (shorter strings pad with zero bytes, which sort first), and
        // the full externalId decides when they tie.
        let spaces = SpaceRanks::of(&views);
        let shared = shared_prefix_len(&views);
        let mut rows: Vec<SortKey<'_>> = Vec::with_capacity(self.rows);
        for (b, view) in views.iter().enumerate() {
            // Buffers hold at most a memory budget of rows, far below u32::MAX batches/rows.
            let b = b as u32;
            let count = self.batches[b as usize].num_rows() as u32;
            rows.extend((0..count).map(|r| {
                let (space, external_id) = view.key(r as usize);
                SortKey {
                    space: spaces.rank(space),
                    prefix: prefix_after(external_id, shared),
                    external_id,
                    batch: b,
                    row: r,
                }
            }));
        }
        // Arrival position breaks ties, so the order is total and the last row of a run
        // of equal keys is the key's latest arrival.
        sort_in_parallel(&mut rows, threads);
        let mut latest: Vec<(usize, usize)> = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let superseded = rows
                .get(i + 1)
                .is_some_and(|next| next.space == row.space && next.external_id == row.external_id);
            if !superseded {
                latest.push((row.batch as usize, row.row as usize));
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

/// A row's place in key order, then arrival order (field order is comparison order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SortKey<'a> {
    space: u32,
    prefix: u64,
    external_id: &'a str,
    batch: u32,
    row: u32,
}

/// The spaces of a buffer, ranked in byte order (a view's rows rarely span many spaces).
struct SpaceRanks<'a> {
    sorted: Vec<&'a str>,
}

impl<'a> SpaceRanks<'a> {
    fn of(views: &'a [BatchKeys]) -> Self {
        let mut sorted: Vec<&str> = Vec::new();
        for view in views {
            let mut previous: Option<&str> = None;
            for row in 0..view.rows() {
                let space = view.key(row).0;
                if previous != Some(space) {
                    sorted.push(space);
                    previous = Some(space);
                }
            }
        }
        sorted.sort_unstable();
        sorted.dedup();
        Self { sorted }
    }

    fn rank(&self, space: &str) -> u32 {
        // Every space of the buffer is in the list; ranks fit u32 like row numbers.
        self.sorted.binary_search(&space).unwrap_or(0) as u32
    }
}

/// Bytes every externalId of the buffer starts with: the common prefix of the smallest
/// and the largest.
fn shared_prefix_len(views: &[BatchKeys]) -> usize {
    let mut ids = views
        .iter()
        .flat_map(|view| (0..view.rows()).map(move |row| view.key(row).1));
    let Some(first) = ids.next() else {
        return 0;
    };
    let (mut min, mut max) = (first, first);
    for id in ids {
        if id < min {
            min = id;
        } else if id > max {
            max = id;
        }
    }
    min.bytes()
        .zip(max.bytes())
        .take_while(|(a, b)| a == b)
        .count()
}

/// The 8 bytes of `id` after its first `skip` bytes, big-endian, zero-padded.
fn prefix_after(id: &str, skip: usize) -> u64 {
    let tail = id.as_bytes().get(skip..).unwrap_or_default();
    let mut bytes = [0u8; 8];
    let take = tail.len().min(8);
    bytes[..take].copy_from_slice(&tail[..take]);
    u64::from_be_bytes(bytes)
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
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The sorted rows as batches of `chunk_rows`, on up to `threads` threads.
    ///
    /// Gathered column by column: the rows of a buffer arrive in scattered key order, so
    /// gathering a batch of whole rows touches every column of the buffer at random, and
    /// each value is a cache miss. One column at a time, its values stay in the CPU cache
    /// while all its rows are gathered (a cache line is loaded once, not once per row),
    /// which makes the gather several times faster. Each column of the buffer is released
    /// once it is gathered, so memory stays within the buffer plus one column.
    pub(crate) fn gather(
        self,
        chunk_rows: usize,
        threads: usize,
    ) -> SnapshotResult<Vec<RecordBatch>> {
        let chunk_rows = chunk_rows.max(1);
        let order = self.order;
        let ranges: Vec<(usize, usize)> = (0..order.len())
            .step_by(chunk_rows)
            .map(|start| (start, (start + chunk_rows).min(order.len())))
            .collect();
        let sources: Vec<Vec<ArrayRef>> = (0..self.schema.fields().len())
            .map(|c| self.batches.iter().map(|b| b.column(c).clone()).collect())
            .collect();
        drop(self.batches);
        let mut columns: Vec<Vec<ArrayRef>> = Vec::with_capacity(sources.len());
        // Each source column is dropped at the end of its iteration, once gathered.
        for source in sources {
            let arrays: Vec<&dyn Array> = source.iter().map(AsRef::as_ref).collect();
            let chunks = map_in_parallel(ranges.clone(), threads, |(start, end)| {
                interleave(&arrays, &order[start..end])
            })
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SnapshotError::arrow("gathering sorted rows", e))?;
            columns.push(chunks);
        }
        let mut columns: Vec<std::vec::IntoIter<ArrayRef>> =
            columns.into_iter().map(Vec::into_iter).collect();
        ranges
            .iter()
            .map(|_| {
                let arrays: Vec<ArrayRef> = columns.iter_mut().filter_map(Iterator::next).collect();
                RecordBatch::try_new(self.schema.clone(), arrays)
                    .map_err(|e| SnapshotError::arrow("gathering sorted rows", e))
            })
            .collect()
    }

    /// The sorted rows as a stream of batches of `chunk_rows`, gathered on up to `threads`
    /// threads first ([`SortedBuffer::gather`]); each batch is released once consumed.
    pub(crate) async fn into_stream(
        self,
        chunk_rows: usize,
        threads: usize,
    ) -> SnapshotResult<BatchStream<'static>> {
        let batches = tokio::task::spawn_blocking(move || self.gather(chunk_rows, threads))
            .await
            .map_err(|source| SnapshotError::Worker {
                context: "gathering sorted rows",
                source,
            })??;
        Ok(stream::iter(batches.into_iter().map(Ok)).boxed())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

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
        let batches: Vec<RecordBatch> = sorted
            .into_stream(2, 2)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(batches.len(), 2);
        let all = deltalake::arrow::compute::concat_batches(&schema(), &batches).unwrap();
        let ids: Vec<&str> = all.column(1).as_string::<i32>().iter().flatten().collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let values = all.column(3).as_primitive::<Int64Type>();
        assert_eq!(values.values().to_vec(), [6, 5, 4]);
        // The tombstone of c is kept: a later buffer or the merge resolves it.
        assert!(all.column(2).is_valid(2));
    }

    /// The integer parts of the sort key never disagree with the strings: spaces in any
    /// order, externalIds sharing long prefixes, shorter than the shared part plus 8 bytes,
    /// ending in zero bytes or multi-byte characters; many threads or one.
    #[test]
    fn sorts_like_the_strings_do() {
        let spaces = ["sp-b", "sp-a", "sp-a\0", ""];
        let ids = [
            "item-000000001",
            "item-00000000",
            "item-000000001\0",
            "item-0000000010",
            "item-0000000019",
            "item-000000002",
            "item-00000000é",
            "item-00000000",
            "item-0000000",
            "item-000000009999999999",
        ];
        let mut rows = Vec::new();
        for round in 0..40_000i64 {
            let i = (round as usize).wrapping_mul(2_654_435_761);
            rows.push((spaces[i % spaces.len()], ids[(i / 7) % ids.len()], round));
        }
        let batches: Vec<RecordBatch> = rows
            .chunks(999)
            .map(|chunk| {
                RecordBatch::try_new(
                    schema(),
                    vec![
                        Arc::new(StringArray::from(
                            chunk.iter().map(|r| r.0).collect::<Vec<_>>(),
                        )),
                        Arc::new(StringArray::from(
                            chunk.iter().map(|r| r.1).collect::<Vec<_>>(),
                        )),
                        Arc::new(Int64Array::from(vec![None::<i64>; chunk.len()])),
                        Arc::new(Int64Array::from(
                            chunk.iter().map(|r| r.2).collect::<Vec<_>>(),
                        )),
                    ],
                )
                .unwrap()
            })
            .collect();
        let mut latest = std::collections::BTreeMap::new();
        for (space, id, round) in &rows {
            latest.insert((space.as_bytes(), id.as_bytes()), *round);
        }
        let expected: Vec<(String, String, i64)> = latest
            .into_iter()
            .map(|((s, i), r)| {
                (
                    String::from_utf8(s.to_vec()).unwrap(),
                    String::from_utf8(i.to_vec()).unwrap(),
                    r,
                )
            })
            .collect();
        let keys = KeyColumns::of(&schema(), "t").unwrap();
        for threads in [1, 4] {
            let mut buffer = SortBuffer::new(schema(), keys);
            for batch in &batches {
                buffer.push(batch.clone());
            }
            let sorted = buffer.finish(threads).unwrap();
            let all = sorted.gather(usize::MAX, threads).unwrap().remove(0);
            let got: Vec<(String, String, i64)> = (0..all.num_rows())
                .map(|i| {
                    (
                        all.column(0).as_string::<i32>().value(i).to_owned(),
                        all.column(1).as_string::<i32>().value(i).to_owned(),
                        all.column(3).as_primitive::<Int64Type>().value(i),
                    )
                })
                .collect();
            assert_eq!(got, expected, "{threads} threads");
        }
    }
}
