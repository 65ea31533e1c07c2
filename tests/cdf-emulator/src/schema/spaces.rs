//! Spaces: the namespaces every schema object and instance lives in.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ListParams, items_of, opt_string, paginate};
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::ids::{str_field, validate_space};
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct Space {
    pub space: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub created: i64,
    pub updated: i64,
}

impl Space {
    pub fn new(space: &str, name: Option<String>, description: Option<String>, now: i64) -> Self {
        Space {
            space: space.to_string(),
            name,
            description,
            created: now,
            updated: now,
        }
    }
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "space": self.space, "isGlobal": false,
            "createdTime": self.created, "lastUpdatedTime": self.updated,
        });
        if let Some(n) = &self.name {
            v["name"] = json!(n);
        }
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        v
    }
}

pub async fn apply(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(st.apply_spaces(&body)?))
}

impl crate::state::Shared {
    pub fn apply_spaces(&self, body: &Value) -> ApiResult<Value> {
        let items = items_of(body, 100)?;
        let now = self.clock.now_ms();
        let mut parsed = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let what = format!("items[{i}]");
            let o = item
                .as_object()
                .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))?;
            let space = str_field(o, "space", &what)?;
            validate_space(space)?;
            parsed.push((
                space.to_string(),
                opt_string(o, "name"),
                opt_string(o, "description"),
            ));
        }
        let mut dm = self.dm();
        let mut out = Vec::new();
        for (space, name, description) in parsed {
            let entry = dm
                .schema
                .spaces
                .entry(space.clone())
                .or_insert_with(|| Space::new(&space, None, None, now));
            if entry.name != name || entry.description != description {
                entry.name = name;
                entry.description = description;
                entry.updated = now;
            }
            out.push(entry.to_json());
        }
        Ok(json!({ "items": out }))
    }
}

pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<Value>> {
    let dm = st.dm();
    let items: Vec<Value> = dm.schema.spaces.values().map(Space::to_json).collect();
    Ok(Json(paginate(
        items,
        q.limit,
        q.cursor.as_deref(),
        10,
        1000,
    )?))
}

fn space_ids(body: &Value) -> ApiResult<Vec<String>> {
    items_of(body, 100)?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let what = format!("items[{i}]");
            let o = item
                .as_object()
                .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))?;
            str_field(o, "space", &what).map(str::to_string)
        })
        .collect()
}

pub async fn by_ids(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let ids = space_ids(&body)?;
    let dm = st.dm();
    let items: Vec<Value> = ids
        .iter()
        .filter_map(|s| dm.schema.spaces.get(s))
        .map(Space::to_json)
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub async fn delete(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let ids = space_ids(&body)?;
    let mut dm = st.dm();
    for space in &ids {
        let in_use = dm.schema.container_ids.keys().any(|c| &c.space == space)
            || dm.schema.views.keys().any(|v| &v.space == space)
            || dm.schema.datamodels.keys().any(|d| &d.space == space)
            || dm.store.has_live_in_space(space);
        if in_use {
            return Err(ApiError::bad_request(format!(
                "Space `{space}` is not empty: delete its containers, views, data models and instances first"
            )));
        }
    }
    let mut deleted = Vec::new();
    for space in ids {
        if dm.schema.spaces.remove(&space).is_some() {
            deleted.push(json!({ "space": space }));
        }
    }
    Ok(Json(json!({ "items": deleted })))
}
