//! `POST /models/instances/list` and `POST /models/instances/byids`: reads of live instances.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::DataModeling;
use super::apply::InstanceIdJson;
use super::filter::{Compiler, Filter, SortSpec, compare_sort_keys, value_of};
use super::render::{SelectPlan, SelectSource, typing};
use super::store::{Instance, InstanceKey, Kind};
use crate::error::{ApiError, ApiResult};
use crate::schema::{decode_offset_cursor, encode_offset_cursor};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub sources: Option<Vec<Value>>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub sort: Option<Vec<Value>>,
    #[serde(default)]
    pub include_typing: Option<bool>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ByIdsRequest {
    pub items: Vec<InstanceIdJson>,
    #[serde(default)]
    pub sources: Option<Vec<Value>>,
    #[serde(default)]
    pub include_typing: Option<bool>,
}

fn parse_sources(sources: &Option<Vec<Value>>) -> ApiResult<Vec<SelectSource>> {
    sources
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, s)| SelectSource::parse(s, &format!("sources[{i}]")))
        .collect()
}

fn write_items<'a>(
    dm: &DataModeling,
    plan: &SelectPlan,
    items: impl Iterator<Item = &'a Instance>,
    explicit_nulls: bool,
    body: &mut Vec<u8>,
) {
    body.extend_from_slice(b"{\"items\":[");
    for (i, inst) in items.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        plan.write_instance(body, inst, &dm.store, explicit_nulls);
    }
    body.push(b']');
}

fn finish(
    dm: &DataModeling,
    body: &mut Vec<u8>,
    next: Option<String>,
    typing_for: Option<&[SelectSource]>,
) {
    if let Some(c) = next {
        body.extend_from_slice(b",\"nextCursor\":");
        body.extend_from_slice(&serde_json::to_vec(&c).unwrap_or_else(|_| b"null".to_vec()));
    }
    if let Some(sources) = typing_for {
        body.extend_from_slice(b",\"typing\":");
        body.extend_from_slice(
            &serde_json::to_vec(&typing(&dm.schema, sources)).unwrap_or_else(|_| b"{}".to_vec()),
        );
    }
    body.push(b'}');
}

/// A list cursor that resumes after an instance key: base64url of `key:` + `[kind, space,
/// externalId]`.
fn encode_key_cursor(key: &InstanceKey) -> String {
    let json = serde_json::json!([key.kind.as_str(), key.space, key.external_id]);
    URL_SAFE_NO_PAD.encode(format!("key:{json}"))
}

fn decode_key_cursor(cursor: &str, kind: Kind) -> ApiResult<InstanceKey> {
    let invalid = || ApiError::bad_request("Invalid cursor provided.");
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let parts: (String, String, String) = text
        .strip_prefix("key:")
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or_else(invalid)?;
    match Kind::parse(&parts.0) {
        Some(k) if k == kind => Ok(InstanceKey::new(kind, parts.1, parts.2)),
        _ => Err(invalid()),
    }
}

