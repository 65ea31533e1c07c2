//! Reading Parquet objects as streams of Arrow batches: raw data files (converted to the
//! publish form on the way) and previously published files.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use deltalake::Path;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::{
    GetOptions, OBJECT_STORE_COALESCE_DEFAULT, ObjectStoreExt as _, coalesce_ranges,
};
use deltalake::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use deltalake::parquet::arrow::async_reader::{
    AsyncFileReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder,
};
use deltalake::parquet::errors::ParquetError;
use deltalake::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};

use super::error::{SnapshotError, SnapshotResult};
use crate::schema::{align_batch, publish_batch};

/// Rows per batch read from a Parquet file: large enough to amortize per-batch work,
/// small enough that a batch of a wide view stays a few MiB.
pub(crate) const READ_BATCH_ROWS: usize = 8192;

/// A stream of batches.
pub(crate) type BatchStream<'a> =
    Pin<Box<dyn Stream<Item = SnapshotResult<RecordBatch>> + Send + 'a>>;

/// The object path of a (decoded) file path as found in the Delta log or a layout.
pub(crate) fn object_path(path: &str) -> Path {
    Path::parse(path).unwrap_or_else(|_| Path::from(path))
}

/// Range reads of one object of known size, for the async Parquet reader.
#[derive(Clone)]
struct ObjectReader {
    store: ObjectStoreRef,
    path: Path,
    size: u64,
    /// When set, every read is conditional on this ETag (`If-Match`): an object replaced
    /// between two reads fails the read instead of mixing two files.
    e_tag: Option<String>,
}

