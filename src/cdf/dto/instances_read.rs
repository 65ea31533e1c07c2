//! `POST /models/instances/aggregate` (counts) and `POST /models/instances/byids` (the current
//! state of named instances): the reads that check a copy against CDF.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::filters::Filter;
use super::instances::{Instance, InstanceType};
use super::refs::ViewReference;
use super::sync::SelectSource;

/// Largest number of ids one byids request may name.
pub(crate) const MAX_BYIDS_ITEMS: usize = 1000;

/// A `count` aggregate over the instances with data in `view` that match `filter`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregateRequest {
    /// The view whose instances are counted (CDF requires one).
    pub(crate) view: ViewReference,
    /// Nodes or edges.
    pub(crate) instance_type: InstanceType,
    /// `[{"count": {"property": "externalId"}}]`: every instance has an externalId.
    pub(crate) aggregates: Vec<Value>,
    /// Further restriction, in the same language as sync and list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) filter: Option<Filter>,
}

impl AggregateRequest {
    /// The number of `instance_type` instances with data in `view` that match `filter`.
    pub(crate) fn count(
        view: ViewReference,
        instance_type: InstanceType,
        filter: Option<Filter>,
    ) -> Self {
        Self {
            view,
            instance_type,
            aggregates: vec![serde_json::json!({"count": {"property": "externalId"}})],
            filter,
        }
    }
}

/// The answer of an aggregate request: one group (no `groupBy`) with one value per aggregate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct AggregateResponse {
    #[serde(default)]
    pub(crate) items: Vec<AggregateGroup>,
}

/// One group of an aggregate answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct AggregateGroup {
    #[serde(default)]
    pub(crate) aggregates: Vec<AggregateValue>,
}

/// One aggregate's value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct AggregateValue {
    pub(crate) aggregate: String,
    #[serde(default)]
    pub(crate) value: Option<Value>,
}

impl AggregateResponse {
    /// The first `count` of the answer; an answer without groups counts nothing.
    pub(crate) fn count(&self) -> Option<u64> {
        match self.items.first() {
            None => Some(0),
            Some(group) => group
                .aggregates
                .iter()
                .find(|a| a.aggregate == "count")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64))),
        }
    }
}

/// One instance named in a byids request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceId {
    pub(crate) instance_type: InstanceType,
    pub(crate) space: String,
    pub(crate) external_id: String,
}

/// The current state of up to [`MAX_BYIDS_ITEMS`] instances, with every property of each
/// of `sources`. Ids that do not exist (or are soft-deleted) are left out of the answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ByIdsRequest {
    pub(crate) items: Vec<InstanceId>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) sources: Vec<ByIdsSource>,
}

/// A view whose properties a byids answer carries: `{"source": <view>}`, all of its
/// properties (byids selects no single properties).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ByIdsSource {
    pub(crate) source: ViewReference,
}

impl From<&SelectSource> for ByIdsSource {
    fn from(select: &SelectSource) -> Self {
        Self {
            source: select.source.clone(),
        }
    }
}

/// The answer of a byids request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ByIdsResponse {
    /// The instances that exist, in no promised order.
    #[serde(default)]
    pub(crate) items: Vec<Instance>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_serialize_as_the_api_reads_them() {
        let view = ViewReference::new("s", "Pump", "1");
        let count = AggregateRequest::count(view.clone(), InstanceType::Node, None);
        assert_eq!(
            serde_json::to_value(&count).unwrap(),
            json!({"view": {"type": "view", "space": "s", "externalId": "Pump", "version": "1"},
                   "instanceType": "node", "aggregates": [{"count": {"property": "externalId"}}]})
        );
        let byids = ByIdsRequest {
            items: vec![InstanceId {
                instance_type: InstanceType::Edge,
                space: "d".into(),
                external_id: "e1".into(),
            }],
            sources: vec![ByIdsSource { source: view }],
        };
        assert_eq!(
            serde_json::to_value(&byids).unwrap(),
            json!({"items": [{"instanceType": "edge", "space": "d", "externalId": "e1"}],
                   "sources": [{"source": {"type": "view", "space": "s", "externalId": "Pump", "version": "1"}}]})
        );
    }

    #[test]
    fn counts_read_from_the_first_group() {
        let answer: AggregateResponse = serde_json::from_value(json!({"items": [
            {"instanceType": "node", "aggregates": [{"aggregate": "count", "property": "externalId", "value": 42}]}
        ]}))
        .unwrap();
        assert_eq!(answer.count(), Some(42));
        let empty: AggregateResponse = serde_json::from_value(json!({"items": []})).unwrap();
        assert_eq!(empty.count(), Some(0));
    }
}
