//! Extraction pipelines (contract §4): pipelines, remote-config revisions and run reports.
//! Config and run writes for an unknown pipeline register it on the fly (CDF would demand
//! a pipeline object first), so tests and demos need no extra setup call.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::schema::paginate;
use crate::state::{AppState, lock};

pub const MAX_RUN_MESSAGE_CHARS: usize = 1000;

#[derive(Debug, Clone)]
pub struct ConfigRevision {
    pub revision: i64,
    pub created: i64,
    pub description: Option<String>,
    pub config: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: i64,
    /// The pipeline object as created (or a minimal one when registered implicitly).
    pub body: Map<String, Value>,
    pub created: i64,
    pub updated: i64,
    pub configs: Vec<ConfigRevision>,
    pub runs: Vec<Value>,
    /// Created through `POST /extpipes` rather than registered by a config or run write.
    pub explicit: bool,
}

#[derive(Debug, Default)]
pub struct ExtpipeStore {
    pub pipelines: BTreeMap<String, Pipeline>,
    next_id: i64,
}

impl ExtpipeStore {
    fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        // Large, distinct ids like CDF's, but deterministic.
        1_000_000_000 + self.next_id
    }

    fn ensure(&mut self, xid: &str, now: i64) -> &mut Pipeline {
        let id = if self.pipelines.contains_key(xid) {
            0
        } else {
            self.next_id()
        };
        self.pipelines.entry(xid.to_string()).or_insert_with(|| {
            let mut body = Map::new();
            body.insert("externalId".into(), json!(xid));
            body.insert("name".into(), json!(xid));
            Pipeline {
                id,
                body,
                created: now,
                updated: now,
                configs: Vec::new(),
                runs: Vec::new(),
                explicit: false,
            }
        })
    }

    pub fn runs(&self, xid: &str) -> Vec<Value> {
        self.pipelines
            .get(xid)
            .map(|p| p.runs.clone())
            .unwrap_or_default()
    }

    /// Records one run report after validating status and message length.
    pub fn add_run(&mut self, item: &Value, what: &str, now: i64) -> ApiResult<Value> {
        let o = item
            .as_object()
            .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))?;
        let xid = o
            .get("externalId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(format!("{what}: `externalId` must be a non-empty string"))
            })?;
        let status = o
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .filter(|s| matches!(s.as_str(), "success" | "failure" | "seen"))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{what}: `status` must be one of success, failure, seen; got {}",
                    o.get("status")
                        .map_or_else(|| "nothing".to_string(), Value::to_string)
                ))
            })?;
        let message = match o.get("message") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) => {
                let n = m.chars().count();
                if n > MAX_RUN_MESSAGE_CHARS {
                    return Err(ApiError::bad_request(format!(
                        "{what}: `message` is {n} characters long; the maximum is {MAX_RUN_MESSAGE_CHARS}"
                    )));
                }
                Some(m.clone())
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "{what}: `message` must be a string, got {other}"
                )));
            }
        };
        let created = o.get("createdTime").and_then(Value::as_i64).unwrap_or(now);
        let id = self.next_id();
        let mut run =
            json!({"id": id, "externalId": xid, "status": status, "createdTime": created});
        if let Some(m) = message {
            run["message"] = json!(m);
        }
        let p = self.ensure(xid, now);
        p.runs.push(run.clone());
        if status != "seen" {
            p.body.insert(
                format!(
                    "last{}",
                    if status == "success" {
                        "Success"
                    } else {
                        "Failure"
                    }
                ),
                json!(created),
            );
        }
        p.body.insert("lastSeen".into(), json!(created));
        Ok(run)
    }

    pub fn add_config(&mut self, body: &Value, now: i64) -> ApiResult<Value> {
        let xid = body
            .get("externalId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::bad_request("`externalId` must be a non-empty string"))?;
        let config = match body.get("config") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "`config` must be a string, got {other}"
                )));
            }
        };
        let description = body
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string);
        let p = self.ensure(xid, now);
        let revision = i64::try_from(p.configs.len()).unwrap_or(i64::MAX - 1) + 1;
        let rev = ConfigRevision {
            revision,
            created: now,
            description,
            config,
        };
        p.configs.push(rev.clone());
        Ok(config_json(xid, &rev, true))
    }
}

fn config_json(xid: &str, r: &ConfigRevision, with_config: bool) -> Value {
    let mut v = json!({"externalId": xid, "revision": r.revision, "createdTime": r.created});
    if let Some(d) = &r.description {
        v["description"] = json!(d);
    }
    if with_config && let Some(c) = &r.config {
        v["config"] = json!(c);
    }
    v
}

