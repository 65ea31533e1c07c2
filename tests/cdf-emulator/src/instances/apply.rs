//! `POST /models/instances` (upsert) and `POST /models/instances/delete`.
//!
//! A batch is validated completely before anything changes, so a 400 or 409 leaves the store
//! untouched. Writes that change nothing bump neither version, lastUpdatedTime nor the change
//! sequence, so sync emits nothing for them.

use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::rc::Rc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::DataModeling;
use super::store::{ContainerRow, InstanceData, InstanceKey, Kind};
use super::values::normalize_value;
use super::write_plan::{PlanCache, SourcePlan, Target};
use crate::error::{ApiError, ApiResult};
use crate::ids::{NodeId, validate_instance_xid, validate_space};
use crate::schema::{ContainerIdx, Schema};

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    pub items: Vec<ApplyItem>,
    #[serde(default)]
    pub delete: Option<Vec<InstanceIdJson>>,
    #[serde(default = "yes")]
    pub auto_create_direct_relations: bool,
    #[serde(default)]
    pub auto_create_start_nodes: bool,
    #[serde(default)]
    pub auto_create_end_nodes: bool,
    #[serde(default)]
    pub skip_on_version_conflict: bool,
    #[serde(default)]
    pub replace: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyItem {
    pub instance_type: String,
    pub space: String,
    pub external_id: String,
    #[serde(rename = "type", default)]
    pub ty: Option<NodeRefJson>,
    #[serde(default)]
    pub start_node: Option<NodeRefJson>,
    #[serde(default)]
    pub end_node: Option<NodeRefJson>,
    #[serde(default)]
    pub existing_version: Option<i64>,
    #[serde(default)]
    pub sources: Option<Vec<SourceWrite>>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct NodeRefJson {
    pub space: String,
    #[serde(rename = "externalId")]
    pub external_id: String,
}

impl NodeRefJson {
    fn id(&self) -> NodeId {
        NodeId::new(&self.space, &self.external_id)
    }
}

#[derive(Debug, Deserialize)]
pub struct SourceWrite {
    pub source: Value,
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct InstanceIdJson {
    pub instance_type: String,
    pub space: String,
    pub external_id: String,
}

impl InstanceIdJson {
    pub fn key(&self, what: &str) -> ApiResult<InstanceKey> {
        let kind = Kind::parse(&self.instance_type).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{what}: `instanceType` must be node or edge, got `{}`",
                self.instance_type
            ))
        })?;
        Ok(InstanceKey::new(kind, &self.space, &self.external_id))
    }
}

struct Planned {
    key: InstanceKey,
    data: InstanceData,
    /// False for no-op writes and for items skipped on version conflict.
    changed: bool,
}

fn kind_of(item: &ApplyItem, i: usize) -> ApiResult<Kind> {
    Kind::parse(&item.instance_type).ok_or_else(|| {
        ApiError::bad_request(format!(
            "items[{i}]: `instanceType` must be node or edge, got `{}`",
            item.instance_type
        ))
    })
}

/// A source of one item, resolved to its plan, with the values still to be written.
type Resolved = (Rc<SourcePlan>, Option<Map<String, Value>>);

/// Resolves an item's sources and lists the containers it touches.
fn resolve_sources(
    schema: &Schema,
    plans: &mut PlanCache,
    sources: Option<Vec<SourceWrite>>,
    kind: Kind,
    i: usize,
) -> ApiResult<(Vec<ContainerIdx>, Vec<Resolved>)> {
    let mut touched = Vec::new();
    let mut resolved = Vec::new();
    for (j, sw) in sources.into_iter().flatten().enumerate() {
        let swhat = || format!("items[{i}].sources[{j}]");
        let plan = plans.get(schema, &sw.source, &swhat)?;
        plan.check_kind(kind)
            .map_err(|m| ApiError::bad_request(format!("{}: {m}", swhat())))?;
        for (idx, _, _) in &plan.containers {
            if !touched.contains(idx) {
                touched.push(*idx);
            }
        }
        resolved.push((plan, sw.properties));
    }
    Ok((touched, resolved))
}

