//! The publish-layer schema: the raw schema with nested columns turned into JSON text.
//!
//! BI tools read flat Parquet well and nested types badly or not at all, so list columns (and
//! any other nested column) are published as JSON text. Everything else is unchanged:
//! timestamps stay `Timestamp(µs, UTC)`, dates `Date32`, system times epoch-ms `Int64`.

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use deltalake::arrow::datatypes::Int64Type;
use deltalake::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use deltalake::arrow::error::ArrowError;

use super::json_text::{UnsupportedType, list_to_json_text, to_text_array};
use super::system::{DELETED_TIME, EXITED_TIME, RAW_ONLY};
use super::view_schema::METADATA_TYPE;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("column `{column}`: {source}")]
    Render {
        column: String,
        source: UnsupportedType,
    },
    #[error("building the publish batch: {0}")]
    Arrow(#[from] ArrowError),
}

/// Whether a raw column is published as JSON text.
pub(crate) fn is_nested(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::Struct(_)
            | DataType::Map(..)
    )
}

/// The publish schema of a raw schema: same columns, same order, nested columns as nullable
/// `Utf8` (their field metadata kept), without the raw-only columns (the exit marker and
/// the arrival order, [`RAW_ONLY`]).
pub(crate) fn publish_schema(raw: &Schema) -> SchemaRef {
    let fields: Vec<FieldRef> = raw
        .fields()
        .iter()
        .filter(|field| !is_raw_only(field))
        .map(publish_field)
        .collect();
    Arc::new(Schema::new_with_metadata(fields, raw.metadata().clone()))
}

/// Whether a raw column stays out of the publish layer.
fn is_raw_only(field: &Field) -> bool {
    RAW_ONLY.contains(&field.name().as_str())
}

fn publish_field(field: &FieldRef) -> FieldRef {
    if is_nested(field.data_type()) {
        Arc::new(
            Field::new(field.name(), DataType::Utf8, true).with_metadata(field.metadata().clone()),
        )
    } else {
        field.clone()
    }
}

/// Converts a raw batch to its publish form (see [`publish_schema`]).
///
/// List columns whose field metadata says they hold CDF `json` values embed each element's
/// JSON text as is; all other elements are rendered from their Arrow values.
///
/// A row that records a membership exit ([`EXITED_TIME`]) removes its instance from the
/// publish layer exactly as a deletion does, so it becomes a tombstone here (its
/// `deletedTime` takes the exit time) and the exit column itself is left out. Tombstones
/// never reach a published file, so no reader sees an exit as a deletion. The arrival
/// column is left out too: a published file holds one row per key, sorted by key.
pub(crate) fn publish_batch(batch: &RecordBatch) -> Result<RecordBatch, PublishError> {
    let schema = batch.schema();
    let exited = schema
        .index_of(EXITED_TIME)
        .ok()
        .map(|i| batch.column(i).clone());
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(field, _)| !is_raw_only(field))
        .map(|(field, column)| match &exited {
            Some(exited) if field.name() == DELETED_TIME && exited.null_count() < exited.len() => {
                Ok(nullif_coalesce(column, exited)?)
            }
            _ => publish_column(field, column),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(publish_schema(&schema), columns)?)
}

/// `deleted` where set, else `exited`: both are epoch-millisecond Int64 columns.
fn nullif_coalesce(deleted: &ArrayRef, exited: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let deleted = deleted
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| ArrowError::SchemaError(format!("`{DELETED_TIME}` is not Int64")))?;
    let exited = exited
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| ArrowError::SchemaError(format!("`{EXITED_TIME}` is not Int64")))?;
    let merged: Int64Array = deleted
        .iter()
        .zip(exited.iter())
        .map(|(d, e)| d.or(e))
        .collect();
    Ok(Arc::new(merged))
}

/// The publish form of one raw column.
pub(crate) fn publish_column(field: &Field, column: &ArrayRef) -> Result<ArrayRef, PublishError> {
    if !is_nested(field.data_type()) {
        return Ok(column.clone());
    }
    let elements_are_json = holds_cdf_json(field);
    let rendered = match field.data_type() {
        DataType::List(_) | DataType::LargeList(_) => {
            list_to_json_text(column.as_ref(), elements_are_json)
        }
        _ => to_text_array(column.as_ref(), elements_are_json),
    }
    .map_err(|source| PublishError::Render {
        column: field.name().clone(),
        source,
    })?;
    Ok(Arc::new(rendered))
}

