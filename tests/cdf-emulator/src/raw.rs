//! RAW (contract §3): databases, tables and rows of free-form JSON columns.
//! Path segments arrive percent-decoded one by one, so keys may contain `/`, spaces or unicode.

use std::collections::BTreeMap;
use std::ops::Bound;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::state::{AppState, lock};

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub columns: Map<String, Value>,
    pub last_updated: i64,
}

#[derive(Debug, Default)]
pub struct Table {
    pub created: i64,
    pub rows: BTreeMap<String, Row>,
}

#[derive(Debug, Default)]
pub struct Database {
    pub created: i64,
    pub tables: BTreeMap<String, Table>,
}

#[derive(Debug, Default)]
pub struct RawStore {
    pub dbs: BTreeMap<String, Database>,
}

fn missing_db(db: &str) -> ApiError {
    ApiError::not_found(format!("Database `{db}` does not exist"))
        .with_missing(vec![json!({"name": db})])
}

fn missing_table(db: &str, table: &str) -> ApiError {
    ApiError::not_found(format!("Table `{table}` does not exist in database `{db}`"))
        .with_missing(vec![json!({"name": table})])
}

impl RawStore {
    pub fn table(&self, db: &str, table: &str) -> ApiResult<&Table> {
        self.dbs
            .get(db)
            .ok_or_else(|| missing_db(db))?
            .tables
            .get(table)
            .ok_or_else(|| missing_table(db, table))
    }

    fn table_mut(
        &mut self,
        db: &str,
        table: &str,
        ensure_parent: bool,
        now: i64,
    ) -> ApiResult<&mut Table> {
        if ensure_parent {
            let d = self.dbs.entry(db.to_string()).or_insert_with(|| Database {
                created: now,
                tables: BTreeMap::new(),
            });
            return Ok(d.tables.entry(table.to_string()).or_insert_with(|| Table {
                created: now,
                rows: BTreeMap::new(),
            }));
        }
        self.dbs
            .get_mut(db)
            .ok_or_else(|| missing_db(db))?
            .tables
            .get_mut(table)
            .ok_or_else(|| missing_table(db, table))
    }

    /// Upserts rows; a row's `lastUpdatedTime` only moves when its columns change.
    pub fn insert_rows(
        &mut self,
        db: &str,
        table: &str,
        rows: Vec<(String, Map<String, Value>)>,
        ensure_parent: bool,
        now: i64,
    ) -> ApiResult<()> {
        let t = self.table_mut(db, table, ensure_parent, now)?;
        for (key, columns) in rows {
            match t.rows.get_mut(&key) {
                Some(r) if r.columns == columns => {}
                Some(r) => {
                    r.columns = columns;
                    r.last_updated = now;
                }
                None => {
                    t.rows.insert(
                        key,
                        Row {
                            columns,
                            last_updated: now,
                        },
                    );
                }
            }
        }
        Ok(())
    }
}

fn row_json(key: &str, row: &Row, columns: Option<&[String]>) -> Value {
    let cols: Map<String, Value> = match columns {
        None => row.columns.clone(),
        Some(wanted) => row
            .columns
            .iter()
            .filter(|(k, _)| wanted.iter().any(|w| w == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    json!({"key": key, "columns": cols, "lastUpdatedTime": row.last_updated})
}

/// Path parameters by name; the enclosing `{project}` segment is ignored.
#[derive(Debug, Deserialize)]
pub struct DbPath {
    db: String,
}

#[derive(Debug, Deserialize)]
pub struct TablePath {
    db: String,
    table: String,
}

#[derive(Debug, Deserialize)]
pub struct RowPath {
    db: String,
    table: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub columns: Option<String>,
    pub min_last_updated_time: Option<i64>,
    pub max_last_updated_time: Option<i64>,
    #[serde(default, deserialize_with = "crate::error::lenient_bool")]
    pub ensure_parent: Option<bool>,
    pub number_of_cursors: Option<i64>,
}

fn check_limit(limit: Option<i64>, default: i64, max: i64) -> ApiResult<usize> {
    let l = limit.unwrap_or(default);
    if !(1..=max).contains(&l) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {max}, got {l}"
        )));
    }
    Ok(usize::try_from(l).unwrap_or(1))
}

/// Position and filters of a row listing; time filters travel inside the cursor so that
/// every page of a filtered listing stays filtered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RowCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<i64>,
}

impl RowCursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }
    fn decode(s: &str) -> ApiResult<RowCursor> {
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| ApiError::bad_request(format!("Invalid cursor `{s}`")))
    }
    fn time_ok(&self, t: i64) -> bool {
        self.min.is_none_or(|m| t > m) && self.max.is_none_or(|m| t <= m)
    }
    fn range<'a>(&self, t: &'a Table) -> impl Iterator<Item = (&'a String, &'a Row)> + 'a {
        let lower = match (&self.after, &self.from) {
            (Some(a), _) => Bound::Excluded(a.clone()),
            (None, Some(f)) => Bound::Included(f.clone()),
            (None, None) => Bound::Unbounded,
        };
        let until = self.until.clone();
        t.rows
            .range((lower, Bound::Unbounded))
            .take_while(move |(k, _)| until.as_ref().is_none_or(|u| *k < u))
    }
}

