//! `POST /models/instances/list`: the instances that match a filter now.
//!
//! Sync reports changes of instances that match its query when they change; it never
//! reports an instance that stops matching. The list endpoint answers the other question,
//! "who matches now", which is what the membership scan compares the lake with.

use serde::{Deserialize, Serialize};

use super::filters::Filter;
use super::instances::{Instance, InstanceType};
use super::sync::SelectSource;

/// One page of a list request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    /// Nodes or edges.
    pub(crate) instance_type: InstanceType,
    /// The instances to list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) filter: Option<Filter>,
    /// The views whose properties come back; empty: identifiers, versions and times only,
    /// which is all a membership check needs and the cheapest answer CDF gives.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) sources: Vec<SelectSource>,
    /// Page size, at most [`MAX_LIST_LIMIT`].
    pub(crate) limit: u32,
    /// The `nextCursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<String>,
}

/// Largest page the list endpoint serves.
pub(crate) const MAX_LIST_LIMIT: u32 = 1000;

/// A page of listed instances.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    /// The instances of this page.
    pub(crate) items: Vec<Instance>,
    /// Absent on the last page.
    #[serde(default)]
    pub(crate) next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_keys_only_request_has_no_sources_and_a_page_answer_reads_without_properties() {
        let request = ListRequest {
            instance_type: InstanceType::Edge,
            filter: Some(Filter::MatchAll {}),
            sources: Vec::new(),
            limit: 1000,
            cursor: Some("c1".into()),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"instanceType": "edge", "filter": {"matchAll": {}}, "limit": 1000, "cursor": "c1"})
        );
        let page: ListResponse = serde_json::from_value(json!({"items": [
            {"instanceType": "node", "space": "s", "externalId": "a", "version": 3,
             "createdTime": 1, "lastUpdatedTime": 2}
        ]}))
        .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].version, 3);
        assert!(page.next_cursor.is_none());
    }
}
