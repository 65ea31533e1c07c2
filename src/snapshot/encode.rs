//! Encoding a published file on every core while the merge goes on.
//!
//! Each batch is encoded column by column on up to `threads` threads (on a blocking thread
//! of the runtime) while the merge produces the next one: at most one batch is encoding at
//! a time, and rows are never buffered beyond it, so memory holds two batches plus the
//! encoded pages of the open row group. Row groups hold exactly `row_group_rows` rows (the
//! last one fewer), batches being split at their boundary.
//!
//! The bytes written depend on the batches given (Parquet's page boundaries follow them),
//! not on the thread count. The merge gives batches of a fixed size ([`super::kway`]), so a
//! published file depends on its rows only. The file writer, footer and key-value metadata
//! are Parquet's own ([`ArrowWriter::into_serialized_writer`]), so files read as before.
//! The file starts with its first batch, whose rows decide which columns get a dictionary
//! ([`super::dictionary`]).

use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use deltalake::parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use deltalake::parquet::errors::{ParquetError, Result};
use deltalake::parquet::file::metadata::KeyValue;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::file::writer::SerializedFileWriter;
use tokio::task::JoinHandle;

use super::cores::map_in_parallel;
use super::dictionary;

/// Writes a Parquet file into memory, encoding columns in parallel. The caller takes the
/// finished bytes out with [`RowGroupEncoder::take_bytes`].
pub(crate) struct RowGroupEncoder {
    file: File,
    schema: SchemaRef,
    /// Leaf (Parquet) columns of each Arrow field, in order.
    leaves: Arc<Vec<usize>>,
    row_group_rows: usize,
    threads: usize,
    /// The column writers of the open row group, while no batch is encoding.
    writers: Option<Vec<ArrowColumnWriter>>,
    /// The batch being encoded; it hands the column writers back.
    encoding: Option<JoinHandle<Result<Vec<ArrowColumnWriter>>>>,
    /// Rows given to the open row group.
    group_rows: usize,
    row_groups_started: usize,
}

/// The file writer, started by the first batch.
enum File {
    /// No rows yet: the settings and footer entries wait for them.
    Waiting {
        properties: WriterProperties,
        metadata: Vec<KeyValue>,
    },
    Started {
        writer: SerializedFileWriter<Vec<u8>>,
        factory: ArrowRowGroupWriterFactory,
    },
}

impl RowGroupEncoder {
    pub(crate) fn new(
        schema: SchemaRef,
        properties: WriterProperties,
        threads: usize,
    ) -> Result<Self> {
        let row_group_rows = properties
            .max_row_group_row_count()
            .unwrap_or(usize::MAX)
            .max(1);
        let descriptor = ArrowSchemaConverter::new()
            .with_coerce_types(properties.coerce_types())
            .convert(&schema)?;
        let mut leaves = vec![0usize; schema.fields().len()];
        for leaf in 0..descriptor.num_columns() {
            match leaves.get_mut(descriptor.get_column_root_idx(leaf)) {
                Some(count) => *count += 1,
                None => {
                    return Err(ParquetError::General(
                        "a Parquet column without its Arrow field".into(),
                    ));
                }
            }
        }
        Ok(Self {
            file: File::Waiting {
                properties,
                metadata: Vec::new(),
            },
            schema,
            leaves: Arc::new(leaves),
            row_group_rows,
            threads: threads.max(1),
            writers: None,
            encoding: None,
            group_rows: 0,
            row_groups_started: 0,
        })
    }

    pub(crate) fn append_key_value_metadata(&mut self, entry: KeyValue) {
        match &mut self.file {
            File::Waiting { metadata, .. } => metadata.push(entry),
            File::Started { writer, .. } => writer.append_key_value_metadata(entry),
        }
    }

