//! Instance filters (contract §2.5), compiled once per request against the schema and
//! evaluated per candidate while a page is filled.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::store::{Instance, InstanceKey, Kind, Store};
use crate::error::{ApiError, ApiResult};
use crate::ids::{NodeId, SourceRef, parse_source_ref};
use crate::schema::types::TypeKind;
use crate::schema::views::ViewProperty;
use crate::schema::{ContainerIdx, Schema};
use crate::timefmt::{normalize_timestamp, parse_timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Space,
    ExternalId,
    Type,
    CreatedTime,
    LastUpdatedTime,
    Version,
    StartNode,
    EndNode,
    DeletedTime,
}

#[derive(Debug, Clone)]
pub enum PropRef {
    Base(Base),
    Cell {
        container: ContainerIdx,
        slot: usize,
        kind: TypeKind,
        list: bool,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Bounds {
    gt: Option<Value>,
    gte: Option<Value>,
    lt: Option<Value>,
    lte: Option<Value>,
}

#[derive(Debug, Clone)]
pub enum Filter {
    All,
    Nothing,
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Equals(PropRef, Value),
    In(PropRef, Vec<Value>),
    Range(PropRef, Bounds),
    Prefix(PropRef, Value),
    Exists(PropRef),
    ContainsAny(PropRef, Vec<Value>),
    ContainsAll(PropRef, Vec<Value>),
    /// The instance has rows in all of these containers.
    HasContainers(Vec<ContainerIdx>),
    /// space -> externalIds.
    InstanceRefs(HashMap<String, HashSet<String>>),
    Nested(PropRef, Box<Filter>),
}

/// A property value as seen by a filter, borrowed from the instance where possible.
enum Got<'a> {
    Missing,
    Str(&'a str),
    Int(i64),
    Node(&'a NodeId),
    Val(&'a Value),
}

pub struct Compiler<'a> {
    pub schema: &'a Schema,
    pub params: &'a Map<String, Value>,
}

const MAX_DEPTH: usize = 32;

impl Compiler<'_> {
    pub fn compile(&self, f: &Value) -> ApiResult<Filter> {
        self.compile_at(f, 0)
    }

    fn compile_at(&self, f: &Value, depth: usize) -> ApiResult<Filter> {
        if depth > MAX_DEPTH {
            return Err(ApiError::bad_request(format!(
                "Filter is nested more than {MAX_DEPTH} levels deep (or a view's filter refers to \
                 the view itself through hasData)"
            )));
        }
        let o = f
            .as_object()
            .ok_or_else(|| ApiError::bad_request(format!("A filter must be an object, got {f}")))?;
        if o.len() != 1 {
            return Err(ApiError::bad_request(format!(
                "A filter must have exactly one key (and, or, not, equals, in, range, prefix, exists, \
                 containsAny, containsAll, matchAll, hasData, instanceReferences, nested), got {f}"
            )));
        }
        let Some((name, body)) = o.iter().next() else {
            return Err(ApiError::bad_request("Empty filter object"));
        };
        let leaf = |what: &str| -> ApiResult<&Map<String, Value>> {
            body.as_object().ok_or_else(|| {
                ApiError::bad_request(format!("`{what}` filter must be an object, got {body}"))
            })
        };
        match name.as_str() {
            "and" | "or" => {
                let list = body.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`{name}` filter needs a non-empty array, got {body}"
                    ))
                })?;
                let parts = list
                    .iter()
                    .map(|x| self.compile_at(x, depth + 1))
                    .collect::<ApiResult<Vec<_>>>()?;
                Ok(if name == "and" {
                    Filter::And(parts)
                } else {
                    Filter::Or(parts)
                })
            }
            "not" => Ok(Filter::Not(Box::new(self.compile_at(body, depth + 1)?))),
            "matchAll" => Ok(Filter::All),
            "equals" => {
                let l = leaf(name)?;
                let p = self.property(l, name)?;
                let v = self.value(l.get("value"), name, "value")?;
                Ok(Filter::Equals(p.clone(), normalize_for(&p, v, name)?))
            }
            "in" | "containsAny" | "containsAll" => {
                let l = leaf(name)?;
                let p = self.property(l, name)?;
                let values = match self.value(l.get("values"), name, "values")? {
                    Value::Array(a) => a
                        .into_iter()
                        .map(|v| self.param(v, name).and_then(|v| normalize_for(&p, v, name)))
                        .collect::<ApiResult<Vec<_>>>()?,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "`{name}` filter: `values` must be an array, got {other}"
                        )));
                    }
                };
                if name != "in" && !matches!(p, PropRef::Cell { list: true, .. }) {
                    return Err(ApiError::bad_request(format!(
                        "`{name}` filter only works on list properties"
                    )));
                }
                Ok(match name.as_str() {
                    "in" => Filter::In(p, values),
                    "containsAny" => Filter::ContainsAny(p, values),
                    _ => Filter::ContainsAll(p, values),
                })
            }
            "range" => {
                let l = leaf(name)?;
                let p = self.property(l, name)?;
                let mut b = Bounds::default();
                for (key, slot) in [
                    ("gt", &mut b.gt),
                    ("gte", &mut b.gte),
                    ("lt", &mut b.lt),
                    ("lte", &mut b.lte),
                ] {
                    if let Some(v) = l.get(key).filter(|v| !v.is_null()) {
                        let v = self.param(v.clone(), name)?;
                        *slot = Some(normalize_for(&p, v, name)?);
                    }
                }
                if (b.gt.is_some() && b.gte.is_some()) || (b.lt.is_some() && b.lte.is_some()) {
                    return Err(ApiError::bad_request(
                        "`range` filter cannot combine an inclusive and an exclusive bound on the same side",
                    ));
                }
                if b.gt.is_none() && b.gte.is_none() && b.lt.is_none() && b.lte.is_none() {
                    return Err(ApiError::bad_request(
                        "`range` filter needs at least one of gt, gte, lt, lte",
                    ));
                }
                Ok(Filter::Range(p, b))
            }
            "prefix" => {
                let l = leaf(name)?;
                let p = self.property(l, name)?;
                let v = self.value(l.get("value"), name, "value")?;
                if matches!(p, PropRef::Cell { list: true, .. }) {
                    return Err(ApiError::bad_request(
                        "`prefix` filter only works on single-value properties",
                    ));
                }
                Ok(Filter::Prefix(p, v))
            }
            "exists" => {
                let l = leaf(name)?;
                Ok(Filter::Exists(self.property(l, name)?))
            }
            "hasData" => {
                let refs = match body {
                    Value::Array(a) => a.clone(),
                    Value::Object(o) => {
                        // Older form: {"views": [...], "containers": [...]}
                        let mut v = Vec::new();
                        for k in ["views", "containers"] {
                            if let Some(Value::Array(a)) = o.get(k) {
                                v.extend(a.iter().cloned());
                            }
                        }
                        v
                    }
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "`hasData` filter needs an array of view or container references, got {other}"
                        )));
                    }
                };
                let parts = refs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| self.has_data(r, i, depth))
                    .collect::<ApiResult<Vec<_>>>()?;
                Ok(match parts.len() {
                    0 => Filter::All,
                    1 => parts.into_iter().next().unwrap_or(Filter::All),
                    _ => Filter::And(parts),
                })
            }
            "instanceReferences" => {
                let list = body.as_array().ok_or_else(|| {
                    ApiError::bad_request(
                        "`instanceReferences` filter needs an array of {space, externalId}",
                    )
                })?;
                let mut set: HashMap<String, HashSet<String>> = HashMap::new();
                for (i, r) in list.iter().enumerate() {
                    let id = crate::ids::parse_node_id(r, &format!("instanceReferences[{i}]"))?;
                    set.entry(id.space).or_default().insert(id.external_id);
                }
                Ok(Filter::InstanceRefs(set))
            }
            "nested" => {
                let l = leaf(name)?;
                let scope = self.property_at(l.get("scope"), "nested", "scope")?;
                if !matches!(
                    scope,
                    PropRef::Cell {
                        kind: TypeKind::Direct,
                        list: false,
                        ..
                    }
                ) {
                    return Err(ApiError::bad_request(
                        "`nested` filter: `scope` must be a single direct relation property",
                    ));
                }
                let inner = l
                    .get("filter")
                    .ok_or_else(|| ApiError::bad_request("`nested` filter needs `filter`"))?;
                Ok(Filter::Nested(
                    scope,
                    Box::new(self.compile_at(inner, depth + 1)?),
                ))
            }
            "overlaps" | "geojsonIntersects" | "geojsonWithin" | "geojsonDisjoint" | "search" => {
                Err(ApiError::bad_request(format!(
                    "The `{name}` filter is not supported by the emulator"
                )))
            }
            other => Err(ApiError::bad_request(format!("Unknown filter `{other}`"))),
        }
    }

    fn has_data(&self, r: &Value, i: usize, depth: usize) -> ApiResult<Filter> {
        match parse_source_ref(r, &format!("hasData[{i}]"))? {
            SourceRef::Container(cid) => {
                let (idx, _) = self.schema.container(&cid).ok_or_else(|| {
                    ApiError::bad_request(format!("hasData[{i}]: container {cid} does not exist"))
                        .with_missing(vec![cid.to_json()])
                })?;
                Ok(Filter::HasContainers(vec![idx]))
            }
            SourceRef::View(vid) => {
                let view = self.schema.view(&vid).ok_or_else(|| {
                    ApiError::bad_request(format!("hasData[{i}]: view {vid} does not exist"))
                        .with_missing(vec![vid.to_json()])
                })?;
                view_has_data(self, view, depth)
            }
        }
    }

    fn param(&self, v: Value, filter: &str) -> ApiResult<Value> {
        if let Value::Object(o) = &v
            && o.len() == 1
        {
            if let Some(Value::String(p)) = o.get("parameter") {
                return self.params.get(p).cloned().ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`{filter}` filter refers to parameter `{p}`, which is not in `parameters`"
                    ))
                });
            }
            if o.contains_key("property") {
                return Err(ApiError::bad_request(format!(
                    "`{filter}` filter: property references as values are not supported by the emulator"
                )));
            }
        }
        Ok(v)
    }

    fn value(&self, v: Option<&Value>, filter: &str, key: &str) -> ApiResult<Value> {
        let v =
            v.ok_or_else(|| ApiError::bad_request(format!("`{filter}` filter needs `{key}`")))?;
        self.param(v.clone(), filter)
    }

    fn property(&self, l: &Map<String, Value>, filter: &str) -> ApiResult<PropRef> {
        self.property_at(l.get("property"), filter, "property")
    }

    fn property_at(&self, p: Option<&Value>, filter: &str, key: &str) -> ApiResult<PropRef> {
        let parts: Vec<&str> = p
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let bad = || {
            ApiError::bad_request(format!(
                "`{filter}` filter: `{key}` must be [\"node\"|\"edge\", name] or [space, \"view/version\" | container, name], got {}",
                p.map(Value::to_string).unwrap_or_else(|| "nothing".into())
            ))
        };
        match parts.as_slice() {
            [scope @ ("node" | "edge"), name] => {
                let base = match *name {
                    "space" => Base::Space,
                    "externalId" => Base::ExternalId,
                    "type" => Base::Type,
                    "createdTime" => Base::CreatedTime,
                    "lastUpdatedTime" => Base::LastUpdatedTime,
                    "version" => Base::Version,
                    "deletedTime" => Base::DeletedTime,
                    "startNode" if *scope == "edge" => Base::StartNode,
                    "endNode" if *scope == "edge" => Base::EndNode,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "`{filter}` filter: unknown {scope} property `{other}`"
                        )));
                    }
                };
                Ok(PropRef::Base(base))
            }
            [space, source, name] => {
                let (container, prop_name, label) = match source.split_once('/') {
                    Some((xid, version)) => {
                        let vid = crate::ids::ViewId::new(*space, xid, version);
                        let view = self.schema.view(&vid).ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "`{filter}` filter: view {vid} does not exist"
                            ))
                            .with_missing(vec![vid.to_json()])
                        })?;
                        match view.property(name) {
                            Some(ViewProperty::Mapped(m)) => (
                                m.container.clone(),
                                m.container_prop.clone(),
                                format!("view {vid}"),
                            ),
                            Some(ViewProperty::Connection(_)) => {
                                return Err(ApiError::bad_request(format!(
                                    "`{filter}` filter: property `{name}` of view {vid} is a connection and cannot be filtered on"
                                )));
                            }
                            None => {
                                return Err(ApiError::bad_request(format!(
                                    "`{filter}` filter: property `{name}` does not exist in view {vid}"
                                )));
                            }
                        }
                    }
                    None => {
                        let cid = crate::ids::ContainerId::new(*space, *source);
                        (cid.clone(), name.to_string(), format!("container {cid}"))
                    }
                };
                let (idx, c) = self.schema.container(&container).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`{filter}` filter: container {container} ({label}) does not exist"
                    ))
                })?;
                let (slot, cp) = c.prop(&prop_name).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`{filter}` filter: property `{prop_name}` does not exist in container {container}"
                    ))
                })?;
                Ok(PropRef::Cell {
                    container: idx,
                    slot,
                    kind: cp.ty.kind.clone(),
                    list: cp.ty.list,
                })
            }
            _ => Err(bad()),
        }
    }
}