fn pipeline_json(xid: &str, p: &Pipeline) -> Value {
    let mut v = Value::Object(p.body.clone());
    v["id"] = json!(p.id);
    v["externalId"] = json!(xid);
    v["createdTime"] = json!(p.created);
    v["lastUpdatedTime"] = json!(p.updated);
    v.as_object_mut()
        .map(|m| m.entry("createdBy").or_insert_with(|| json!("unknown")));
    v
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigQuery {
    pub external_id: Option<String>,
    pub revision: Option<i64>,
    pub active_at_time: Option<i64>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn required_xid(q: &ConfigQuery) -> ApiResult<&str> {
    q.external_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("Query parameter `externalId` is required"))
}

pub async fn get_config(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> ApiResult<Json<Value>> {
    let xid = required_xid(&q)?;
    let store = lock(&st.extpipes);
    let not_found = || {
        ApiError::not_found(format!(
            "No configuration found for extraction pipeline `{xid}`"
        ))
        .with_missing(vec![json!({"externalId": xid})])
    };
    let p = store.pipelines.get(xid).ok_or_else(not_found)?;
    let rev = match (q.revision, q.active_at_time) {
        (Some(r), _) => p.configs.iter().find(|c| c.revision == r),
        (None, Some(t)) => p.configs.iter().rev().find(|c| c.created <= t),
        (None, None) => p.configs.last(),
    }
    .ok_or_else(not_found)?;
    Ok(Json(config_json(xid, rev, true)))
}

pub async fn create_config(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let now = st.clock.now_ms();
    Ok(Json(lock(&st.extpipes).add_config(&body, now)?))
}

/// `POST /extpipes/config/revert?externalId=..` with `{"externalId","revision"}`: a new revision
/// that copies an old one.
pub async fn revert_config(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ConfigQuery>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let xid = body
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or(q.external_id.clone())
        .ok_or_else(|| ApiError::bad_request("`externalId` is required"))?;
    let revision = body
        .get("revision")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("`revision` must be an integer"))?;
    let now = st.clock.now_ms();
    let mut store = lock(&st.extpipes);
    let old = store
        .pipelines
        .get(&xid)
        .and_then(|p| p.configs.iter().find(|c| c.revision == revision))
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(format!("Revision {revision} of `{xid}` does not exist"))
        })?;
    let body = json!({"externalId": xid, "config": old.config, "description": old.description});
    Ok(Json(store.add_config(&body, now)?))
}

pub async fn list_config_revisions(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> ApiResult<Json<Value>> {
    let xid = required_xid(&q)?;
    let store = lock(&st.extpipes);
    let items: Vec<Value> = store
        .pipelines
        .get(xid)
        .map(|p| {
            p.configs
                .iter()
                .rev()
                .map(|c| config_json(xid, c, false))
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(crate::schema::paginate(
        items,
        q.limit,
        q.cursor.as_deref(),
        100,
        1000,
    )?))
}

pub async fn create_runs(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let items = crate::schema::items_of(&body, 1000)?;
    let now = st.clock.now_ms();
    let mut store = lock(&st.extpipes);
    // Validate all before recording any.
    for (i, item) in items.iter().enumerate() {
        let mut probe = ExtpipeStore::default();
        probe.add_run(item, &format!("items[{i}]"), now)?;
    }
    let out = items
        .iter()
        .enumerate()
        .map(|(i, item)| store.add_run(item, &format!("items[{i}]"), now))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(json!({"items": out})))
}

fn newest_first(runs: &[Value]) -> Vec<Value> {
    let mut v = runs.to_vec();
    v.sort_by(|a, b| {
        let key = |r: &Value| {
            (
                r["createdTime"].as_i64().unwrap_or(0),
                r["id"].as_i64().unwrap_or(0),
            )
        };
        key(b).cmp(&key(a))
    });
    v
}

/// Runs page like every other CDF list: offset cursors, 100 by default, at most 1000.
fn page_runs(runs: Vec<Value>, limit: Option<i64>, cursor: Option<&str>) -> ApiResult<Value> {
    paginate(runs, limit, cursor, 100, 1000)
}

pub async fn list_runs(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> ApiResult<Json<Value>> {
    let xid = required_xid(&q)?;
    let store = lock(&st.extpipes);
    Ok(Json(page_runs(
        newest_first(&store.runs(xid)),
        q.limit,
        q.cursor.as_deref(),
    )?))
}

/// `POST /extpipes/runs/list` with `{filter:{externalId, statuses, createdTime{min,max}, message{substring}}, limit, cursor}`.
pub async fn filter_runs(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let f = body.get("filter").cloned().unwrap_or_else(|| json!({}));
    let xid = f
        .get("externalId")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("`filter.externalId` is required"))?;
    let statuses: Option<Vec<String>> = f.get("statuses").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect()
    });
    let min = f.pointer("/createdTime/min").and_then(Value::as_i64);
    let max = f.pointer("/createdTime/max").and_then(Value::as_i64);
    let substring = f.pointer("/message/substring").and_then(Value::as_str);
    let store = lock(&st.extpipes);
    let runs: Vec<Value> = newest_first(&store.runs(xid))
        .into_iter()
        .filter(|r| {
            let status = r["status"].as_str().unwrap_or("");
            let t = r["createdTime"].as_i64().unwrap_or(0);
            statuses
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == status))
                && min.is_none_or(|m| t >= m)
                && max.is_none_or(|m| t <= m)
                && substring
                    .is_none_or(|sub| r["message"].as_str().is_some_and(|m| m.contains(sub)))
        })
        .collect();
    Ok(Json(page_runs(
        runs,
        body.get("limit").and_then(Value::as_i64),
        body.get("cursor").and_then(Value::as_str),
    )?))
}

