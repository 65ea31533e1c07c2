//! Data-modeling schema: spaces, containers, views and data models.

pub mod containers;
pub mod datamodels;
pub mod spaces;
pub mod types;
pub mod views;

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::ids::{ContainerId, NodeId, ViewId};
pub use containers::{Container, UsedFor};
pub use datamodels::DataModel;
pub use spaces::Space;
pub use views::{MappedProperty, View};

/// Index of a container in [`Schema::containers`]. Stable for the container's lifetime;
/// a deleted and re-created container gets a new index, so stale instance data never resurfaces.
pub type ContainerIdx = u32;

#[derive(Debug, Default)]
pub struct Schema {
    pub spaces: BTreeMap<String, Space>,
    pub containers: Vec<Option<Container>>,
    pub container_ids: BTreeMap<ContainerId, ContainerIdx>,
    pub views: BTreeMap<ViewId, View>,
    pub datamodels: BTreeMap<ViewId, DataModel>,
    pub serial: u64,
}

impl Schema {
    pub fn container(&self, id: &ContainerId) -> Option<(ContainerIdx, &Container)> {
        let idx = *self.container_ids.get(id)?;
        let c = self.containers.get(idx as usize)?.as_ref()?;
        Some((idx, c))
    }

    pub fn container_at(&self, idx: ContainerIdx) -> Option<&Container> {
        self.containers.get(idx as usize)?.as_ref()
    }

    pub fn view(&self, id: &ViewId) -> Option<&View> {
        self.views.get(id)
    }

    /// Spaces are created on first use by schema and instance writes (CDF requires an explicit
    /// create; being lenient here keeps test fixtures short without changing any read behaviour).
    pub fn ensure_space(&mut self, space: &str, now: i64) {
        if !self.spaces.contains_key(space) {
            self.spaces
                .insert(space.to_string(), Space::new(space, None, None, now));
        }
    }

    /// All versions of the views `(space, externalId)`.
    pub fn view_versions(&self, id: &NodeId) -> Vec<&View> {
        self.views
            .values()
            .filter(|v| v.id.space == id.space && v.id.external_id == id.external_id)
            .collect()
    }
}

/// Query parameters shared by the schema list and byids endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    pub space: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    #[serde(default, deserialize_with = "crate::error::lenient_bool")]
    pub all_versions: Option<bool>,
    #[serde(default, deserialize_with = "crate::error::lenient_bool")]
    pub include_inherited_properties: Option<bool>,
    /// Accepted and ignored: the emulator holds no global (Cognite-provided) schema.
    #[allow(dead_code)]
    #[serde(default, deserialize_with = "crate::error::lenient_bool")]
    pub include_global: Option<bool>,
    #[serde(default, deserialize_with = "crate::error::lenient_bool")]
    pub inline_views: Option<bool>,
}

/// Pages a fully materialized, ordered list with an offset cursor.
pub fn paginate(
    items: Vec<Value>,
    limit: Option<i64>,
    cursor: Option<&str>,
    default_limit: i64,
    max_limit: i64,
) -> ApiResult<Value> {
    let limit = limit.unwrap_or(default_limit);
    if !(1..=max_limit).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {max_limit}, got {limit}"
        )));
    }
    let start = match cursor.filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => decode_offset_cursor(c)?,
    };
    let limit = usize::try_from(limit).unwrap_or(1);
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let mut out = json!({ "items": page });
    if start.saturating_add(limit) < total {
        out["nextCursor"] = Value::String(encode_offset_cursor(start + limit));
    }
    Ok(out)
}

pub fn encode_offset_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

pub fn decode_offset_cursor(cursor: &str) -> ApiResult<usize> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::bad_request("Invalid cursor provided."))
}

/// Reads the `items` array of a request body, enforcing the item-count bounds.
pub fn items_of(body: &Value, max: usize) -> ApiResult<&Vec<Value>> {
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("Request body must have an `items` array"))?;
    if items.is_empty() || items.len() > max {
        return Err(ApiError::bad_request(format!(
            "`items` must hold between 1 and {max} entries, got {}",
            items.len()
        )));
    }
    Ok(items)
}

pub fn opt_string(o: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    o.get(key).and_then(Value::as_str).map(str::to_string)
}

impl Schema {
    /// A monotonically increasing number to order schema objects created in the same millisecond.
    pub fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }
}
