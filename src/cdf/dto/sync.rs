//! `POST /models/instances/sync` request and response.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::filters::Filter;
use super::instances::Instance;
use super::property_type::PropertyType;
use super::refs::ViewReference;
use super::views::default_true;

/// A sync request. Result-set names are the keys of `with`; the client keeps `select` and
/// `cursors` on the same keys.
///
/// Maps are ordered so that the serialised request is deterministic, which lets callers hash
/// it to detect a changed query.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    /// The result sets by name: which instances each one syncs.
    pub with: BTreeMap<String, SyncExpression>,
    pub(crate) select: BTreeMap<String, SyncSelect>,
    /// The `nextCursor` values of the previous response. A result set without an entry
    /// starts from the beginning.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) cursors: BTreeMap<String, String>,
    /// Values for `{"parameter": name}` references in filters.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub(crate) parameters: serde_json::Map<String, Value>,
    /// Asks CDF to return the definitions of the selected properties in `typing`.
    pub include_typing: bool,
    /// Accept cursors older than the cursor lifetime, at the price of possibly missed
    /// deletes.
    pub allow_expired_cursors_and_accept_missed_deletes: bool,
}

impl SyncRequest {
    /// A request with one result set, which is how the replicator runs every stream.
    pub fn single(name: impl Into<String>, expression: SyncExpression, select: SyncSelect) -> Self {
        let name = name.into();
        Self {
            with: BTreeMap::from([(name.clone(), expression)]),
            select: BTreeMap::from([(name, select)]),
            cursors: BTreeMap::new(),
            parameters: serde_json::Map::new(),
            include_typing: false,
            allow_expired_cursors_and_accept_missed_deletes: false,
        }
    }

    /// Sets or clears the cursor of result set `name`.
    pub fn with_cursor(mut self, name: &str, cursor: Option<String>) -> Self {
        match cursor {
            Some(cursor) => {
                self.cursors.insert(name.to_owned(), cursor);
            }
            None => {
                self.cursors.remove(name);
            }
        }
        self
    }
}

/// One result set: which instances, how many per page and in which mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncExpression {
    #[serde(flatten)]
    pub(crate) target: SyncTarget,
    /// 1..=2000 per page.
    pub limit: u32,
    /// Always sent: the API default (`onePhase`) and the SDK defaults disagree.
    pub(crate) mode: SyncMode,
    /// Only valid with `twoPhase`; CDF answers 400 otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) backfill_sort: Vec<SyncSort>,
    /// API default `true`: instances deleted before the sync began are not returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) skip_already_deleted: Option<bool>,
}

impl SyncExpression {
    /// A result set of the nodes matching `filter` (every node when `None`), `limit` per page.
    pub fn nodes(filter: Option<Filter>, limit: u32, mode: SyncMode) -> Self {
        Self::new(SyncTarget::Nodes(TargetFilter { filter }), limit, mode)
    }

    /// A result set of the edges matching `filter` (every edge when `None`), `limit` per page.
    pub fn edges(filter: Option<Filter>, limit: u32, mode: SyncMode) -> Self {
        Self::new(SyncTarget::Edges(TargetFilter { filter }), limit, mode)
    }

    fn new(target: SyncTarget, limit: u32, mode: SyncMode) -> Self {
        Self {
            target,
            limit,
            mode,
            backfill_sort: Vec::new(),
            skip_already_deleted: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncTarget {
    Nodes(TargetFilter),
    Edges(TargetFilter),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) filter: Option<Filter>,
}

/// Whether a result set starts with the instances that exist already, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyncMode {
    /// Existing and later changes in one stream, in no guaranteed order.
    OnePhase,
    /// A snapshot backfill (optionally sorted), then changes since the sync began.
    TwoPhase,
    /// Only changes after the first call.
    NoBackfill,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncSort {
    pub(crate) property: Vec<String>,
    pub(crate) direction: SortDirection,
    pub(crate) nulls_first: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SortDirection {
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the contract's value; only the tests send it")
    )]
    Ascending,
    #[expect(
        dead_code,
        reason = "the contract's value; the replicator never sends it"
    )]
    Descending,
}

