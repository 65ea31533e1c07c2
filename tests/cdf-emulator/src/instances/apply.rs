//! `POST /models/instances` (upsert) and `POST /models/instances/delete`.
//!
//! A batch is validated completely before anything changes, so a 400 or 409 leaves the store
//! untouched. Writes that change nothing bump neither version, lastUpdatedTime nor the change
//! sequence, so sync emits nothing for them.

use std::collections::{BTreeSet, HashSet};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::DataModeling;
use super::store::{ContainerRow, InstanceData, InstanceKey, Kind};
use super::values::normalize_value;
use crate::error::{ApiError, ApiResult};
use crate::ids::{NodeId, SourceRef, parse_source_ref, validate_instance_xid, validate_space};
use crate::schema::views::ViewProperty;
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

/// One container property assignment: `(slot, value)`.
type Assign = (usize, Option<Value>);

fn kind_of(item: &ApplyItem, what: &str) -> ApiResult<Kind> {
    Kind::parse(&item.instance_type).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{what}: `instanceType` must be node or edge, got `{}`",
            item.instance_type
        ))
    })
}

/// Collects the container assignments of an item's sources and the containers it touches.
fn collect_writes(
    schema: &Schema,
    item: &ApplyItem,
    kind: Kind,
    what: &str,
) -> ApiResult<(BTreeSet<ContainerIdx>, Vec<(ContainerIdx, Assign)>)> {
    let mut touched = BTreeSet::new();
    let mut writes = Vec::new();
    for (j, sw) in item.sources.iter().flatten().enumerate() {
        let swhat = format!("{what}.sources[{j}]");
        match parse_source_ref(&sw.source, &format!("{swhat}.source"))? {
            SourceRef::View(vid) => {
                let view = schema.view(&vid).ok_or_else(|| {
                    ApiError::bad_request(format!("{swhat}: view {vid} does not exist"))
                        .with_missing(vec![vid.to_json()])
                })?;
                if !view.used_for.allows(kind) {
                    return Err(ApiError::bad_request(format!(
                        "{swhat}: view {vid} is used for {}s and cannot hold {} data",
                        view.used_for.as_str(),
                        kind.as_str()
                    )));
                }
                for cid in view.mapped_containers() {
                    let (idx, c) = schema.container(&cid).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "{swhat}: view {vid} maps container {cid}, which no longer exists"
                        ))
                    })?;
                    if !c.used_for.allows(kind) {
                        return Err(ApiError::bad_request(format!(
                            "{swhat}: container {cid} (mapped by view {vid}) is used for {}s and cannot hold {} data",
                            c.used_for.as_str(),
                            kind.as_str()
                        )));
                    }
                    touched.insert(idx);
                }
                for (pname, value) in sw.properties.iter().flatten() {
                    let mapped = match view.property(pname) {
                        Some(ViewProperty::Mapped(m)) => m,
                        Some(ViewProperty::Connection(_)) => {
                            return Err(ApiError::bad_request(format!(
                                "{swhat}: property `{pname}` of view {vid} is a connection; connections have no stored values"
                            )));
                        }
                        None => {
                            return Err(ApiError::bad_request(format!(
                                "{swhat}: property `{pname}` does not exist in view {vid}"
                            )));
                        }
                    };
                    let Some((idx, c)) = schema.container(&mapped.container) else {
                        return Err(ApiError::bad_request(format!(
                            "{swhat}: container {} of property `{pname}` no longer exists",
                            mapped.container
                        )));
                    };
                    let Some((slot, cp)) = c.prop(&mapped.container_prop) else {
                        return Err(ApiError::bad_request(format!(
                            "{swhat}: container {} has no property `{}` (mapped by `{pname}` in view {vid})",
                            mapped.container, mapped.container_prop
                        )));
                    };
                    let v = normalize_value(value.clone(), &cp.ty, &|| {
                        format!(
                            "{swhat}: invalid value for property `{pname}` of view {vid} (container {}.{})",
                            mapped.container, mapped.container_prop
                        )
                    })?;
                    writes.push((idx, (slot, v)));
                }
            }
            SourceRef::Container(cid) => {
                let (idx, c) = schema.container(&cid).ok_or_else(|| {
                    ApiError::bad_request(format!("{swhat}: container {cid} does not exist"))
                        .with_missing(vec![cid.to_json()])
                })?;
                if !c.used_for.allows(kind) {
                    return Err(ApiError::bad_request(format!(
                        "{swhat}: container {cid} is used for {}s and cannot hold {} data",
                        c.used_for.as_str(),
                        kind.as_str()
                    )));
                }
                touched.insert(idx);
                for (pname, value) in sw.properties.iter().flatten() {
                    let (slot, cp) = c.prop(pname).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "{swhat}: property `{pname}` does not exist in container {cid}"
                        ))
                    })?;
                    let v = normalize_value(value.clone(), &cp.ty, &|| {
                        format!("{swhat}: invalid value for property `{pname}` of container {cid}")
                    })?;
                    writes.push((idx, (slot, v)));
                }
            }
        }
    }
    Ok((touched, writes))
}