/// hasData on a view: the view's own filter if it has one, otherwise data in every mapped container.
pub fn view_has_data(
    c: &Compiler<'_>,
    view: &crate::schema::View,
    depth: usize,
) -> ApiResult<Filter> {
    if let Some(f) = &view.filter {
        return c.compile_at(f, depth + 1);
    }
    let mut idxs = Vec::new();
    for cid in view.mapped_containers() {
        match c.schema.container(&cid) {
            Some((idx, _)) => idxs.push(idx),
            None => return Ok(Filter::Nothing),
        }
    }
    Ok(if idxs.is_empty() {
        Filter::Nothing
    } else {
        Filter::HasContainers(idxs)
    })
}

/// Brings filter values into the stored form (canonical timestamps, epoch ms for base times).
fn normalize_for(p: &PropRef, v: Value, filter: &str) -> ApiResult<Value> {
    match (p, &v) {
        (
            PropRef::Cell {
                kind: TypeKind::Timestamp,
                ..
            },
            Value::String(s),
        ) => normalize_timestamp(s).map(Value::String).ok_or_else(|| {
            ApiError::bad_request(format!("`{filter}` filter: invalid timestamp `{s}`"))
        }),
        (
            PropRef::Base(Base::CreatedTime | Base::LastUpdatedTime | Base::DeletedTime),
            Value::String(s),
        ) => parse_timestamp(s).map(Value::from).ok_or_else(|| {
            ApiError::bad_request(format!("`{filter}` filter: invalid timestamp `{s}`"))
        }),
        _ => Ok(v),
    }
}

