//! `POST /models/instances/sync` (contract §2.6): onePhase, twoPhase and noBackfill
//! result sets over the change-sequence and key indexes of the store.

use std::cmp::Ordering;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::DataModeling;
use super::cursor::{CursorState, Phase, shape_hash};
use super::filter::{Compiler, Filter, SortSpec, compare_sort_keys, value_of};
use super::render::{SelectPlan, SelectSource, typing};
use super::store::{Instance, InstanceKey, Kind};
use crate::error::{ApiError, ApiResult};

pub const BACKFILL_SORT_NEEDS_TWO_PHASE: &str =
    "Backfill sort can only be used with two-phase sync.";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    pub with: Map<String, Value>,
    pub select: Map<String, Value>,
    #[serde(default)]
    pub cursors: Option<Map<String, Value>>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    pub include_typing: Option<bool>,
    #[serde(default)]
    pub allow_expired_cursors_and_accept_missed_deletes: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    OnePhase,
    TwoPhase,
    NoBackfill,
}

struct ResultSet {
    name: String,
    kind: Kind,
    filter: Filter,
    limit: usize,
    mode: Mode,
    backfill_sort: Option<Vec<SortSpec>>,
    skip_already_deleted: bool,
    qh: String,
    plan: SelectPlan,
    sources: Vec<SelectSource>,
}

/// Settings that apply to one sync call.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    pub now: i64,
    pub cursor_expiry_ms: i64,
    pub explicit_nulls: bool,
}

fn parse_result_set(
    dm: &DataModeling,
    name: &str,
    expr: &Value,
    select: &Value,
    params: &Map<String, Value>,
) -> ApiResult<ResultSet> {
    let what = format!("with.{name}");
    let o = expr
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))?;
    let (kind, inner) = match (
        o.get("nodes").filter(|v| !v.is_null()),
        o.get("edges").filter(|v| !v.is_null()),
    ) {
        (Some(n), None) => (Kind::Node, n),
        (None, Some(e)) => (Kind::Edge, e),
        _ => {
            return Err(ApiError::bad_request(format!(
                "{what} must have exactly one of `nodes` or `edges`"
            )));
        }
    };
    for key in ["from", "through"] {
        if inner.get(key).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::bad_request(format!(
                "{what}: `{key}` (chained result sets) is not supported by the emulator"
            )));
        }
    }
    let compiler = Compiler {
        schema: &dm.schema,
        params,
    };
    let filter = match inner.get("filter").filter(|f| !f.is_null()) {
        Some(f) => compiler.compile(f)?,
        None => Filter::All,
    };
    let limit = match o.get("limit") {
        None | Some(Value::Null) => 100,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=2000) => usize::try_from(n).unwrap_or(2000),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{what}.limit must be an integer between 1 and 2000, got {v}"
                )));
            }
        },
    };
    let mode = match o.get("mode") {
        None | Some(Value::Null) => Mode::OnePhase,
        Some(Value::String(s)) => match s.as_str() {
            "onePhase" => Mode::OnePhase,
            "twoPhase" => Mode::TwoPhase,
            "noBackfill" => Mode::NoBackfill,
            other => {
                return Err(ApiError::bad_request(format!(
                    "{what}.mode must be onePhase, twoPhase or noBackfill, got `{other}`"
                )));
            }
        },
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "{what}.mode must be a string, got {other}"
            )));
        }
    };
    let backfill_sort = match o.get("backfillSort") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(Value::Array(a)) => {
            if mode != Mode::TwoPhase {
                return Err(ApiError::bad_request(BACKFILL_SORT_NEEDS_TWO_PHASE));
            }
            if a.len() > 5 {
                return Err(ApiError::bad_request(format!(
                    "{what}.backfillSort may hold at most 5 entries, got {}",
                    a.len()
                )));
            }
            Some(
                a.iter()
                    .enumerate()
                    .map(|(i, s)| {
                        SortSpec::parse(&compiler, s, &format!("{what}.backfillSort[{i}]"))
                    })
                    .collect::<ApiResult<Vec<_>>>()?,
            )
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "{what}.backfillSort must be an array, got {other}"
            )));
        }
    };
    let skip_already_deleted = o
        .get("skipAlreadyDeleted")
        .and_then(Value::as_bool)
        .unwrap_or(true);

    let sources = match select.get("sources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            if a.len() > 10 {
                return Err(ApiError::bad_request(format!(
                    "select.{name}.sources may hold at most 10 sources, got {}",
                    a.len()
                )));
            }
            a.iter()
                .enumerate()
                .map(|(i, s)| SelectSource::parse(s, &format!("select.{name}.sources[{i}]")))
                .collect::<ApiResult<Vec<_>>>()?
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "select.{name}.sources must be an array, got {other}"
            )));
        }
    };
    let has_sort = select
        .get("sort")
        .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()) || v.is_object());
    let has_limit = select.get("limit").is_some_and(|v| !v.is_null());
    if has_sort || has_limit {
        return Err(ApiError::bad_request(format!(
            "select.{name}: sync does not support `sort` or `limit` in select"
        )));
    }
    let plan = SelectPlan::build(&dm.schema, &sources, &format!("select.{name}.sources"))?;

    // The cursor is bound to the expression without its page size.
    let mut shape = o.clone();
    shape.remove("limit");
    let qh = shape_hash(&Value::Object(shape));
    Ok(ResultSet {
        name: name.to_string(),
        kind,
        filter,
        limit,
        mode,
        backfill_sort,
        skip_already_deleted,
        qh,
        plan,
        sources,
    })
}

