//! Comparing a table's existing schema with the schema a (changed) view now asks for.
//!
//! Raw tables are append-only, so existing data is never rewritten here. The comparison
//! classifies the change and leaves the decision to the caller:
//! - new columns can be added with a schema merge (older rows read as null);
//! - a column whose new type is *narrower* than the stored one (e.g. int32 data for an int64
//!   column) needs no change: [`align_batch`] widens the new values on write;
//! - a column whose stored type must *widen* (int32 → int64 → float64, float32 → float64,
//!   anything → string) cannot be altered in place, so the caller starts a new column or a
//!   new table generation;
//! - anything else is incompatible and needs a new generation.
//!
//! Columns the view no longer has stay in the table and are filled with nulls.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use deltalake::arrow::error::ArrowError;

use super::json_text::{UnsupportedType, to_text_array};
use super::publish::holds_cdf_json;

/// One column whose type differs between the table and the view.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeChange {
    pub column: String,
    pub from: DataType,
    pub to: DataType,
}

impl std::fmt::Display for TypeChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column `{}`: {} -> {}", self.column, self.from, self.to)
    }
}

/// The classification of a schema change, most severe first when several apply.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaChange {
    /// Nothing to do (types equal, or new values widen into the stored type on write).
    Same,
    /// New columns only; `merged` is the table schema plus the new columns.
    AddColumns {
        added: Vec<FieldRef>,
        merged: SchemaRef,
    },
    /// Stored columns would have to widen (listed), possibly next to new columns. `merged`
    /// shows the widened schema; stored data is not converted.
    Widen {
        widened: Vec<TypeChange>,
        added: Vec<FieldRef>,
        merged: SchemaRef,
    },
    /// Types that cannot be converted without loss either way.
    Incompatible { conflicts: Vec<TypeChange> },
}

/// Compares a table's `existing` schema with the `new` schema of the view.
pub fn compare_schemas(existing: &Schema, new: &Schema) -> SchemaChange {
    let new_by_name: HashMap<&str, &FieldRef> = new
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f))
        .collect();
    let mut conflicts = Vec::new();
    let mut widened = Vec::new();
    let mut merged_fields: Vec<FieldRef> = Vec::with_capacity(existing.fields().len());
    for stored in existing.fields() {
        let Some(wanted) = new_by_name.get(stored.name().as_str()) else {
            merged_fields.push(stored.clone());
            continue;
        };
        let (from, to) = (stored.data_type(), wanted.data_type());
        if equivalent_types(from, to) || widens_losslessly(to, from) {
            merged_fields.push(stored.clone());
        } else if widens_losslessly(from, to) {
            widened.push(change(stored, to));
            merged_fields.push(Arc::new(stored.as_ref().clone().with_data_type(to.clone())));
        } else {
            conflicts.push(change(stored, to));
        }
    }
    if !conflicts.is_empty() {
        return SchemaChange::Incompatible { conflicts };
    }
    let added: Vec<FieldRef> = new
        .fields()
        .iter()
        .filter(|f| existing.field_with_name(f.name()).is_err())
        .cloned()
        .collect();
    merged_fields.extend(added.iter().cloned());
    let merged = Arc::new(Schema::new_with_metadata(
        merged_fields,
        existing.metadata().clone(),
    ));
    match (widened.is_empty(), added.is_empty()) {
        (true, true) => SchemaChange::Same,
        (true, false) => SchemaChange::AddColumns { added, merged },
        (false, _) => SchemaChange::Widen {
            widened,
            added,
            merged,
        },
    }
}

fn change(stored: &FieldRef, to: &DataType) -> TypeChange {
    TypeChange {
        column: stored.name().clone(),
        from: stored.data_type().clone(),
        to: to.clone(),
    }
}

/// Whether values of type `from` convert to `to` without losing information.
///
/// int64 → float64 is exact up to ±2^53, which covers real measurement data; the design
/// accepts it as the common widening path int32 → int64 → float64.
pub fn widens_losslessly(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if equivalent_types(from, to) {
        return false;
    }
    match (from, to) {
        (Int32, Int64 | Float64) | (Int64, Float64) | (Float32, Float64) => true,
        (_, Utf8) => true,
        (List(a), List(b)) => widens_losslessly(a.data_type(), b.data_type()),
        _ => false,
    }
}