/// Validates the values of resolved sources and writes them straight into `rows`.
/// Consumes the values so they move into the store without copies.
fn write_values(
    schema: &Schema,
    resolved: Vec<Resolved>,
    rows: &mut [ContainerRow],
    direct_targets: &mut Vec<(NodeId, usize)>,
    i: usize,
) -> ApiResult<()> {
    for (j, (plan, props)) in resolved.into_iter().enumerate() {
        let swhat = || format!("items[{i}].sources[{j}]");
        for (pname, value) in props.into_iter().flatten() {
            match plan.props.get(&pname) {
                Some(Target::Cell {
                    container,
                    slot,
                    ty,
                    label,
                }) => {
                    let v = normalize_value(value, ty, &|| {
                        format!(
                            "{}: invalid value for property `{pname}` of {} ({label})",
                            swhat(),
                            plan.label
                        )
                    })?;
                    if let Some(Value::Object(_) | Value::Array(_)) = &v {
                        collect_direct_targets(
                            schema,
                            *container,
                            *slot,
                            v.as_ref(),
                            direct_targets,
                            i,
                        );
                    }
                    if let Some(r) = rows.iter_mut().find(|r| r.container == *container)
                        && let Some(cell) = r.values.get_mut(*slot)
                    {
                        *cell = v;
                    }
                }
                Some(Target::Connection) => {
                    return Err(ApiError::bad_request(format!(
                        "{}: property `{pname}` of {} is a connection; connections have no stored values",
                        swhat(),
                        plan.label
                    )));
                }
                None => {
                    return Err(ApiError::bad_request(format!(
                        "{}: property `{pname}` does not exist in {}",
                        swhat(),
                        plan.label
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Enforces non-nullable and immutable properties on the containers an item writes.
pub(crate) fn check_constraints(
    schema: &Schema,
    rows: &[ContainerRow],
    touched: &[ContainerIdx],
    old_rows: &[ContainerRow],
    what: &dyn Fn() -> String,
    id_text: &dyn Fn() -> String,
) -> ApiResult<()> {
    for r in rows {
        if !touched.contains(&r.container) {
            continue;
        }
        let Some(c) = schema.container_at(r.container) else {
            continue;
        };
        for (slot, p) in c.properties.iter().enumerate() {
            let value = r.values.get(slot).and_then(Option::as_ref);
            if !p.nullable && !p.auto_increment && value.is_none() {
                return Err(ApiError::bad_request(format!(
                    "{}: property `{}` of container {} is not nullable and has no default; a value is required for {}",
                    what(),
                    p.identifier,
                    c.id,
                    id_text()
                )));
            }
            if p.immutable
                && let Some(old) = old_rows
                    .iter()
                    .find(|o| o.container == r.container)
                    .and_then(|o| o.values.get(slot))
                    .and_then(Option::as_ref)
                && Some(old) != value
            {
                return Err(ApiError::bad_request(format!(
                    "{}: property `{}` of container {} is immutable and already set to {old}",
                    what(),
                    p.identifier,
                    c.id
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn default_row(schema: &Schema, idx: ContainerIdx) -> ContainerRow {
    let values = schema
        .container_at(idx)
        .map(|c| {
            c.properties
                .iter()
                .map(|p| p.default_value.clone())
                .collect()
        })
        .unwrap_or_default();
    ContainerRow {
        container: idx,
        values,
    }
}

impl DataModeling {
    /// Applies an upsert batch. `max_items` is the API's per-request cap (None for in-process seeding).
    pub fn apply(
        &mut self,
        req: ApplyRequest,
        now: i64,
        max_items: Option<usize>,
    ) -> ApiResult<Value> {
        if let Some(max) = max_items
            && req.items.len() > max
        {
            return Err(ApiError::bad_request(format!(
                "`items` may hold at most {max} instances, got {}",
                req.items.len()
            )));
        }
        let ApplyRequest {
            items,
            delete,
            auto_create_direct_relations,
            auto_create_start_nodes,
            auto_create_end_nodes,
            skip_on_version_conflict,
            replace,
        } = req;
        let delete_keys = match &delete {
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, d)| d.key(&format!("delete[{i}]")))
                .collect::<ApiResult<Vec<_>>>()?,
            None => Vec::new(),
        };
        let deleting: HashSet<&InstanceKey> = delete_keys.iter().collect();
        // Duplicate detection by key hash (verified against the planned key on a hit), so keys
        // are not cloned per item.
        let hasher = std::hash::RandomState::new();
        let mut seen: std::collections::HashMap<u64, usize> =
            std::collections::HashMap::with_capacity(items.len());
        // Edge ends that must exist: (node, item, is_start).
        let mut edge_ends: Vec<(NodeId, usize, bool)> = Vec::new();
        let mut planned: Vec<Planned> = Vec::with_capacity(items.len());
        let mut auto_nodes: BTreeSet<NodeId> = BTreeSet::new();
        let mut direct_targets: Vec<(NodeId, usize)> = Vec::new();
        let mut plans = PlanCache::default();

        for (i, mut item) in items.into_iter().enumerate() {
            let kind = kind_of(&item, i)?;
            validate_space(&item.space)
                .map_err(|e| ApiError::bad_request(format!("items[{i}]: {}", e.message)))?;
            validate_instance_xid(&item.external_id)
                .map_err(|e| ApiError::bad_request(format!("items[{i}]: {}", e.message)))?;
            let key = InstanceKey::new(
                kind,
                std::mem::take(&mut item.space),
                std::mem::take(&mut item.external_id),
            );
            let id_text = || format!("{} {}:{}", key.kind.as_str(), key.space, key.external_id);
            let h = hasher.hash_one(&key);
            let duplicate = match seen.get(&h) {
                Some(&at) => {
                    planned.get(at).is_some_and(|p| p.key == key)
                        || planned.iter().any(|p| p.key == key)
                }
                None => false,
            };
            if duplicate {
                return Err(ApiError::bad_request(format!(
                    "items[{i}]: {} appears more than once in the request",
                    id_text()
                ))
                .with_duplicated(vec![key.to_json()]));
            }
            let other_kind = if kind == Kind::Node {
                Kind::Edge
            } else {
                Kind::Node
            };
            if let Some(other) = self
                .store
                .live_by_parts(other_kind, &key.space, &key.external_id)
            {
                return Err(ApiError::bad_request(format!(
                    "items[{i}]: {}:{} already exists as a {}; an instance cannot change instanceType",
                    key.space,
                    key.external_id,
                    other.key.kind.as_str()
                )));
            }
            let existing = if deleting.contains(&key) {
                None
            } else {
                self.store.live(&key)
            };

            if let (Some(ev), Some(cur)) = (item.existing_version, existing)
                && (ev == 0 || i64::try_from(cur.version).unwrap_or(i64::MAX) > ev)
            {
                if skip_on_version_conflict {
                    let data = cur.data.clone();
                    seen.insert(h, planned.len());
                    planned.push(Planned {
                        key,
                        data,
                        changed: false,
                    });
                    continue;
                }
                return Err(ApiError::conflict(format!(
                    "items[{i}]: version conflict for {}: existingVersion is {ev} but the current version is {}",
                    id_text(),
                    cur.version
                ))
                .with_duplicated(vec![key.to_json()]));
            }

            let (ty, start, end) = match kind {
                Kind::Node => {
                    if item.start_node.is_some() || item.end_node.is_some() {
                        return Err(ApiError::bad_request(format!(
                            "items[{i}]: nodes cannot have startNode or endNode"
                        )));
                    }
                    let ty = match &item.ty {
                        Some(t) => Some(t.id()),
                        None => existing.and_then(|e| e.data.ty.clone()),
                    };
                    (ty, None, None)
                }
                Kind::Edge => {
                    let need = |v: &Option<NodeRefJson>, name: &str| {
                        v.as_ref().map(NodeRefJson::id).ok_or_else(|| {
                            ApiError::bad_request(format!("items[{i}]: edges require `{name}`"))
                        })
                    };
                    (
                        Some(need(&item.ty, "type")?),
                        Some(need(&item.start_node, "startNode")?),
                        Some(need(&item.end_node, "endNode")?),
                    )
                }
            };

            let (touched, resolved) =
                resolve_sources(&self.schema, &mut plans, item.sources.take(), kind, i)?;
            let old_rows: &[ContainerRow] = existing.map_or(&[], |e| &e.data.rows);
            let mut rows: Vec<ContainerRow> = old_rows
                .iter()
                .filter(|r| self.schema.container_at(r.container).is_some())
                .cloned()
                .collect();
            for idx in &touched {
                match rows.iter_mut().find(|r| r.container == *idx) {
                    Some(r) if replace => *r = default_row(&self.schema, *idx),
                    Some(r) => {
                        // Containers may have gained properties since the row was written.
                        let len = self
                            .schema
                            .container_at(*idx)
                            .map_or(0, |c| c.properties.len());
                        if r.values.len() < len {
                            r.values.resize(len, None);
                        }
                    }
                    None => rows.push(default_row(&self.schema, *idx)),
                }
            }
            rows.sort_by_key(|r| r.container);
            write_values(&self.schema, resolved, &mut rows, &mut direct_targets, i)?;
            check_constraints(
                &self.schema,
                &rows,
                &touched,
                old_rows,
                &|| format!("items[{i}]"),
                &id_text,
            )?;

            for (node, is_start) in [(&start, true), (&end, false)] {
                if let Some(n) = node
                    && !self.store.node_exists(n)
                {
                    edge_ends.push((n.clone(), i, is_start));
                }
            }

            let data = InstanceData {
                ty,
                start,
                end,
                rows,
            };
            let changed = existing.is_none_or(|e| e.data != data);
            seen.insert(h, planned.len());
            planned.push(Planned { key, data, changed });
        }

        // Nodes created by this batch count as existing for edge ends and direct relations.
        let batch_nodes: HashSet<(&str, &str)> =
            if edge_ends.is_empty() && direct_targets.is_empty() {
                HashSet::new()
            } else {
                planned
                    .iter()
                    .filter(|p| p.key.kind == Kind::Node)
                    .map(|p| (p.key.space.as_str(), p.key.external_id.as_str()))
                    .collect()
            };
        let in_batch =
            |n: &NodeId| batch_nodes.contains(&(n.space.as_str(), n.external_id.as_str()));
        for (n, i, is_start) in edge_ends {
            if in_batch(&n) {
                continue;
            }
            if (is_start && auto_create_start_nodes) || (!is_start && auto_create_end_nodes) {
                auto_nodes.insert(n);
            } else {
                let (name, flag) = if is_start {
                    ("startNode", "Start")
                } else {
                    ("endNode", "End")
                };
                return Err(ApiError::bad_request(format!(
                    "items[{i}]: edge {name} {n} does not exist; create it first or set autoCreate{flag}Nodes"
                ))
                .with_missing(vec![n.to_json()]));
            }
        }
        for (target, i) in direct_targets {
            if self.store.node_exists(&target) || in_batch(&target) {
                continue;
            }
            if auto_create_direct_relations {
                auto_nodes.insert(target);
            } else {
                return Err(ApiError::bad_request(format!(
                    "items[{i}]: direct relation target {target} does not exist and autoCreateDirectRelations is false"
                ))
                .with_missing(vec![target.to_json()]));
            }
        }

        drop(batch_nodes);
        // Validation is complete: mutate.
        let deleted = self.delete(&delete_keys, now);
        for n in auto_nodes {
            let key = InstanceKey::new(Kind::Node, n.space, n.external_id);
            if self.store.live(&key).is_none() {
                self.store.write(
                    key,
                    InstanceData {
                        ty: None,
                        start: None,
                        end: None,
                        rows: Vec::new(),
                    },
                    now,
                );
            }
        }
        let mut out = Vec::with_capacity(planned.len());
        for p in planned {
            let inst = if p.changed {
                let slot = self.store.write(p.key, p.data, now);
                self.store.get(slot)
            } else {
                self.store.live(&p.key)
            };
            let Some(inst) = inst else { continue };
            let mut m = Map::new();
            m.insert(
                "instanceType".into(),
                Value::String(inst.key.kind.as_str().into()),
            );
            m.insert("space".into(), Value::String(inst.key.space.clone()));
            m.insert(
                "externalId".into(),
                Value::String(inst.key.external_id.clone()),
            );
            m.insert("version".into(), Value::from(inst.version));
            m.insert("wasModified".into(), Value::Bool(p.changed));
            m.insert("createdTime".into(), Value::from(inst.created));
            m.insert("lastUpdatedTime".into(), Value::from(inst.updated));
            out.push(Value::Object(m));
        }
        let mut resp = json!({ "items": out });
        if delete.is_some() {
            resp["deleted"] = Value::Array(deleted.iter().map(InstanceKey::to_json).collect());
        }
        Ok(resp)
    }

    /// Soft-deletes instances; deleting a node also deletes every edge that starts or ends at it.
    /// Missing ids are skipped. Returns the requested ids.
    pub fn delete(&mut self, keys: &[InstanceKey], now: i64) -> Vec<InstanceKey> {
        for key in keys {
            if self.store.soft_delete(key, now) && key.kind == Kind::Node {
                for edge in self.store.edges_touching(&key.node_id()) {
                    self.store.soft_delete(&edge, now);
                }
            }
        }
        keys.to_vec()
    }
}

pub(crate) fn collect_direct_targets(
    schema: &Schema,
    idx: ContainerIdx,
    slot: usize,
    v: Option<&Value>,
    out: &mut Vec<(NodeId, usize)>,
    item: usize,
) {
    use crate::schema::types::TypeKind;
    let is_direct = schema
        .container_at(idx)
        .and_then(|c| c.properties.get(slot))
        .is_some_and(|p| p.ty.kind == TypeKind::Direct);
    if !is_direct {
        return;
    }
    let mut push = |o: &Value| {
        if let (Some(s), Some(x)) = (
            o.get("space").and_then(Value::as_str),
            o.get("externalId").and_then(Value::as_str),
        ) {
            out.push((NodeId::new(s, x), item));
        }
    };
    match v {
        Some(Value::Array(a)) => a.iter().for_each(&mut push),
        Some(o @ Value::Object(_)) => push(o),
        _ => {}
    }
}

/// Conversion of an already-parsed JSON body, moving values instead of re-deserializing them
/// (in-process seeding of large batches spends most of its time here otherwise).
impl ApplyRequest {
    pub fn from_json(body: Value) -> ApiResult<ApplyRequest> {
        let Value::Object(mut o) = body else {
            return Err(ApiError::bad_request(
                "The instances body must be a JSON object",
            ));
        };
        let items = match o.remove("items") {
            Some(Value::Array(a)) => a
                .into_iter()
                .enumerate()
                .map(|(i, v)| ApplyItem::from_json(v, i))
                .collect::<ApiResult<Vec<_>>>()?,
            _ => {
                return Err(ApiError::bad_request(
                    "The instances body needs an `items` array",
                ));
            }
        };
        let mut flag = |key: &str, default: bool| -> ApiResult<bool> {
            match o.remove(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(b),
                Some(other) => Err(ApiError::bad_request(format!(
                    "`{key}` must be a boolean, got {other}"
                ))),
            }
        };
        let auto_create_direct_relations = flag("autoCreateDirectRelations", true)?;
        let auto_create_start_nodes = flag("autoCreateStartNodes", false)?;
        let auto_create_end_nodes = flag("autoCreateEndNodes", false)?;
        let skip_on_version_conflict = flag("skipOnVersionConflict", false)?;
        let replace = flag("replace", false)?;
        let delete = match o.remove("delete") {
            None | Some(Value::Null) => None,
            Some(v) => Some(crate::error::from_value(v, "delete list")?),
        };
        Ok(ApplyRequest {
            items,
            delete,
            auto_create_direct_relations,
            auto_create_start_nodes,
            auto_create_end_nodes,
            skip_on_version_conflict,
            replace,
        })
    }
}

impl ApplyItem {
    fn from_json(v: Value, i: usize) -> ApiResult<ApplyItem> {
        let Value::Object(mut o) = v else {
            return Err(ApiError::bad_request(format!(
                "items[{i}] must be an object"
            )));
        };
        let mut string = |key: &str| -> ApiResult<String> {
            match o.remove(key) {
                Some(Value::String(s)) => Ok(s),
                Some(other) => Err(ApiError::bad_request(format!(
                    "items[{i}].{key} must be a string, got {other}"
                ))),
                None => Err(ApiError::bad_request(format!(
                    "items[{i}]: missing required field `{key}`"
                ))),
            }
        };
        let instance_type = string("instanceType")?;
        let space = string("space")?;
        let external_id = string("externalId")?;
        let mut node_ref = |key: &str| -> ApiResult<Option<NodeRefJson>> {
            match o.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => crate::error::from_value(v, &format!("items[{i}].{key}")).map(Some),
            }
        };
        let ty = node_ref("type")?;
        let start_node = node_ref("startNode")?;
        let end_node = node_ref("endNode")?;
        let existing_version = match o.remove("existingVersion") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "items[{i}].existingVersion must be an integer, got {v}"
                ))
            })?),
        };
        let sources = match o.remove("sources") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.into_iter()
                    .enumerate()
                    .map(|(j, s)| {
                        let Value::Object(mut so) = s else {
                            return Err(ApiError::bad_request(format!("items[{i}].sources[{j}] must be an object")));
                        };
                        let source = so.remove("source").ok_or_else(|| {
                            ApiError::bad_request(format!("items[{i}].sources[{j}]: missing required field `source`"))
                        })?;
                        let properties = match so.remove("properties") {
                            None | Some(Value::Null) => None,
                            Some(Value::Object(m)) => Some(m),
                            Some(other) => {
                                return Err(ApiError::bad_request(format!(
                                    "items[{i}].sources[{j}].properties must be an object, got {other}"
                                )));
                            }
                        };
                        Ok(SourceWrite { source, properties })
                    })
                    .collect::<ApiResult<Vec<_>>>()?,
            ),
            Some(other) => {
                return Err(ApiError::bad_request(format!("items[{i}].sources must be an array, got {other}")));
            }
        };
        Ok(ApplyItem {
            instance_type,
            space,
            external_id,
            ty,
            start_node,
            end_node,
            existing_version,
            sources,
        })
    }
}
