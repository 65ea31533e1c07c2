//! Test control: the in-process [`Control`] handle and the equivalent HTTP API under
//! `/__emulator/` (outside `/api/v1`, no authentication).

use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::duration_ms;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, from_value};
use crate::faults::FaultSpec;
use crate::ids::ViewId;
use crate::instances::apply::ApplyRequest;
use crate::instances::filter::{Compiler, Filter};
use crate::instances::render::{SelectPlan, SelectSource};
use crate::instances::store::Kind;
use crate::instances::{DeleteRequest, parse_delete};
use crate::request_log::RequestRecord;
use crate::state::{AppState, lock};

/// One live member of a view as [`Control::view_members`] reports it: the key and version a
/// membership listing returns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewMember {
    pub kind: Kind,
    pub space: String,
    pub external_id: String,
    pub version: u64,
}

/// Cheap, clonable handle to a running emulator's state, for tests and benchmarks.
#[derive(Clone, Debug)]
pub struct Control {
    pub(crate) shared: AppState,
}

impl Control {
    pub fn project(&self) -> &str {
        &self.shared.project
    }

    /// The emulator clock (wall clock plus the advanced offset), epoch ms.
    pub fn now_ms(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    /// Issues a valid access token without going through the token endpoint.
    pub fn issue_token(&self) -> String {
        let token = format!("emu_ctl_{:032x}", rand::random::<u128>());
        let exp = self.now_ms().saturating_add(self.shared.token_ttl_ms());
        lock(&self.shared.tokens).insert(token.clone(), exp);
        token
    }

    /// Applies schema objects in API request shape:
    /// `{"spaces":[..],"containers":[..],"views":[..],"dataModels":[..]}` (each key optional,
    /// applied in that order; `datamodels` is accepted too). Returns the created objects.
    pub fn apply_schema(&self, schema: Value) -> ApiResult<Value> {
        let s = &self.shared;
        let mut out = json!({});
        let chunked = |items: &Value, f: &dyn Fn(&Value) -> ApiResult<Value>| -> ApiResult<Value> {
            let list = items
                .as_array()
                .ok_or_else(|| ApiError::bad_request("schema lists must be arrays"))?;
            let mut all = Vec::new();
            for chunk in list.chunks(100) {
                let r = f(&json!({"items": chunk}))?;
                all.extend(r["items"].as_array().cloned().unwrap_or_default());
            }
            Ok(Value::Array(all))
        };
        if let Some(v) = schema.get("spaces") {
            out["spaces"] = chunked(v, &|b| s.apply_spaces(b))?;
        }
        if let Some(v) = schema.get("containers") {
            out["containers"] = chunked(v, &|b| s.apply_containers(b))?;
        }
        if let Some(v) = schema.get("views") {
            out["views"] = chunked(v, &|b| s.apply_views(b))?;
        }
        if let Some(v) = schema
            .get("dataModels")
            .or_else(|| schema.get("datamodels"))
        {
            out["dataModels"] = chunked(v, &|b| s.apply_datamodels(b))?;
        }
        Ok(out)
    }

    /// Applies a `POST /models/instances` body in-process, without the 1000-item cap.
    pub fn apply_instances(&self, body: Value) -> ApiResult<Value> {
        // Reading a `Value` into the request recurses once per nesting level.
        let req = crate::deep::on_big_stack(|| ApplyRequest::from_json(body))?;
        self.shared.apply_instances_req(req, None)
    }

    /// Bulk-seeds nodes with data in `view`: `properties` names the view properties and each
    /// [`SeedNode`](crate::SeedNode) carries their values in that order. Same validation and
    /// semantics as an upsert (direct-relation targets are auto-created), without building JSON
    /// request objects: the fast way to seed millions of instances. Returns how many changed.
    pub fn seed_nodes(
        &self,
        view: &ViewId,
        properties: &[&str],
        nodes: impl IntoIterator<Item = crate::SeedNode>,
    ) -> ApiResult<usize> {
        let nodes: Vec<crate::SeedNode> = nodes.into_iter().collect();
        let now = self.now_ms();
        let mut dm = self.shared.dm();
        let mut spaces: Vec<&str> = Vec::new();
        for n in &nodes {
            if !spaces.contains(&n.space.as_str()) {
                spaces.push(&n.space);
            }
        }
        let spaces: Vec<String> = spaces.into_iter().map(str::to_string).collect();
        let changed = dm.seed_nodes(view, properties, nodes, now)?;
        for s in spaces {
            dm.schema.ensure_space(&s, now);
        }
        Ok(changed)
    }

    /// Deletes instances given a `POST /models/instances/delete` body (`{"items":[...]}`).
    pub fn delete_instances(&self, body: Value) -> ApiResult<Value> {
        let req: DeleteRequest = from_value(body, "delete body")?;
        let keys = parse_delete(&req, None)?;
        let now = self.now_ms();
        let mut dm = self.shared.dm();
        dm.purge_expired(now, self.shared.tombstone_retention_ms());
        let deleted = dm.delete(&keys, now);
        Ok(json!({"items": deleted.iter().map(|k| k.to_json()).collect::<Vec<_>>()}))
    }

    pub fn add_fault(&self, fault: FaultSpec) {
        lock(&self.shared.faults).push(fault);
    }
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }
    /// Faults not yet used up, with their remaining counts.
    pub fn faults(&self) -> Vec<FaultSpec> {
        lock(&self.shared.faults).clone()
    }

    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance_ms(duration_ms(by));
    }

    pub fn expire_all_tokens(&self) {
        lock(&self.shared.tokens).clear();
    }

    /// Every sync cursor issued so far is answered with the "Cursor has expired" 400.
    pub fn expire_all_cursors(&self) {
        self.shared.dm().cursors.expire_all();
    }

    /// Purges every tombstone now, whatever its age. Returns how many were purged.
    pub fn purge_tombstones(&self) -> usize {
        self.shared.dm().store.purge_all()
    }

    /// Purges the tombstones older than the retention age (what happens lazily on every
    /// instance request anyway).
    pub fn purge_expired_tombstones(&self) -> usize {
        let now = self.now_ms();
        self.shared
            .dm()
            .purge_expired(now, self.shared.tombstone_retention_ms())
    }

    pub fn set_cursor_expiry(&self, d: Duration) {
        self.shared.set_cursor_expiry_ms(duration_ms(d));
    }
    pub fn set_tombstone_retention(&self, d: Duration) {
        self.shared.set_tombstone_retention_ms(duration_ms(d));
    }
    pub fn set_token_ttl(&self, d: Duration) {
        self.shared.set_token_ttl_ms(duration_ms(d));
    }
    pub fn set_explicit_nulls(&self, on: bool) {
        self.shared.set_explicit_nulls(on);
    }

    /// Run reports of an extraction pipeline, oldest first.
    pub fn extpipe_runs(&self, external_id: &str) -> Vec<Value> {
        lock(&self.shared.extpipes).runs(external_id)
    }

    /// Stores a new remote-config revision; returns the ConfigResponse.
    pub fn set_extpipe_config(&self, external_id: &str, config: &str) -> ApiResult<Value> {
        let now = self.now_ms();
        lock(&self.shared.extpipes)
            .add_config(&json!({"externalId": external_id, "config": config}), now)
    }

    pub fn request_log(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).iter().cloned().collect()
    }
    pub fn clear_request_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// The emulator's truth for a view: every live node and edge with data in the view,
    /// rendered as sync/list render them (properties of that view only), in
    /// `(instanceType, space, externalId)` order.
    pub fn live_instances(&self, view: &ViewId) -> ApiResult<Vec<Value>> {
        let mut out = Vec::new();
        for kind in [Kind::Node, Kind::Edge] {
            let filter = json!({"hasData": [view.to_json()]});
            out.extend(self.live_instances_matching(
                kind,
                Some(filter),
                std::slice::from_ref(view),
            )?);
        }
        Ok(out)
    }

    /// Live instances of one kind that match a filter (contract §2.5 form; `None` = all),
    /// with the properties of `sources`.
    pub fn live_instances_matching(
        &self,
        kind: Kind,
        filter: Option<Value>,
        sources: &[ViewId],
    ) -> ApiResult<Vec<Value>> {
        let dm = self.shared.dm();
        let params = serde_json::Map::new();
        let compiler = Compiler {
            schema: &dm.schema,
            params: &params,
        };
        let filter = match filter {
            Some(f) => compiler.compile(&f)?,
            None => Filter::All,
        };
        let sources: Vec<SelectSource> = sources
            .iter()
            .map(|v| SelectSource {
                source: crate::ids::SourceRef::View(v.clone()),
                properties: None,
            })
            .collect();
        let plan = SelectPlan::build(&dm.schema, &sources, "sources")?;
        let nulls = self.shared.explicit_nulls();
        Ok(dm
            .store
            .iter_by_key_after(kind, None)
            .filter(|(_, i)| i.deleted.is_none() && filter.matches(i, &dm.store))
            .map(|(_, i)| plan.to_value(i, &dm.store, nulls))
            .collect())
    }

    /// The emulator's membership truth for a view, without property values: every live node
    /// and edge with data in the view (its `filter`, if it has one, evaluated on the current
    /// data, `nested` targets included), in `(instanceType, space, externalId)` order.
    pub fn view_members(&self, view: &ViewId) -> ApiResult<Vec<ViewMember>> {
        let dm = self.shared.dm();
        let params = serde_json::Map::new();
        let compiler = Compiler {
            schema: &dm.schema,
            params: &params,
        };
        let filter = compiler.compile(&json!({"hasData": [view.to_json()]}))?;
        let mut out = Vec::new();
        for kind in [Kind::Node, Kind::Edge] {
            out.extend(
                dm.store
                    .iter_by_key_after(kind, None)
                    .filter(|(_, i)| i.deleted.is_none() && filter.matches(i, &dm.store))
                    .map(|(k, i)| ViewMember {
                        kind,
                        space: k.space.clone(),
                        external_id: k.external_id.clone(),
                        version: i.version,
                    }),
            );
        }
        Ok(out)
    }

    /// `(live instances, tombstones)` currently held.
    pub fn instance_counts(&self) -> (usize, usize) {
        let dm = self.shared.dm();
        (dm.store.live_count(), dm.store.tombstone_count())
    }

    /// The global change sequence (bumped once per instance change).
    pub fn change_seq(&self) -> u64 {
        self.shared.dm().store.seq()
    }

    /// All rows of a RAW table, in key order.
    pub fn raw_rows(&self, db: &str, table: &str) -> ApiResult<Vec<Value>> {
        let raw = lock(&self.shared.raw);
        let t = raw.table(db, table)?;
        Ok(t.rows
            .iter()
            .map(
                |(k, r)| json!({"key": k, "columns": r.columns, "lastUpdatedTime": r.last_updated}),
            )
            .collect())
    }

    /// Forgets all data, faults and the request log (tokens and clock offset stay).
    pub fn reset(&self) {
        self.shared.reset();
    }
}

