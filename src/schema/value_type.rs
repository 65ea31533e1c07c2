//! How a CDF property type is stored in the raw (Delta) tables.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit};

use crate::cdf::dto::PropertyKind;

/// The time zone of every timestamp column. Delta's `timestamp` type is UTC-adjusted
/// microseconds, which is exactly Arrow's `Timestamp(Microsecond, "UTC")`.
pub(crate) const UTC: &str = "UTC";

/// The element field name of list columns. Delta (and the Parquet LIST convention) call the
/// element `element`; using the same name keeps batch schemas equal to the table schema that
/// delta-rs reads back.
pub(crate) const LIST_ELEMENT: &str = "element";

/// Field names of a direct relation inside a list.
pub(crate) const DIRECT_SPACE: &str = "space";
pub(crate) const DIRECT_EXTERNAL_ID: &str = "externalId";

/// The storage class of one property value, independent of the CDF kind's settings (unit,
/// collation, enum values…), which do not change how a value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ValueType {
    /// `text`, `enum`, and the `timeseries` / `file` / `sequence` references (external ids).
    Text,
    Boolean,
    Int32,
    Int64,
    Float32,
    Float64,
    /// UTC microseconds.
    Timestamp,
    /// Days since 1970-01-01.
    Date,
    /// Compact JSON text.
    Json,
    /// A node reference: `<p>.space` and `<p>.externalId`, or a struct inside a list.
    Direct,
    /// A type this version does not know. The whole value (list or not) is kept as JSON
    /// text, so nothing is lost and a later version can reinterpret it.
    Untyped,
}

impl ValueType {
    pub(crate) fn of_kind(kind: &PropertyKind) -> Self {
        match kind {
            PropertyKind::Text { .. }
            | PropertyKind::Enum { .. }
            | PropertyKind::TimeSeries
            | PropertyKind::File
            | PropertyKind::Sequence => ValueType::Text,
            PropertyKind::Boolean => ValueType::Boolean,
            PropertyKind::Int32 => ValueType::Int32,
            PropertyKind::Int64 => ValueType::Int64,
            PropertyKind::Float32 { .. } => ValueType::Float32,
            PropertyKind::Float64 { .. } => ValueType::Float64,
            PropertyKind::Timestamp => ValueType::Timestamp,
            PropertyKind::Date => ValueType::Date,
            PropertyKind::Json => ValueType::Json,
            PropertyKind::Direct { .. } => ValueType::Direct,
            PropertyKind::Unknown(_) => ValueType::Untyped,
        }
    }

    /// What a value must look like, for error messages.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            ValueType::Text => "a string",
            ValueType::Boolean => "a boolean",
            ValueType::Int32 => "an int32 integer",
            ValueType::Int64 => "an int64 integer",
            ValueType::Float32 => "a float32 number (or \"NaN\"/\"Infinity\"/\"-Infinity\")",
            ValueType::Float64 => "a float64 number (or \"NaN\"/\"Infinity\"/\"-Infinity\")",
            ValueType::Timestamp => "an RFC 3339 timestamp string",
            ValueType::Date => "a YYYY-MM-DD date string",
            ValueType::Json => "any JSON value",
            ValueType::Direct => "a node reference {\"space\": …, \"externalId\": …}",
            ValueType::Untyped => "any JSON value",
        }
    }

    /// [`Self::expected`] for the elements of a list.
    pub(crate) fn expected_plural(self) -> &'static str {
        match self {
            ValueType::Text => "strings",
            ValueType::Boolean => "booleans",
            ValueType::Int32 => "int32 integers",
            ValueType::Int64 => "int64 integers",
            ValueType::Float32 => "float32 numbers",
            ValueType::Float64 => "float64 numbers",
            ValueType::Timestamp => "RFC 3339 timestamp strings",
            ValueType::Date => "YYYY-MM-DD date strings",
            ValueType::Json | ValueType::Untyped => "JSON values",
            ValueType::Direct => "node references",
        }
    }

    /// The Arrow type of one scalar value of this type. Direct relations are a struct here;
    /// as a top-level non-list property they are split into two string columns instead.
    pub(crate) fn element_data_type(self) -> DataType {
        match self {
            ValueType::Text | ValueType::Json | ValueType::Untyped => DataType::Utf8,
            ValueType::Boolean => DataType::Boolean,
            ValueType::Int32 => DataType::Int32,
            ValueType::Int64 => DataType::Int64,
            ValueType::Float32 => DataType::Float32,
            ValueType::Float64 => DataType::Float64,
            ValueType::Timestamp => timestamp_type(),
            ValueType::Date => DataType::Date32,
            ValueType::Direct => DataType::Struct(direct_struct_fields()),
        }
    }

    /// The Arrow type of a list of this type; `None` for [`ValueType::Untyped`], whose lists
    /// are kept whole as JSON text.
    pub(crate) fn list_data_type(self) -> Option<DataType> {
        (self != ValueType::Untyped).then(|| DataType::List(list_element_field(self)))
    }
}

pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
}

pub(crate) fn direct_struct_fields() -> Fields {
    Fields::from(vec![
        Field::new(DIRECT_SPACE, DataType::Utf8, true),
        Field::new(DIRECT_EXTERNAL_ID, DataType::Utf8, true),
    ])
}

/// The element field of a list column of `value_type`.
pub(crate) fn list_element_field(value_type: ValueType) -> FieldRef {
    Arc::new(Field::new(
        LIST_ELEMENT,
        value_type.element_data_type(),
        true,
    ))
}
