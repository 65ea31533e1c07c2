//! `_arrival`: the raw layer's own arrival order, written into every row.
//!
//! The snapshot orders the changes of a key by the Delta log (commit version, position of
//! the file in the commit, row in the file). An engine that reads the raw tables with SQL
//! (Athena, Spark, DuckDB) sees no log, so every row carries its arrival as a value:
//!
//! ```text
//! 00000000000000000002-0000000000000000041-0000000017
//! └ generation (20) ─┘ └ commit (19) ───┘ └ row (10)┘
//! ```
//!
//! - **generation**: the writing stream's generation (a resync starts a new one);
//! - **commit**: the stream's commit sequence number, its Delta `txn` version. It is known
//!   before the commit (the Delta version is not: another writer may take it first), it is
//!   exactly-once (a commit retried after a crash carries the same number), and it grows
//!   across generations, so within a stream it orders exactly like the Delta log;
//! - **row**: the row's position among the commit's rows, in the order they are written
//!   (a page's tombstones before its live rows).
//!
//! Why a fixed-width decimal string and not a struct or a decimal number: `ORDER BY
//! _arrival` is then the arrival order in every engine, without relying on how an engine compares
//! structs, the Glue column is a plain `string`, and each
//! part reads back with `substr` and a cast. The widths hold the largest values of their
//! types (u64, i64, u32), so the text order never breaks. Its cost is a few bytes a row
//! after compression (the first two parts repeat within a file).
//!
//! Order across streams: a table is written by one stream per sync query (a view's nodes;
//! its edges: the edge view itself and each edge type of its connections). Their queries
//! select disjoint instances, except for an edge of a view used for edges that also has the
//! type of one of the view's connections: both streams report it. Only for such an edge do
//! the two streams' rows meet in one key; the value then orders them by generation and
//! commit number of different streams, which says nothing about which arrived later. Both
//! rows are the edge as one of the streams last saw it.
//!
//! Compaction copies rows with their values, so the order survives it. Rows written before
//! this column existed read it as null (see `docs/bi-tools.md` for the query's fallback).
//!
//! The same commit gives the table the other raw-only column, `_exitedTime` (null unless
//! the row records an exit), if it has none yet: every table written since has both, so
//! that one current-state query fits every table.

use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, RecordBatch, StringBuilder, new_null_array};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::arrow::error::ArrowError;

use super::system::{ARRIVAL, EXITED_TIME};

/// Where one row of a stream commit sits in the table's arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Arrival {
    /// The stream's generation.
    pub(crate) generation: u64,
    /// The stream's commit sequence number (its `txn` version).
    pub(crate) seq: u64,
    /// The row's position among the commit's rows.
    pub(crate) row: u32,
}

impl Arrival {
    /// The column value: fixed-width decimal parts, so that text order is arrival order.
    pub(crate) fn text(&self) -> String {
        format!("{:020}-{:019}-{:010}", self.generation, self.seq, self.row)
    }

    /// Reads a value back; `None` for text that is not one.
    #[cfg(test)]
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('-');
        let (generation, seq, row) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || (generation.len(), seq.len(), row.len()) != (20, 19, 10) {
            return None;
        }
        Some(Self {
            generation: generation.parse().ok()?,
            seq: seq.parse().ok()?,
            row: row.parse().ok()?,
        })
    }
}

/// The `_arrival` field: nullable, because rows written before the column existed have none.
pub(crate) fn arrival_field() -> Field {
    Field::new(ARRIVAL, DataType::Utf8, true)
}

/// `batches` (the rows of one stream commit, in order) with their `_arrival` values: the
/// commit's `generation` and `seq`, rows numbered across the batches from 0. A batch that
/// has the column already gets it replaced. A batch without `_exitedTime` gets it, null.
pub(crate) fn stamp_arrival(
    batches: Vec<RecordBatch>,
    generation: u64,
    seq: u64,
) -> Result<Vec<RecordBatch>, ArrowError> {
    let mut row: u32 = 0;
    batches
        .into_iter()
        .map(|batch| {
            let mut values = StringBuilder::with_capacity(batch.num_rows(), batch.num_rows() * 51);
            for _ in 0..batch.num_rows() {
                values.append_value(
                    Arrival {
                        generation,
                        seq,
                        row,
                    }
                    .text(),
                );
                row = row.checked_add(1).ok_or_else(|| {
                    ArrowError::ComputeError("more than 2^32 rows in one commit".into())
                })?;
            }
            let column: ArrayRef = Arc::new(values.finish());
            let schema = batch.schema();
            let mut fields: Vec<_> = Vec::with_capacity(schema.fields().len() + 1);
            let mut columns = Vec::with_capacity(schema.fields().len() + 1);
            for (field, values) in schema.fields().iter().zip(batch.columns()) {
                if field.name() != ARRIVAL {
                    fields.push(field.clone());
                    columns.push(values.clone());
                }
            }
            if schema.index_of(EXITED_TIME).is_err() {
                fields.push(Arc::new(Field::new(EXITED_TIME, DataType::Int64, true)));
                columns.push(new_null_array(&DataType::Int64, batch.num_rows()));
            }
            fields.push(Arc::new(arrival_field()));
            columns.push(column);
            RecordBatch::try_new(
                Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
                columns,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{AsArray, Int64Array};

    #[test]
    fn text_order_is_arrival_order_at_every_width() {
        let values = [
            Arrival {
                generation: 1,
                seq: 9,
                row: 3,
            },
            Arrival {
                generation: 1,
                seq: 10,
                row: 0,
            },
            Arrival {
                generation: 1,
                seq: 10,
                row: 2,
            },
            Arrival {
                generation: 2,
                seq: 11,
                row: 0,
            },
            Arrival {
                generation: u64::MAX,
                seq: i64::MAX as u64,
                row: u32::MAX,
            },
        ];
        for pair in values.windows(2) {
            assert!(pair[0].text() < pair[1].text(), "{pair:?}");
        }
        for value in values {
            assert_eq!(value.text().len(), 51);
            assert_eq!(Arrival::parse(&value.text()), Some(value));
        }
        assert_eq!(
            values[1].text(),
            "00000000000000000001-0000000000000000010-0000000000"
        );
        assert_eq!(Arrival::parse("1-2-3"), None);
    }

    #[test]
    fn rows_are_numbered_across_the_batches_of_a_commit() {
        let batch = |n: i64| {
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)])),
                vec![Arc::new(Int64Array::from_iter_values(0..n))],
            )
            .unwrap()
        };
        let stamped = stamp_arrival(vec![batch(2), batch(0), batch(3)], 4, 77).unwrap();
        let texts: Vec<String> = stamped
            .iter()
            .flat_map(|b| {
                b.column_by_name(ARRIVAL)
                    .unwrap()
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        let rows: Vec<u32> = texts
            .iter()
            .map(|t| Arrival::parse(t).unwrap().row)
            .collect();
        assert_eq!(rows, [0, 1, 2, 3, 4]);
        assert!(texts.iter().all(|t| {
            t.starts_with(
                &Arrival {
                    generation: 4,
                    seq: 77,
                    row: 0,
                }
                .text()[..41],
            )
        }));
        // Stamping again (a retried commit) gives the same values, in one column.
        let again = stamp_arrival(stamped.clone(), 4, 77).unwrap();
        assert_eq!(again, stamped);
        let names: Vec<&str> = again[0]
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["n", EXITED_TIME, ARRIVAL]);
        assert_eq!(again[0].column(1).null_count(), 2);
    }
}