/// `columns` absent or empty: all columns; `,` alone: keys only; `a,b`: those columns.
fn parse_columns(columns: &Option<String>) -> Option<Vec<String>> {
    columns.as_ref().filter(|c| !c.trim().is_empty()).map(|c| {
        c.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

fn names_of(body: &Value, max: usize) -> ApiResult<Vec<String>> {
    let items = crate::schema::items_of(body, max)?;
    items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            it.get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("items[{i}]: `name` must be a non-empty string"))
                })
        })
        .collect()
}

fn page(names: Vec<Value>, limit: Option<i64>, cursor: Option<&str>) -> ApiResult<Value> {
    crate::schema::paginate(names, limit, cursor, 25, 1000)
}

pub async fn list_dbs(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let raw = lock(&st.raw);
    let names = raw
        .dbs
        .iter()
        .map(|(n, d)| json!({"name": n, "createdTime": d.created}))
        .collect();
    Ok(Json(page(names, q.limit, q.cursor.as_deref())?))
}

pub async fn create_dbs(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let names = names_of(&body, 1000)?;
    let now = st.clock.now_ms();
    let mut raw = lock(&st.raw);
    let dup: Vec<Value> = names
        .iter()
        .filter(|n| raw.dbs.contains_key(*n))
        .map(|n| json!({"name": n}))
        .collect();
    if !dup.is_empty() {
        return Err(ApiError::bad_request("Database already created").with_duplicated(dup));
    }
    for n in &names {
        raw.dbs.insert(
            n.clone(),
            Database {
                created: now,
                tables: BTreeMap::new(),
            },
        );
    }
    let items: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "createdTime": now}))
        .collect();
    Ok((StatusCode::CREATED, Json(json!({"items": items}))).into_response())
}

pub async fn delete_dbs(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let names = names_of(&body, 1000)?;
    let recursive = body
        .get("recursive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut raw = lock(&st.raw);
    let missing: Vec<Value> = names
        .iter()
        .filter(|n| !raw.dbs.contains_key(*n))
        .map(|n| json!({"name": n}))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::not_found("Database not found").with_missing(missing));
    }
    if !recursive
        && let Some(n) = names
            .iter()
            .find(|n| raw.dbs.get(*n).is_some_and(|d| !d.tables.is_empty()))
    {
        return Err(ApiError::bad_request(format!(
            "Database `{n}` still has tables; delete them first or set recursive: true"
        )));
    }
    for n in names {
        raw.dbs.remove(&n);
    }
    Ok(Json(json!({})))
}

pub async fn list_tables(
    State(st): State<AppState>,
    ApiPath(DbPath { db }): ApiPath<DbPath>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let raw = lock(&st.raw);
    let d = raw.dbs.get(&db).ok_or_else(|| missing_db(&db))?;
    let names = d
        .tables
        .iter()
        .map(|(n, t)| json!({"name": n, "createdTime": t.created}))
        .collect();
    Ok(Json(page(names, q.limit, q.cursor.as_deref())?))
}

pub async fn create_tables(
    State(st): State<AppState>,
    ApiPath(DbPath { db }): ApiPath<DbPath>,
    ApiQuery(q): ApiQuery<ListQuery>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let names = names_of(&body, 1000)?;
    let now = st.clock.now_ms();
    let mut raw = lock(&st.raw);
    if q.ensure_parent.unwrap_or(false) {
        raw.dbs.entry(db.clone()).or_insert_with(|| Database {
            created: now,
            tables: BTreeMap::new(),
        });
    }
    let d = raw.dbs.get_mut(&db).ok_or_else(|| missing_db(&db))?;
    let dup: Vec<Value> = names
        .iter()
        .filter(|n| d.tables.contains_key(*n))
        .map(|n| json!({"name": n}))
        .collect();
    if !dup.is_empty() {
        return Err(ApiError::bad_request("Table already created").with_duplicated(dup));
    }
    for n in &names {
        d.tables.insert(
            n.clone(),
            Table {
                created: now,
                rows: BTreeMap::new(),
            },
        );
    }
    let items: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "createdTime": now}))
        .collect();
    Ok((StatusCode::CREATED, Json(json!({"items": items}))).into_response())
}

