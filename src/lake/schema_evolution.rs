//! Reconciles the schema of incoming batches with the schema of an existing Delta table.
//!
//! Rules, chosen so that no reader ever sees a column whose stored Parquet type differs from
//! the table schema (Delta readers such as DuckDB or the Python `deltalake` package do not
//! support the `typeWidening` table feature):
//!
//! - A column the table does not have yet is added as a nullable column, in the same commit
//!   as the data (schema merge).
//! - A column whose new type is the same Delta type is written as is (Arrow representation
//!   differences such as list item names or `LargeUtf8` are cast away).
//! - A column whose new type is narrower than the stored type and fits it losslessly
//!   (byte/short/integer into long or double, float into double, any primitive into string)
//!   is cast up to the stored type. This covers data arriving after a column was widened.
//! - A column whose new type is wider than (or unrelated to) the stored type cannot be stored
//!   in the existing files' type: [`LakeError::IncompatibleType`] names it. In particular long
//!   to double is not lossless (integers above 2^53 lose precision), so it is refused here.
//!   Sync never asks for such an append: its column mapping (`schema::mapping`) reads the
//!   table schema first and gives a property whose values no longer fit its column a new
//!   column `<name>__<type>`; it only reuses a column for the same type or for int32 into
//!   long/double and float into double, which this module and the snapshot's reader
//!   (`schema::widens_losslessly`) both accept.
//! - A table column missing from the batch is filled with nulls; if it is non-nullable the
//!   append is refused with [`LakeError::MissingRequiredColumn`].

use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use deltalake::arrow::compute::{CastOptions, cast_with_options};
use deltalake::arrow::datatypes::{Schema as ArrowSchema, SchemaRef as ArrowSchemaRef};
use deltalake::arrow::util::display::FormatOptions;
use deltalake::kernel::engine::arrow_conversion::{TryFromArrow, TryIntoArrow};
use deltalake::kernel::{DataType, PrimitiveType, StructField, StructType};

use super::error::{LakeError, LakeResult};

/// The schema an append writes with, and whether it changes the table schema.
#[derive(Debug, Clone)]
pub(crate) struct SchemaPlan {
    /// The Delta schema after this append.
    pub(crate) table_schema: StructType,
    /// [`SchemaPlan::table_schema`] in the Arrow form delta-rs writes Parquet files with.
    pub(crate) arrow_schema: ArrowSchemaRef,
    /// Columns this append adds to the table.
    pub(crate) added_columns: Vec<String>,
}

impl SchemaPlan {
    /// Whether the append must carry a Metadata action with the new schema.
    pub(crate) fn evolves(&self) -> bool {
        !self.added_columns.is_empty()
    }
}

/// Converts an Arrow schema to the Delta schema a new table is created with.
pub(crate) fn delta_schema_of(url: &str, schema: &ArrowSchema) -> LakeResult<StructType> {
    StructType::try_from_arrow(schema)
        .map_err(|e| LakeError::arrow(&url, "converting the batch schema to a Delta schema", e))
}

/// Plans how batches with `batch_schema` are written into a table with `table_schema`.
pub(crate) fn plan(
    url: &str,
    table_schema: &StructType,
    batch_schema: &ArrowSchema,
) -> LakeResult<SchemaPlan> {
    let mut fields: Vec<StructField> = Vec::with_capacity(table_schema.num_fields());
    for table_field in table_schema.fields() {
        match batch_schema.field_with_name(table_field.name()) {
            Ok(batch_field) => {
                let batch_type =
                    DataType::try_from_arrow(batch_field.data_type()).map_err(|e| {
                        LakeError::arrow(
                            &url,
                            format!("converting column {:?} to a Delta type", batch_field.name()),
                            e,
                        )
                    })?;
                if !fits_losslessly(&batch_type, table_field.data_type()) {
                    return Err(LakeError::IncompatibleType {
                        url: url.to_string(),
                        column: table_field.name().clone(),
                        table_type: table_field.data_type().to_string(),
                        batch_type: batch_type.to_string(),
                    });
                }
            }
            Err(_) if !table_field.is_nullable() => {
                return Err(LakeError::MissingRequiredColumn {
                    url: url.to_string(),
                    column: table_field.name().clone(),
                });
            }
            Err(_) => {}
        }
        fields.push(table_field.clone());
    }

    let mut added_columns = Vec::new();
    for batch_field in batch_schema.fields() {
        if table_schema.contains(batch_field.name()) {
            continue;
        }
        let field = StructField::try_from_arrow(batch_field.as_ref()).map_err(|e| {
            LakeError::arrow(
                &url,
                format!(
                    "converting new column {:?} to a Delta field",
                    batch_field.name()
                ),
                e,
            )
        })?;
        // Files written before this commit have no such column, so it must be nullable.
        let mut field = field;
        field.nullable = true;
        added_columns.push(field.name().clone());
        fields.push(field);
    }

    let table_schema = StructType::try_new(fields)
        .map_err(|e| LakeError::delta(&url, "building the merged schema", e.into()))?;
    let arrow_schema: ArrowSchema = (&table_schema)
        .try_into_arrow()
        .map_err(|e| LakeError::arrow(&url, "converting the table schema to Arrow", e))?;
    Ok(SchemaPlan {
        table_schema,
        arrow_schema: Arc::new(arrow_schema),
        added_columns,
    })
}

