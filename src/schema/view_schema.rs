//! The raw-table schema of one view's nodes or edges, and where each column's values come
//! from.

#[cfg(test)]
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};

use super::mapping::{SourceProperties, map_columns};
use super::naming::PropertyColumnNames;
use super::system::TableKind;
use super::value_type::ValueType;
use crate::cdf::dto::{PropertyKind, PropertyType, ViewReference};
#[cfg(test)]
use crate::cdf::dto::{TypingProperty, ViewDefinition};

/// Field-metadata key holding the CDF property identifier a column was built from. It lets
/// readers map renamed columns back, and lets the publish step recognise JSON lists.
pub(crate) const METADATA_PROPERTY: &str = "cdf.property";
/// Field-metadata key holding the CDF type name (`text`, `json`, `direct`, …).
pub(crate) const METADATA_TYPE: &str = "cdf.type";
/// Field-metadata key present (`"true"`) on list properties.
pub(crate) const METADATA_LIST: &str = "cdf.list";
/// Field-metadata key holding the view the values were read from (`space:externalId/version`).
/// Together with `cdf.property` and `cdf.type` it identifies what a column holds, also in
/// tables that several source views write to.
pub(crate) const METADATA_SOURCE: &str = "cdf.source";

/// The Arrow type of a single-column property of `value_type` (direct relations that are
/// not lists have two Utf8 columns instead).
pub(crate) fn column_data_type(value_type: ValueType, list: bool) -> DataType {
    match value_type.list_data_type() {
        Some(list_type) if list => list_type,
        _ if value_type == ValueType::Direct => DataType::Utf8,
        _ => value_type.element_data_type(),
    }
}

/// Where sync returns a property's values: `properties[space][key]`, with `key` being
/// `"<viewExternalId>/<viewVersion>"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PropertySource {
    /// The space of the view.
    pub space: String,
    /// `"<viewExternalId>/<viewVersion>"`.
    pub key: String,
}

impl PropertySource {
    pub(crate) fn of_view(view: &ViewReference) -> Self {
        Self {
            space: view.space.clone(),
            key: view.properties_key(),
        }
    }
}

impl std::fmt::Display for PropertySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.space, self.key)
    }
}

/// One property of the view and the column(s) it fills.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyColumn {
    /// The CDF property identifier (the key inside the instance's property map).
    pub(crate) property: String,
    /// The CDF type as declared by the view.
    pub(crate) kind: PropertyKind,
    /// Whether the view declares a list.
    pub(crate) list: bool,
    /// How a value is stored.
    pub(crate) value_type: ValueType,
    pub(crate) columns: PropertyColumnNames,
    /// True when the column name differs from the property identifier (a collision, a
    /// qualified name, or a new column for a changed type).
    pub(crate) renamed: bool,
    /// The view the values are read from.
    pub(crate) source: PropertySource,
}

impl PropertyColumn {
    /// Whether the column is an Arrow list (a list property of a known type).
    pub(crate) fn is_native_list(&self) -> bool {
        self.list && self.value_type != ValueType::Untyped
    }

    fn fields(&self) -> Vec<FieldRef> {
        let mut metadata = HashMap::from([
            (METADATA_PROPERTY.to_owned(), self.property.clone()),
            (METADATA_TYPE.to_owned(), self.kind.type_name().to_owned()),
            (METADATA_SOURCE.to_owned(), self.source.to_string()),
        ]);
        if self.list {
            metadata.insert(METADATA_LIST.to_owned(), "true".to_owned());
        }
        let field = |name: &str, data_type: DataType| {
            Arc::new(Field::new(name, data_type, true).with_metadata(metadata.clone()))
        };
        match &self.columns {
            PropertyColumnNames::Direct { space, external_id } => {
                vec![
                    field(space, DataType::Utf8),
                    field(external_id, DataType::Utf8),
                ]
            }
            PropertyColumnNames::Single(name) => {
                vec![field(name, column_data_type(self.value_type, self.list))]
            }
        }
    }
}

/// The Arrow schema of a raw table (system columns, then property columns sorted by
/// property identifier) together with the recipe for filling it.
///
/// Built from the view definition or from sync's `includeTyping` answer, never from the
/// values of a page, so every page of a view produces the same schema.
#[derive(Debug, Clone)]
pub struct ViewSchema {
    kind: TableKind,
    source: PropertySource,
    properties: Vec<PropertyColumn>,
    arrow: SchemaRef,
}

