//! Data sets, as far as the Python SDK needs them: an extraction pipeline must name an
//! existing data set (`dataSetId`), so pipeline set-up creates one first.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::{AppState, lock};

#[derive(Debug, Default)]
pub struct DataSetStore {
    items: Vec<Map<String, Value>>,
}

impl DataSetStore {
    fn find(&self, id: &Value) -> Option<&Map<String, Value>> {
        self.items
            .iter()
            .find(|d| match (id.get("id"), id.get("externalId")) {
                (Some(wanted), _) => d.get("id") == Some(wanted),
                (None, Some(wanted)) => d.get("externalId") == Some(wanted),
                (None, None) => false,
            })
    }
}

/// `POST /datasets`: creates data sets; a duplicated externalId is 409 with `duplicated`.
pub async fn create(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let items = crate::schema::items_of(&body, 10)?;
    let now = st.clock.now_ms();
    let mut store = lock(&st.datasets);
    let duplicated: Vec<Value> = items
        .iter()
        .filter_map(|item| item.get("externalId"))
        .filter(|xid| store.find(&json!({"externalId": xid})).is_some())
        .map(|xid| json!({"externalId": xid}))
        .collect();
    if !duplicated.is_empty() {
        return Err(ApiError::conflict("Data set already exists").with_duplicated(duplicated));
    }
    let mut created = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(fields) = item.as_object() else {
            return Err(ApiError::bad_request(format!(
                "items[{i}] must be an object"
            )));
        };
        let mut data_set = fields.clone();
        data_set.insert("id".into(), json!(1_000_000 + store.items.len() as i64));
        data_set.entry("metadata").or_insert_with(|| json!({}));
        data_set.entry("writeProtected").or_insert(json!(false));
        data_set.insert("createdTime".into(), json!(now));
        data_set.insert("lastUpdatedTime".into(), json!(now));
        store.items.push(data_set.clone());
        created.push(Value::Object(data_set));
    }
    Ok(Json(json!({ "items": created })))
}

/// `POST /datasets/byids`: unknown ids are 400 with `missing` unless `ignoreUnknownIds`.
pub async fn by_ids(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let items = crate::schema::items_of(&body, 1000)?;
    let ignore_unknown = body
        .get("ignoreUnknownIds")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let store = lock(&st.datasets);
    let missing: Vec<Value> = items
        .iter()
        .filter(|id| store.find(id).is_none())
        .cloned()
        .collect();
    if !missing.is_empty() && !ignore_unknown {
        return Err(ApiError::bad_request("Ids not found").with_missing(missing));
    }
    let found: Vec<Value> = items
        .iter()
        .filter_map(|id| store.find(id))
        .cloned()
        .map(Value::Object)
        .collect();
    Ok(Json(json!({ "items": found })))
}

/// `POST /datasets/list`: every data set (the emulator holds few).
pub async fn list(State(st): State<AppState>) -> Json<Value> {
    let store = lock(&st.datasets);
    let items: Vec<Value> = store.items.iter().cloned().map(Value::Object).collect();
    Json(json!({ "items": items }))
}
