//! Writing a published Parquet file straight to its final key.
//!
//! The bytes go through object_store's `BufWriter`: a small file is one PUT when the writer
//! closes; a large one becomes a multipart upload whose parts stream out as row groups fill
//! up. Either way the object at the key is replaced only when the upload completes, so a
//! process killed mid-file leaves the previous file in place: S3 does not publish an
//! unfinished multipart upload (a bucket lifecycle rule should abort those after a day), and
//! object_store's local file system writes to a staging file that it renames on completion.
//! No temporary object is written and copied, which would double the bytes moved.

use std::future::Future;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::buffered::BufWriter;
use deltalake::parquet::arrow::AsyncArrowWriter;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::error::{SnapshotError, SnapshotResult};
use super::kway::BatchSink;
use super::reader::object_path;

/// Rows per row group: large enough for good compression and few footer entries, small
/// enough that BI tools can read row groups in parallel and skip by statistics.
pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Bytes buffered before the upload switches to multipart, and the part size. S3 wants at
/// least 5 MiB per part.
const UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts uploaded at once; with [`UPLOAD_PART_BYTES`] this bounds upload memory.
const UPLOAD_CONCURRENCY: usize = 2;

/// The writer settings of published files: Snappy (which every BI tool's Parquet reader
/// supports), statistics per page and chunk, sorted by key.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_created_by(format!("cdf-s3-replicator {}", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// A Parquet file being written to its final key.
pub struct ParquetSink {
    path: String,
    writer: AsyncArrowWriter<BufWriter>,
    rows: u64,
}

/// A finished file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenFile {
    pub(crate) rows: u64,
    /// Size of the object written.
    pub bytes: u64,
}

impl ParquetSink {
    /// Starts writing `path` (buffered; large files go up in parts). Nothing is visible at
    /// `path` until [`ParquetSink::close`]: an aborted sink leaves the previous object in
    /// place.
    pub fn create(store: &ObjectStoreRef, path: &str, schema: SchemaRef) -> SnapshotResult<Self> {
        let upload = BufWriter::with_capacity(store.clone(), object_path(path), UPLOAD_PART_BYTES)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        let writer = AsyncArrowWriter::try_new(upload, schema, Some(writer_properties()))
            .map_err(|e| SnapshotError::parquet(path, "starting the file", e))?;
        Ok(Self {
            path: path.to_owned(),
            writer,
            rows: 0,
        })
    }

    /// Completes the upload: from here on the key holds the new file.
    pub async fn close(self) -> SnapshotResult<WrittenFile> {
        let rows = self.rows;
        let mut writer = self.writer;
        writer
            .finish()
            .await
            .map_err(|e| SnapshotError::parquet(&self.path, "completing the upload", e))?;
        Ok(WrittenFile {
            rows,
            bytes: writer.bytes_written() as u64,
        })
    }

    /// Abandons the file: the previous object at the key stays as it was.
    pub async fn abort(self) {
        let mut upload = self.writer.into_inner();
        if let Err(error) = upload.abort().await {
            tracing::warn!(path = %self.path, %error, "could not abort an unfinished upload");
        }
    }
}

impl BatchSink for ParquetSink {
    #[allow(clippy::manual_async_fn)]
    fn write(&mut self, batch: RecordBatch) -> impl Future<Output = SnapshotResult<()>> + Send {
        async move {
            self.rows += batch.num_rows() as u64;
            self.writer
                .write(&batch)
                .await
                .map_err(|e| SnapshotError::parquet(&self.path, "writing rows", e))
        }
    }
}