#[cfg(test)]
/// Raised when `includeTyping` has no entry for the view being synced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the sync typing has no properties for view {view} (expected typing[{space}][{key}])")]
pub struct MissingTyping {
    pub(crate) view: String,
    pub(crate) space: String,
    pub(crate) key: String,
}

impl ViewSchema {
    #[cfg(test)]
    /// The schema of `kind` rows whose properties are read from `view`.
    pub(crate) fn for_view(view: &ViewDefinition, kind: TableKind) -> Self {
        let properties = view
            .mapped_properties()
            .map(|(name, mapped)| (name.as_str(), &mapped.property_type));
        Self::from_property_types(kind, PropertySource::of_view(&view.reference()), properties)
    }

    #[cfg(test)]
    /// The same as [`Self::for_view`], from the `typing` of one sync result set
    /// (`space → "xid/version" → property → definition`).
    pub(crate) fn from_typing(
        view: &ViewReference,
        typing: &BTreeMap<String, BTreeMap<String, BTreeMap<String, TypingProperty>>>,
        kind: TableKind,
    ) -> Result<Self, MissingTyping> {
        let source = PropertySource::of_view(view);
        let properties = typing
            .get(&source.space)
            .and_then(|by_key| by_key.get(&source.key))
            .ok_or_else(|| MissingTyping {
                view: view.to_string(),
                space: source.space.clone(),
                key: source.key.clone(),
            })?;
        let properties = properties
            .iter()
            .map(|(name, typed)| (name.as_str(), &typed.property_type));
        Ok(Self::from_property_types(kind, source, properties))
    }

    /// A table with system columns only, e.g. the edges of a connection without an
    /// `edgeSource` view.
    pub(crate) fn without_properties(kind: TableKind, source: PropertySource) -> Self {
        Self::from_property_types(kind, source, std::iter::empty())
    }