fn default_row(schema: &Schema, idx: ContainerIdx) -> ContainerRow {
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
        let delete_keys = match &req.delete {
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, d)| d.key(&format!("delete[{i}]")))
                .collect::<ApiResult<Vec<_>>>()?,
            None => Vec::new(),
        };
        let deleting: HashSet<&InstanceKey> = delete_keys.iter().collect();

        let batch_nodes: HashSet<NodeId> = req
            .items
            .iter()
            .filter(|i| i.instance_type == "node")
            .map(|i| NodeId::new(&i.space, &i.external_id))
            .collect();
        let mut keys = HashSet::with_capacity(req.items.len());
        let mut planned: Vec<Planned> = Vec::with_capacity(req.items.len());
        let mut auto_nodes: BTreeSet<NodeId> = BTreeSet::new();
        let mut direct_targets: Vec<(NodeId, String)> = Vec::new();

        for (i, item) in req.items.iter().enumerate() {
            let what = format!("items[{i}]");
            let kind = kind_of(item, &what)?;
            validate_space(&item.space)
                .map_err(|e| ApiError::bad_request(format!("{what}: {}", e.message)))?;
            validate_instance_xid(&item.external_id)
                .map_err(|e| ApiError::bad_request(format!("{what}: {}", e.message)))?;
            let key = InstanceKey::new(kind, &item.space, &item.external_id);
            if !keys.insert(key.clone()) {
                return Err(ApiError::bad_request(format!(
                    "{what}: {} {}:{} appears more than once in the request",
                    kind.as_str(),
                    item.space,
                    item.external_id
                ))
                .with_duplicated(vec![key.to_json()]));
            }
            let other = InstanceKey::new(
                if kind == Kind::Node {
                    Kind::Edge
                } else {
                    Kind::Node
                },
                &item.space,
                &item.external_id,
            );
            if self.store.live(&other).is_some() {
                return Err(ApiError::bad_request(format!(
                    "{what}: {}:{} already exists as a {}; an instance cannot change instanceType",
                    item.space,
                    item.external_id,
                    other.kind.as_str()
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
                if req.skip_on_version_conflict {
                    planned.push(Planned {
                        key,
                        data: cur.data.clone(),
                        changed: false,
                    });
                    continue;
                }
                return Err(ApiError::conflict(format!(
                    "{what}: version conflict for {} {}:{}: existingVersion is {ev} but the current version is {}",
                    kind.as_str(),
                    item.space,
                    item.external_id,
                    cur.version
                ))
                .with_duplicated(vec![key.to_json()]));
            }

            let (ty, start, end) = match kind {
                Kind::Node => {
                    if item.start_node.is_some() || item.end_node.is_some() {
                        return Err(ApiError::bad_request(format!(
                            "{what}: nodes cannot have startNode or endNode"
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
                            ApiError::bad_request(format!("{what}: edges require `{name}`"))
                        })
                    };
                    (
                        Some(need(&item.ty, "type")?),
                        Some(need(&item.start_node, "startNode")?),
                        Some(need(&item.end_node, "endNode")?),
                    )
                }
            };

            let (touched, writes) = collect_writes(&self.schema, item, kind, &what)?;
            let old_rows = existing.map(|e| e.data.rows.clone()).unwrap_or_default();
            let mut rows: Vec<ContainerRow> = old_rows
                .iter()
                .filter(|r| self.schema.container_at(r.container).is_some())
                .cloned()
                .collect();
            for idx in &touched {
                match rows.iter_mut().find(|r| r.container == *idx) {
                    Some(r) if req.replace => *r = default_row(&self.schema, *idx),
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
            for (idx, (slot, v)) in writes {
                if let Some(r) = rows.iter_mut().find(|r| r.container == idx)
                    && let Some(cell) = r.values.get_mut(slot)
                {
                    if let Value::Object(_) | Value::Array(_) = v.as_ref().unwrap_or(&Value::Null) {
                        collect_direct_targets(
                            &self.schema,
                            idx,
                            slot,
                            v.as_ref(),
                            &mut direct_targets,
                            &what,
                        );
                    }
                    *cell = v;
                }
            }
            for r in &rows {
                if !touched.contains(&r.container) {
                    continue;
                }
                let Some(c) = self.schema.container_at(r.container) else {
                    continue;
                };
                for (slot, p) in c.properties.iter().enumerate() {
                    let value = r.values.get(slot).and_then(Option::as_ref);
                    if !p.nullable && !p.auto_increment && value.is_none() {
                        return Err(ApiError::bad_request(format!(
                            "{what}: property `{}` of container {} is not nullable and has no default; \
                             a value is required for {} {}:{}",
                            p.identifier,
                            c.id,
                            kind.as_str(),
                            item.space,
                            item.external_id
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
                            "{what}: property `{}` of container {} is immutable and already set to {old}",
                            p.identifier, c.id
                        )));
                    }
                }
            }

            for (node, flag, name) in [
                (&start, req.auto_create_start_nodes, "startNode"),
                (&end, req.auto_create_end_nodes, "endNode"),
            ] {
                if let Some(n) = node
                    && !self.store.node_exists(n)
                    && !batch_nodes.contains(n)
                {
                    if flag {
                        auto_nodes.insert(n.clone());
                    } else {
                        return Err(ApiError::bad_request(format!(
                            "{what}: edge {name} {n} does not exist; create it first or set autoCreate{}Nodes",
                            if name == "startNode" { "Start" } else { "End" }
                        ))
                        .with_missing(vec![n.to_json()]));
                    }
                }
            }

            let data = InstanceData {
                ty,
                start,
                end,
                rows,
            };
            let changed = existing.is_none_or(|e| e.data != data);
            planned.push(Planned { key, data, changed });
        }

        for (target, what) in direct_targets {
            if self.store.node_exists(&target) || batch_nodes.contains(&target) {
                continue;
            }
            if req.auto_create_direct_relations {
                auto_nodes.insert(target);
            } else {
                return Err(ApiError::bad_request(format!(
                    "{what}: direct relation target {target} does not exist and autoCreateDirectRelations is false"
                ))
                .with_missing(vec![target.to_json()]));
            }
        }

        // Validation is complete: mutate.
        let deleted = self.delete(&delete_keys, now);
        for n in auto_nodes {
            let key = InstanceKey::new(Kind::Node, &n.space, &n.external_id);
            if self.store.live(&key).is_none() {
                self.store.write(
                    &key,
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
            if p.changed {
                self.store.write(&p.key, p.data, now);
            }
            let Some(inst) = self.store.live(&p.key) else {
                continue;
            };
            out.push(json!({
                "instanceType": p.key.kind.as_str(), "space": p.key.space, "externalId": p.key.external_id,
                "version": inst.version, "wasModified": p.changed,
                "createdTime": inst.created, "lastUpdatedTime": inst.updated,
            }));
        }
        let mut resp = json!({ "items": out });
        if req.delete.is_some() {
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

fn collect_direct_targets(
    schema: &Schema,
    idx: ContainerIdx,
    slot: usize,
    v: Option<&Value>,
    out: &mut Vec<(NodeId, String)>,
    what: &str,
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
            out.push((NodeId::new(s, x), what.to_string()));
        }
    };
    match v {
        Some(Value::Array(a)) => a.iter().for_each(&mut push),
        Some(o @ Value::Object(_)) => push(o),
        _ => {}
    }
}