    /// The file writer and its column writer factory, started with settings fitted to
    /// `first` (the file's first rows) if it was waiting for them.
    fn started(
        &mut self,
        first: Option<&RecordBatch>,
    ) -> Result<(
        &mut SerializedFileWriter<Vec<u8>>,
        &ArrowRowGroupWriterFactory,
    )> {
        if let File::Waiting {
            properties,
            metadata,
        } = &mut self.file
        {
            let properties = std::mem::take(properties);
            let properties = match first {
                Some(batch) => dictionary::fitted(properties, batch, self.row_group_rows),
                None => properties,
            };
            let (mut writer, factory) =
                ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(properties))?
                    .into_serialized_writer()?;
            for entry in std::mem::take(metadata) {
                writer.append_key_value_metadata(entry);
            }
            self.file = File::Started { writer, factory };
        }
        match &mut self.file {
            File::Started { writer, factory } => Ok((writer, factory)),
            File::Waiting { .. } => unreachable!("the file was started above"),
        }
    }

    /// Adds rows (in file order). Waits only for the previous batch to finish encoding.
    pub(crate) async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let same_types = batch.num_columns() == self.schema.fields().len()
            && batch
                .schema()
                .fields()
                .iter()
                .zip(self.schema.fields())
                .all(|(a, b)| a.data_type() == b.data_type());
        if !same_types {
            return Err(ParquetError::General(format!(
                "a batch of schema {} does not fit the file's schema {}",
                batch.schema(),
                self.schema
            )));
        }
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (self.row_group_rows - self.group_rows).min(batch.num_rows() - offset);
            self.encode(batch.slice(offset, take)).await?;
            self.group_rows += take;
            offset += take;
            if self.group_rows == self.row_group_rows {
                self.close_row_group().await?;
            }
        }
        Ok(())
    }

    /// The bytes completed since the last call (whole row groups, then the footer).
    pub(crate) fn take_bytes(&mut self) -> Vec<u8> {
        match &mut self.file {
            File::Started { writer, .. } => std::mem::take(writer.inner_mut()),
            File::Waiting { .. } => Vec::new(),
        }
    }

    /// Bytes of the file so far, taken or not.
    pub(crate) fn bytes_written(&self) -> usize {
        match &self.file {
            File::Started { writer, .. } => writer.bytes_written(),
            File::Waiting { .. } => 0,
        }
    }

    /// Completes the last row group and writes the footer.
    pub(crate) async fn finish(&mut self) -> Result<()> {
        self.close_row_group().await?;
        self.started(None)?.0.finish()?;
        Ok(())
    }

    /// Starts encoding `batch` into the open row group (opening one if needed).
    async fn encode(&mut self, batch: RecordBatch) -> Result<()> {
        let writers = match self.open_writers().await? {
            Some(writers) => writers,
            None => {
                self.row_groups_started += 1;
                let index = self.row_groups_started - 1;
                self.started(Some(&batch))?.1.create_column_writers(index)?
            }
        };
        let (schema, leaves, threads) = (self.schema.clone(), self.leaves.clone(), self.threads);
        self.encoding = Some(tokio::task::spawn_blocking(move || {
            encode_batch(&schema, &leaves, writers, &batch, threads)
        }));
        Ok(())
    }

    /// The column writers of the open row group, once no batch is encoding; `None` when
    /// no row group is open.
    async fn open_writers(&mut self) -> Result<Option<Vec<ArrowColumnWriter>>> {
        if let Some(encoding) = self.encoding.take() {
            let writers = encoding
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))??;
            return Ok(Some(writers));
        }
        Ok(self.writers.take())
    }

    /// Closes the open row group (its last pages are compressed in parallel) and appends it
    /// to the file.
    async fn close_row_group(&mut self) -> Result<()> {
        let Some(writers) = self.open_writers().await? else {
            return Ok(());
        };
        self.group_rows = 0;
        let threads = self.threads;
        let chunks = tokio::task::spawn_blocking(move || {
            map_in_parallel(writers, threads, ArrowColumnWriter::close)
                .into_iter()
                .collect::<Result<Vec<ArrowColumnChunk>>>()
        })
        .await
        .map_err(|e| ParquetError::External(Box::new(e)))??;
        let mut row_group = self.started(None)?.0.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        Ok(())
    }
}