fn num_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// JSON equality that treats `5` and `5.0` as equal.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Ordering of comparable JSON values (numbers with numbers, strings with strings).
pub fn json_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn node_matches(n: &NodeId, v: &Value) -> bool {
    v.get("space").and_then(Value::as_str) == Some(n.space.as_str())
        && v.get("externalId").and_then(Value::as_str) == Some(n.external_id.as_str())
}

impl Got<'_> {
    fn eq(&self, v: &Value) -> bool {
        match self {
            Got::Missing => false,
            Got::Str(s) => v.as_str() == Some(*s),
            Got::Int(i) => v.as_i64() == Some(*i) || v.as_f64().is_some_and(|f| f == *i as f64),
            Got::Node(n) => node_matches(n, v),
            Got::Val(x) => json_eq(x, v),
        }
    }
    fn cmp(&self, v: &Value) -> Option<Ordering> {
        match self {
            Got::Missing | Got::Node(_) => None,
            Got::Str(s) => v.as_str().map(|t| (*s).cmp(t)),
            Got::Int(i) => num_cmp(&serde_json::Number::from(*i), v.as_number()?),
            Got::Val(x) => json_cmp(x, v),
        }
    }
}

fn get<'a>(p: &PropRef, inst: &'a Instance) -> Got<'a> {
    let k: &'a InstanceKey = &inst.key;
    match p {
        PropRef::Base(b) => match b {
            Base::Space => Got::Str(&k.space),
            Base::ExternalId => Got::Str(&k.external_id),
            Base::Type => inst.data.ty.as_ref().map_or(Got::Missing, Got::Node),
            Base::CreatedTime => Got::Int(inst.created),
            Base::LastUpdatedTime => Got::Int(inst.updated),
            Base::Version => Got::Int(i64::try_from(inst.version).unwrap_or(i64::MAX)),
            Base::DeletedTime => inst.deleted.map_or(Got::Missing, Got::Int),
            Base::StartNode if k.kind == Kind::Edge => {
                inst.data.start.as_ref().map_or(Got::Missing, Got::Node)
            }
            Base::EndNode if k.kind == Kind::Edge => {
                inst.data.end.as_ref().map_or(Got::Missing, Got::Node)
            }
            Base::StartNode | Base::EndNode => Got::Missing,
        },
        PropRef::Cell {
            container, slot, ..
        } => inst
            .data
            .value(*container, *slot)
            .map_or(Got::Missing, Got::Val),
    }
}

