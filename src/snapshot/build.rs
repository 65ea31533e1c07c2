//! The steps a rebuild and an incremental merge share: feed raw files into the sorter in
//! arrival order, and merge sorted runs into the published file.

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
        let store = table.object_store();
        let decoded = decode_in_order(&store, files, self.raw_schema.clone(), self.sort.threads);
        let mut decoded = std::pin::pin!(decoded);
        while let Some(group) = decoded.try_next().await? {
            for batch in group.batches {
                stats.rows_read += batch.num_rows() as u64;
                sorter.push(batch).await?;
            }
        }
        stats.files_read += files.len() as u64;
        let runs = sorter.finish().await?;
        stats.spilled_runs = runs.spilled_runs;
        Ok(runs)
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
