//! View definitions as returned by `views/byids` and inline in data models.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::property_type::PropertyType;
use super::refs::{ContainerReference, NodeReference, SourceReference, ViewReference};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewDefinition {
    pub(crate) space: String,
    pub(crate) external_id: String,
    pub(crate) version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) created_time: i64,
    pub(crate) last_updated_time: i64,
    #[serde(default)]
    pub(crate) writable: bool,
    #[serde(default)]
    pub(crate) queryable: bool,
    #[serde(default)]
    pub(crate) used_for: UsedFor,
    #[serde(default)]
    pub(crate) is_global: bool,
    /// Parent views in priority order.
    #[serde(default)]
    pub(crate) implements: Vec<ViewReference>,
    /// The view's own instance filter, kept as JSON: the client only passes it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) filter: Option<Value>,
    /// Absent in older API responses.
    #[serde(default)]
    pub(crate) mapped_containers: Vec<ContainerReference>,
    /// Inherited properties included (the client always asks for them).
    #[serde(default)]
    pub properties: BTreeMap<String, ViewProperty>,
}

impl ViewDefinition {
    pub fn reference(&self) -> ViewReference {
        ViewReference::new(&self.space, &self.external_id, &self.version)
    }

    /// The properties that hold values, i.e. everything except connections.
    pub(crate) fn mapped_properties(&self) -> impl Iterator<Item = (&String, &MappedProperty)> {
        self.properties.iter().filter_map(|(name, p)| match p {
            ViewProperty::Mapped(mapped) => Some((name, mapped)),
            _ => None,
        })
    }

    /// The edge connections declared on (or inherited by) the view.
    pub(crate) fn edge_connections(&self) -> impl Iterator<Item = (&String, &EdgeConnection)> {
        self.properties.iter().filter_map(|(name, p)| match p {
            ViewProperty::EdgeConnection(edge) => Some((name, edge)),
            _ => None,
        })
    }
}

/// Which instances a view describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsedFor {
    /// Nodes only; the API default.
    #[default]
    Node,
    /// Edges only.
    Edge,
    /// Nodes and edges (never records).
    All,
    /// Records, which are neither nodes nor edges.
    Record,
    /// A value added to the API after this client was written.
    #[serde(other)]
    Unknown,
}

/// One entry of a view's `properties`. Connections carry `connectionType`; everything else
/// is a mapped (stored) property.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ViewProperty {
    /// A property that holds values, stored in a container.
    Mapped(MappedProperty),
    /// The edges of one type at the instance; holds no values.
    EdgeConnection(EdgeConnection),
    /// The nodes whose direct relation points at the instance; holds no values.
    ReverseDirectRelation(ReverseDirectRelation),
    /// A connection kind this client does not know. Connections hold no values, so the
    /// replicator can skip it; the definition is kept for diagnostics.
    UnknownConnection(Value),
}

impl<'de> Deserialize<'de> for ViewProperty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = serde_json::Map::<String, Value>::deserialize(deserializer)?;
        let connection_type = match object.get("connectionType") {
            None => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "connectionType must be a string, got {other}"
                )));
            }
        };
        let value = Value::Object(object);
        let property = match connection_type.as_deref() {
            None => ViewProperty::Mapped(serde_json::from_value(value).map_err(D::Error::custom)?),
            Some("single_edge_connection" | "multi_edge_connection") => {
                ViewProperty::EdgeConnection(
                    serde_json::from_value(value).map_err(D::Error::custom)?,
                )
            }
            Some("single_reverse_direct_relation" | "multi_reverse_direct_relation") => {
                ViewProperty::ReverseDirectRelation(
                    serde_json::from_value(value).map_err(D::Error::custom)?,
                )
            }
            Some(_) => ViewProperty::UnknownConnection(value),
        };
        Ok(property)
    }
}

/// A property stored in a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MappedProperty {
    pub(crate) container: ContainerReference,
    pub(crate) container_property_identifier: String,
    /// The data type of the values.
    #[serde(rename = "type")]
    pub property_type: PropertyType,
    #[serde(default = "default_true")]
    pub(crate) nullable: bool,
    #[serde(default)]
    pub(crate) immutable: bool,
    #[serde(default)]
    pub(crate) auto_increment: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default_value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    /// Missing in older API responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) constraint_state: Option<ConstraintState>,
}

pub(super) fn default_true() -> bool {
    true
}

/// Whether the property's constraints hold for all stored data (`current`), are being
/// validated (`pending`) or are violated (`failed`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) nullability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_list_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_text_size: Option<String>,
}

/// A view property that stands for the edges of one type at the instance. It holds no values: the
/// edges are instances of their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeConnection {
    pub(crate) connection_type: EdgeConnectionType,
    /// The edge type the connection follows.
    #[serde(rename = "type")]
    pub edge_type: NodeReference,
    /// The view of the nodes at the far end.
    pub(crate) source: ViewReference,
    /// The view holding properties of the edges themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_source: Option<ViewReference>,
    /// Whether the instance is the start (`outwards`) or the end (`inwards`) of the edges.
    #[serde(default)]
    pub direction: EdgeDirection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeConnectionType {
    SingleEdgeConnection,
    MultiEdgeConnection,
}

/// Which end of an edge connection's edges the instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeDirection {
    /// The instance is the start node; the API default.
    #[default]
    Outwards,
    /// The instance is the end node.
    Inwards,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReverseDirectRelation {
    pub(crate) connection_type: ReverseRelationType,
    pub(crate) source: ViewReference,
    pub(crate) through: ThroughReference,
    #[serde(default)]
    pub(crate) targets_list: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReverseRelationType {
    SingleReverseDirectRelation,
    MultiReverseDirectRelation,
}

/// The direct-relation property a reverse relation is derived from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThroughReference {
    pub(crate) source: SourceReference,
    pub(crate) identifier: String,
}