fn external(error: deltalake::ObjectStoreError) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl ObjectReader {
    async fn fetch(&self, range: Range<u64>) -> deltalake::logstore::object_store::Result<Bytes> {
        match &self.e_tag {
            None => self.store.get_range(&self.path, range).await,
            Some(e_tag) => {
                let options = GetOptions {
                    if_match: Some(e_tag.clone()),
                    range: Some(range.into()),
                    ..GetOptions::default()
                };
                self.store
                    .get_opts(&self.path, options)
                    .await?
                    .bytes()
                    .await
            }
        }
    }
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, deltalake::parquet::errors::Result<Bytes>> {
        async move { self.fetch(range).await.map_err(external) }.boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, deltalake::parquet::errors::Result<Vec<Bytes>>> {
        async move {
            if self.e_tag.is_none() {
                return self
                    .store
                    .get_ranges(&self.path, &ranges)
                    .await
                    .map_err(external);
            }
            coalesce_ranges(
                &ranges,
                |range| self.fetch(range),
                OBJECT_STORE_COALESCE_DEFAULT,
            )
            .await
            .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, deltalake::parquet::errors::Result<Arc<ParquetMetaData>>> {
        let size = self.size;
        async move {
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// An opened Parquet object, or one row group of it.
pub(crate) struct ParquetObject {
    stream: ParquetRecordBatchStream<ObjectReader>,
}

impl ParquetObject {
    /// The Arrow schema of its rows.
    pub(crate) fn schema(&self) -> &SchemaRef {
        self.stream.schema()
    }
}

/// One version of an object: its size and, when the store gives one, its ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectVersion {
    pub(crate) size: u64,
    pub(crate) e_tag: Option<String>,
}

/// A Parquet object whose row groups are read independently of each other (so that several
/// can be decoded at once); the footer is read once.
#[derive(Clone)]
pub(crate) struct RowGroups {
    reader: ObjectReader,
    metadata: ArrowReaderMetadata,
}

impl RowGroups {
    /// The file's columns.
    pub(crate) fn schema(&self) -> &SchemaRef {
        self.metadata.schema()
    }

    pub(crate) fn count(&self) -> usize {
        self.metadata.metadata().num_row_groups()
    }

    /// Opens row group `index` for streaming: the batches are those a read of the whole
    /// file gives for this row group (batches never span row groups).
    pub(crate) fn open(self, index: usize, path: &str) -> SnapshotResult<ParquetObject> {
        let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(self.reader, self.metadata)
            .with_row_groups(vec![index])
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(|e| SnapshotError::parquet(path, "starting to read", e))?;
        Ok(ParquetObject { stream })
    }
}

/// Opens `path` (relative to `store`; of `size` bytes, when known) for streaming all its row
/// groups one after the other: one batch in memory at a time, for readers that keep many
/// files open at once (the runs of a resumable rebuild).
pub(crate) async fn open(
    store: &ObjectStoreRef,
    path: &str,
    size: Option<u64>,
) -> SnapshotResult<ParquetObject> {
    let groups = row_groups(store, path, size).await?;
    let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(groups.reader, groups.metadata)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| SnapshotError::parquet(path, "starting to read", e))?;
    Ok(ParquetObject { stream })
}

/// Reads the footer of `path` (relative to `store`; of `size` bytes, when known: that saves
/// a HEAD request) for reading its row groups.
pub(crate) async fn row_groups(
    store: &ObjectStoreRef,
    path: &str,
    size: Option<u64>,
) -> SnapshotResult<RowGroups> {
    let size = match size {
        Some(size) => size,
        None => {
            store
                .head(&object_path(path))
                .await
                .map_err(|e| SnapshotError::store("checking", path, e))?
                .size
        }
    };
    row_groups_of(store, path, ObjectVersion { size, e_tag: None }).await
}

/// Reads the footer of one version of `path` for reading its row groups: with an ETag,
/// every read is conditional on it, and a replaced object fails the read with
/// [`SnapshotError::Conflict`].
pub(crate) async fn row_groups_of(
    store: &ObjectStoreRef,
    path: &str,
    version: ObjectVersion,
) -> SnapshotResult<RowGroups> {
    let mut reader = ObjectReader {
        store: store.clone(),
        path: object_path(path),
        size: version.size,
        e_tag: version.e_tag,
    };
    let metadata = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::default())
        .await
        .map_err(|e| SnapshotError::parquet(path, "reading the footer", e))?;
    Ok(RowGroups { reader, metadata })
}

/// The footer of one version of `path` (conditional on its ETag, like [`row_groups_of`]).
pub(crate) async fn footer(
    store: &ObjectStoreRef,
    path: &str,
    version: ObjectVersion,
) -> SnapshotResult<Arc<ParquetMetaData>> {
    let mut reader = ObjectReader {
        store: store.clone(),
        path: object_path(path),
        size: version.size,
        e_tag: version.e_tag,
    };
    reader
        .get_metadata(None)
        .await
        .map_err(|e| SnapshotError::parquet(path, "reading the footer", e))
}

/// The batches of a Parquet object as they are stored.
pub(crate) fn batches<'a>(object: ParquetObject, path: &'a str) -> BatchStream<'a> {
    object
        .stream
        .map_err(move |e| SnapshotError::parquet(path, "reading a row group", e))
        .boxed()
}

/// The batches of a raw data file in the publish form of `raw_schema`, the table schema:
/// columns the file predates come out as nulls, losslessly widened columns are widened, and
/// lists become JSON text.
pub(crate) fn publish_batches<'a>(
    object: ParquetObject,
    path: &'a str,
    raw_schema: SchemaRef,
) -> BatchStream<'a> {
    batches(object, path)
        .map(move |batch| {
            let batch = batch?;
            let aligned =
                align_batch(&batch, &raw_schema).map_err(|source| SnapshotError::Align {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?;
            publish_batch(&aligned).map_err(|source| SnapshotError::Publish {
                path: path.to_owned(),
                source: Box::new(source),
            })
        })
        .boxed()
}

/// The batches of a previously published file, labelled with `schema` (the same columns;
/// field metadata as read back may differ, and writers compare schemas exactly).
pub(crate) fn batches_as<'a>(
    object: ParquetObject,
    path: &'a str,
    schema: SchemaRef,
) -> BatchStream<'a> {
    batches(object, path)
        .map(move |batch| {
            let batch = batch?;
            RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                .map_err(|e| SnapshotError::arrow(format!("reading {path}"), e))
        })
        .boxed()
}
