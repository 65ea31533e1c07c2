//! Nodes and edges as returned by sync (and by list/byids).
//!
//! This is the hot path of replication: a page is decoded straight from the response bytes
//! into these structs. Property values stay `serde_json::Value`s (int64 beyond 2^53 stays an
//! exact integer, never an f64), so the Arrow flattener reads them without parsing again.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::refs::{NodeReference, ViewReference};

/// One view's (or container's) property values, keyed by property identifier. A property
/// without a value may be absent or `null`; treat both alike.
pub type PropertyValues = serde_json::Map<String, Value>;

/// `space → "<viewExternalId>/<viewVersion>" → property → value`.
pub type InstanceProperties = BTreeMap<String, BTreeMap<String, PropertyValues>>;

/// Whether an instance is a node or an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceType {
    /// A node: an object that holds properties.
    Node,
    /// An edge: a typed link from a start node to an end node, which may hold properties too.
    Edge,
}

impl InstanceType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            InstanceType::Node => "node",
            InstanceType::Edge => "edge",
        }
    }
}

/// A node or an edge with the property values the request selected. Soft-deleted instances, which
/// only sync returns, answer `true` to [`Instance::is_deleted`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// Node or edge.
    pub instance_type: InstanceType,
    pub(crate) space: String,
    /// The external id, unique within the instance's space (nodes and edges apart).
    pub external_id: String,
    /// Raised by CDF on every change of the instance: a higher version is a later state.
    pub version: i64,
    /// The node type, or the edge type (always set on edges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<NodeReference>,
    /// Edges only: the node the edge starts at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_node: Option<NodeReference>,
    /// Edges only: the node the edge ends at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_node: Option<NodeReference>,
    pub(crate) created_time: i64,
    pub(crate) last_updated_time: i64,
    /// Set only on soft-deleted instances, which only sync returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deleted_time: Option<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) properties: InstanceProperties,
}

impl Instance {
    /// Whether CDF has soft-deleted the instance (sync reports deletes this way).
    pub fn is_deleted(&self) -> bool {
        self.deleted_time.is_some()
    }

    /// The values returned for `view`, if the instance has any.
    pub fn view_properties(&self, view: &ViewReference) -> Option<&PropertyValues> {
        self.properties
            .get(&view.space)?
            .get(&view.properties_key())
    }

    /// The values under an explicit `space` / `"xid/version"` key pair.
    pub(crate) fn properties_at(&self, space: &str, key: &str) -> Option<&PropertyValues> {
        self.properties.get(space)?.get(key)
    }
}

/// Dropping a `serde_json::Value` recurses once per nesting level, and a CDF `json` value
/// may nest thousands of levels deep (see `cdf::client::decode_json`): dropped the ordinary
/// way, such an instance would overflow the stack of the tokio worker that finished with
/// its page. Nested values are therefore taken apart with a heap stack; flat values (scalars,
/// lists of scalars, objects of scalars) keep the ordinary drop.
impl Drop for Instance {
    fn drop(&mut self) {
        for views in self.properties.values_mut() {
            for values in views.values_mut() {
                for value in values.values_mut() {
                    if is_nested(value) {
                        drop_without_recursion(std::mem::take(value));
                    }
                }
            }
        }
    }
}

/// An array or object holding another array or object.
fn is_nested(value: &Value) -> bool {
    let container = |v: &Value| matches!(v, Value::Array(_) | Value::Object(_));
    match value {
        Value::Array(items) => items.iter().any(container),
        Value::Object(map) => map.values().any(container),
        _ => false,
    }
}

/// Drops `value` level by level from a heap stack instead of by recursion.
pub(crate) fn drop_without_recursion(value: Value) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(
                items
                    .into_iter()
                    .filter(|v| matches!(v, Value::Array(_) | Value::Object(_))),
            ),
            Value::Object(map) => stack.extend(
                map.into_iter()
                    .map(|(_, v)| v)
                    .filter(|v| matches!(v, Value::Array(_) | Value::Object(_))),
            ),
            _ => {}
        }
    }
}

/// `properties` may be missing, `{}` or (defensively) `null` when nothing was selected.
fn null_as_empty<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<InstanceProperties, D::Error> {
    Ok(Option::<InstanceProperties>::deserialize(deserializer)?.unwrap_or_default())
}
