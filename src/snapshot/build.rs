//! The steps a rebuild and an incremental merge share: feed raw files into the sorter in
//! arrival order, and merge sorted runs into the published file.

use std::future::Future;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::ObjectStoreRef;
use futures::TryStreamExt;

use super::arrival::StreamStates;
use super::decode::decode_in_order;
use super::error::SnapshotResult;
use super::keys::KeyColumns;
use super::kway::{Tombstones, merge};
use super::reader::BatchStream;
use super::sorter::{Runs, SortSettings, Sorter};
use super::stamp::{FileStamp, STAMP_KEY};
use super::writer::{ParquetSink, WrittenFile};
use crate::lake::LakeTable;

/// Where raw rows in the publish form go, in arrival order: a [`Sorter`], or the sorters of
/// a file's parts ([`super::partitioned`]).
pub(crate) trait RowSink {
    /// Takes the next batch in arrival order.
    fn push(&mut self, batch: RecordBatch) -> impl Future<Output = SnapshotResult<()>> + Send;
}

impl RowSink for Sorter {
    #[allow(clippy::manual_async_fn)]
    fn push(&mut self, batch: RecordBatch) -> impl Future<Output = SnapshotResult<()>> + Send {
        async move { Sorter::push(self, batch).await }
    }
}

/// A raw data file to read, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFile {
    pub(crate) path: String,
    pub(crate) size: Option<u64>,
}

/// What reading the raw table took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReadStats {
    pub(crate) commits_read: u64,
    pub(crate) files_read: u64,
    pub(crate) rows_read: u64,
    pub(crate) spilled_runs: u64,
}

/// A published file and what it took to build it.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    pub(crate) written: WrittenFile,
    pub(crate) streams: StreamStates,
    pub(crate) stats: ReadStats,
}

/// One published file: where it goes, and how raw rows become its sorted, keyed rows. Both
/// the full rebuild and the incremental merge build toward one.
pub(crate) struct FileTarget<'a> {
    pub(crate) store: &'a ObjectStoreRef,
    pub(crate) path: &'a str,
    pub(crate) raw_schema: SchemaRef,
    pub(crate) publish_schema: SchemaRef,
    pub(crate) keys: KeyColumns,
    pub(crate) sort: &'a SortSettings,
    /// What the new file will say about itself; the streams' generation state is filled in
    /// when it is known, at [`FileTarget::write_merged`].
    pub(crate) stamp: FileStamp,
}

impl FileTarget<'_> {
    /// Reads `files` of `table` in order, converts them to the publish form and sorts them
    /// into runs (spilling past the sort budget). Row groups are decoded on every core the
    /// sort may use, and reach the sorter in arrival order.
    pub(crate) async fn sort_files(
        &self,
        table: &LakeTable,
        files: &[RawFile],
        stats: &mut ReadStats,
    ) -> SnapshotResult<Runs> {
        let mut sorter = Sorter::new(self.publish_schema.clone(), self.keys, self.sort.clone());
        self.read_into(table, files, stats, &mut sorter).await?;
        let runs = sorter.finish().await?;
        stats.spilled_runs = runs.spilled_runs;
        Ok(runs)
    }

    /// Reads `files` of `table` in order and hands their rows, in the publish form, to
    /// `sink`.
    pub(crate) async fn read_into<S: RowSink + Send>(
        &self,
        table: &LakeTable,
        files: &[RawFile],
        stats: &mut ReadStats,
        sink: &mut S,
    ) -> SnapshotResult<()> {
        self.read_while(table, files, stats, sink, |_, _| true)
            .await
            .map(drop)
    }

    /// Reads `files` of `table` in order into `sink` like [`FileTarget::read_into`], but
    /// asks `start` (with the file's index and the stats so far) before handing on the
    /// first row of each file, and stops before the first file it refuses. Row groups ahead
    /// are decoded meanwhile on every core the sort may use; those of a refused file are
    /// dropped unread by the sink. Returns how many files were read.
    pub(crate) async fn read_while<S, F>(
        &self,
        table: &LakeTable,
        files: &[RawFile],
        stats: &mut ReadStats,
        sink: &mut S,
        mut start: F,
    ) -> SnapshotResult<usize>
    where
        S: RowSink + Send,
        F: FnMut(usize, &ReadStats) -> bool + Send,
    {
        let store = table.object_store();
        let decoded = decode_in_order(&store, files, self.raw_schema.clone(), self.sort.threads);
        let mut decoded = std::pin::pin!(decoded);
        // Files started so far; a file without rows is started with the next one that has.
        let mut started = 0;
        loop {
            let group = decoded.try_next().await?;
            let upto = group.as_ref().map_or(files.len(), |g| g.file + 1);
            while started < upto {
                if !start(started, stats) {
                    return Ok(started);
                }
                started += 1;
                stats.files_read += 1;
            }
            let Some(group) = group else {
                return Ok(started);
            };
            for batch in group.batches {
                stats.rows_read += batch.num_rows() as u64;
                sink.push(batch).await?;
            }
        }
    }

    /// Merges `runs` (oldest first) into a new file at the target path, dropping deleted
    /// keys, stamped with the build state (`streams` after the commits read). The file
    /// replaces the previous one only if everything succeeds.
    pub(crate) async fn write_merged(
        &self,
        runs: Vec<BatchStream<'_>>,
        streams: &StreamStates,
    ) -> SnapshotResult<WrittenFile> {
        let schema = self.publish_schema.clone();
        let mut sink =
            ParquetSink::with_threads(self.store, self.path, schema.clone(), self.sort.threads)?;
        let stamp = FileStamp {
            streams: streams.clone(),
            ..self.stamp.clone()
        };
        sink.annotate(STAMP_KEY, stamp.to_json());
        match merge(runs, schema, self.keys, Tombstones::Drop, &mut sink).await {
            Ok(_) => {
                // Every row is uploaded (or buffered) but the upload is not complete: a crash
                // here must leave the previous file in place.
                crate::failpoint::hit("snapshot-before-file-complete");
                sink.close().await
            }
            Err(error) => {
                sink.abort().await;
                Err(error)
            }
        }
    }
}