pub async fn create_pipelines(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let items = crate::schema::items_of(&body, 1000)?;
    let now = st.clock.now_ms();
    let mut store = lock(&st.extpipes);
    let mut dup = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let xid = item
            .get("externalId")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::bad_request(format!("items[{i}]: `externalId` must be a string"))
            })?;
        if store.pipelines.get(xid).is_some_and(|p| p.explicit) {
            dup.push(json!({"externalId": xid}));
        }
    }
    if !dup.is_empty() {
        return Err(ApiError::conflict("Extraction pipeline already exists").with_duplicated(dup));
    }
    let mut out = Vec::new();
    for item in items {
        let Some(obj) = item.as_object() else {
            continue;
        };
        let Some(xid) = obj.get("externalId").and_then(Value::as_str) else {
            continue;
        };
        let p = store.ensure(xid, now);
        p.body = obj.clone();
        p.updated = now;
        p.explicit = true;
        out.push(pipeline_json(xid, p));
    }
    Ok(Json(json!({"items": out})))
}

pub async fn list_pipelines(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> ApiResult<Json<Value>> {
    let store = lock(&st.extpipes);
    let items = store
        .pipelines
        .iter()
        .map(|(x, p)| pipeline_json(x, p))
        .collect();
    Ok(Json(crate::schema::paginate(
        items,
        q.limit,
        q.cursor.as_deref(),
        100,
        1000,
    )?))
}

fn find_ids(store: &ExtpipeStore, body: &Value) -> ApiResult<(Vec<String>, Vec<Value>)> {
    let items = crate::schema::items_of(body, 1000)?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for item in items {
        let hit = match (
            item.get("externalId").and_then(Value::as_str),
            item.get("id").and_then(Value::as_i64),
        ) {
            (Some(x), _) => store.pipelines.contains_key(x).then(|| x.to_string()),
            (None, Some(id)) => store
                .pipelines
                .iter()
                .find(|(_, p)| p.id == id)
                .map(|(x, _)| x.clone()),
            _ => {
                return Err(ApiError::bad_request(
                    "Each item needs `externalId` or `id`",
                ));
            }
        };
        match hit {
            Some(x) => found.push(x),
            None => missing.push(item.clone()),
        }
    }
    Ok((found, missing))
}

pub async fn pipelines_by_ids(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let store = lock(&st.extpipes);
    let (found, missing) = find_ids(&store, &body)?;
    if !missing.is_empty()
        && !body
            .get("ignoreUnknownIds")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    {
        return Err(ApiError::bad_request("Extraction pipelines not found").with_missing(missing));
    }
    let items: Vec<Value> = found
        .iter()
        .filter_map(|x| store.pipelines.get(x).map(|p| pipeline_json(x, p)))
        .collect();
    Ok(Json(json!({"items": items})))
}

pub async fn delete_pipelines(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let mut store = lock(&st.extpipes);
    let (found, missing) = find_ids(&store, &body)?;
    if !missing.is_empty()
        && !body
            .get("ignoreUnknownIds")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    {
        return Err(ApiError::bad_request("Extraction pipelines not found").with_missing(missing));
    }
    for x in found {
        store.pipelines.remove(&x);
    }
    Ok(Json(json!({})))
}
