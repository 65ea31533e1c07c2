//! Writing a group's merged file: the source files are read one at a time, in arrival
//! order, brought to the table schema and streamed into one new Parquet file.

use deltalake::arrow::datatypes::SchemaRef as ArrowSchemaRef;
use deltalake::arrow::error::ArrowError;
use deltalake::kernel::Add;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter, WriteMode};

use super::CompactionGroup;
use crate::lake::error::{LakeError, LakeResult};
use crate::lake::schema_evolution;
use crate::lake::table::{LakeTable, UNCOMMITTED_COMPACTION, object_path};

/// Rows per batch while reading a source file.
const READ_BATCH_ROWS: usize = 8192;

impl LakeTable {
    /// Writes the merged file of `group`; returns its (uncommitted) add action with
    /// `dataChange=false`, the rows written and the schema it was written with.
    pub(crate) async fn rewrite_group(
        &self,
        group: &CompactionGroup,
    ) -> LakeResult<(Add, u64, ArrowSchemaRef)> {
        let url = self.url.as_str();
        let state = self
            .table
            .snapshot()
            .map_err(|e| LakeError::delta(&url, "reading the schema", e))?;
        let table_schema = state.schema();
        let arrow_schema = state.snapshot().arrow_schema();
        let mut writer = RecordBatchWriter::for_table(&self.table)
            .map_err(|e| LakeError::delta(&url, "preparing the Parquet writer", e))?
            .with_writer_properties(self.options.writer_properties(&self.url)?);
        let store = self.table.object_store();
        let mut rows = 0u64;
        for file in &group.files {
            let path = object_path(&file.path);
            let bytes = store
                .get(&path)
                .await
                .map_err(|e| LakeError::delta(&url, "reading a file to compact", e.into()))?
                .bytes()
                .await
                .map_err(|e| LakeError::delta(&url, "reading a file to compact", e.into()))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .and_then(|builder| builder.with_batch_size(READ_BATCH_ROWS).build())
                .map_err(|e| parquet_error(url, &file.path, e))?;
            let mut plan = None;
            for batch in reader {
                let batch = batch.map_err(|e| {
                    LakeError::arrow(&url, format!("reading file {} to compact", file.path), e)
                })?;
                let file_plan = match &plan {
                    Some(plan) => plan,
                    None => {
                        plan.insert(schema_evolution::plan(url, &table_schema, &batch.schema())?)
                    }
                };
                if file_plan.evolves() {
                    // The file has columns the table does not know: rewriting it with the
                    // table schema would drop them.
                    writer.reset();
                    return Err(LakeError::arrow(
                        &url,
                        format!("compacting file {}", file.path),
                        ArrowError::SchemaError(format!(
                            "the file has columns the table schema lacks: {}",
                            file_plan.added_columns.join(", ")
                        )),
                    ));
                }
                let batch = schema_evolution::conform(url, &batch, file_plan)?;
                rows += batch.num_rows() as u64;
                writer
                    .write_with_mode(batch, WriteMode::Default)
                    .await
                    .map_err(|e| LakeError::delta(&url, "writing the compacted file", e))?;
            }
        }
        let mut adds = writer
            .flush()
            .await
            .map_err(|e| LakeError::delta(&url, "finishing the compacted file", e))?;
        if adds.len() != 1 {
            let paths: Vec<String> = adds.iter().map(|add| add.path.clone()).collect();
            self.delete_orphans(&paths, UNCOMMITTED_COMPACTION).await;
            return Err(LakeError::arrow(
                &url,
                format!(
                    "compacting {} files of stream {:?}",
                    group.files.len(),
                    group.info.app_id
                ),
                ArrowError::ComputeError(format!(
                    "expected one merged file, the writer produced {} ({rows} rows)",
                    adds.len()
                )),
            ));
        }
        let mut add = adds.remove(0);
        add.data_change = false;
        Ok((add, rows, arrow_schema))
    }
}

fn parquet_error(
    url: &str,
    path: &str,
    error: deltalake::parquet::errors::ParquetError,
) -> LakeError {
    LakeError::arrow(
        &url,
        format!("reading file {path} to compact"),
        ArrowError::ParquetError(error.to_string()),
    )
}