/// Whether values of Delta type `new` can be stored in a column of type `stored` without
/// losing information.
fn fits_losslessly(new: &DataType, stored: &DataType) -> bool {
    use PrimitiveType as P;
    match (new, stored) {
        (DataType::Primitive(new), DataType::Primitive(stored)) => {
            new == stored
                || matches!(
                    (new, stored),
                    (
                        P::Byte,
                        P::Short | P::Integer | P::Long | P::Float | P::Double
                    ) | (P::Short, P::Integer | P::Long | P::Float | P::Double)
                        | (P::Integer, P::Long | P::Double)
                        | (P::Float, P::Double)
                )
                || (*stored == P::String && !matches!(new, P::Binary | P::Void))
        }
        _ => same_ignoring_nullability(new, stored),
    }
}

/// Nested types must match exactly, except that nullability may differ (the writer checks
/// actual nulls against the stored nullability).
fn same_ignoring_nullability(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::Primitive(a), DataType::Primitive(b)) => a == b,
        (DataType::Array(a), DataType::Array(b)) => {
            same_ignoring_nullability(a.element_type(), b.element_type())
        }
        (DataType::Map(a), DataType::Map(b)) => {
            same_ignoring_nullability(a.key_type(), b.key_type())
                && same_ignoring_nullability(a.value_type(), b.value_type())
        }
        (DataType::Struct(a), DataType::Struct(b)) => {
            a.num_fields() == b.num_fields()
                && a.fields().zip(b.fields()).all(|(x, y)| {
                    x.name() == y.name() && same_ignoring_nullability(x.data_type(), y.data_type())
                })
        }
        (DataType::Variant(_), DataType::Variant(_)) => a == b,
        _ => false,
    }
}

