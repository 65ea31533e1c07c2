//! Data models: versioned, named collections of views.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::views::{apply_view_item, newest_only};
use super::{ListParams, Schema, items_of, opt_string, paginate};
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::ids::{
    NodeId, ViewId, parse_view_id, parse_view_id_opt_version, str_field, validate_schema_xid,
    validate_space, validate_version,
};
use crate::state::AppState;

/// Views a data model may hold (CDF "Views (per data model)").
pub const MAX_DATA_MODEL_VIEWS: usize = 100;

#[derive(Debug, Clone)]
pub struct DataModel {
    pub id: ViewId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub views: Vec<ViewId>,
    pub created: i64,
    pub updated: i64,
    pub serial: u64,
}

impl DataModel {
    /// With `inline_views`, views are full definitions without a `type` key; otherwise
    /// references carrying `"type":"view"`, which is how SDKs tell the two apart.
    pub fn to_json(&self, schema: &Schema, inline_views: bool) -> Value {
        let views: Vec<Value> = if inline_views {
            self.views
                .iter()
                .filter_map(|v| schema.view(v))
                .map(|v| v.to_json(schema, true))
                .collect()
        } else {
            self.views.iter().map(ViewId::to_json).collect()
        };
        let mut v = json!({
            "space": self.id.space, "externalId": self.id.external_id, "version": self.id.version,
            "isGlobal": false, "createdTime": self.created, "lastUpdatedTime": self.updated,
            "views": views,
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

impl crate::state::Shared {
    pub fn apply_datamodels(&self, body: &Value) -> ApiResult<Value> {
        let items = items_of(body, 100)?;
        let now = self.clock.now_ms();
        let mut dm = self.dm();
        let schema = &mut dm.schema;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let what = format!("items[{i}]");
            let o = item
                .as_object()
                .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))?;
            let space = str_field(o, "space", &what)?;
            validate_space(space)?;
            let xid = str_field(o, "externalId", &what)?;
            validate_schema_xid(xid, "data model")?;
            let version = str_field(o, "version", &what)?;
            validate_version(version, "data model")?;
            let mut views = Vec::new();
            if let Some(list) = o.get("views").and_then(Value::as_array) {
                if list.len() > MAX_DATA_MODEL_VIEWS {
                    return Err(ApiError::bad_request(format!(
                        "Data model {space}:{xid}/{version} lists {} views; a data model may hold at most {MAX_DATA_MODEL_VIEWS}",
                        list.len()
                    )));
                }
                for (j, v) in list.iter().enumerate() {
                    let vwhat = format!("{what}.views[{j}]");
                    let id = if v.get("properties").is_some() {
                        apply_view_item(schema, v, &vwhat, now)?
                    } else {
                        let id = parse_view_id(v, &vwhat)?;
                        if schema.view(&id).is_none() {
                            return Err(ApiError::bad_request(format!(
                                "Data model {space}:{xid}/{version} references view {id}, which does not exist"
                            ))
                            .with_missing(vec![id.to_json()]));
                        }
                        id
                    };
                    views.push(id);
                }
            }
            schema.ensure_space(space, now);
            let id = ViewId::new(space, xid, version);
            let (name, description) = (opt_string(o, "name"), opt_string(o, "description"));
            let serial = schema.next_serial();
            let model = schema
                .datamodels
                .entry(id.clone())
                .or_insert_with(|| DataModel {
                    id,
                    name: name.clone(),
                    description: description.clone(),
                    views: views.clone(),
                    created: now,
                    updated: now,
                    serial,
                });
            if model.name != name || model.description != description || model.views != views {
                model.name = name;
                model.description = description;
                model.views = views;
                model.updated = now;
            }
            let model = model.clone();
            out.push(model.to_json(schema, false));
        }
        Ok(json!({ "items": out }))
    }
}

pub async fn apply(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(st.apply_datamodels(&body)?))
}

pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<Value>> {
    let dm = st.dm();
    let models: Vec<&DataModel> = dm
        .schema
        .datamodels
        .values()
        .filter(|m| q.space.as_ref().is_none_or(|s| &m.id.space == s))
        .collect();
    let models = if q.all_versions.unwrap_or(false) {
        models
    } else {
        newest_only(models, |m| {
            (
                NodeId::new(&m.id.space, &m.id.external_id),
                m.created,
                m.serial,
            )
        })
    };
    let inline = q.inline_views.unwrap_or(false);
    let items = models
        .iter()
        .map(|m| m.to_json(&dm.schema, inline))
        .collect();
    Ok(Json(paginate(
        items,
        q.limit,
        q.cursor.as_deref(),
        10,
        1000,
    )?))
}

pub async fn by_ids(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListParams>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let items = items_of(&body, 100)?;
    let dm = st.dm();
    let inline = q.inline_views.unwrap_or(false);
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (id, version) = parse_view_id_opt_version(item, &format!("items[{i}]"))?;
        for m in dm.schema.datamodels.values().filter(|m| {
            m.id.space == id.space
                && m.id.external_id == id.external_id
                && version.as_ref().is_none_or(|v| &m.id.version == v)
        }) {
            out.push(m.to_json(&dm.schema, inline));
        }
    }
    Ok(Json(json!({ "items": out })))
}

pub async fn delete(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let items = items_of(&body, 100)?;
    let mut dm = st.dm();
    let mut deleted = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (id, version) = parse_view_id_opt_version(item, &format!("items[{i}]"))?;
        let ids: Vec<ViewId> = dm
            .schema
            .datamodels
            .keys()
            .filter(|k| {
                k.space == id.space
                    && k.external_id == id.external_id
                    && version.as_ref().is_none_or(|v| &k.version == v)
            })
            .cloned()
            .collect();
        for k in ids {
            dm.schema.datamodels.remove(&k);
            deleted.push(k.to_plain_json());
        }
    }
    Ok(Json(json!({ "items": deleted })))
}
