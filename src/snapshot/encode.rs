//! Encoding a published file's row groups on every core while the merge goes on.
//!
//! Rows are gathered into row groups of exactly `row_group_rows` (the last one shorter).
//! A full row group is encoded column by column on up to `threads` threads (on a blocking
//! thread of the runtime), while the merge produces the next one; at most one row group is
//! encoding at a time, so the writer holds at most two row groups of rows.
//!
//! Each column of a row group is encoded from one array: Parquet's page boundaries follow
//! the arrays a column writer is given, so this makes the bytes depend on the rows only,
//! never on how the merge happened to slice them (thread count, memory budget, spilled
//! runs). The file writer, footer and key-value metadata are Parquet's own
//! ([`ArrowWriter::into_serialized_writer`]), so files read exactly as before.

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, RecordBatch};
use deltalake::arrow::compute::concat;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use deltalake::parquet::errors::{ParquetError, Result};
use deltalake::parquet::file::metadata::KeyValue;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::file::writer::SerializedFileWriter;
use tokio::task::JoinHandle;

use super::cores::map_in_parallel;

/// Writes a Parquet file into memory, one row group at a time, encoding columns in
/// parallel. The caller takes the finished bytes out with [`RowGroupEncoder::take_bytes`].
pub(crate) struct RowGroupEncoder {
    file: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// Leaf (Parquet) columns of each Arrow field, in order.
    leaves: Arc<Vec<usize>>,
    row_group_rows: usize,
    threads: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// The row group being encoded.
    encoding: Option<JoinHandle<Result<Vec<ArrowColumnChunk>>>>,
    row_groups_started: usize,
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
        let (file, factory) = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties))?
            .into_serialized_writer()?;
        let descriptor = file.schema_descr();
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
            file,
            factory,
            schema,
            leaves: Arc::new(leaves),
            row_group_rows,
            threads: threads.max(1),
            pending: Vec::new(),
            pending_rows: 0,
            encoding: None,
            row_groups_started: 0,
        })
    }

    pub(crate) fn append_key_value_metadata(&mut self, entry: KeyValue) {
        self.file.append_key_value_metadata(entry);
    }

    /// Adds rows (in file order). Waits only when a row group fills while the previous
    /// one is still encoding.
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
            let take = (self.row_group_rows - self.pending_rows).min(batch.num_rows() - offset);
            self.pending.push(batch.slice(offset, take));
            self.pending_rows += take;
            offset += take;
            if self.pending_rows == self.row_group_rows {
                self.start_row_group().await?;
            }
        }
        Ok(())
    }

    /// The bytes completed since the last call (whole row groups, then the footer).
    pub(crate) fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(self.file.inner_mut())
    }

    /// Bytes of the file so far, taken or not.
    pub(crate) fn bytes_written(&self) -> usize {
        self.file.bytes_written()
    }

    /// Encodes what is left and writes the footer.
    pub(crate) async fn finish(&mut self) -> Result<()> {
        if self.pending_rows > 0 {
            self.start_row_group().await?;
        }
        self.collect().await?;
        self.file.finish()?;
        Ok(())
    }

    /// Appends the row group being encoded, then starts encoding the pending rows.
    async fn start_row_group(&mut self) -> Result<()> {
        self.collect().await?;
        let writers = self
            .factory
            .create_column_writers(self.row_groups_started)?;
        self.row_groups_started += 1;
        let batches = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        let (schema, leaves, threads) = (self.schema.clone(), self.leaves.clone(), self.threads);
        self.encoding = Some(tokio::task::spawn_blocking(move || {
            encode_row_group(&schema, &leaves, writers, &batches, threads)
        }));
        Ok(())
    }

    /// Waits for the row group being encoded and appends it to the file.
    async fn collect(&mut self) -> Result<()> {
        let Some(encoding) = self.encoding.take() else {
            return Ok(());
        };
        let chunks = encoding
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))??;
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        Ok(())
    }
}

/// Encodes one row group: each field's column (concatenated over `batches`) by its own
/// writers, fields spread over `threads`; chunks come back in column order.
fn encode_row_group(
    schema: &SchemaRef,
    leaves: &[usize],
    writers: Vec<ArrowColumnWriter>,
    batches: &[RecordBatch],
    threads: usize,
) -> Result<Vec<ArrowColumnChunk>> {
    let mut writers = writers.into_iter();
    let jobs: Vec<(usize, Vec<ArrowColumnWriter>)> = leaves
        .iter()
        .enumerate()
        .map(|(field, &count)| (field, writers.by_ref().take(count).collect()))
        .collect();
    let encoded = map_in_parallel(jobs, threads, |(field, mut writers)| {
        let column = whole_column(batches, field)?;
        let leaves = compute_leaves(schema.field(field), &column)?;
        for (writer, leaf) in writers.iter_mut().zip(&leaves) {
            writer.write(leaf)?;
        }
        writers
            .into_iter()
            .map(ArrowColumnWriter::close)
            .collect::<Result<Vec<_>>>()
    });
    let mut chunks = Vec::with_capacity(leaves.iter().sum());
    for field in encoded {
        chunks.extend(field?);
    }
    Ok(chunks)
}

/// Column `field` of all `batches` as one array.
fn whole_column(batches: &[RecordBatch], field: usize) -> Result<ArrayRef> {
    if let [only] = batches {
        return Ok(only.column(field).clone());
    }
    let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(field).as_ref()).collect();
    Ok(concat(&parts)?)
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

    /// Same rows, same bytes: however the rows were sliced and however many threads
    /// encoded them. The file reads back as those rows in row groups of the set size.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_depend_on_the_rows_only() {
        let reference = encode(&[1000], 1).await;
        for (slices, threads) in [(&[7usize, 300, 1][..], 1), (&[1000], 4), (&[33, 250], 3)] {
            assert!(
                encode(slices, threads).await == reference,
                "{slices:?} on {threads} threads"
            );
        }
        let reader =
            deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes::Bytes::from(reference),
            )
            .unwrap();
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, [300, 300, 300, 100]);
        let kv = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap();
        assert!(kv.iter().any(|e| e.key == "note"));
        let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 1000);
    }
}
