//! Writing a published Parquet file straight to its final key.
//!
//! The bytes go through [`Upload`]: a small file is one PUT when the writer closes; a large
//! one becomes a multipart upload whose parts stream out as row groups fill up. Either way
//! the object at the key is replaced only when the upload completes, so a process killed
//! mid-file leaves the previous file in place: S3 does not publish an unfinished multipart
//! upload (a bucket lifecycle rule should abort those after a day), and object_store's local
//! file system writes to a staging file that it renames on completion. No temporary object is
//! written and copied, which would double the bytes moved.
//!
//! The upload keeps what the store answered when it completed, the new object's ETag: that
//! is how a run later proves that the object at the key is still the one it wrote (see
//! [`super::view`]).

use std::future::Future;

use bytes::Bytes;
use deltalake::ObjectStoreError;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::{PutPayloadMut, PutResult, WriteMultipart};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::errors::ParquetError;
use deltalake::parquet::file::metadata::KeyValue;
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::parquet::schema::types::ColumnPath;

use super::cores;
use super::encode::RowGroupEncoder;
use super::error::{SnapshotError, SnapshotResult};
use super::kway::BatchSink;
use super::reader::object_path;
use crate::schema::system::EXTERNAL_ID;

/// Rows per row group: large enough for good compression and few footer entries, small
/// enough that BI tools can read row groups in parallel and skip by statistics.
pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Bytes buffered before the upload switches to multipart, and the part size. S3 wants at
/// least 5 MiB per part.
const UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts uploaded at once; with [`UPLOAD_PART_BYTES`] this bounds upload memory.
const UPLOAD_CONCURRENCY: usize = 2;

/// The writer settings of published files: Snappy (which every BI tool's Parquet reader
/// supports), statistics per page and chunk, sorted by key. `externalId` is unique within a
/// space, so a dictionary for it would only cost time before the writer gave it up.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_created_by(format!("cdf-s3-replicator {}", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_column_dictionary_enabled(ColumnPath::from(EXTERNAL_ID), false)
        .build()
}

/// A Parquet file being written to its final key. Row groups are encoded on every core
/// the process may use ([`RowGroupEncoder`]) while the caller produces the next rows.
pub struct ParquetSink {
    path: String,
    encoder: RowGroupEncoder,
    upload: Upload,
    rows: u64,
}

/// A finished file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub(crate) rows: u64,
    /// Size of the object written.
    pub bytes: u64,
    /// The ETag the store gave the new object, when it gives one.
    pub e_tag: Option<String>,
}

impl ParquetSink {
    /// Starts writing `path` (buffered; large files go up in parts). Nothing is visible at
    /// `path` until [`ParquetSink::close`]: an aborted sink leaves the previous object in
    /// place.
    pub fn create(store: &ObjectStoreRef, path: &str, schema: SchemaRef) -> SnapshotResult<Self> {
        Self::with_threads(store, path, schema, cores::available())
    }

    /// [`ParquetSink::create`], encoding on at most `threads` threads. The bytes written do
    /// not depend on `threads`.
    pub fn with_threads(
        store: &ObjectStoreRef,
        path: &str,
        schema: SchemaRef,
        threads: usize,
    ) -> SnapshotResult<Self> {
        let encoder = RowGroupEncoder::new(schema, writer_properties(), threads)
            .map_err(|e| SnapshotError::parquet(path, "starting the file", e))?;
        Ok(Self {
            path: path.to_owned(),
            encoder,
            upload: Upload::new(store.clone(), path),
            rows: 0,
        })
    }

    /// Adds an entry to the footer's key-value metadata.
    pub fn annotate(&mut self, key: &str, value: String) {
        self.encoder
            .append_key_value_metadata(KeyValue::new(key.to_owned(), value));
    }

    /// Hands the encoded bytes to the upload.
    async fn upload_encoded(&mut self) -> SnapshotResult<()> {
        let bytes = self.encoder.take_bytes();
        if bytes.is_empty() {
            return Ok(());
        }
        self.upload
            .push(Bytes::from(bytes))
            .await
            .map_err(|e| SnapshotError::store("writing", &self.path, e))
    }

    /// Completes the upload: from here on the key holds the new file.
    pub async fn close(mut self) -> SnapshotResult<WrittenFile> {
        if let Err(error) = self.encoder.finish().await {
            return Err(upload_error(&self.path, "completing the upload", error));
        }
        self.upload_encoded().await?;
        self.upload
            .finish()
            .await
            .map_err(|e| SnapshotError::store("writing", &self.path, e))?;
        Ok(WrittenFile {
            rows: self.rows,
            bytes: self.encoder.bytes_written() as u64,
            e_tag: self.upload.result.and_then(|r| r.e_tag),
        })
    }

    /// Abandons the file: the previous object at the key stays as it was.
    pub async fn abort(self) {
        if let Err(error) = self.upload.abort().await {
            tracing::warn!(path = %self.path, %error, "could not abort an unfinished upload");
        }
    }
}

/// An error of completing a file: the store's own error when the store failed (so that it
/// is classified like every other store error), the Parquet error otherwise.
fn upload_error(path: &str, context: &'static str, error: ParquetError) -> SnapshotError {
    match error {
        ParquetError::External(source) => match source.downcast::<ObjectStoreError>() {
            Ok(store) => SnapshotError::store("writing", path, *store),
            Err(other) => SnapshotError::parquet(path, context, ParquetError::External(other)),
        },
        other => SnapshotError::parquet(path, context, other),
    }
}

