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
use deltalake::logstore::object_store::ObjectStoreExt as _;
use deltalake::parquet::arrow::arrow_reader::ArrowReaderOptions;
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
struct ObjectReader {
    store: ObjectStoreRef,
    path: Path,
    size: u64,
}

fn external(error: deltalake::ObjectStoreError) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, deltalake::parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, deltalake::parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
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

/// An opened Parquet object.
pub(crate) struct ParquetObject {
    stream: ParquetRecordBatchStream<ObjectReader>,
    pub(crate) schema: SchemaRef,
}

/// Opens `path` (relative to `store`) for streaming. `size` saves a HEAD request when the
/// caller knows it.
pub(crate) async fn open(
    store: &ObjectStoreRef,
    path: &str,
    size: Option<u64>,
) -> SnapshotResult<ParquetObject> {
    let location = object_path(path);
    let size = match size {
        Some(size) => size,
        None => {
            store
                .head(&location)
                .await
                .map_err(|e| SnapshotError::store("checking", path, e))?
                .size
        }
    };
    let reader = ObjectReader {
        store: store.clone(),
        path: location,
        size,
    };
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| SnapshotError::parquet(path, "reading the footer", e))?;
    let schema = builder.schema().clone();
    let stream = builder
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| SnapshotError::parquet(path, "starting to read", e))?;
    Ok(ParquetObject { stream, schema })
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