impl DataModeling {
    /// Runs one sync request and returns the response body.
    pub fn sync(&mut self, req: SyncRequest, s: SyncSettings) -> ApiResult<Vec<u8>> {
        if req.with.is_empty() || req.with.len() > 50 {
            return Err(ApiError::bad_request(format!(
                "`with` must hold between 1 and 50 result sets, got {}",
                req.with.len()
            )));
        }
        if let Some(k) = req.with.keys().find(|k| !req.select.contains_key(*k)) {
            return Err(ApiError::bad_request(format!(
                "Result set `{k}` is in `with` but not in `select`; every sync result set needs a select entry"
            )));
        }
        if let Some(k) = req.select.keys().find(|k| !req.with.contains_key(*k)) {
            return Err(ApiError::bad_request(format!(
                "`select` refers to `{k}`, which is not in `with`"
            )));
        }
        let no_params = Map::new();
        let params = req.parameters.as_ref().unwrap_or(&no_params);
        let allow_expired = req
            .allow_expired_cursors_and_accept_missed_deletes
            .unwrap_or(false);
        let mut sets = Vec::with_capacity(req.with.len());
        let mut states = Vec::with_capacity(req.with.len());
        for (name, expr) in &req.with {
            let rs = parse_result_set(self, name, expr, &req.select[name], params)?;
            let state = match req.cursors.as_ref().and_then(|c| c.get(name)) {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) if c.is_empty() => None,
                Some(Value::String(c)) => Some(self.cursors.decode(
                    c,
                    &rs.qh,
                    s.now,
                    s.cursor_expiry_ms,
                    allow_expired,
                )?),
                Some(_) => return Err(ApiError::bad_request(super::cursor::INVALID_CURSOR)),
            };
            states.push(state);
            sets.push(rs);
        }

