//! Sync pages → Arrow record batches for the raw tables.
//!
//! The column builders come from the [`ViewSchema`] alone, never from the values seen, so
//! every batch of a view has the view's schema. Each property value is looked up by its
//! identifier in the instance's map for the view (resolved once per row) and checked against
//! the declared type. Missing and explicit-`null` values are both null; tombstones
//! (`deletedTime` set) keep their system columns and have every property column null,
//! whatever they carry.
//!
//! A value that does not fit its column fails that one instance with a [`FlattenError`]
//! naming the view, property, instance, value and expected type. The instance is left out
//! of the batch, so the caller may log it and go on, or stop; rows already pushed stay
//! valid.

mod builders;
mod values;

pub(crate) use values::write_json;

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanArray, Int64Builder, RecordBatch, StringBuilder,
};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;
use serde_json::Value;

use crate::cdf::dto::{Instance, InstanceType, NodeReference};
use crate::schema::{PropertySource, TableKind, ValueType, ViewSchema};
use builders::{ColumnBuilder, ColumnMismatch};

/// How much of an offending value an error message shows.
const MAX_VALUE_CHARS: usize = 200;

/// A property value that does not match the type the view declares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValueMismatch {
    /// The view (`space:externalId/version`) the value was read from.
    pub(crate) view: String,
    pub(crate) property: String,
    pub(crate) instance_type: InstanceType,
    pub(crate) space: String,
    pub(crate) external_id: String,
    /// The index inside a list property, if the mismatch is one element.
    pub(crate) element: Option<usize>,
    pub(crate) expected: String,
    /// A more precise reason, e.g. "outside the int32 range".
    pub(crate) reason: Option<&'static str>,
    /// The offending value as JSON text, truncated.
    pub(crate) value: String,
}

impl std::fmt::Display for ValueMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "view {}, property `{}` of {} {}/{}",
            self.view,
            self.property,
            self.instance_type.as_str(),
            self.space,
            self.external_id
        )?;
        if let Some(element) = self.element {
            write!(f, ", list element {element}")?;
        }
        write!(f, ": expected {}", self.expected)?;
        if let Some(reason) = self.reason {
            write!(f, " ({reason})")?;
        }
        write!(f, ", got {}", self.value)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FlattenError {
    #[error("{0}")]
    Value(Box<ValueMismatch>),
    #[error(
        "{} {space}/{external_id} cannot be written to the {table} table of view {view}",
        instance_type.as_str()
    )]
    WrongInstanceType {
        view: String,
        table: TableKind,
        instance_type: InstanceType,
        space: String,
        external_id: String,
    },
    #[error("assembling the record batch of view {view}: {source}")]
    Arrow { view: String, source: ArrowError },
}

/// Accumulates instances of one view and table kind into one record batch at a time.
///
/// Push instances page by page, watch [`Self::len`] / [`Self::estimated_bytes`] against the
/// commit budget, then [`Self::finish`]; the flattener is then empty and reusable.
#[derive(Debug)]
pub(crate) struct Flattener {
    schema: SchemaRef,
    kind: TableKind,
    view: String,
    /// The views whose property maps the columns read (`space`, `key`); a stream of edge
    /// connections may read several edge sources.
    sources: Vec<PropertySource>,
    system: SystemColumns,
    properties: Vec<PropertyBuilder>,
    /// Rows appended to the builders, rejected ones included.
    rows: usize,
    /// Rows whose values did not fit; removed at `finish`.
    rejected: Vec<usize>,
    scratch: Vec<u8>,
}

#[derive(Debug)]
struct PropertyBuilder {
    property: String,
    /// Index into [`Flattener::sources`].
    source: usize,
    value_type: ValueType,
    /// A native list column (lists of unknown types are one JSON value).
    list: bool,
    builder: ColumnBuilder,
}

