//! Fitting record batches written under an older schema of a raw table to its current one.
//!
//! Raw tables are append-only and their columns never change type (the lake refuses a
//! widening append, see `lake::schema_evolution`); they only gain columns. Reading an older
//! file therefore means filling the columns it predates with nulls, and casting values only
//! where the same lossless rules allow it.

use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, FieldRef, SchemaRef};
use deltalake::arrow::error::ArrowError;

use super::json_text::{UnsupportedType, to_text_array};
use super::publish::holds_cdf_json;

/// Whether values of type `from` convert to `to` without losing information.
///
/// int64 → float64 is not among them: integers above 2^53 would silently change, which is
/// why the lake refuses that widening too (a new generation is started instead).
pub(crate) fn widens_losslessly(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if equivalent_types(from, to) {
        return false;
    }
    match (from, to) {
        (Int32, Int64 | Float64) | (Float32, Float64) => true,
        (_, Utf8) => true,
        (List(a), List(b)) => widens_losslessly(a.data_type(), b.data_type()),
        _ => false,
    }
}

/// Type equality that ignores names and nullability of list elements and field metadata,
/// which differ between writers (Arrow's `item`, Delta's `element`) without changing values.
pub(crate) fn equivalent_types(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        (List(x), List(y)) | (LargeList(x), LargeList(y)) => {
            equivalent_types(x.data_type(), y.data_type())
        }
        (Struct(x), Struct(y)) => {
            x.len() == y.len()
                && x.iter().zip(y.iter()).all(|(x, y)| {
                    x.name() == y.name() && equivalent_types(x.data_type(), y.data_type())
                })
        }
        (Timestamp(unit_a, tz_a), Timestamp(unit_b, tz_b)) => {
            unit_a == unit_b && tz_a.is_some() == tz_b.is_some()
        }
        _ => a == b,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlignError {
    #[error("the batch has column `{column}`, which the target table schema lacks")]
    UnexpectedColumn { column: String },
    #[error("column `{column}` is not nullable in the target schema but the batch lacks it")]
    MissingRequiredColumn { column: String },
    #[error("column `{column}`: cannot write {from} values into a {to} column without loss")]
    Incompatible {
        column: String,
        from: DataType,
        to: DataType,
    },
    #[error("column `{column}`: {source}")]
    Render {
        column: String,
        source: UnsupportedType,
    },
    #[error("column `{column}`: converting {from} to {to}: {source}")]
    Cast {
        column: String,
        from: DataType,
        to: DataType,
        source: ArrowError,
    },
    #[error("building the aligned batch: {0}")]
    Arrow(#[from] ArrowError),
}

/// Reshapes `batch` to `target` (the table's schema): columns in target order, nulls for
/// target columns the batch lacks, and values widened losslessly where the table's type is
/// wider. Fails, instead of dropping data, if a batch column has no place in the target.
pub(crate) fn align_batch(
    batch: &RecordBatch,
    target: &SchemaRef,
) -> Result<RecordBatch, AlignError> {
    let source = batch.schema();
    for field in source.fields() {
        if target.field_with_name(field.name()).is_err() {
            return Err(AlignError::UnexpectedColumn {
                column: field.name().clone(),
            });
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for wanted in target.fields() {
        let column = match source.index_of(wanted.name()) {
            Err(_) if wanted.is_nullable() => new_null_array(wanted.data_type(), batch.num_rows()),
            Err(_) => {
                return Err(AlignError::MissingRequiredColumn {
                    column: wanted.name().clone(),
                });
            }
            Ok(index) => convert_column(&source.fields()[index], batch.column(index), wanted)?,
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(target.clone(), columns)?)
}

fn convert_column(
    field: &FieldRef,
    column: &ArrayRef,
    wanted: &FieldRef,
) -> Result<ArrayRef, AlignError> {
    let (from, to) = (field.data_type(), wanted.data_type());
    if from == to {
        return Ok(column.clone());
    }
    if !equivalent_types(from, to) && !widens_losslessly(from, to) {
        return Err(AlignError::Incompatible {
            column: field.name().clone(),
            from: from.clone(),
            to: to.clone(),
        });
    }
    if to == &DataType::Utf8 {
        let text = to_text_array(column.as_ref(), holds_cdf_json(field)).map_err(|source| {
            AlignError::Render {
                column: field.name().clone(),
                source,
            }
        })?;
        return Ok(Arc::new(text));
    }
    cast(column.as_ref(), to).map_err(|source| AlignError::Cast {
        column: field.name().clone(),
        from: from.clone(),
        to: to.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{
        Array, AsArray, Float64Array, Int32Array, Int32Builder, Int64Array, ListBuilder,
        StringArray,
    };
    use deltalake::arrow::datatypes::{Field, Float64Type, Int64Type, Schema};

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    fn list(data_type: DataType, element: &str) -> DataType {
        DataType::List(Arc::new(Field::new(element, data_type, true)))
    }

    #[test]
    fn align_batch_fills_missing_columns_and_widens_values() {
        let source = Arc::new(schema(&[
            ("small", DataType::Int32),
            ("flag", DataType::Int64),
            ("l", list(DataType::Int32, "element")),
        ]));
        let mut lists = ListBuilder::new(Int32Builder::new()).with_field(Arc::new(Field::new(
            "element",
            DataType::Int32,
            true,
        )));
        lists.values().append_value(7);
        lists.append(true);
        lists.append(false);
        let batch = RecordBatch::try_new(
            source,
            vec![
                Arc::new(Int32Array::from(vec![Some(i32::MIN), None])),
                Arc::new(Int64Array::from(vec![i64::MAX, 1])),
                Arc::new(lists.finish()),
            ],
        )
        .unwrap();
        let target = Arc::new(schema(&[
            ("gone", DataType::Utf8),
            ("l", list(DataType::Int64, "element")),
            ("small", DataType::Float64),
            ("flag", DataType::Utf8),
        ]));
        let aligned = align_batch(&batch, &target).unwrap();
        assert_eq!(aligned.schema(), target);
        assert_eq!(aligned.column(0).null_count(), 2);
        let widened = aligned.column(1).as_list::<i32>().value(0);
        assert_eq!(widened.as_primitive::<Int64Type>().value(0), 7);
        let small: &Float64Array = aligned.column(2).as_primitive::<Float64Type>();
        assert_eq!(small.value(0), f64::from(i32::MIN));
        assert!(small.is_null(1));
        let flag: &StringArray = aligned.column(3).as_string();
        assert_eq!(flag.value(0), "9223372036854775807");

        let narrower = Arc::new(schema(&[("small", DataType::Int32)]));
        let err = align_batch(&batch, &narrower).unwrap_err();
        assert!(err.to_string().contains("`flag`"), "{err}");
        let incompatible = Arc::new(schema(&[
            ("small", DataType::Boolean),
            ("flag", DataType::Int64),
            ("l", list(DataType::Int32, "element")),
        ]));
        let err = align_batch(&batch, &incompatible).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `small`: cannot write Int32 values into a Boolean column without loss"
        );
    }
}