/// Type equality that ignores names and nullability of list elements and field metadata,
/// which differ between writers (Arrow's `item`, Delta's `element`) without changing values.
pub fn equivalent_types(a: &DataType, b: &DataType) -> bool {
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
pub fn align_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, AlignError> {
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
    use deltalake::arrow::datatypes::{Field, Float64Type, Int64Type};

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
    fn equal_schemas_are_the_same() {
        let a = schema(&[
            ("x", DataType::Int64),
            ("l", list(DataType::Int64, "element")),
        ]);
        let b = schema(&[("x", DataType::Int64), ("l", list(DataType::Int64, "item"))]);
        assert_eq!(compare_schemas(&a, &b), SchemaChange::Same);
        // A dropped property stays in the table: still nothing to do.
        assert_eq!(
            compare_schemas(&a, &schema(&[("x", DataType::Int64)])),
            SchemaChange::Same
        );
        // Narrower new values fit the stored column.
        assert_eq!(
            compare_schemas(&a, &schema(&[("x", DataType::Int32)])),
            SchemaChange::Same
        );
    }

    #[test]
    fn new_columns_are_added_after_the_existing_ones() {
        let existing = schema(&[("a", DataType::Utf8), ("c", DataType::Int64)]);
        let new = schema(&[
            ("a", DataType::Utf8),
            ("b", DataType::Boolean),
            ("c", DataType::Int64),
        ]);
        let SchemaChange::AddColumns { added, merged } = compare_schemas(&existing, &new) else {
            panic!("expected AddColumns");
        };
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].name(), "b");
        let names: Vec<&str> = merged.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["a", "c", "b"]);
    }

    #[test]
    fn lossless_widenings_are_reported_with_column_and_types() {
        for (from, to) in [
            (DataType::Int32, DataType::Int64),
            (DataType::Int64, DataType::Float64),
            (DataType::Int32, DataType::Float64),
            (DataType::Float32, DataType::Float64),
            (DataType::Boolean, DataType::Utf8),
            (list(DataType::Int64, "element"), DataType::Utf8),
            (
                list(DataType::Int32, "element"),
                list(DataType::Int64, "element"),
            ),
        ] {
            let change = compare_schemas(
                &schema(&[("p", from.clone())]),
                &schema(&[("p", to.clone()), ("q", DataType::Utf8)]),
            );
            let SchemaChange::Widen {
                widened,
                added,
                merged,
            } = change
            else {
                panic!("{from} -> {to}: expected Widen, got {change:?}");
            };
            assert_eq!(
                widened,
                [TypeChange {
                    column: "p".into(),
                    from: from.clone(),
                    to: to.clone()
                }]
            );
            assert_eq!(added.len(), 1);
            assert_eq!(merged.field(0).data_type(), &to);
        }
    }

    #[test]
    fn incompatible_changes_name_the_column_and_types() {
        // Narrower new types (int64 into a stored string, int32 into float64) fit.
        assert_eq!(
            compare_schemas(
                &schema(&[("p", DataType::Utf8), ("n", DataType::Float64)]),
                &schema(&[("p", DataType::Int64), ("n", DataType::Int32)]),
            ),
            SchemaChange::Same
        );
        let change = compare_schemas(
            &schema(&[
                ("p", DataType::Boolean),
                ("n", DataType::Float64),
                ("t", DataType::Int64),
            ]),
            &schema(&[
                ("p", DataType::Int64),
                ("n", DataType::Float32),
                ("t", DataType::Utf8),
            ]),
        );
        let SchemaChange::Incompatible { conflicts } = change else {
            panic!("expected Incompatible");
        };
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].to_string(), "column `p`: Boolean -> Int64");
        let change = compare_schemas(
            &schema(&[("d", DataType::Date32)]),
            &schema(&[("d", DataType::Boolean)]),
        );
        assert!(matches!(change, SchemaChange::Incompatible { .. }));
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