/// Whether the column's strings are JSON text (CDF `json`), per its field metadata.
pub(crate) fn holds_cdf_json(field: &Field) -> bool {
    field.metadata().get(METADATA_TYPE).map(String::as_str) == Some("json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdf::dto::PropertyType;
    use crate::schema::view_schema::PropertySource;
    use crate::schema::{TableKind, ViewSchema};
    use deltalake::arrow::array::{
        Array, AsArray, Int64Builder, ListBuilder, StringArray, StringBuilder,
    };
    use deltalake::arrow::datatypes::TimeUnit;
    use serde_json::json;

    fn property_type(value: serde_json::Value) -> PropertyType {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn lists_become_text_and_scalars_keep_their_types() {
        let types = [
            (
                "aliases",
                property_type(json!({"type": "text", "list": true})),
            ),
            (
                "sites",
                property_type(json!({"type": "direct", "list": true})),
            ),
            ("site", property_type(json!({"type": "direct"}))),
            ("at", property_type(json!({"type": "timestamp"}))),
            ("day", property_type(json!({"type": "date"}))),
        ];
        let source = PropertySource {
            space: "s".into(),
            key: "V/1".into(),
        };
        let raw = ViewSchema::from_property_types(
            TableKind::Nodes,
            source,
            types.iter().map(|(n, t)| (*n, t)),
        );
        let publish = publish_schema(raw.arrow_schema());
        let of = |name: &str| publish.field_with_name(name).unwrap().data_type().clone();
        assert_eq!(of("aliases"), DataType::Utf8);
        assert_eq!(of("sites"), DataType::Utf8);
        assert_eq!(of("site.space"), DataType::Utf8);
        assert_eq!(
            of("at"),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(of("day"), DataType::Date32);
        assert_eq!(of("createdTime"), DataType::Int64);
        assert_eq!(publish.fields().len(), raw.arrow_schema().fields().len());
        assert_eq!(
            publish.field_with_name("sites").unwrap().metadata()[METADATA_TYPE],
            "direct"
        );
    }

    #[test]
    fn publish_batch_renders_lists_as_json_text() {
        let mut ints = ListBuilder::new(Int64Builder::new()).with_field(Arc::new(Field::new(
            "element",
            DataType::Int64,
            true,
        )));
        ints.values().append_value(i64::MAX);
        ints.values().append_value(i64::MIN);
        ints.append(true);
        ints.append(false);
        ints.append(true);
        let mut docs = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
            "element",
            DataType::Utf8,
            true,
        )));
        docs.values().append_value(r#"{"名前":["ä",1]}"#);
        docs.append(true);
        docs.append(true);
        docs.append(false);
        let ints = ints.finish();
        let docs = docs.finish();
        let schema = Schema::new(vec![
            Field::new("counts", ints.data_type().clone(), true),
            Field::new("docs", docs.data_type().clone(), true)
                .with_metadata([(METADATA_TYPE.to_owned(), "json".to_owned())].into()),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(ints) as ArrayRef, Arc::new(docs) as ArrayRef],
        )
        .unwrap();
        let published = publish_batch(&batch).unwrap();
        let counts: &StringArray = published.column(0).as_string();
        assert_eq!(
            counts.value(0),
            "[9223372036854775807,-9223372036854775808]"
        );
        assert!(counts.is_null(1));
        assert_eq!(counts.value(2), "[]");
        let docs: &StringArray = published.column(1).as_string();
        assert_eq!(docs.value(0), r#"[{"名前":["ä",1]}]"#);
        assert_eq!(docs.value(1), "[]");
        assert!(docs.is_null(2));
    }

    #[test]
    fn an_exit_row_becomes_a_tombstone_and_the_raw_only_columns_are_not_published() {
        use crate::schema::system::ARRIVAL;
        use deltalake::arrow::array::Int64Array;
        let schema = Arc::new(Schema::new(vec![
            Field::new("externalId", DataType::Utf8, false),
            Field::new(DELETED_TIME, DataType::Int64, true),
            Field::new(ARRIVAL, DataType::Utf8, true),
            Field::new(EXITED_TIME, DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["live", "deleted", "exited"])),
                Arc::new(Int64Array::from(vec![None, Some(5), None])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
                Arc::new(Int64Array::from(vec![None, None, Some(7)])),
            ],
        )
        .unwrap();
        let published = publish_batch(&batch).unwrap();
        assert_eq!(published.schema(), publish_schema(&schema));
        assert!(published.schema().index_of(EXITED_TIME).is_err());
        assert!(published.schema().index_of(ARRIVAL).is_err());
        assert_eq!(published.num_columns(), 2);
        let deleted = published
            .column_by_name(DELETED_TIME)
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        assert_eq!(deleted.iter().collect::<Vec<_>>(), [None, Some(5), Some(7)]);
    }
}
