//! The steps a rebuild and an incremental merge share: feed raw files into the sorter in
//! arrival order, and merge sorted runs into the published file.

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::ObjectStoreRef;
use futures::{StreamExt, TryStreamExt};

use super::arrival::StreamStates;
use super::error::SnapshotResult;
use super::keys::KeyColumns;
use super::kway::{Tombstones, merge};
use super::reader::{self, BatchStream};
use super::sorter::{Runs, Sorter};
use super::writer::{ParquetSink, WrittenFile};

/// Raw files whose footers are fetched ahead of the file being read, to hide S3 latency.
const FILES_OPENED_AHEAD: usize = 2;

/// A raw data file to read, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFile {
    pub path: String,
    pub size: Option<u64>,
}

/// What reading the raw table took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub commits_read: u64,
    pub files_read: u64,
    pub rows_read: u64,
    pub spilled_runs: u64,
}

/// A published file and what it took to build it.
#[derive(Debug, Clone)]
pub struct Built {
    pub written: WrittenFile,
    pub streams: StreamStates,
    pub stats: ReadStats,
}

/// Reads `files` (relative to the table's `store`) in order, converts them to the publish
/// form of `raw_schema` and sorts them into runs (spilling past the sorter's budget).
pub async fn sort_files(
    mut sorter: Sorter,
    store: &ObjectStoreRef,
    files: &[RawFile],
    raw_schema: &SchemaRef,
    stats: &mut ReadStats,
) -> SnapshotResult<Runs> {
    let mut opened = futures::stream::iter(files.iter())
        .map(|file| async move {
            reader::open(store, &file.path, file.size)
                .await
                .map(|object| (file, object))
        })
        .buffered(FILES_OPENED_AHEAD);
    while let Some(next) = opened.next().await {
        let (file, object) = next?;
        stats.files_read += 1;
        let mut batches = reader::publish_batches(object, &file.path, raw_schema.clone());
        while let Some(batch) = batches.try_next().await? {
            stats.rows_read += batch.num_rows() as u64;
            sorter.push(batch).await?;
        }
    }
    let runs = sorter.finish().await?;
    stats.spilled_runs = runs.spilled_runs;
    Ok(runs)
}

/// Merges `runs` (oldest first) into a new published file at `path`, dropping deleted
/// keys. The file replaces the previous one only if everything succeeds.
pub async fn write_merged(
    store: &ObjectStoreRef,
    path: &str,
    schema: SchemaRef,
    keys: KeyColumns,
    runs: Vec<BatchStream<'_>>,
) -> SnapshotResult<WrittenFile> {
    let mut sink = ParquetSink::create(store, path, schema.clone())?;
    match merge(runs, schema, keys, Tombstones::Drop, &mut sink).await {
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