/// The properties returned for a result set. No sources: instances without properties.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SyncSelect {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) sources: Vec<SelectSource>,
}

impl SyncSelect {
    /// Every property of `view`.
    pub fn all_of(view: ViewReference) -> Self {
        Self {
            sources: vec![SelectSource {
                source: view,
                properties: vec!["*".to_owned()],
                target_units: Vec::new(),
            }],
        }
    }
}

/// One view whose properties a result set returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectSource {
    pub(crate) source: ViewReference,
    /// Property names, or `["*"]` for all.
    pub(crate) properties: Vec<String>,
    /// Unit conversions CDF applies before answering. The replicator leaves this empty: the
    /// lake holds values in the unit CDF stores them in, and the view's typing says which.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) target_units: Vec<TargetUnit>,
}

/// Converts `property` to `unit` in the answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetUnit {
    pub(crate) property: String,
    pub(crate) unit: UnitTarget,
}

/// A unit by external id (`power:kilowatt`), or every unit of a unit system (`SI`, `Imperial`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum UnitTarget {
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the contract's value; only the tests send it")
    )]
    Unit {
        #[serde(rename = "externalId")]
        external_id: String,
    },
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the contract's value; only the tests send it")
    )]
    System {
        #[serde(rename = "unitSystemName")]
        unit_system_name: String,
    },
}

/// A sync page. `items` and `next_cursor` have an entry per result set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncResponse {
    #[serde(default)]
    pub(crate) items: BTreeMap<String, Vec<Instance>>,
    /// Always present per result set, also for empty pages; store it after every call.
    #[serde(default, deserialize_with = "cursors_without_nulls")]
    pub(crate) next_cursor: BTreeMap<String, String>,
    /// Present when the request set `include_typing`.
    #[serde(default)]
    pub typing: Option<BTreeMap<String, SyncTyping>>,
}

impl SyncResponse {
    /// The instances of result set `name` (empty when the set is absent).
    pub fn items_of(&self, name: &str) -> &[Instance] {
        self.items.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Moves the instances of result set `name` out of the response.
    pub fn take_items(&mut self, name: &str) -> Vec<Instance> {
        self.items.remove(name).unwrap_or_default()
    }

    pub fn cursor_of(&self, name: &str) -> Option<&str> {
        self.next_cursor.get(name).map(String::as_str)
    }
}

/// `space → "<viewExternalId>/<viewVersion>" → property → definition`.
pub type SyncTyping = BTreeMap<String, BTreeMap<String, BTreeMap<String, TypingProperty>>>;

/// A property definition from `typing`: a mapped property without its container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingProperty {
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
}

/// The API promises a string cursor per result set; a `null` is read as "no cursor" rather
/// than failing the whole page.
fn cursors_without_nulls<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, Option<String>>>::deserialize(deserializer)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn target_units_are_sent_only_when_asked_for() {
        let pump = ViewReference::new("plant_schema", "Pump", "2");
        let mut select = SyncSelect::all_of(pump);
        assert!(
            serde_json::to_value(&select).unwrap()["sources"][0]
                .get("targetUnits")
                .is_none()
        );
        select.sources[0].target_units = vec![
            TargetUnit {
                property: "rate".into(),
                unit: UnitTarget::Unit {
                    external_id: "power:kilowatt".into(),
                },
            },
            TargetUnit {
                property: "pressure".into(),
                unit: UnitTarget::System {
                    unit_system_name: "SI".into(),
                },
            },
        ];
        assert_eq!(
            serde_json::to_value(&select).unwrap()["sources"][0]["targetUnits"],
            json!([
                {"property": "rate", "unit": {"externalId": "power:kilowatt"}},
                {"property": "pressure", "unit": {"unitSystemName": "SI"}}
            ])
        );
    }
}