impl Filter {
    /// The `(space, externalId)` pairs this filter can match at most, in key order, when it
    /// is an `instanceReferences` filter or an `and` holding one; `None` when any instance
    /// might match. Lets reads visit the named instances instead of walking the store.
    pub fn named_instances(&self) -> Option<std::collections::BTreeSet<(&str, &str)>> {
        match self {
            Filter::InstanceRefs(set) => Some(
                set.iter()
                    .flat_map(|(space, xids)| {
                        xids.iter().map(move |x| (space.as_str(), x.as_str()))
                    })
                    .collect(),
            ),
            Filter::And(parts) => parts.iter().find_map(Filter::named_instances),
            _ => None,
        }
    }

    pub fn matches(&self, inst: &Instance, store: &Store) -> bool {
        match self {
            Filter::All => true,
            Filter::Nothing => false,
            Filter::And(fs) => fs.iter().all(|f| f.matches(inst, store)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(inst, store)),
            Filter::Not(f) => !f.matches(inst, store),
            Filter::Equals(p, v) => get(p, inst).eq(v),
            Filter::In(p, vs) => {
                let g = get(p, inst);
                vs.iter().any(|v| g.eq(v))
            }
            Filter::Range(p, b) => {
                let g = get(p, inst);
                let ok = |bound: &Option<Value>, pass: fn(Ordering) -> bool| {
                    bound.as_ref().is_none_or(|v| g.cmp(v).is_some_and(pass))
                };
                !matches!(g, Got::Missing)
                    && ok(&b.gt, |o| o == Ordering::Greater)
                    && ok(&b.gte, |o| o != Ordering::Less)
                    && ok(&b.lt, |o| o == Ordering::Less)
                    && ok(&b.lte, |o| o != Ordering::Greater)
            }
            Filter::Prefix(p, v) => {
                let Some(prefix) = v.as_str() else {
                    return false;
                };
                match get(p, inst) {
                    Got::Str(s) => s.starts_with(prefix),
                    Got::Val(Value::String(s)) => s.starts_with(prefix),
                    _ => false,
                }
            }
            Filter::Exists(p) => !matches!(get(p, inst), Got::Missing),
            Filter::ContainsAny(p, vs) => match get(p, inst) {
                Got::Val(Value::Array(items)) => {
                    vs.iter().any(|v| items.iter().any(|i| json_eq(i, v)))
                }
                _ => false,
            },
            Filter::ContainsAll(p, vs) => match get(p, inst) {
                Got::Val(Value::Array(items)) => {
                    vs.iter().all(|v| items.iter().any(|i| json_eq(i, v)))
                }
                _ => false,
            },
            Filter::HasContainers(cs) => cs.iter().all(|c| inst.data.has_row(*c)),
            Filter::InstanceRefs(set) => set
                .get(inst.key.space.as_str())
                .is_some_and(|xs| xs.contains(inst.key.external_id.as_str())),
            Filter::Nested(scope, f) => match get(scope, inst) {
                Got::Val(v) => {
                    let (Some(s), Some(x)) = (
                        v.get("space").and_then(Value::as_str),
                        v.get("externalId").and_then(Value::as_str),
                    ) else {
                        return false;
                    };
                    store
                        .live(&InstanceKey::new(Kind::Node, s, x))
                        .is_some_and(|target| f.matches(target, store))
                }
                _ => false,
            },
        }
    }
}