// ---- HTTP control API ----

#[derive(Debug, Deserialize)]
struct AdvanceBody {
    ms: i64,
}

#[derive(Debug, Deserialize, Default)]
struct SettingsBody {
    #[serde(alias = "cursorExpiryMs")]
    cursor_expiry_ms: Option<i64>,
    #[serde(alias = "tombstoneRetentionMs")]
    tombstone_retention_ms: Option<i64>,
    #[serde(alias = "tokenTtlMs")]
    token_ttl_ms: Option<i64>,
    #[serde(alias = "explicitNulls")]
    explicit_nulls: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FaultBody {
    One(FaultSpec),
    Many(Vec<FaultSpec>),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LiveBody {
    view: Option<Value>,
    instance_type: Option<String>,
    filter: Option<Value>,
    #[serde(default)]
    sources: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct XidQuery {
    external_id: String,
}

fn ctl(st: &AppState) -> Control {
    Control { shared: st.clone() }
}

fn settings_json(st: &AppState) -> Value {
    json!({
        "cursor_expiry_ms": st.cursor_expiry_ms(),
        "tombstone_retention_ms": st.tombstone_retention_ms(),
        "token_ttl_ms": st.token_ttl_ms(),
        "explicit_nulls": st.explicit_nulls(),
        "clock_offset_ms": st.clock.offset_ms(),
        "now_ms": st.clock.now_ms(),
    })
}

async fn add_faults(State(st): State<AppState>, ApiJson(body): ApiJson<FaultBody>) -> Json<Value> {
    let faults = match body {
        FaultBody::One(f) => vec![f],
        FaultBody::Many(v) => v,
    };
    let c = ctl(&st);
    for f in faults {
        c.add_fault(f);
    }
    Json(json!({"faults": c.faults()}))
}

async fn list_faults(State(st): State<AppState>) -> Json<Value> {
    Json(json!({"faults": ctl(&st).faults()}))
}

async fn clear_faults(State(st): State<AppState>) -> Json<Value> {
    ctl(&st).clear_faults();
    Json(json!({}))
}

async fn advance(State(st): State<AppState>, ApiJson(b): ApiJson<AdvanceBody>) -> Json<Value> {
    st.clock.advance_ms(b.ms);
    Json(settings_json(&st))
}

async fn clock(State(st): State<AppState>) -> Json<Value> {
    Json(settings_json(&st))
}

async fn expire_tokens(State(st): State<AppState>) -> Json<Value> {
    ctl(&st).expire_all_tokens();
    Json(json!({}))
}

async fn expire_cursors(State(st): State<AppState>) -> Json<Value> {
    ctl(&st).expire_all_cursors();
    Json(json!({}))
}

async fn purge(State(st): State<AppState>, body: axum::body::Bytes) -> Json<Value> {
    let expired_only = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("expiredOnly").and_then(Value::as_bool))
        .unwrap_or(false);
    let c = ctl(&st);
    let n = if expired_only {
        c.purge_expired_tombstones()
    } else {
        c.purge_tombstones()
    };
    Json(json!({"purged": n}))
}

async fn set_settings(
    State(st): State<AppState>,
    ApiJson(b): ApiJson<SettingsBody>,
) -> Json<Value> {
    if let Some(v) = b.cursor_expiry_ms {
        st.set_cursor_expiry_ms(v);
    }
    if let Some(v) = b.tombstone_retention_ms {
        st.set_tombstone_retention_ms(v);
    }
    if let Some(v) = b.token_ttl_ms {
        st.set_token_ttl_ms(v);
    }
    if let Some(v) = b.explicit_nulls {
        st.set_explicit_nulls(v);
    }
    Json(settings_json(&st))
}

async fn get_settings(State(st): State<AppState>) -> Json<Value> {
    Json(settings_json(&st))
}

async fn requests(State(st): State<AppState>) -> Json<Value> {
    Json(json!({"items": ctl(&st).request_log()}))
}

async fn clear_requests(State(st): State<AppState>) -> Json<Value> {
    ctl(&st).clear_request_log();
    Json(json!({}))
}

async fn reset(State(st): State<AppState>) -> Json<Value> {
    ctl(&st).reset();
    Json(json!({}))
}

async fn schema(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(ctl(&st).apply_schema(body)?))
}

async fn instances(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(ctl(&st).apply_instances(body)?))
}

