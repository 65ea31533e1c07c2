//! `POST /models/instances/list` and `POST /models/instances/byids`: reads of live instances.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::DataModeling;
use super::apply::InstanceIdJson;
use super::filter::{Compiler, Filter, SortSpec, compare_sort_keys, value_of};
use super::render::{SelectPlan, SelectSource, typing};
use super::store::{Instance, Kind};
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
        let start = match req.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => decode_offset_cursor(c)?,
            None => 0,
        };
        let mut matching: Vec<&Instance> = self
            .store
            .iter_by_key_after(kind, None)
            .map(|(_, i)| i)
            .filter(|i| i.deleted.is_none() && filter.matches(i, &self.store))
            .collect();
        if !sort.is_empty() {
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
        let mut body = Vec::with_capacity(16 * 1024);
        write_items(
            self,
            &plan,
            matching.into_iter().skip(start).take(limit),
            explicit_nulls,
            &mut body,
        );
        let next =
            (start.saturating_add(limit) < total).then(|| encode_offset_cursor(start + limit));
        finish(
            self,
            &mut body,
            next,
            req.include_typing.unwrap_or(false).then_some(&sources[..]),
        );
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