impl Compiler<'_> {
    /// Compiles a bare property reference (as used by `sort` and `backfillSort`).
    pub fn sort_property(&self, p: Option<&Value>, what: &str) -> ApiResult<PropRef> {
        self.property_at(p, what, "property")
    }
}

/// The value of a property as an owned JSON value, for sorting.
pub fn value_of(p: &PropRef, inst: &Instance) -> Option<Value> {
    match get(p, inst) {
        Got::Missing => None,
        Got::Str(s) => Some(Value::String(s.to_string())),
        Got::Int(i) => Some(Value::from(i)),
        Got::Node(n) => Some(n.to_json()),
        Got::Val(v) => Some(v.clone()),
    }
}

/// One parsed sort entry: property, direction and null placement.
#[derive(Debug, Clone)]
pub struct SortSpec {
    pub prop: PropRef,
    pub descending: bool,
    pub nulls_first: bool,
}

impl SortSpec {
    pub fn parse(c: &Compiler<'_>, v: &Value, what: &str) -> ApiResult<SortSpec> {
        let prop = c.sort_property(v.get("property"), what)?;
        let descending = match v.get("direction").and_then(Value::as_str) {
            None | Some("ascending") => false,
            Some("descending") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "{what}: `direction` must be ascending or descending, got `{other}`"
                )));
            }
        };
        let nulls_first = v
            .get("nullsFirst")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(SortSpec {
            prop,
            descending,
            nulls_first,
        })
    }
}

/// Compares two sort-key tuples under the given specs (nulls placed per spec, direction
/// applied to non-null values only).
pub fn compare_sort_keys(specs: &[SortSpec], a: &[Value], b: &[Value]) -> Ordering {
    for (i, s) in specs.iter().enumerate() {
        let (x, y) = (
            a.get(i).unwrap_or(&Value::Null),
            b.get(i).unwrap_or(&Value::Null),
        );
        let ord = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if s.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if s.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let o = json_cmp(x, y).unwrap_or_else(|| x.to_string().cmp(&y.to_string()));
                if s.descending { o.reverse() } else { o }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}