impl BatchSink for ParquetSink {
    #[allow(clippy::manual_async_fn)]
    fn write(&mut self, batch: RecordBatch) -> impl Future<Output = SnapshotResult<()>> + Send {
        async move {
            self.rows += batch.num_rows() as u64;
            self.encoder
                .write(batch)
                .await
                .map_err(|e| upload_error(&self.path, "writing rows", e))?;
            self.upload_encoded().await
        }
    }
}

/// The bytes of one object on their way to the store: buffered up to one part, then a
/// multipart upload with [`UPLOAD_CONCURRENCY`] parts in flight. Keeps the store's answer.
struct Upload {
    store: ObjectStoreRef,
    path: deltalake::Path,
    state: UploadState,
    /// What the store answered when the object was completed.
    result: Option<PutResult>,
}

enum UploadState {
    Buffer(PutPayloadMut),
    Parts(WriteMultipart),
    Done,
}

impl Upload {
    fn new(store: ObjectStoreRef, path: &str) -> Self {
        Self {
            store,
            path: object_path(path),
            state: UploadState::Buffer(PutPayloadMut::new()),
            result: None,
        }
    }

    async fn push(&mut self, bytes: Bytes) -> Result<(), ObjectStoreError> {
        match &mut self.state {
            UploadState::Buffer(buffer)
                if buffer.content_length().saturating_add(bytes.len()) < UPLOAD_PART_BYTES =>
            {
                buffer.push(bytes);
            }
            UploadState::Buffer(buffer) => {
                let buffered = std::mem::take(buffer).freeze();
                let upload = self
                    .store
                    .put_multipart_opts(&self.path, Default::default())
                    .await?;
                let mut parts = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART_BYTES);
                for chunk in buffered {
                    parts.put(chunk);
                }
                parts.put(bytes);
                self.state = UploadState::Parts(parts);
            }
            UploadState::Parts(parts) => {
                parts.wait_for_capacity(UPLOAD_CONCURRENCY).await?;
                parts.put(bytes);
            }
            UploadState::Done => {
                return Err(ObjectStoreError::Generic {
                    store: "publish upload",
                    source: "written after completion".into(),
                });
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), ObjectStoreError> {
        let result = match std::mem::replace(&mut self.state, UploadState::Done) {
            UploadState::Buffer(buffer) => {
                self.store
                    .put_opts(&self.path, buffer.freeze(), Default::default())
                    .await?
            }
            UploadState::Parts(parts) => parts.finish().await?,
            UploadState::Done => return Ok(()),
        };
        self.result = Some(result);
        Ok(())
    }

    async fn abort(self) -> Result<(), ObjectStoreError> {
        match self.state {
            UploadState::Parts(parts) => parts.abort().await,
            UploadState::Buffer(_) | UploadState::Done => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::StringArray;
    use deltalake::arrow::datatypes::{DataType, Field, Schema};
    use deltalake::logstore::object_store::ObjectStoreExt as _;

    use super::*;
    use crate::snapshot::reader::{self, ObjectVersion};

    fn batch(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        let ids: Vec<String> = (0..rows)
            .map(|_| format!("{:016x}", rand::random::<u64>()))
            .collect();
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(ids))]).unwrap()
    }

    async fn write(store: &ObjectStoreRef, path: &str, rows: usize, note: &str) -> WrittenFile {
        let batch = batch(rows);
        let mut sink = ParquetSink::create(store, path, batch.schema()).unwrap();
        sink.annotate("note", note.to_owned());
        sink.write(batch).await.unwrap();
        sink.close().await.unwrap()
    }

    /// The ETag a sink reports is the one the store serves for the key, for a single PUT
    /// and for a multipart upload; the footer carries the annotation; a read pinned to an
    /// ETag that is no longer at the key fails as a conflict.
    async fn sinks_report_the_stored_object(store: ObjectStoreRef) {
        // Random ids barely compress: about 12 bytes a row, so 1M rows take two parts.
        for (rows, label) in [(10, "small"), (1_000_000, "multipart")] {
            let path = format!("publish/{label}.parquet");
            let first = write(&store, &path, rows, "first").await;
            assert_eq!(
                first.bytes > UPLOAD_PART_BYTES as u64,
                label == "multipart",
                "{label}: {} bytes",
                first.bytes
            );
            let meta = store.head(&reader::object_path(&path)).await.unwrap();
            assert!(first.e_tag.is_some(), "{label}");
            assert_eq!(first.e_tag, meta.e_tag, "{label}");
            assert_eq!(first.bytes, meta.size, "{label}");
            let pinned = ObjectVersion {
                size: meta.size,
                e_tag: meta.e_tag.clone(),
            };
            let footer = reader::footer(&store, &path, pinned.clone()).await.unwrap();
            let notes = footer.file_metadata().key_value_metadata().unwrap();
            assert!(
                notes
                    .iter()
                    .any(|kv| kv.key == "note" && kv.value.as_deref() == Some("first")),
                "{label}: {notes:?}"
            );

            let second = write(&store, &path, 10, "second").await;
            assert_ne!(second.e_tag, first.e_tag, "{label}");
            let error = reader::footer(&store, &path, pinned).await.unwrap_err();
            assert!(error.is_conflict(), "{label}: {error}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sinks_report_the_stored_object_in_memory() {
        let store: ObjectStoreRef =
            Arc::new(deltalake::logstore::object_store::memory::InMemory::new());
        sinks_report_the_stored_object(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sinks_report_the_stored_object_on_a_local_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let store: ObjectStoreRef = Arc::new(
            deltalake::logstore::object_store::local::LocalFileSystem::new_with_prefix(dir.path())
                .unwrap(),
        );
        sinks_report_the_stored_object(store).await;
    }
}