async fn delete_instances(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(ctl(&st).delete_instances(body)?))
}

async fn live(State(st): State<AppState>, ApiJson(b): ApiJson<LiveBody>) -> ApiResult<Json<Value>> {
    let c = ctl(&st);
    let items = match b.view {
        Some(v) => c.live_instances(&crate::ids::parse_view_id(&v, "view")?)?,
        None => {
            let kind = match b.instance_type.as_deref() {
                None | Some("node") => Kind::Node,
                Some("edge") => Kind::Edge,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "unknown instanceType `{other}`"
                    )));
                }
            };
            let sources = b
                .sources
                .iter()
                .enumerate()
                .map(|(i, s)| crate::ids::parse_view_id(s, &format!("sources[{i}]")))
                .collect::<ApiResult<Vec<_>>>()?;
            c.live_instances_matching(kind, b.filter, &sources)?
        }
    };
    Ok(Json(json!({"items": items})))
}

async fn runs(State(st): State<AppState>, ApiQuery(q): ApiQuery<XidQuery>) -> Json<Value> {
    Json(json!({"items": ctl(&st).extpipe_runs(&q.external_id)}))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route(
            "/faults",
            post(add_faults).get(list_faults).delete(clear_faults),
        )
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route("/tokens/expire", post(expire_tokens))
        .route("/cursors/expire", post(expire_cursors))
        .route("/tombstones/purge", post(purge))
        .route("/settings", post(set_settings).get(get_settings))
        .route("/requests", get(requests).delete(clear_requests))
        .route("/reset", post(reset))
        .route("/schema", post(schema))
        .route("/instances", post(instances))
        .route("/instances/delete", post(delete_instances))
        .route("/instances/live", post(live))
        .route("/extpipes/runs", get(runs))
}