/// Encodes one batch: each field's column by its own writers, fields spread over
/// `threads`. Hands the writers back in column order.
fn encode_batch(
    schema: &SchemaRef,
    leaves: &[usize],
    writers: Vec<ArrowColumnWriter>,
    batch: &RecordBatch,
    threads: usize,
) -> Result<Vec<ArrowColumnWriter>> {
    let mut writers = writers.into_iter();
    let jobs: Vec<(usize, Vec<ArrowColumnWriter>)> = leaves
        .iter()
        .enumerate()
        .map(|(field, &count)| (field, writers.by_ref().take(count).collect()))
        .collect();
    let encoded = map_in_parallel(jobs, threads, |(field, mut writers)| {
        let leaves = compute_leaves(schema.field(field), batch.column(field))?;
        for (writer, leaf) in writers.iter_mut().zip(&leaves) {
            writer.write(leaf)?;
        }
        Ok::<_, ParquetError>(writers)
    });
    let mut writers = Vec::with_capacity(leaves.iter().sum());
    for field in encoded {
        writers.extend(field?);
    }
    Ok(writers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::dedup::tests::{batch, schema};

    async fn encode(slices: &[usize], threads: usize) -> Vec<u8> {
        let rows: Vec<(String, Option<i64>, i64)> = (0..1000)
            .map(|i| (format!("k{i:05}"), (i % 7 == 0).then_some(1), i * 3))
            .collect();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(300))
            .set_data_page_row_count_limit(64)
            .set_write_batch_size(16)
            .build();
        let mut encoder = RowGroupEncoder::new(schema(), properties, threads).unwrap();
        encoder.append_key_value_metadata(KeyValue::new("note".into(), "x".to_owned()));
        let mut start = 0;
        let mut out = Vec::new();
        for &len in slices.iter().cycle() {
            if start >= rows.len() {
                break;
            }
            let end = (start + len).min(rows.len());
            let part: Vec<(&str, Option<i64>, i64)> = rows[start..end]
                .iter()
                .map(|(k, d, v)| (k.as_str(), *d, *v))
                .collect();
            encoder.write(batch(&part)).await.unwrap();
            out.extend(encoder.take_bytes());
            start = end;
        }
        encoder.finish().await.unwrap();
        out.extend(encoder.take_bytes());
        assert_eq!(out.len(), encoder.bytes_written());
        out
    }

    fn read(bytes: Vec<u8>) -> (Vec<i64>, RecordBatch) {
        let reader =
            deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes::Bytes::from(bytes),
            )
            .unwrap();
        let groups = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        let kv = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap();
        assert!(kv.iter().any(|e| e.key == "note"));
        let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let rows = deltalake::arrow::compute::concat_batches(&schema(), &batches).unwrap();
        (groups, rows)
    }

    /// Same batches, same bytes, however many threads encode them. Batches are split at
    /// row group boundaries, and every column keeps its own values.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_do_not_depend_on_the_thread_count() {
        let reference = encode(&[128], 1).await;
        for threads in [2, 3, 8] {
            assert!(
                encode(&[128], threads).await == reference,
                "{threads} threads"
            );
        }
        let (groups, rows) = read(reference);
        assert_eq!(groups, [300, 300, 300, 100]);
        let expected: Vec<(String, Option<i64>, i64)> = (0..1000)
            .map(|i| (format!("k{i:05}"), (i % 7 == 0).then_some(1), i * 3))
            .collect();
        let expected: Vec<(&str, Option<i64>, i64)> = expected
            .iter()
            .map(|(k, d, v)| (k.as_str(), *d, *v))
            .collect();
        assert_eq!(rows, batch(&expected));
        // Other batches may give other pages, never other rows.
        let (groups, other) = read(encode(&[7, 300, 1], 4).await);
        assert_eq!(groups, [300, 300, 300, 100]);
        assert_eq!(other, rows);
    }

    /// The file starts with its first batch, which decides the dictionaries: columns whose
    /// values never repeat are written without one, a repeating column with one, and footer
    /// entries given before any row are kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn columns_that_never_repeat_are_written_without_a_dictionary() {
        let ids: Vec<String> = (0..4096).map(|i| format!("k{i:05}")).collect();
        let rows: Vec<(&str, Option<i64>, i64)> = ids
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), None, i as i64 * 3))
            .collect();
        let properties = WriterProperties::builder().build();
        let mut encoder = RowGroupEncoder::new(schema(), properties, 2).unwrap();
        encoder.append_key_value_metadata(KeyValue::new("note".into(), "x".to_owned()));
        encoder.write(batch(&rows)).await.unwrap();
        encoder.finish().await.unwrap();
        let bytes = encoder.take_bytes();
        let (_, written) = read(bytes.clone());
        assert_eq!(written, batch(&rows));
        let reader =
            deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes::Bytes::from(bytes),
            )
            .unwrap();
        let group = reader.metadata().row_group(0);
        let dictionary = |name: &str| {
            group
                .columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap()
                .dictionary_page_offset()
                .is_some()
        };
        assert!(dictionary("space"));
        assert!(!dictionary("externalId"));
        assert!(!dictionary("value"));
    }
}