impl Flattener {
    pub(crate) fn new(schema: &ViewSchema) -> Self {
        let mut sources = vec![schema.source().clone()];
        for property in schema.properties() {
            if !sources.contains(&property.source) {
                sources.push(property.source.clone());
            }
        }
        Self {
            schema: schema.arrow_schema().clone(),
            kind: schema.kind(),
            view: schema.source().to_string(),
            system: SystemColumns::new(schema.kind()),
            properties: schema
                .properties()
                .iter()
                .map(|property| PropertyBuilder {
                    property: property.property.clone(),
                    source: sources
                        .iter()
                        .position(|s| s == &property.source)
                        .unwrap_or_default(),
                    value_type: property.value_type,
                    list: property.is_native_list(),
                    builder: ColumnBuilder::for_property(property),
                })
                .collect(),
            sources,
            rows: 0,
            rejected: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Adds one instance as one row. On error the instance is not added and the
    /// flattener stays usable.
    pub(crate) fn push(&mut self, instance: &Instance) -> Result<(), FlattenError> {
        let expected = match self.kind {
            TableKind::Nodes => InstanceType::Node,
            TableKind::Edges => InstanceType::Edge,
        };
        if instance.instance_type != expected {
            return Err(FlattenError::WrongInstanceType {
                view: self.view.clone(),
                table: self.kind,
                instance_type: instance.instance_type,
                space: instance.space.clone(),
                external_id: instance.external_id.clone(),
            });
        }

        self.system.append(instance);
        let row = self.rows;
        self.rows += 1;
        if instance.deleted_time.is_some() {
            for column in &mut self.properties {
                column.builder.append_null();
            }
            return Ok(());
        }

        let primary = &self.sources[0];
        let values = instance.properties_at(&primary.space, &primary.key);
        let values_of = |source: usize| match source {
            0 => values,
            other => {
                let source = &self.sources[other];
                instance.properties_at(&source.space, &source.key)
            }
        };
        let mut failure: Option<(usize, ColumnMismatch)> = None;
        for (index, column) in self.properties.iter_mut().enumerate() {
            if failure.is_some() {
                column.builder.append_null();
                continue;
            }
            let value =
                values_of(column.source).and_then(|values| values.get(column.property.as_str()));
            if let Err(mismatch) = column.builder.append(value, &mut self.scratch) {
                failure = Some((index, mismatch));
            }
        }
        match failure {
            None => Ok(()),
            Some((index, mismatch)) => {
                self.rejected.push(row);
                let column = &self.properties[index];
                let value = values_of(column.source)
                    .and_then(|values| values.get(column.property.as_str()));
                Err(self.mismatch_error(instance, index, value, mismatch))
            }
        }
    }

    fn mismatch_error(
        &self,
        instance: &Instance,
        index: usize,
        value: Option<&Value>,
        mismatch: ColumnMismatch,
    ) -> FlattenError {
        let column = &self.properties[index];
        let expected = match (column.list, mismatch.element) {
            (true, None) => format!("a list of {}", column.value_type.expected_plural()),
            _ => column.value_type.expected().to_owned(),
        };
        let offending = match (value, mismatch.element) {
            (Some(Value::Array(items)), Some(element)) => items.get(element),
            (value, _) => value,
        };
        FlattenError::Value(Box::new(ValueMismatch {
            view: self.sources[column.source].to_string(),
            property: column.property.clone(),
            instance_type: instance.instance_type,
            space: instance.space.clone(),
            external_id: instance.external_id.clone(),
            element: mismatch.element,
            expected,
            reason: mismatch.mismatch.reason,
            value: offending.map_or_else(|| "nothing".to_owned(), truncated_json),
        }))
    }

    /// Rows that [`Self::finish`] will return.
    pub(crate) fn len(&self) -> usize {
        self.rows - self.rejected.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate in-memory size of the buffered rows, for byte budgets.
    pub(crate) fn estimated_bytes(&self) -> usize {
        self.system.byte_size()
            + self
                .properties
                .iter()
                .map(|p| p.builder.byte_size())
                .sum::<usize>()
    }

    /// Returns the buffered rows as one batch and empties the flattener.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, FlattenError> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        self.system.finish_into(&mut arrays);
        for column in &mut self.properties {
            column.builder.finish_into(&mut arrays);
        }
        let rows = std::mem::take(&mut self.rows);
        let rejected = std::mem::take(&mut self.rejected);
        let arrow_error = |source| FlattenError::Arrow {
            view: self.view.clone(),
            source,
        };
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(arrow_error)?;
        if rejected.is_empty() {
            return Ok(batch);
        }
        let mut keep = vec![true; rows];
        for row in rejected {
            keep[row] = false;
        }
        filter_record_batch(&batch, &BooleanArray::from(keep)).map_err(arrow_error)
    }
}

/// The JSON text of `value`, cut to [`MAX_VALUE_CHARS`] characters.
fn truncated_json(value: &Value) -> String {
    let mut bytes = Vec::new();
    values::write_json(value, &mut bytes);
    let text = String::from_utf8(bytes).unwrap_or_default();
    match text.char_indices().nth(MAX_VALUE_CHARS) {
        None => text,
        Some((cut, _)) => format!("{}… ({} bytes in total)", &text[..cut], text.len()),
    }
}

/// Builders of the system columns, in table order.
#[derive(Debug)]
struct SystemColumns {
    space: StringBuilder,
    external_id: StringBuilder,
    instance_type: StringBuilder,
    version: Int64Builder,
    created_time: Int64Builder,
    last_updated_time: Int64Builder,
    deleted_time: Int64Builder,
    type_ref: ReferenceColumns,
    /// Edges only.
    endpoints: Option<(ReferenceColumns, ReferenceColumns)>,
}

#[derive(Debug, Default)]
struct ReferenceColumns {
    space: StringBuilder,
    external_id: StringBuilder,
}

impl ReferenceColumns {
    fn append(&mut self, reference: Option<&NodeReference>) {
        match reference {
            Some(reference) => {
                self.space.append_value(&reference.space);
                self.external_id.append_value(&reference.external_id);
            }
            None => {
                self.space.append_null();
                self.external_id.append_null();
            }
        }
    }

    fn finish_into(&mut self, arrays: &mut Vec<ArrayRef>) {
        arrays.push(Arc::new(self.space.finish()));
        arrays.push(Arc::new(self.external_id.finish()));
    }

    fn byte_size(&self) -> usize {
        builders::string_bytes(&self.space) + builders::string_bytes(&self.external_id)
    }
}

impl SystemColumns {
    fn new(kind: TableKind) -> Self {
        Self {
            space: StringBuilder::new(),
            external_id: StringBuilder::new(),
            instance_type: StringBuilder::new(),
            version: Int64Builder::new(),
            created_time: Int64Builder::new(),
            last_updated_time: Int64Builder::new(),
            deleted_time: Int64Builder::new(),
            type_ref: ReferenceColumns::default(),
            endpoints: (kind == TableKind::Edges).then(Default::default),
        }
    }

    fn append(&mut self, instance: &Instance) {
        self.space.append_value(&instance.space);
        self.external_id.append_value(&instance.external_id);
        self.instance_type
            .append_value(instance.instance_type.as_str());
        self.version.append_value(instance.version);
        self.created_time.append_value(instance.created_time);
        self.last_updated_time
            .append_value(instance.last_updated_time);
        self.deleted_time.append_option(instance.deleted_time);
        self.type_ref.append(instance.r#type.as_ref());
        if let Some((start, end)) = &mut self.endpoints {
            start.append(instance.start_node.as_ref());
            end.append(instance.end_node.as_ref());
        }
    }

    fn finish_into(&mut self, arrays: &mut Vec<ArrayRef>) {
        arrays.push(Arc::new(self.space.finish()));
        arrays.push(Arc::new(self.external_id.finish()));
        arrays.push(Arc::new(self.instance_type.finish()));
        arrays.push(Arc::new(self.version.finish()));
        arrays.push(Arc::new(self.created_time.finish()));
        arrays.push(Arc::new(self.last_updated_time.finish()));
        arrays.push(Arc::new(self.deleted_time.finish()));
        self.type_ref.finish_into(arrays);
        if let Some((start, end)) = &mut self.endpoints {
            start.finish_into(arrays);
            end.finish_into(arrays);
        }
    }

    fn byte_size(&self) -> usize {
        let endpoints = self
            .endpoints
            .as_ref()
            .map_or(0, |(start, end)| start.byte_size() + end.byte_size());
        // Four Int64 columns per row, plus the strings.
        builders::string_bytes(&self.space)
            + builders::string_bytes(&self.external_id)
            + builders::string_bytes(&self.instance_type)
            + 4 * 8 * self.version.len()
            + self.type_ref.byte_size()
            + endpoints
    }
}

#[cfg(test)]
mod tests;
