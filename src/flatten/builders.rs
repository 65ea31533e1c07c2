//! Arrow builders for property columns, one per schema column, chosen from the schema alone.

use std::any::Any;
use std::sync::Arc;

use deltalake::arrow::array::builder::NullBufferBuilder;
use deltalake::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder,
    Int32Builder, Int64Builder, ListBuilder, StringBuilder, StructArray,
    TimestampMicrosecondBuilder,
};
use deltalake::arrow::buffer::NullBuffer;
use serde_json::Value;

use super::values::{self, Mismatch};
use crate::schema::value_type::{UTC, direct_struct_fields, list_element_field};
use crate::schema::{PropertyColumn, ValueType};

/// Bytes held by a string builder (values and offsets).
pub(crate) fn string_bytes(builder: &StringBuilder) -> usize {
    builder.values_slice().len() + std::mem::size_of_val(builder.offsets_slice())
}

/// A list element that is a direct relation: a `{space, externalId}` struct.
#[derive(Debug)]
pub(crate) struct DirectStructBuilder {
    space: StringBuilder,
    external_id: StringBuilder,
    nulls: NullBufferBuilder,
}

impl DirectStructBuilder {
    fn new() -> Self {
        Self {
            space: StringBuilder::new(),
            external_id: StringBuilder::new(),
            nulls: NullBufferBuilder::new(0),
        }
    }

    fn append(&mut self, space: &str, external_id: &str) {
        self.space.append_value(space);
        self.external_id.append_value(external_id);
        self.nulls.append_non_null();
    }

    fn append_null(&mut self) {
        self.space.append_null();
        self.external_id.append_null();
        self.nulls.append_null();
    }

    fn assemble(space: ArrayRef, external_id: ArrayRef, nulls: Option<NullBuffer>) -> ArrayRef {
        // The three parts are appended in lockstep, so lengths always agree.
        Arc::new(StructArray::new(
            direct_struct_fields(),
            vec![space, external_id],
            nulls,
        ))
    }
}

impl ArrayBuilder for DirectStructBuilder {
    fn len(&self) -> usize {
        self.nulls.len()
    }

    fn finish(&mut self) -> ArrayRef {
        let space = Arc::new(self.space.finish());
        let external_id = Arc::new(self.external_id.finish());
        Self::assemble(space, external_id, self.nulls.finish())
    }