/// Casts a batch to the planned Arrow schema: reorders columns, casts lossless widenings and
/// representation differences, and fills absent nullable columns with nulls.
pub(crate) fn conform(
    url: &str,
    batch: &RecordBatch,
    plan: &SchemaPlan,
) -> LakeResult<RecordBatch> {
    if batch.schema() == plan.arrow_schema {
        return Ok(batch.clone());
    }
    let options = CastOptions {
        // An overflow or unparsable value must fail the append instead of becoming null.
        safe: false,
        format_options: FormatOptions::default(),
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(plan.arrow_schema.fields().len());
    for field in plan.arrow_schema.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => column.clone(),
            Some(column) => {
                cast_with_options(column, field.data_type(), &options).map_err(|e| {
                    LakeError::arrow(
                        &url,
                        format!(
                            "casting column {:?} from {} to {}",
                            field.name(),
                            column.data_type(),
                            field.data_type()
                        ),
                        e,
                    )
                })?
            }
            None => new_null_array(field.data_type(), batch.num_rows()),
        };
        columns.push(column);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(plan.arrow_schema.clone(), columns, &options).map_err(|e| {
        LakeError::arrow(
            &url,
            "assembling the batch in the table schema (a non-nullable column has nulls?)",
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Array, Int32Array, Int64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType as ArrowType, Field};

    fn table(fields: Vec<StructField>) -> StructType {
        StructType::try_new(fields).unwrap()
    }

    #[test]
    fn new_columns_are_appended_as_nullable() {
        let stored = table(vec![StructField::not_null("id", DataType::LONG)]);
        let batch = ArrowSchema::new(vec![
            Field::new("id", ArrowType::Int64, false),
            Field::new("extra", ArrowType::Utf8, false),
        ]);
        let plan = plan("t", &stored, &batch).unwrap();
        assert_eq!(plan.added_columns, ["extra"]);
        assert!(plan.table_schema.field("extra").unwrap().is_nullable());
        assert!(!plan.table_schema.field("id").unwrap().is_nullable());
    }

    #[test]
    fn narrower_values_are_cast_up_and_wider_ones_refused() {
        let stored = table(vec![
            StructField::nullable("n", DataType::LONG),
            StructField::nullable("s", DataType::STRING),
        ]);
        let batch_schema = Arc::new(ArrowSchema::new(vec![
            Field::new("n", ArrowType::Int32, true),
            Field::new("s", ArrowType::Int64, true),
        ]));
        let plan = plan("t", &stored, &batch_schema).unwrap();
        assert!(!plan.evolves());
        let batch = RecordBatch::try_new(
            batch_schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(i32::MIN), None])),
                Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(-1)])),
            ],
        )
        .unwrap();
        let out = conform("t", &batch, &plan).unwrap();
        let n = out.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(n.value(0), i64::from(i32::MIN));
        assert!(n.is_null(1));
        let s = out
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(s.value(0), i64::MAX.to_string());

        let stored = table(vec![StructField::nullable("n", DataType::INTEGER)]);
        let wider = ArrowSchema::new(vec![Field::new("n", ArrowType::Int64, true)]);
        match plan_err(&stored, &wider) {
            LakeError::IncompatibleType {
                column,
                table_type,
                batch_type,
                ..
            } => {
                assert_eq!(
                    (column.as_str(), table_type.as_str(), batch_type.as_str()),
                    ("n", "integer", "long")
                );
            }
            other => panic!("unexpected {other}"),
        }
        let stored = table(vec![StructField::nullable("n", DataType::LONG)]);
        let double = ArrowSchema::new(vec![Field::new("n", ArrowType::Float64, true)]);
        assert!(matches!(
            plan_err(&stored, &double),
            LakeError::IncompatibleType { .. }
        ));
    }

    #[test]
    fn missing_columns_are_null_filled_unless_required() {
        let stored = table(vec![
            StructField::not_null("id", DataType::LONG),
            StructField::nullable("opt", DataType::STRING),
        ]);
        let schema = Arc::new(ArrowSchema::new(vec![Field::new(
            "id",
            ArrowType::Int64,
            false,
        )]));
        let plan = plan("t", &stored, &schema).unwrap();
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        let out = conform("t", &batch, &plan).unwrap();
        assert_eq!(out.num_columns(), 2);
        assert_eq!(out.column(1).null_count(), 2);

        let only_opt = ArrowSchema::new(vec![Field::new("opt", ArrowType::Utf8, true)]);
        assert!(matches!(
            plan_err(&stored, &only_opt),
            LakeError::MissingRequiredColumn { column, .. } if column == "id"
        ));
    }

    /// The column reuses of the sync mapping (int32 into long or double, float into double)
    /// are accepted here and by the snapshot's reader of older files alike.
    #[test]
    fn the_mappings_widenings_are_accepted_by_the_lake_and_the_reader() {
        for (new, stored, delta) in [
            (ArrowType::Int32, ArrowType::Int64, DataType::LONG),
            (ArrowType::Int32, ArrowType::Float64, DataType::DOUBLE),
            (ArrowType::Float32, ArrowType::Float64, DataType::DOUBLE),
        ] {
            let table_schema = table(vec![StructField::nullable("n", delta)]);
            let batch = ArrowSchema::new(vec![Field::new("n", new.clone(), true)]);
            let plan = plan("t", &table_schema, &batch).unwrap();
            assert!(!plan.evolves(), "{new} into {stored}");
            assert!(
                crate::schema::widens_losslessly(&new, &stored),
                "{new} into {stored}"
            );
        }
    }

    fn plan_err(stored: &StructType, batch: &ArrowSchema) -> LakeError {
        match plan("t", stored, batch) {
            Ok(plan) => panic!("expected an error, got {plan:?}"),
            Err(e) => e,
        }
    }
}