pub async fn delete_tables(
    State(st): State<AppState>,
    ApiPath(DbPath { db }): ApiPath<DbPath>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let names = names_of(&body, 1000)?;
    let mut raw = lock(&st.raw);
    let d = raw.dbs.get_mut(&db).ok_or_else(|| missing_db(&db))?;
    let missing: Vec<Value> = names
        .iter()
        .filter(|n| !d.tables.contains_key(*n))
        .map(|n| json!({"name": n}))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::not_found("Table not found").with_missing(missing));
    }
    for n in names {
        d.tables.remove(&n);
    }
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
struct RowWrite {
    key: String,
    columns: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct RowsBody {
    items: Vec<RowWrite>,
}

pub async fn insert_rows(
    State(st): State<AppState>,
    ApiPath(TablePath { db, table }): ApiPath<TablePath>,
    ApiQuery(q): ApiQuery<ListQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let body: RowsBody = crate::error::from_slice(&body)?;
    if body.items.is_empty() || body.items.len() > 10_000 {
        return Err(ApiError::bad_request(format!(
            "`items` must hold between 1 and 10000 rows, got {}",
            body.items.len()
        )));
    }
    if let Some(i) = body
        .items
        .iter()
        .position(|r| r.key.is_empty() || r.key.chars().count() > 1024)
    {
        return Err(ApiError::bad_request(format!(
            "items[{i}]: `key` must be 1-1024 characters"
        )));
    }
    let now = st.clock.now_ms();
    let rows = body.items.into_iter().map(|r| (r.key, r.columns)).collect();
    lock(&st.raw).insert_rows(&db, &table, rows, q.ensure_parent.unwrap_or(false), now)?;
    Ok(Json(json!({})))
}

pub async fn list_rows(
    State(st): State<AppState>,
    ApiPath(TablePath { db, table }): ApiPath<TablePath>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = check_limit(q.limit, 25, 10_000)?;
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => RowCursor::decode(c)?,
        None => RowCursor {
            min: q.min_last_updated_time,
            max: q.max_last_updated_time,
            ..Default::default()
        },
    };
    let columns = parse_columns(&q.columns);
    let raw = lock(&st.raw);
    let t = raw.table(&db, &table)?;
    let mut items = Vec::new();
    let mut last: Option<&String> = None;
    let mut more = false;
    for (k, r) in cursor.range(t) {
        if !cursor.time_ok(r.last_updated) {
            continue;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(row_json(k, r, columns.as_deref()));
        last = Some(k);
    }
    let mut out = json!({"items": items});
    if more && let Some(k) = last {
        let next = RowCursor {
            after: Some(k.clone()),
            from: None,
            ..cursor.clone()
        };
        out["nextCursor"] = json!(next.encode());
    }
    Ok(Json(out))
}

pub async fn retrieve_row(
    State(st): State<AppState>,
    ApiPath(RowPath { db, table, key }): ApiPath<RowPath>,
) -> ApiResult<Json<Value>> {
    let raw = lock(&st.raw);
    let t = raw.table(&db, &table)?;
    let r = t.rows.get(&key).ok_or_else(|| {
        ApiError::not_found(format!("Row `{key}` does not exist in {db}/{table}"))
            .with_missing(vec![json!({"key": key})])
    })?;
    Ok(Json(row_json(&key, r, None)))
}

/// `GET .../rows/delete` is a retrieve of the row whose key is "delete".
pub async fn retrieve_row_named_delete(
    st: State<AppState>,
    ApiPath(TablePath { db, table }): ApiPath<TablePath>,
) -> ApiResult<Json<Value>> {
    retrieve_row(
        st,
        ApiPath(RowPath {
            db,
            table,
            key: "delete".to_string(),
        }),
    )
    .await
}

#[derive(Debug, Deserialize)]
struct KeyItem {
    key: String,
}

#[derive(Debug, Deserialize)]
struct KeysBody {
    items: Vec<KeyItem>,
}

pub async fn delete_rows(
    State(st): State<AppState>,
    ApiPath(TablePath { db, table }): ApiPath<TablePath>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let body: KeysBody = crate::error::from_slice(&body)?;
    let mut raw = lock(&st.raw);
    let t = raw.table_mut(&db, &table, false, 0)?;
    for k in body.items {
        t.rows.remove(&k.key);
    }
    Ok(Json(json!({})))
}

/// Splits the (time-filtered) key range into up to `numberOfCursors` partitions.
pub async fn cursors(
    State(st): State<AppState>,
    ApiPath(TablePath { db, table }): ApiPath<TablePath>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let n = q.number_of_cursors.unwrap_or(10);
    if !(1..=10_000).contains(&n) {
        return Err(ApiError::bad_request(format!(
            "numberOfCursors must be between 1 and 10000, got {n}"
        )));
    }
    let n = usize::try_from(n).unwrap_or(1);
    let base = RowCursor {
        min: q.min_last_updated_time,
        max: q.max_last_updated_time,
        ..Default::default()
    };
    let raw = lock(&st.raw);
    let t = raw.table(&db, &table)?;
    let keys: Vec<&String> = t
        .rows
        .iter()
        .filter(|(_, r)| base.time_ok(r.last_updated))
        .map(|(k, _)| k)
        .collect();
    let parts = n.min(keys.len()).max(1);
    let chunk = keys.len().div_ceil(parts).max(1);
    let mut out = Vec::new();
    for p in 0..parts {
        let from = if p == 0 {
            None
        } else {
            keys.get(p * chunk).map(|k| (*k).clone())
        };
        if p > 0 && from.is_none() {
            break;
        }
        let until = keys.get((p + 1) * chunk).map(|k| (*k).clone());
        out.push(json!(
            RowCursor {
                after: None,
                from,
                until,
                ..base.clone()
            }
            .encode()
        ));
    }
    Ok(Json(json!({"items": out})))
}
