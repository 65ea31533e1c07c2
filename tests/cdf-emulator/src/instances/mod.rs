//! Data-modeling instances: store, writes, filters, sync and reads.

pub mod apply;
pub mod cursor;
pub mod filter;
pub mod list;
pub mod render;
pub mod seed;
pub mod store;
pub mod sync;
pub mod values;
pub mod write_plan;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, from_slice};
use crate::schema::Schema;
use crate::state::AppState;
use apply::{ApplyRequest, InstanceIdJson};
use cursor::CursorCodec;
use store::{InstanceKey, Store};

/// Schema and instances together: instance writes validate against the schema and sync
/// compiles filters against it, so both live behind one lock.
#[derive(Debug, Default)]
pub struct DataModeling {
    pub schema: Schema,
    pub store: Store,
    pub cursors: CursorCodec,
}

impl DataModeling {
    /// Drops tombstones older than the retention age.
    pub fn purge_expired(&mut self, now: i64, retention_ms: i64) -> usize {
        self.store
            .purge_deleted_before(now.saturating_sub(retention_ms))
    }
}

pub fn json_response(body: Vec<u8>) -> Response {
    ([(CONTENT_TYPE, "application/json")], Body::from(body)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct DeleteRequest {
    pub items: Vec<InstanceIdJson>,
}

pub fn parse_delete(req: &DeleteRequest, max: Option<usize>) -> ApiResult<Vec<InstanceKey>> {
    if req.items.is_empty() || max.is_some_and(|m| req.items.len() > m) {
        return Err(ApiError::bad_request(format!(
            "`items` must hold between 1 and {} ids, got {}",
            max.unwrap_or(usize::MAX),
            req.items.len()
        )));
    }
    req.items
        .iter()
        .enumerate()
        .map(|(i, d)| d.key(&format!("items[{i}]")))
        .collect()
}

pub async fn apply_handler(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: ApplyRequest = from_slice(&body)?;
    let out = st.apply_instances_req(req, Some(1000))?;
    Ok(axum::Json(out).into_response())
}

pub async fn delete_handler(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: DeleteRequest = from_slice(&body)?;
    let keys = parse_delete(&req, Some(1000))?;
    let now = st.clock.now_ms();
    let mut dm = st.dm();
    dm.purge_expired(now, st.tombstone_retention_ms());
    let deleted = dm.delete(&keys, now);
    Ok(axum::Json(
        json!({"items": deleted.iter().map(InstanceKey::to_json).collect::<Vec<Value>>()}),
    )
    .into_response())
}

pub async fn sync_handler(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: sync::SyncRequest = from_slice(&body)?;
    let now = st.clock.now_ms();
    let settings = sync::SyncSettings {
        now,
        cursor_expiry_ms: st.cursor_expiry_ms(),
        explicit_nulls: st.explicit_nulls(),
    };
    let mut dm = st.dm();
    dm.purge_expired(now, st.tombstone_retention_ms());
    Ok(json_response(dm.sync(req, settings)?))
}

pub async fn list_handler(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: list::ListRequest = if body.is_empty() {
        from_slice(b"{}")?
    } else {
        from_slice(&body)?
    };
    let dm = st.dm();
    Ok(json_response(dm.list(req, st.explicit_nulls())?))
}

pub async fn aggregate_handler(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: list::AggregateRequest = from_slice(&body)?;
    let dm = st.dm();
    Ok(axum::Json(dm.aggregate(req)?).into_response())
}

pub async fn by_ids_handler(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: list::ByIdsRequest = from_slice(&body)?;
    let dm = st.dm();
    Ok(json_response(dm.by_ids(req, st.explicit_nulls())?))
}

impl crate::state::Shared {
    pub fn apply_instances_req(
        &self,
        req: ApplyRequest,
        max_items: Option<usize>,
    ) -> ApiResult<Value> {
        // Validation compares and clones stored values, which may nest deeply.
        crate::deep::on_big_stack(|| self.apply_on_this_stack(req, max_items))
    }

    fn apply_on_this_stack(&self, req: ApplyRequest, max_items: Option<usize>) -> ApiResult<Value> {
        let now = self.clock.now_ms();
        let mut dm = self.dm();
        dm.purge_expired(now, self.tombstone_retention_ms());
        let spaces: std::collections::BTreeSet<String> =
            req.items.iter().map(|i| i.space.clone()).collect();
        let out = dm.apply(req, now, max_items)?;
        for space in spaces {
            dm.schema.ensure_space(&space, now);
        }
        Ok(out)
    }
}