impl DataModeling {
    pub fn list(&self, req: ListRequest, explicit_nulls: bool) -> ApiResult<Vec<u8>> {
        let kind = match req.instance_type.as_deref() {
            None | Some("node") => Kind::Node,
            Some("edge") => Kind::Edge,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "`instanceType` must be node or edge, got `{other}`"
                )));
            }
        };
        let limit = req.limit.unwrap_or(1000);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and 1000, got {limit}"
            )));
        }
        let limit = usize::try_from(limit).unwrap_or(1000);
        let no_params = Map::new();
        let compiler = Compiler {
            schema: &self.schema,
            params: req.parameters.as_ref().unwrap_or(&no_params),
        };
        let filter = match req.filter.as_ref().filter(|f| !f.is_null()) {
            Some(f) => compiler.compile(f)?,
            None => Filter::All,
        };
        let sort = req
            .sort
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| SortSpec::parse(&compiler, s, &format!("sort[{i}]")))
            .collect::<ApiResult<Vec<_>>>()?;
        let sources = parse_sources(&req.sources)?;
        let plan = SelectPlan::build(&self.schema, &sources, "sources")?;
        let cursor = req.cursor.as_deref().filter(|c| !c.is_empty());
        let typing_for = req.include_typing.unwrap_or(false).then_some(&sources[..]);
        let mut body = Vec::with_capacity(16 * 1024);
        if sort.is_empty() {
            // Unsorted listing pages in key order and resumes after the last key it returned,
            // so paging stays exact while instances are written or deleted between pages, and
            // each page costs only the instances it walks.
            let after = cursor.map(|c| decode_key_cursor(c, kind)).transpose()?;
            let walk: Box<dyn Iterator<Item = &Instance>> = match filter.named_instances() {
                // A filter that names its instances only visits those.
                Some(named) => Box::new(
                    named
                        .into_iter()
                        .map(|(space, xid)| InstanceKey::new(kind, space, xid))
                        .filter(|k| after.as_ref().is_none_or(|a| k > a))
                        .filter_map(|k| self.store.live(&k)),
                ),
                None => Box::new(
                    self.store
                        .iter_by_key_after(kind, after.as_ref())
                        .map(|(_, i)| i),
                ),
            };
            let mut live = walk.filter(|i| i.deleted.is_none() && filter.matches(i, &self.store));
            let page: Vec<&Instance> = live.by_ref().take(limit).collect();
            let next = match (page.last(), live.next()) {
                (Some(last), Some(_)) => Some(encode_key_cursor(&last.key)),
                _ => None,
            };
            write_items(self, &plan, page.into_iter(), explicit_nulls, &mut body);
            finish(self, &mut body, next, typing_for);
            return Ok(body);
        }
        let start = match cursor {
            Some(c) => decode_offset_cursor(c)?,
            None => 0,
        };
        let mut matching: Vec<&Instance> = self
            .store
            .iter_by_key_after(kind, None)
            .map(|(_, i)| i)
            .filter(|i| i.deleted.is_none() && filter.matches(i, &self.store))
            .collect();
        {
            let mut keyed: Vec<(Vec<Value>, &Instance)> = matching
                .into_iter()
                .map(|i| {
                    (
                        sort.iter()
                            .map(|s| value_of(&s.prop, i).unwrap_or(Value::Null))
                            .collect(),
                        i,
                    )
                })
                .collect();
            keyed.sort_by(|a, b| compare_sort_keys(&sort, &a.0, &b.0));
            matching = keyed.into_iter().map(|(_, i)| i).collect();
        }
        let total = matching.len();
        write_items(
            self,
            &plan,
            matching.into_iter().skip(start).take(limit),
            explicit_nulls,
            &mut body,
        );
        let next =
            (start.saturating_add(limit) < total).then(|| encode_offset_cursor(start + limit));
        finish(self, &mut body, next, typing_for);
        Ok(body)
    }

    pub fn by_ids(&self, req: ByIdsRequest, explicit_nulls: bool) -> ApiResult<Vec<u8>> {
        if req.items.is_empty() || req.items.len() > 1000 {
            return Err(ApiError::bad_request(format!(
                "`items` must hold between 1 and 1000 ids, got {}",
                req.items.len()
            )));
        }
        let sources = parse_sources(&req.sources)?;
        let plan = SelectPlan::build(&self.schema, &sources, "sources")?;
        let mut found = Vec::new();
        for (i, id) in req.items.iter().enumerate() {
            let key = id.key(&format!("items[{i}]"))?;
            if let Some(inst) = self.store.live(&key) {
                found.push(inst);
            }
        }
        let mut body = Vec::with_capacity(16 * 1024);
        write_items(self, &plan, found.into_iter(), explicit_nulls, &mut body);
        finish(
            self,
            &mut body,
            None,
            req.include_typing.unwrap_or(false).then_some(&sources[..]),
        );
        Ok(body)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregateRequest {
    pub view: Value,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub aggregates: Vec<Value>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
}

impl DataModeling {
    /// `POST /models/instances/aggregate` for `count` aggregates over the live instances with
    /// data in `view` that match `filter` (a property's count is the instances with a value).
    pub fn aggregate(&self, req: AggregateRequest) -> ApiResult<Value> {
        let kind = match req.instance_type.as_deref() {
            None | Some("node") => Kind::Node,
            Some("edge") => Kind::Edge,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "`instanceType` must be node or edge, got `{other}`"
                )));
            }
        };
        if req.group_by.as_ref().is_some_and(|g| !g.is_empty())
            || req.query.as_ref().is_some_and(|q| !q.is_empty())
        {
            return Err(ApiError::bad_request(
                "`groupBy` and `query` in aggregates are not supported by the emulator",
            ));
        }
        if let Some(limit) = req.limit
            && !(1..=1000).contains(&limit)
        {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and 1000, got {limit}"
            )));
        }
        if req.aggregates.is_empty() || req.aggregates.len() > 5 {
            return Err(ApiError::bad_request(format!(
                "`aggregates` must hold between 1 and 5 aggregates, got {}",
                req.aggregates.len()
            )));
        }
        let view_id = crate::ids::parse_view_id(&req.view, "view")?;
        let view = self.schema.view(&view_id).ok_or_else(|| {
            ApiError::bad_request(format!("view {view_id} does not exist"))
                .with_missing(vec![view_id.to_json()])
        })?;
        let params = Map::new();
        let compiler = Compiler {
            schema: &self.schema,
            params: &params,
        };
        let mut filter = super::filter::view_has_data(&compiler, view, 0)?;
        if let Some(f) = req.filter.as_ref().filter(|f| !f.is_null()) {
            filter = Filter::And(vec![filter, compiler.compile(f)?]);
        }
        // Each aggregate: its property name and, for view properties, where the value lives.
        let mut counts: Vec<(String, Option<super::filter::PropRef>)> = Vec::new();
        for (i, a) in req.aggregates.iter().enumerate() {
            let Some(count) = a.get("count") else {
                return Err(ApiError::bad_request(format!(
                    "aggregates[{i}]: only `count` is supported by the emulator, got {a}"
                )));
            };
            let prop = count
                .get("property")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("aggregates[{i}].count needs a `property`"))
                })?;
            let at = match prop {
                "externalId" | "space" => None,
                name => Some(compiler.sort_property(
                    Some(&serde_json::json!([
                        view_id.space,
                        view_id.prop_key(),
                        name
                    ])),
                    "count",
                )?),
            };
            counts.push((prop.to_string(), at));
        }
        let mut values = vec![0u64; counts.len()];
        for (_, inst) in self.store.iter_by_key_after(kind, None) {
            if inst.deleted.is_some() || !filter.matches(inst, &self.store) {
                continue;
            }
            for (n, (_, at)) in values.iter_mut().zip(&counts) {
                if at.as_ref().is_none_or(|p| value_of(p, inst).is_some()) {
                    *n += 1;
                }
            }
        }
        let aggregates: Vec<Value> = counts
            .iter()
            .zip(values)
            .map(|((prop, _), n)| serde_json::json!({"aggregate": "count", "property": prop, "value": n}))
            .collect();
        Ok(
            serde_json::json!({"items": [{"instanceType": kind.as_str(), "aggregates": aggregates}]}),
        )
    }
}
