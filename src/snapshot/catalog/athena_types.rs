//! Arrow types as Athena (Glue / Hive DDL) column types.
//!
//! The publish writer writes flat files only: `Utf8` (text, enums, direct-relation parts,
//! JSON text of lists and `json` properties), `Boolean`, `Int32`, `Int64` (also the system
//! times, epoch milliseconds), `Float32`, `Float64`, `Date32` and `Timestamp(µs, UTC)`. The
//! raw Delta tables add lists of those and the `{space, externalId}` struct of a list of
//! direct relations. Parquet stores timestamps as INT64 micros adjusted to UTC, which Athena
//! reads as `timestamp` (its timestamps carry no zone; values are UTC). Any other type is
//! refused rather than guessed, so a table is never declared with a type Athena would read
//! differently.

use deltalake::arrow::datatypes::DataType;

/// An Arrow type with no Athena counterpart in this mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column `{column}` has Arrow type {data_type}, which has no Athena type here")]
pub(crate) struct UnsupportedType {
    pub(crate) column: String,
    pub(crate) data_type: String,
}

/// The Athena type of `data_type`, for the column `column` (named in the error).
pub(crate) fn athena_type(column: &str, data_type: &DataType) -> Result<String, UnsupportedType> {
    let unsupported = || UnsupportedType {
        column: column.to_owned(),
        data_type: data_type.to_string(),
    };
    Ok(match data_type {
        DataType::Boolean => "boolean".to_owned(),
        DataType::Int32 => "int".to_owned(),
        DataType::Int64 => "bigint".to_owned(),
        DataType::Float32 => "float".to_owned(),
        DataType::Float64 => "double".to_owned(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".to_owned(),
        DataType::Date32 => "date".to_owned(),
        DataType::Timestamp(_, _) => "timestamp".to_owned(),
        DataType::List(element) | DataType::LargeList(element) => {
            format!("array<{}>", athena_type(column, element.data_type())?)
        }
        DataType::Struct(fields) => {
            let members = fields
                .iter()
                .map(|f| {
                    Ok(format!(
                        "{}:{}",
                        f.name(),
                        athena_type(column, f.data_type())?
                    ))
                })
                .collect::<Result<Vec<_>, UnsupportedType>>()?;
            format!("struct<{}>", members.join(","))
        }
        _ => return Err(unsupported()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use deltalake::arrow::datatypes::{Field, Fields, TimeUnit};

    #[test]
    fn every_published_type_has_its_athena_type() {
        let cases = [
            (DataType::Boolean, "boolean"),
            (DataType::Int32, "int"),
            (DataType::Int64, "bigint"),
            (DataType::Float32, "float"),
            (DataType::Float64, "double"),
            (DataType::Utf8, "string"),
            (DataType::LargeUtf8, "string"),
            (DataType::Date32, "date"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "timestamp",
            ),
            (
                DataType::Timestamp(TimeUnit::Millisecond, None),
                "timestamp",
            ),
        ];
        for (data_type, expected) in cases {
            assert_eq!(
                athena_type("c", &data_type).unwrap(),
                expected,
                "{data_type}"
            );
        }
    }

    #[test]
    fn raw_lists_and_direct_structs_nest() {
        let direct = DataType::Struct(Fields::from(vec![
            Field::new("space", DataType::Utf8, true),
            Field::new("externalId", DataType::Utf8, true),
        ]));
        let list = DataType::List(Arc::new(Field::new("element", direct, true)));
        assert_eq!(
            athena_type("sites", &list).unwrap(),
            "array<struct<space:string,externalId:string>>"
        );
        let ints = DataType::List(Arc::new(Field::new("element", DataType::Int32, true)));
        assert_eq!(athena_type("n", &ints).unwrap(), "array<int>");
    }

    #[test]
    fn other_types_are_refused_naming_the_column() {
        let err = athena_type("blob", &DataType::Binary).unwrap_err();
        assert_eq!(err.column, "blob");
        assert!(err.to_string().contains("Binary"), "{err}");
        let nested = DataType::List(Arc::new(Field::new("element", DataType::UInt8, true)));
        assert!(athena_type("l", &nested).is_err());
    }
}