    fn finish_cloned(&self) -> ArrayRef {
        let space = Arc::new(self.space.finish_cloned());
        let external_id = Arc::new(self.external_id.finish_cloned());
        Self::assemble(space, external_id, self.nulls.finish_cloned())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn into_box_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// A builder for one value type: a scalar column, or the elements of a list column.
#[derive(Debug)]
pub(crate) enum ElementBuilder {
    Text(StringBuilder),
    Boolean(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    /// CDF `json`, and values of unknown types: compact JSON text.
    Json(StringBuilder),
    Direct(DirectStructBuilder),
}

impl ElementBuilder {
    pub(crate) fn new(value_type: ValueType) -> Self {
        match value_type {
            ValueType::Text => ElementBuilder::Text(StringBuilder::new()),
            ValueType::Boolean => ElementBuilder::Boolean(BooleanBuilder::new()),
            ValueType::Int32 => ElementBuilder::Int32(Int32Builder::new()),
            ValueType::Int64 => ElementBuilder::Int64(Int64Builder::new()),
            ValueType::Float32 => ElementBuilder::Float32(Float32Builder::new()),
            ValueType::Float64 => ElementBuilder::Float64(Float64Builder::new()),
            ValueType::Timestamp => {
                ElementBuilder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone(UTC))
            }
            ValueType::Date => ElementBuilder::Date(Date32Builder::new()),
            ValueType::Json | ValueType::Untyped => ElementBuilder::Json(StringBuilder::new()),
            ValueType::Direct => ElementBuilder::Direct(DirectStructBuilder::new()),
        }
    }

    /// Appends `value` (`null` appends a null). On a mismatch nothing is appended.
    pub(crate) fn append(&mut self, value: &Value, scratch: &mut Vec<u8>) -> Result<(), Mismatch> {
        if value.is_null() {
            self.append_null();
            return Ok(());
        }
        match self {
            ElementBuilder::Text(b) => b.append_value(values::text(value)?),
            ElementBuilder::Boolean(b) => b.append_value(values::boolean(value)?),
            ElementBuilder::Int32(b) => b.append_value(values::int32(value)?),
            ElementBuilder::Int64(b) => b.append_value(values::int64(value)?),
            ElementBuilder::Float32(b) => b.append_value(values::float32(value)?),
            ElementBuilder::Float64(b) => b.append_value(values::float64(value)?),
            ElementBuilder::Timestamp(b) => b.append_value(values::timestamp_micros(value)?),
            ElementBuilder::Date(b) => b.append_value(values::date_days(value)?),
            ElementBuilder::Json(b) => b.append_value(values::json_text(value, scratch)),
            ElementBuilder::Direct(b) => {
                let (space, external_id) = values::direct(value)?;
                b.append(space, external_id);
            }
        }
        Ok(())
    }

    pub(crate) fn append_null(&mut self) {
        match self {
            ElementBuilder::Text(b) | ElementBuilder::Json(b) => b.append_null(),
            ElementBuilder::Boolean(b) => b.append_null(),
            ElementBuilder::Int32(b) => b.append_null(),
            ElementBuilder::Int64(b) => b.append_null(),
            ElementBuilder::Float32(b) => b.append_null(),
            ElementBuilder::Float64(b) => b.append_null(),
            ElementBuilder::Timestamp(b) => b.append_null(),
            ElementBuilder::Date(b) => b.append_null(),
            ElementBuilder::Direct(b) => b.append_null(),
        }
    }

    pub(crate) fn byte_size(&self) -> usize {
        match self {
            ElementBuilder::Text(b) | ElementBuilder::Json(b) => string_bytes(b),
            ElementBuilder::Boolean(b) => b.len().div_ceil(8),
            ElementBuilder::Int32(b) => std::mem::size_of_val(b.values_slice()),
            ElementBuilder::Int64(b) => std::mem::size_of_val(b.values_slice()),
            ElementBuilder::Float32(b) => std::mem::size_of_val(b.values_slice()),
            ElementBuilder::Float64(b) => std::mem::size_of_val(b.values_slice()),
            ElementBuilder::Timestamp(b) => std::mem::size_of_val(b.values_slice()),
            ElementBuilder::Date(b) => std::mem::size_of_val(b.values_slice()),
            ElementBuilder::Direct(b) => string_bytes(&b.space) + string_bytes(&b.external_id),
        }
    }

    fn inner(&self) -> &dyn ArrayBuilder {
        match self {
            ElementBuilder::Text(b) | ElementBuilder::Json(b) => b,
            ElementBuilder::Boolean(b) => b,
            ElementBuilder::Int32(b) => b,
            ElementBuilder::Int64(b) => b,
            ElementBuilder::Float32(b) => b,
            ElementBuilder::Float64(b) => b,
            ElementBuilder::Timestamp(b) => b,
            ElementBuilder::Date(b) => b,
            ElementBuilder::Direct(b) => b,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn ArrayBuilder {
        match self {
            ElementBuilder::Text(b) | ElementBuilder::Json(b) => b,
            ElementBuilder::Boolean(b) => b,
            ElementBuilder::Int32(b) => b,
            ElementBuilder::Int64(b) => b,
            ElementBuilder::Float32(b) => b,
            ElementBuilder::Float64(b) => b,
            ElementBuilder::Timestamp(b) => b,
            ElementBuilder::Date(b) => b,
            ElementBuilder::Direct(b) => b,
        }
    }
}

/// Lets [`ElementBuilder`] be the values builder of an Arrow `ListBuilder`.
impl ArrayBuilder for ElementBuilder {
    fn len(&self) -> usize {
        self.inner().len()
    }

    fn finish(&mut self) -> ArrayRef {
        self.inner_mut().finish()
    }

    fn finish_cloned(&self) -> ArrayRef {
        self.inner().finish_cloned()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn into_box_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// A value that does not fit its column; `element` is the list index for list columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColumnMismatch {
    pub(crate) mismatch: Mismatch,
    pub(crate) element: Option<usize>,
}

/// The builder(s) of one property.
#[derive(Debug)]
pub(crate) enum ColumnBuilder {
    /// One column of scalars (JSON text for `json` and unknown types, lists of those too).
    Scalar(ElementBuilder),
    /// A non-list direct relation: two string columns.
    Direct {
        space: StringBuilder,
        external_id: StringBuilder,
    },
    List(ListBuilder<ElementBuilder>),
}

impl ColumnBuilder {
    pub(crate) fn for_property(property: &PropertyColumn) -> Self {
        match property.value_type {
            _ if property.is_native_list() => ColumnBuilder::List(
                ListBuilder::new(ElementBuilder::new(property.value_type))
                    .with_field(list_element_field(property.value_type)),
            ),
            ValueType::Direct => ColumnBuilder::Direct {
                space: StringBuilder::new(),
                external_id: StringBuilder::new(),
            },
            value_type => ColumnBuilder::Scalar(ElementBuilder::new(value_type)),
        }
    }

    /// Appends one row. Always adds exactly one slot, so that columns stay aligned; on a
    /// mismatch that slot is null and the caller drops the row.
    pub(crate) fn append(
        &mut self,
        value: Option<&Value>,
        scratch: &mut Vec<u8>,
    ) -> Result<(), ColumnMismatch> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            self.append_null();
            return Ok(());
        };
        let scalar_mismatch = |mismatch| ColumnMismatch {
            mismatch,
            element: None,
        };
        match self {
            ColumnBuilder::Scalar(builder) => builder.append(value, scratch).map_err(|m| {
                builder.append_null();
                scalar_mismatch(m)
            }),
            ColumnBuilder::Direct { space, external_id } => match values::direct(value) {
                Ok((s, x)) => {
                    space.append_value(s);
                    external_id.append_value(x);
                    Ok(())
                }
                Err(m) => {
                    space.append_null();
                    external_id.append_null();
                    Err(scalar_mismatch(m))
                }
            },
            ColumnBuilder::List(builder) => {
                let Value::Array(items) = value else {
                    builder.append_null();
                    return Err(scalar_mismatch(Mismatch {
                        reason: Some("the property is a list"),
                    }));
                };
                for (index, item) in items.iter().enumerate() {
                    if let Err(mismatch) = builder.values().append(item, scratch) {
                        builder.append(false);
                        return Err(ColumnMismatch {
                            mismatch,
                            element: Some(index),
                        });
                    }
                }
                builder.append(true);
                Ok(())
            }
        }
    }

    pub(crate) fn append_null(&mut self) {
        match self {
            ColumnBuilder::Scalar(builder) => builder.append_null(),
            ColumnBuilder::Direct { space, external_id } => {
                space.append_null();
                external_id.append_null();
            }
            ColumnBuilder::List(builder) => builder.append_null(),
        }
    }

    /// Finishes the column(s) in table order and resets the builders.
    pub(crate) fn finish_into(&mut self, arrays: &mut Vec<ArrayRef>) {
        match self {
            ColumnBuilder::Scalar(builder) => arrays.push(builder.finish()),
            ColumnBuilder::Direct { space, external_id } => {
                arrays.push(Arc::new(space.finish()));
                arrays.push(Arc::new(external_id.finish()));
            }
            ColumnBuilder::List(builder) => arrays.push(Arc::new(builder.finish())),
        }
    }

    pub(crate) fn byte_size(&self) -> usize {
        match self {
            ColumnBuilder::Scalar(builder) => builder.byte_size(),
            ColumnBuilder::Direct { space, external_id } => {
                string_bytes(space) + string_bytes(external_id)
            }
            ColumnBuilder::List(builder) => {
                std::mem::size_of_val(builder.offsets_slice()) + builder.values_ref().byte_size()
            }
        }
    }
}
