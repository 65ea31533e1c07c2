//! The instance key (`space`, `externalId`) and tombstone flag of rows in publish batches.
//!
//! Keys compare as byte strings (UTF-8 byte order equals code point order), the order
//! every reader's plain string sort gives, so the published files are sorted the way a
//! reader expects and the merge can stream them.

use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Schema};

use super::error::{SnapshotError, SnapshotResult};
use crate::schema::system::{DELETED_TIME, EXTERNAL_ID, SPACE};

/// Where the key and tombstone columns are in a publish schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyColumns {
    space: usize,
    external_id: usize,
    deleted_time: Option<usize>,
}

impl KeyColumns {
    /// Finds the columns; `table` names the raw table in the error.
    pub(crate) fn of(schema: &Schema, table: &str) -> SnapshotResult<Self> {
        let string_column = |name: &'static str| {
            schema
                .index_of(name)
                .ok()
                .filter(|&i| schema.field(i).data_type() == &DataType::Utf8)
                .ok_or_else(|| SnapshotError::MissingKeyColumn {
                    table: table.to_owned(),
                    column: name,
                })
        };
        Ok(KeyColumns {
            space: string_column(SPACE)?,
            external_id: string_column(EXTERNAL_ID)?,
            deleted_time: schema.index_of(DELETED_TIME).ok(),
        })
    }

    /// The key and tombstone columns of one batch of this schema.
    pub(crate) fn view(&self, batch: &RecordBatch) -> SnapshotResult<BatchKeys> {
        let string = |index: usize, column: &'static str| {
            batch
                .columns()
                .get(index)
                .and_then(|c| c.as_string_opt::<i32>())
                .cloned()
                .ok_or(SnapshotError::MissingKeyColumn {
                    table: "a batch being merged".to_owned(),
                    column,
                })
        };
        Ok(BatchKeys {
            space: string(self.space, SPACE)?,
            external_id: string(self.external_id, EXTERNAL_ID)?,
            deleted_time: self
                .deleted_time
                .and_then(|i| batch.columns().get(i).cloned()),
        })
    }
}

/// The key and tombstone columns of one batch (cheap reference-counted clones).
#[derive(Debug, Clone)]
pub(crate) struct BatchKeys {
    space: StringArray,
    external_id: StringArray,
    deleted_time: Option<ArrayRef>,
}

impl BatchKeys {
    /// The key of `row`. A null space or externalId (which CDF never sends) sorts first.
    pub(crate) fn key(&self, row: usize) -> (&str, &str) {
        (text(&self.space, row), text(&self.external_id, row))
    }

    /// Rows of the batch.
    pub(crate) fn rows(&self) -> usize {
        self.external_id.len()
    }

    /// Whether `row` records a deletion.
    pub(crate) fn is_tombstone(&self, row: usize) -> bool {
        self.deleted_time
            .as_ref()
            .is_some_and(|column| column.is_valid(row))
    }
}

fn text(array: &StringArray, row: usize) -> &str {
    if array.is_valid(row) {
        array.value(row)
    } else {
        ""
    }
}