    /// A schema with the properties of one source view: `properties` in any order.
    pub fn from_property_types<'a>(
        kind: TableKind,
        source: PropertySource,
        properties: impl IntoIterator<Item = (&'a str, &'a PropertyType)>,
    ) -> Self {
        let sources = [SourceProperties {
            source: source.clone(),
            properties: properties.into_iter().collect(),
        }];
        Self::for_table(kind, source.clone(), &sources, &[source], None)
    }

    /// The general constructor: the schema of a stream that reads the properties of the
    /// `selected` views into a `kind` table written from all of `table_sources` (by this
    /// and other streams), whose current schema is `existing`. The column of each property
    /// follows [`super::mapping`]; `stream_source` names the stream in messages.
    pub(crate) fn for_table(
        kind: TableKind,
        stream_source: PropertySource,
        table_sources: &[SourceProperties<'_>],
        selected: &[PropertySource],
        existing: Option<&Schema>,
    ) -> Self {
        let mut mapped = map_columns(kind, table_sources, existing);
        mapped.retain(|m| selected.contains(&m.source));
        mapped.sort_by(|a, b| {
            (a.property, &a.source.space, &a.source.key).cmp(&(
                b.property,
                &b.source.space,
                &b.source.key,
            ))
        });
        let properties: Vec<PropertyColumn> = mapped
            .into_iter()
            .map(|m| {
                let property_type = m.property_type;
                if let PropertyKind::Unknown(type_name) = &property_type.kind {
                    tracing::warn!(
                        view = %m.source,
                        property = %m.property,
                        cdf_type = %type_name,
                        "unknown CDF property type; its values are stored as JSON text"
                    );
                }
                PropertyColumn {
                    property: m.property.to_owned(),
                    kind: property_type.kind.clone(),
                    list: property_type.list,
                    value_type: ValueType::of_kind(&property_type.kind),
                    columns: m.columns,
                    renamed: m.renamed,
                    source: m.source,
                }
            })
            .collect();

        let mut fields = kind.system_fields();
        for property in &properties {
            fields.extend(property.fields());
        }
        Self {
            kind,
            source: stream_source,
            properties,
            arrow: Arc::new(Schema::new(fields)),
        }
    }

    pub(crate) fn kind(&self) -> TableKind {
        self.kind
    }

    /// The view the stream belongs to, for messages. Each property's values are found
    /// under its own [`PropertyColumn::source`].
    pub(crate) fn source(&self) -> &PropertySource {
        &self.source
    }

    /// The property columns in table order.
    pub(crate) fn properties(&self) -> &[PropertyColumn] {
        &self.properties
    }

    #[cfg(test)]
    /// The property that fills column `column`, if any.
    pub(crate) fn property_of_column(&self, column: &str) -> Option<&PropertyColumn> {
        self.properties
            .iter()
            .find(|p| p.columns.names().contains(&column))
    }

    /// The raw-table Arrow schema.
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::datatypes::TimeUnit;
    use serde_json::json;

    fn view(properties: serde_json::Value) -> ViewDefinition {
        let mut wrapped = serde_json::Map::new();
        for (name, property_type) in properties.as_object().unwrap() {
            wrapped.insert(
                name.clone(),
                json!({
                    "container": {"type": "container", "space": "s", "externalId": "C"},
                    "containerPropertyIdentifier": name,
                    "type": property_type,
                }),
            );
        }
        wrapped.insert(
            "workOrders".into(),
            json!({"connectionType": "multi_edge_connection",
                   "type": {"space": "s", "externalId": "Pump.workOrders"},
                   "source": {"type": "view", "space": "s", "externalId": "WorkOrder", "version": "1"}}),
        );
        serde_json::from_value(json!({
            "space": "s", "externalId": "Pump", "version": "2",
            "createdTime": 0, "lastUpdatedTime": 0,
            "properties": wrapped,
        }))
        .unwrap()
    }

    fn column_types(schema: &ViewSchema) -> Vec<(String, DataType)> {
        schema.arrow_schema().fields()[schema.kind().system_column_names().len()..]
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    }

    fn list_of(data_type: DataType) -> DataType {
        DataType::List(Arc::new(Field::new("element", data_type, true)))
    }

    #[test]
    fn every_cdf_type_maps_to_its_raw_column_type() {
        let definition = view(json!({
            "a_text": {"type": "text"},
            "b_enum": {"type": "enum", "values": {"on": {}, "off": {}}},
            "c_ts": {"type": "timeseries"},
            "d_file": {"type": "file"},
            "e_seq": {"type": "sequence"},
            "f_i32": {"type": "int32"},
            "g_i64": {"type": "int64"},
            "h_f32": {"type": "float32"},
            "i_f64": {"type": "float64"},
            "j_bool": {"type": "boolean"},
            "k_time": {"type": "timestamp"},
            "l_date": {"type": "date"},
            "m_json": {"type": "json"},
            "n_site": {"type": "direct"},
            "o_vector": {"type": "vector", "dimensions": 3},
        }));
        let schema = ViewSchema::for_view(&definition, TableKind::Nodes);
        let utf8 = DataType::Utf8;
        assert_eq!(
            column_types(&schema),
            [
                ("a_text".into(), utf8.clone()),
                ("b_enum".into(), utf8.clone()),
                ("c_ts".into(), utf8.clone()),
                ("d_file".into(), utf8.clone()),
                ("e_seq".into(), utf8.clone()),
                ("f_i32".into(), DataType::Int32),
                ("g_i64".into(), DataType::Int64),
                ("h_f32".into(), DataType::Float32),
                ("i_f64".into(), DataType::Float64),
                ("j_bool".into(), DataType::Boolean),
                (
                    "k_time".into(),
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                ),
                ("l_date".into(), DataType::Date32),
                ("m_json".into(), utf8.clone()),
                ("n_site.space".into(), utf8.clone()),
                ("n_site.externalId".into(), utf8.clone()),
                ("o_vector".into(), utf8.clone()),
            ]
        );
        // Connections hold no values and get no column.
        assert!(schema.arrow_schema().field_with_name("workOrders").is_err());
        for field in &schema.arrow_schema().fields()[9..] {
            assert!(field.is_nullable(), "{}", field.name());
        }
        let vector = schema.property_of_column("o_vector").unwrap();
        assert_eq!(vector.value_type, ValueType::Untyped);
        assert_eq!(vector.kind, PropertyKind::Unknown("vector".into()));
        let site = schema.property_of_column("n_site.externalId").unwrap();
        assert_eq!(site.property, "n_site");
        assert_eq!(
            site.source,
            PropertySource {
                space: "s".into(),
                key: "Pump/2".into()
            }
        );
    }

    #[test]
    fn lists_are_native_lists_and_direct_lists_are_structs() {
        let definition = view(json!({
            "aliases": {"type": "text", "list": true},
            "counts": {"type": "int64", "list": true},
            "readings": {"type": "float32", "list": true},
            "times": {"type": "timestamp", "list": true},
            "days": {"type": "date", "list": true},
            "docs": {"type": "json", "list": true},
            "sites": {"type": "direct", "list": true},
            "vectors": {"type": "vector", "list": true},
        }));
        let schema = ViewSchema::for_view(&definition, TableKind::Edges);
        let direct = DataType::Struct(
            vec![
                Field::new("space", DataType::Utf8, true),
                Field::new("externalId", DataType::Utf8, true),
            ]
            .into(),
        );
        assert_eq!(
            column_types(&schema),
            [
                ("aliases".into(), list_of(DataType::Utf8)),
                ("counts".into(), list_of(DataType::Int64)),
                ("days".into(), list_of(DataType::Date32)),
                ("docs".into(), list_of(DataType::Utf8)),
                ("readings".into(), list_of(DataType::Float32)),
                ("sites".into(), list_of(direct)),
                (
                    "times".into(),
                    list_of(DataType::Timestamp(
                        TimeUnit::Microsecond,
                        Some("UTC".into())
                    ))
                ),
                // Lists of unknown types stay whole, as one JSON text.
                ("vectors".into(), DataType::Utf8),
            ]
        );
        let docs = schema.arrow_schema().field_with_name("docs").unwrap();
        assert_eq!(docs.metadata()[METADATA_TYPE], "json");
        assert_eq!(docs.metadata()[METADATA_LIST], "true");
        assert!(schema.property_of_column("sites").unwrap().is_native_list());
        assert!(
            !schema
                .property_of_column("vectors")
                .unwrap()
                .is_native_list()
        );
    }

    #[test]
    fn colliding_properties_are_renamed_deterministically() {
        let definition = view(json!({
            "space": {"type": "text"},
            "version": {"type": "int32"},
            "prop_space": {"type": "text"},
            "type": {"type": "direct"},
        }));
        let schema = ViewSchema::for_view(&definition, TableKind::Nodes);
        let names: Vec<&str> = schema
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names[..9], TableKind::Nodes.system_column_names()[..]);
        assert_eq!(
            names[9..],
            [
                "prop_space",
                "prop_space_1",
                "prop_type.space",
                "prop_type.externalId",
                "prop_version"
            ]
        );
        let space = schema.property_of_column("prop_space_1").unwrap();
        assert_eq!((space.property.as_str(), space.renamed), ("space", true));
        let field = schema
            .arrow_schema()
            .field_with_name("prop_space_1")
            .unwrap();
        assert_eq!(field.metadata()[METADATA_PROPERTY], "space");
        assert_eq!(field.metadata()[METADATA_SOURCE], "s:Pump/2");
        assert!(!schema.property_of_column("prop_space").unwrap().renamed);
        // The system `space` column keeps its type.
        assert!(!schema.arrow_schema().field(0).is_nullable());
    }

    #[test]
    fn typing_builds_the_same_schema_as_the_view() {
        let definition = view(json!({"ratedKw": {"type": "float64"}, "tag": {"type": "text"}}));
        let typing: BTreeMap<String, BTreeMap<String, BTreeMap<String, TypingProperty>>> =
            serde_json::from_value(json!({"s": {"Pump/2": {
                "tag": {"type": {"type": "text"}, "nullable": true},
                "ratedKw": {"type": {"type": "float64", "unit": {"externalId": "power:kilowatt"}}},
            }}}))
            .unwrap();
        let from_view = ViewSchema::for_view(&definition, TableKind::Nodes);
        let from_typing =
            ViewSchema::from_typing(&definition.reference(), &typing, TableKind::Nodes).unwrap();
        assert_eq!(from_view.arrow_schema(), from_typing.arrow_schema());
        let missing = ViewSchema::from_typing(
            &ViewReference::new("s", "Other", "1"),
            &typing,
            TableKind::Nodes,
        )
        .unwrap_err();
        assert!(missing.to_string().contains("s:Other/1"), "{missing}");
    }
}