        let mut body = Vec::with_capacity(64 * 1024);
        body.extend_from_slice(b"{\"items\":{");
        let mut next = Vec::with_capacity(sets.len());
        for (i, (rs, state)) in sets.iter().zip(states).enumerate() {
            if i > 0 {
                body.push(b',');
            }
            put_key(&mut body, &rs.name);
            body.push(b'[');
            let state = self.run(rs, state, &mut body, s);
            body.push(b']');
            next.push(state);
        }
        body.extend_from_slice(b"},\"nextCursor\":{");
        for (i, (rs, mut state)) in sets.iter().zip(next).enumerate() {
            if i > 0 {
                body.push(b',');
            }
            state.iat = s.now;
            state.n = self.cursors.next_serial();
            put_key(&mut body, &rs.name);
            let c = self.cursors.encode(state);
            body.push(b'"');
            body.extend_from_slice(c.as_bytes());
            body.push(b'"');
        }
        body.push(b'}');
        if req.include_typing.unwrap_or(false) {
            let mut t = Map::new();
            for rs in &sets {
                t.insert(rs.name.clone(), typing(&self.schema, &rs.sources));
            }
            body.extend_from_slice(b",\"typing\":");
            body.extend_from_slice(
                &serde_json::to_vec(&Value::Object(t)).unwrap_or_else(|_| b"{}".to_vec()),
            );
        }
        body.push(b'}');
        Ok(body)
    }

    /// Fills one page for a result set and returns the cursor state to hand out next.
    fn run(
        &self,
        rs: &ResultSet,
        state: Option<CursorState>,
        body: &mut Vec<u8>,
        s: SyncSettings,
    ) -> CursorState {
        let seq = self.store.seq();
        let mut state = state.unwrap_or_else(|| {
            let (ph, pos) = match rs.mode {
                Mode::OnePhase => (Phase::Stream, 0),
                Mode::TwoPhase => (Phase::Backfill, 0),
                Mode::NoBackfill => (Phase::Stream, seq),
            };
            CursorState {
                v: 1,
                qh: rs.qh.clone(),
                ph,
                pos,
                s0: seq,
                iat: 0,
                n: 0,
                lk: None,
                ls: None,
                sig: String::new(),
            }
        });
        match state.ph {
            Phase::Stream => {
                self.stream_page(rs, &mut state, body, s);
            }
            Phase::Backfill => {
                let count = match &rs.backfill_sort {
                    None => self.backfill_page(rs, &mut state, body, s),
                    Some(specs) => self.sorted_backfill_page(rs, specs, &mut state, body, s),
                };
                if count < rs.limit {
                    state.ph = Phase::Stream;
                    state.pos = state.s0;
                    state.lk = None;
                    state.ls = None;
                }
            }
        }
        state
    }

    fn emit(
        &self,
        rs: &ResultSet,
        inst: &Instance,
        count: usize,
        body: &mut Vec<u8>,
        s: SyncSettings,
    ) {
        if count > 0 {
            body.push(b',');
        }
        rs.plan
            .write_instance(body, inst, &self.store, s.explicit_nulls);
    }

    fn stream_page(
        &self,
        rs: &ResultSet,
        state: &mut CursorState,
        body: &mut Vec<u8>,
        s: SyncSettings,
    ) -> usize {
        let mut count = 0;
        let mut pos = state.pos;
        for (seq, inst) in self.store.iter_by_seq_after(state.pos) {
            if count == rs.limit {
                break;
            }
            pos = seq;
            if inst.key.kind != rs.kind
                || (inst.deleted.is_some() && rs.skip_already_deleted && inst.seq <= state.s0)
                || !rs.filter.matches(inst, &self.store)
            {
                continue;
            }
            self.emit(rs, inst, count, body, s);
            count += 1;
        }
        state.pos = pos;
        count
    }

    /// A snapshot at `s0`: instances whose latest change is after `s0` are left to streaming.
    fn in_snapshot(rs: &ResultSet, state: &CursorState, inst: &Instance) -> bool {
        inst.seq <= state.s0 && !(inst.deleted.is_some() && rs.skip_already_deleted)
    }

    fn backfill_page(
        &self,
        rs: &ResultSet,
        state: &mut CursorState,
        body: &mut Vec<u8>,
        s: SyncSettings,
    ) -> usize {
        let after = state
            .lk
            .as_ref()
            .map(|(sp, x)| InstanceKey::new(rs.kind, sp, x));
        let mut count = 0;
        let mut last: Option<&InstanceKey> = None;
        for (key, inst) in self.store.iter_by_key_after(rs.kind, after.as_ref()) {
            if count == rs.limit {
                break;
            }
            last = Some(key);
            if !Self::in_snapshot(rs, state, inst) || !rs.filter.matches(inst, &self.store) {
                continue;
            }
            self.emit(rs, inst, count, body, s);
            count += 1;
        }
        if let Some(k) = last {
            state.lk = Some((k.space.clone(), k.external_id.clone()));
        }
        count
    }

    fn sorted_backfill_page(
        &self,
        rs: &ResultSet,
        specs: &[SortSpec],
        state: &mut CursorState,
        body: &mut Vec<u8>,
        s: SyncSettings,
    ) -> usize {
        let key_of = |inst: &Instance| -> Vec<Value> {
            specs
                .iter()
                .map(|sp| value_of(&sp.prop, inst).unwrap_or(Value::Null))
                .collect()
        };
        let cmp = |a: (&[Value], &InstanceKey), b: (&[Value], &str, &str)| -> Ordering {
            compare_sort_keys(specs, a.0, b.0)
                .then_with(|| a.1.space.as_str().cmp(b.1))
                .then_with(|| a.1.external_id.as_str().cmp(b.2))
        };
        let mut candidates: Vec<(Vec<Value>, &Instance)> = self
            .store
            .iter_by_key_after(rs.kind, None)
            .filter(|(_, inst)| {
                Self::in_snapshot(rs, state, inst) && rs.filter.matches(inst, &self.store)
            })
            .map(|(_, inst)| (key_of(inst), inst))
            .collect();
        if let (Some(ls), Some((sp, x))) = (&state.ls, &state.lk) {
            candidates.retain(|(k, inst)| cmp((k, &inst.key), (ls, sp, x)) == Ordering::Greater);
        }
        candidates.sort_by(|a, b| {
            cmp(
                (&a.0, &a.1.key),
                (&b.0, &b.1.key.space, &b.1.key.external_id),
            )
        });
        let mut count = 0;
        for (k, inst) in candidates.iter().take(rs.limit) {
            self.emit(rs, inst, count, body, s);
            count += 1;
            state.ls = Some(k.clone());
            state.lk = Some((inst.key.space.clone(), inst.key.external_id.clone()));
        }
        count
    }
}

fn put_key(buf: &mut Vec<u8>, name: &str) {
    buf.extend_from_slice(&serde_json::to_vec(name).unwrap_or_else(|_| b"\"\"".to_vec()));
    buf.push(b':');
}
