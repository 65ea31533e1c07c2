//! Data-modeling filters for sync (and list/query) requests.

use serde::Serialize;
use serde_json::Value;

#[cfg(test)]
use super::instances::InstanceType;
use super::refs::{NodeReference, SourceReference, ViewReference};

/// A filter expression. Serialises to the API's one-key-per-object form.
///
/// `hasData` takes a list, but what several entries mean is not pinned down by the API, so
/// the constructors here only ever put one source in it and combine with `and`/`or`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Filter {
    /// Every one of the filters matches.
    And(Vec<Filter>),
    /// At least one of the filters matches.
    Or(Vec<Filter>),
    /// The filter does not match.
    Not(Box<Filter>),
    /// The property equals `value`.
    Equals {
        /// The property path: `["node"|"edge", field]` or `[space, "<view>/<version>", property]`.
        property: Vec<String>,
        /// The value to compare with.
        value: Value,
    },
    /// The property equals one of `values`.
    In {
        /// The property path: `["node"|"edge", field]` or `[space, "<view>/<version>", property]`.
        property: Vec<String>,
        /// The accepted values.
        values: Vec<Value>,
    },
    /// The property lies in the range; a bound left `None` is open.
    Range {
        /// The property path: `["node"|"edge", field]` or `[space, "<view>/<version>", property]`.
        property: Vec<String>,
        /// Exclusive lower bound.
        #[serde(skip_serializing_if = "Option::is_none")]
        gt: Option<Value>,
        /// Inclusive lower bound.
        #[serde(skip_serializing_if = "Option::is_none")]
        gte: Option<Value>,
        /// Exclusive upper bound.
        #[serde(skip_serializing_if = "Option::is_none")]
        lt: Option<Value>,
        /// Inclusive upper bound.
        #[serde(skip_serializing_if = "Option::is_none")]
        lte: Option<Value>,
    },
    /// The text (or list) property starts with `value`.
    Prefix {
        /// The property path: `["node"|"edge", field]` or `[space, "<view>/<version>", property]`.
        property: Vec<String>,
        /// The prefix.
        value: Value,
    },
    /// The property has a value (is not null).
    Exists {
        /// The property path: `["node"|"edge", field]` or `[space, "<view>/<version>", property]`.
        property: Vec<String>,
    },
    /// The list property contains at least one of `values`.
    ContainsAny {
        /// The property path: `["node"|"edge", field]` or `[space, "<view>/<version>", property]`.
        property: Vec<String>,
        /// The values looked for.
        values: Vec<Value>,
    },
    /// The list property contains every one of `values`.
    ContainsAll {
        /// The property path: `["node"|"edge", field]` or `[space, "<view>/<version>", property]`.
        property: Vec<String>,
        /// The values looked for.
        values: Vec<Value>,
    },
    /// Every instance.
    MatchAll {},
    /// `filter` holds for the node that the direct relation at `scope` points to.
    Nested {
        /// The path of the direct-relation property to follow.
        scope: Vec<String>,
        /// The filter the node at the other end must match.
        filter: Box<Filter>,
    },
    /// The instance has data in the given view or container (give one source, see above).
    HasData(Vec<SourceReference>),
    /// The instance is one of the given nodes.
    InstanceReferences(Vec<NodeReference>),
    /// Any filter JSON not modelled above, sent as is.
    #[serde(untagged)]
    Raw(Value),
}

impl Filter {
    /// Instances with data in `view`.
    pub fn has_data_view(view: ViewReference) -> Self {
        Filter::HasData(vec![SourceReference::View(view)])
    }

    #[cfg(test)]
    pub(crate) fn equals(property: &[&str], value: impl Into<Value>) -> Self {
        Filter::Equals {
            property: property_path(property),
            value: value.into(),
        }
    }

    #[cfg(test)]
    /// `["node"|"edge", "space"] == space`.
    pub(crate) fn in_space(instance_type: InstanceType, space: &str) -> Self {
        Filter::equals(&[instance_type.as_str(), "space"], space)
    }

    /// `["edge","type"] == {space, externalId}`: the edges of one edge-connection type.
    pub fn edge_type(edge_type: &NodeReference) -> Self {
        Filter::Equals {
            property: property_path(&["edge", "type"]),
            value: serde_json::json!({"space": edge_type.space, "externalId": edge_type.external_id}),
        }
    }

    /// A conjunction that collapses to the single filter when only one is given.
    pub(crate) fn all_of(mut filters: Vec<Filter>) -> Self {
        if filters.len() == 1 {
            filters.remove(0)
        } else {
            Filter::And(filters)
        }
    }
}

fn property_path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_serialise_to_the_api_shape() {
        let filter = Filter::And(vec![
            Filter::has_data_view(ViewReference::new("plant_schema", "Pump", "2")),
            Filter::in_space(InstanceType::Node, "plant_data"),
            Filter::Not(Box::new(Filter::Exists {
                property: vec!["plant_schema".into(), "Pump/2".into(), "site".into()],
            })),
            Filter::Range {
                property: vec!["plant_schema".into(), "Pump/2".into(), "ratedKw".into()],
                gt: None,
                gte: Some(json!(10)),
                lt: Some(json!(100)),
                lte: None,
            },
            Filter::MatchAll {},
            Filter::edge_type(&NodeReference::new("plant_schema", "Pump.workOrders")),
            Filter::Raw(json!({"prefix": {"property": ["node", "externalId"], "value": "pump-"}})),
        ]);
        assert_eq!(
            serde_json::to_value(&filter).unwrap(),
            json!({"and": [
                {"hasData": [{"type":"view","space":"plant_schema","externalId":"Pump","version":"2"}]},
                {"equals": {"property": ["node","space"], "value": "plant_data"}},
                {"not": {"exists": {"property": ["plant_schema","Pump/2","site"]}}},
                {"range": {"property": ["plant_schema","Pump/2","ratedKw"], "gte": 10, "lt": 100}},
                {"matchAll": {}},
                {"equals": {"property": ["edge","type"], "value": {"space":"plant_schema","externalId":"Pump.workOrders"}}},
                {"prefix": {"property": ["node","externalId"], "value": "pump-"}}
            ]})
        );
    }

    #[test]
    fn all_of_a_single_filter_is_that_filter() {
        let only = Filter::in_space(InstanceType::Edge, "s");
        assert_eq!(Filter::all_of(vec![only.clone()]), only);
        assert!(matches!(
            Filter::all_of(vec![only.clone(), only]),
            Filter::And(_)
        ));
    }
}
