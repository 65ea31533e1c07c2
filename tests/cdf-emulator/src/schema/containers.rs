//! Containers: the typed property storage that views map onto.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::types::{PropertyType, TypeKind};
use super::{ContainerIdx, ListParams, items_of, opt_string, paginate};
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::ids::{ContainerId, parse_container_id, str_field, validate_schema_xid, validate_space};
use crate::instances::values::normalize_value;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsedFor {
    Node,
    Edge,
    All,
    Record,
}

impl UsedFor {
    pub fn parse(v: Option<&Value>, what: &str) -> ApiResult<UsedFor> {
        match v {
            None | Some(Value::Null) => Ok(UsedFor::Node),
            Some(Value::String(s)) => match s.as_str() {
                "node" => Ok(UsedFor::Node),
                "edge" => Ok(UsedFor::Edge),
                "all" => Ok(UsedFor::All),
                "record" => Ok(UsedFor::Record),
                other => Err(ApiError::bad_request(format!(
                    "{what}: `usedFor` must be node, edge, all or record, got `{other}`"
                ))),
            },
            Some(other) => Err(ApiError::bad_request(format!(
                "{what}: `usedFor` must be a string, got {other}"
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            UsedFor::Node => "node",
            UsedFor::Edge => "edge",
            UsedFor::All => "all",
            UsedFor::Record => "record",
        }
    }
    pub fn allows(self, kind: crate::instances::store::Kind) -> bool {
        use crate::instances::store::Kind;
        matches!(
            (self, kind),
            (UsedFor::All, _) | (UsedFor::Node, Kind::Node) | (UsedFor::Edge, Kind::Edge)
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerProperty {
    pub identifier: String,
    pub ty: PropertyType,
    pub nullable: bool,
    pub immutable: bool,
    pub auto_increment: bool,
    pub default_value: Option<Value>,
    pub name: Option<String>,
    pub description: Option<String>,
}

impl ContainerProperty {
    /// The property definition as answered by the API (also the body of `typing` entries).
    pub fn definition_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), self.ty.json.clone());
        m.insert("nullable".into(), json!(self.nullable));
        m.insert("immutable".into(), json!(self.immutable));
        m.insert("autoIncrement".into(), json!(self.auto_increment));
        if let Some(d) = &self.default_value {
            m.insert("defaultValue".into(), d.clone());
        }
        if let Some(n) = &self.name {
            m.insert("name".into(), json!(n));
        }
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        m.insert(
            "constraintState".into(),
            Value::Object(self.constraint_state()),
        );
        m
    }

    /// The state of each constraint the property carries. The emulator validates every write
    /// up front, so a constraint that exists always holds for the stored data (`current`).
    fn constraint_state(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if !self.nullable {
            m.insert("nullability".into(), json!("current"));
        }
        if self.ty.list && self.ty.max_list_size.is_some() {
            m.insert("maxListSize".into(), json!("current"));
        }
        if self.ty.max_text_size.is_some() {
            m.insert("maxTextSize".into(), json!("current"));
        }
        m
    }
}

#[derive(Debug, Clone)]
pub struct Container {
    pub id: ContainerId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub used_for: UsedFor,
    /// Property definitions in slot order; instance rows store values by the same index.
    pub properties: Vec<ContainerProperty>,
    pub index: HashMap<String, usize>,
    /// Constraints by identifier, in their write form (the answer adds `state`).
    pub constraints: Map<String, Value>,
    /// Indexes by identifier, in their write form (the answer adds `state`).
    pub indexes: Map<String, Value>,
    pub created: i64,
    pub updated: i64,
}

impl Container {
    pub fn prop(&self, name: &str) -> Option<(usize, &ContainerProperty)> {
        let slot = *self.index.get(name)?;
        Some((slot, self.properties.get(slot)?))
    }

    pub fn to_json(&self) -> Value {
        let props: Map<String, Value> = self
            .properties
            .iter()
            .map(|p| (p.identifier.clone(), Value::Object(p.definition_json())))
            .collect();
        let mut v = json!({
            "space": self.id.space, "externalId": self.id.external_id,
            "usedFor": self.used_for.as_str(), "properties": props,
            "constraints": with_state(&self.constraints), "indexes": with_state(&self.indexes),
            "isGlobal": false, "createdTime": self.created, "lastUpdatedTime": self.updated,
        });
        if let Some(n) = &self.name {
            v["name"] = json!(n);
        }
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        v
    }
}

/// Constraints and indexes as CDF answers them: each with its `state`. The emulator builds
/// them synchronously, so they are always `current` (cognite-sdk 8 requires the key).
fn with_state(defs: &Map<String, Value>) -> Value {
    Value::Object(
        defs.iter()
            .map(|(id, d)| {
                let mut d = d.clone();
                if let Value::Object(o) = &mut d {
                    o.insert("state".into(), json!("current"));
                }
                (id.clone(), d)
            })
            .collect(),
    )
}

/// Properties a container may hold (CDF "Container properties (per container)").
pub const MAX_CONTAINER_PROPERTIES: usize = 100;
/// Highest `maxListSize` CDF accepts on any list property.
pub const MAX_LIST_SIZE: usize = 2000;
/// Highest `maxListSize` of an int32 list property covered by a b-tree index.
pub const MAX_LIST_SIZE_INT32_BTREE: usize = 600;
/// Highest `maxListSize` of an int64 list property covered by a b-tree index.
pub const MAX_LIST_SIZE_INT64_BTREE: usize = 300;

/// Container property names CDF reserves for its own columns (cognitedata/neat,
/// `DMS_RESERVED_PROPERTIES`; contract §2.0).
pub const RESERVED_CONTAINER_PROPERTIES: [&str; 12] = [
    "space",
    "externalId",
    "createdTime",
    "lastUpdatedTime",
    "deletedTime",
    "edge_id",
    "node_id",
    "project_id",
    "property_group",
    "seq",
    "tg_table_name",
    "extensions",
];

/// CDF's rule for container and view property identifiers,
/// `^[a-zA-Z][a-zA-Z0-9_]{0,253}[a-zA-Z0-9]?$`: ASCII only, starting with a letter, at most
/// 255 characters, and a 255th character, if any, is not `_`.
pub fn is_valid_property_identifier(id: &str) -> bool {
    let b = id.as_bytes();
    let body = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
    match b {
        [] => false,
        [first, rest @ ..] => {
            first.is_ascii_alphabetic()
                && b.len() <= 255
                && rest.iter().all(body)
                && (b.len() < 255 || b[254].is_ascii_alphanumeric())
        }
    }
}

/// Checks a property identifier against CDF's pattern, naming the offending identifier.
pub fn validate_identifier(id: &str, what: &str) -> ApiResult<()> {
    if is_valid_property_identifier(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what}: invalid property identifier `{id}`: must match ^[a-zA-Z][a-zA-Z0-9_]{{0,253}}[a-zA-Z0-9]?$"
        )))
    }
}

fn validate_property_identifier(id: &str, what: &str) -> ApiResult<()> {
    validate_identifier(id, what)?;
    if RESERVED_CONTAINER_PROPERTIES.contains(&id) {
        return Err(ApiError::bad_request(format!(
            "{what}: `{id}` is a reserved property identifier; reserved are {}",
            RESERVED_CONTAINER_PROPERTIES.join(", ")
        )));
    }
    Ok(())
}

fn bool_field(o: &Map<String, Value>, key: &str, default: bool, what: &str) -> ApiResult<bool> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::bad_request(format!(
            "{what}: `{key}` must be a boolean, got {other}"
        ))),
    }
}

fn parse_property(id: &str, v: &Value, what: &str) -> ApiResult<ContainerProperty> {
    let what = format!("{what}.properties.{id}");
    validate_property_identifier(id, &what)?;
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))?;
    let ty = PropertyType::parse(
        o.get("type").ok_or_else(|| {
            ApiError::bad_request(format!("{what}: missing required field `type`"))
        })?,
        &what,
    )?;
    let nullable = bool_field(o, "nullable", true, &what)?;
    let default_value = match o.get("defaultValue") {
        None | Some(Value::Null) => None,
        Some(d) => normalize_value(d.clone(), &ty, &|| format!("{what}.defaultValue"))?,
    };
    Ok(ContainerProperty {
        identifier: id.to_string(),
        ty,
        nullable,
        immutable: bool_field(o, "immutable", false, &what)?,
        auto_increment: bool_field(o, "autoIncrement", false, &what)?,
        default_value,
        name: opt_string(o, "name"),
        description: opt_string(o, "description"),
    })
}

struct ContainerDef {
    id: ContainerId,
    name: Option<String>,
    description: Option<String>,
    used_for: UsedFor,
    properties: Vec<ContainerProperty>,
    constraints: Map<String, Value>,
    indexes: Map<String, Value>,
}

fn string_list(o: &Map<String, Value>, key: &str, what: &str) -> ApiResult<Vec<Value>> {
    let list = o.get(key).and_then(Value::as_array).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{what}: `{key}` must be an array of property identifiers"
        ))
    })?;
    if list.is_empty() || list.iter().any(|p| !p.is_string()) {
        return Err(ApiError::bad_request(format!(
            "{what}: `{key}` must be a non-empty array of property identifiers"
        )));
    }
    Ok(list.clone())
}

/// Parses one constraint into its normalized write form (a `state` sent back is ignored).
fn parse_constraint(v: &Value, what: &str) -> ApiResult<Value> {
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))?;
    let kind = match o.get("constraintType").and_then(Value::as_str) {
        Some(k) => k,
        None if o.contains_key("require") => "requires",
        None => "uniqueness",
    };
    match kind {
        "requires" => {
            let req = parse_container_id(
                o.get("require").unwrap_or(&Value::Null),
                &format!("{what}.require"),
            )?;
            Ok(json!({"constraintType": "requires", "require": req.to_json()}))
        }
        "uniqueness" => {
            let mut out = json!({"constraintType": "uniqueness",
                "properties": string_list(o, "properties", what)?});
            if let Some(b) = o.get("bySpace").and_then(Value::as_bool) {
                out["bySpace"] = json!(b);
            }
            Ok(out)
        }
        other => Err(ApiError::bad_request(format!(
            "{what}: unknown constraintType `{other}`; expected requires or uniqueness"
        ))),
    }
}

/// Parses one index into its normalized write form (a `state` sent back is ignored).
fn parse_index(v: &Value, what: &str) -> ApiResult<Value> {
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))?;
    match o
        .get("indexType")
        .and_then(Value::as_str)
        .unwrap_or("btree")
    {
        "btree" => {
            let cursorable = bool_field(o, "cursorable", false, what)?;
            let mut out = json!({"indexType": "btree",
                "properties": string_list(o, "properties", what)?, "cursorable": cursorable});
            if let Some(b) = o.get("bySpace").and_then(Value::as_bool) {
                out["bySpace"] = json!(b);
            }
            Ok(out)
        }
        "inverted" => Ok(json!({"indexType": "inverted",
            "properties": string_list(o, "properties", what)?})),
        other => Err(ApiError::bad_request(format!(
            "{what}: unknown indexType `{other}`; expected btree or inverted"
        ))),
    }
}

fn parse_defs(
    o: &Map<String, Value>,
    key: &str,
    what: &str,
    parse: fn(&Value, &str) -> ApiResult<Value>,
) -> ApiResult<Map<String, Value>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(id, v)| {
                if id.is_empty() {
                    return Err(ApiError::bad_request(format!(
                        "{what}: `{key}` identifiers must not be empty"
                    )));
                }
                Ok((id.clone(), parse(v, &format!("{what}.{key}.{id}"))?))
            })
            .collect(),
        Some(other) => Err(ApiError::bad_request(format!(
            "{what}: `{key}` must be an object, got {other}"
        ))),
    }
}

/// Why changing a stored property type into `new` is refused, if it is. CDF lets a type gain
/// enum values and a larger `maxListSize`; anything else about the type stays as created.
fn incompatible_change(
    id: &str,
    cid: &ContainerId,
    old: &PropertyType,
    new: &PropertyType,
) -> Option<String> {
    let same_kind = std::mem::discriminant(&old.kind) == std::mem::discriminant(&new.kind);
    if !same_kind || old.list != new.list {
        return Some(format!(
            "Cannot change the type of property `{id}` in container {cid} from {} to {}",
            old.describe(),
            new.describe()
        ));
    }
    if let (TypeKind::Enum { values: before, .. }, TypeKind::Enum { values: after, .. }) =
        (&old.kind, &new.kind)
    {
        let removed: Vec<&str> = before
            .iter()
            .filter(|v| !after.contains(v))
            .map(String::as_str)
            .collect();
        if !removed.is_empty() {
            return Some(format!(
                "Cannot remove values from enum property `{id}` in container {cid}: {} \
                 (values may only be added)",
                removed.join(", ")
            ));
        }
    }
    if old.list && new.list_cap() < old.list_cap() {
        return Some(format!(
            "Cannot decrease maxListSize of property `{id}` in container {cid} from {} to {} \
             (it may only be increased)",
            old.list_cap(),
            new.list_cap()
        ));
    }
    None
}

/// Checks a container as it would be after the apply: property count, list size caps
/// (lower for b-tree indexed int32/int64 lists) and that constraints and indexes name
/// properties the container has.
fn check_merged(
    cid: &ContainerId,
    props: &[&ContainerProperty],
    constraints: &Map<String, Value>,
    indexes: &Map<String, Value>,
) -> ApiResult<()> {
    if props.len() > MAX_CONTAINER_PROPERTIES {
        return Err(ApiError::bad_request(format!(
            "Container {cid} would have {} properties; a container may have at most {MAX_CONTAINER_PROPERTIES}",
            props.len()
        )));
    }
    let has = |name: &str| props.iter().any(|p| p.identifier == name);
    for (kind, defs) in [("Constraint", constraints), ("Index", indexes)] {
        for (id, d) in defs {
            for p in d["properties"].as_array().into_iter().flatten() {
                let name = p.as_str().unwrap_or_default();
                if !has(name) {
                    return Err(ApiError::bad_request(format!(
                        "{kind} `{id}` of container {cid} refers to property `{name}`, which the container does not have"
                    )));
                }
            }
        }
    }
    let btree_indexed = |name: &str| {
        indexes.values().any(|d| {
            d["indexType"] == "btree"
                && d["properties"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p.as_str() == Some(name)))
        })
    };
    for p in props {
        let Some(n) = p.ty.max_list_size else {
            continue;
        };
        let cap = match p.ty.kind {
            TypeKind::Int32 if btree_indexed(&p.identifier) => MAX_LIST_SIZE_INT32_BTREE,
            TypeKind::Int64 if btree_indexed(&p.identifier) => MAX_LIST_SIZE_INT64_BTREE,
            _ => MAX_LIST_SIZE,
        };
        if n == 0 || n > cap {
            return Err(ApiError::bad_request(format!(
                "Property `{}` in container {cid}: maxListSize must be between 1 and {cap}, got {n}",
                p.identifier
            )));
        }
    }
    Ok(())
}

fn parse_container(item: &Value, what: &str) -> ApiResult<ContainerDef> {
    let o = item
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))?;
    let space = str_field(o, "space", what)?;
    validate_space(space)?;
    let xid = str_field(o, "externalId", what)?;
    validate_schema_xid(xid, "container")?;
    let props = o
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad_request(format!("{what}: `properties` must be an object")))?;
    let properties = props
        .iter()
        .map(|(id, v)| parse_property(id, v, what))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(ContainerDef {
        id: ContainerId::new(space, xid),
        name: opt_string(o, "name"),
        description: opt_string(o, "description"),
        used_for: UsedFor::parse(o.get("usedFor"), what)?,
        properties,
        constraints: parse_defs(o, "constraints", what, parse_constraint)?,
        indexes: parse_defs(o, "indexes", what, parse_index)?,
    })
}

impl crate::state::Shared {
    pub fn apply_containers(&self, body: &Value) -> ApiResult<Value> {
        let items = items_of(body, 100)?;
        let defs = items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_container(item, &format!("items[{i}]")))
            .collect::<ApiResult<Vec<_>>>()?;
        let now = self.clock.now_ms();
        let mut dm = self.dm();
        // Validate every item before changing anything, so a failing batch leaves no trace.
        for def in &defs {
            let existing = dm.schema.container(&def.id).map(|(_, c)| c);
            let mut merged: Vec<&ContainerProperty> = Vec::new();
            let mut constraints = Map::new();
            let mut indexes = Map::new();
            if let Some(existing) = existing {
                for p in &def.properties {
                    if let Some((_, old)) = existing.prop(&p.identifier)
                        && let Some(why) =
                            incompatible_change(&p.identifier, &def.id, &old.ty, &p.ty)
                    {
                        return Err(ApiError::bad_request(why));
                    }
                }
                merged.extend(existing.properties.iter().filter(|old| {
                    !def.properties
                        .iter()
                        .any(|p| p.identifier == old.identifier)
                }));
                constraints.clone_from(&existing.constraints);
                indexes.clone_from(&existing.indexes);
            }
            merged.extend(def.properties.iter());
            constraints.extend(def.constraints.clone());
            indexes.extend(def.indexes.clone());
            check_merged(&def.id, &merged, &constraints, &indexes)?;
        }
        let mut out = Vec::new();
        for def in defs {
            dm.schema.ensure_space(&def.id.space, now);
            let idx = match dm.schema.container(&def.id) {
                Some((idx, _)) => idx,
                None => {
                    let idx = ContainerIdx::try_from(dm.schema.containers.len())
                        .map_err(|_| ApiError::bad_request("Too many containers"))?;
                    dm.schema.containers.push(Some(Container {
                        id: def.id.clone(),
                        name: None,
                        description: None,
                        used_for: def.used_for,
                        properties: Vec::new(),
                        index: HashMap::new(),
                        constraints: Map::new(),
                        indexes: Map::new(),
                        created: now,
                        updated: now,
                    }));
                    dm.schema.container_ids.insert(def.id.clone(), idx);
                    idx
                }
            };
            let Some(Some(c)) = dm.schema.containers.get_mut(idx as usize) else {
                return Err(ApiError::bad_request(format!(
                    "Container {} vanished",
                    def.id
                )));
            };
            // Constraints and indexes an apply leaves out are kept (CDF removes them only
            // through their own delete endpoints); those it names are set as given.
            let mut changed = c.name != def.name
                || c.description != def.description
                || c.used_for != def.used_for;
            c.name = def.name;
            c.description = def.description;
            c.used_for = def.used_for;
            for (target, given) in [
                (&mut c.constraints, def.constraints),
                (&mut c.indexes, def.indexes),
            ] {
                for (id, d) in given {
                    if target.get(&id) != Some(&d) {
                        target.insert(id, d);
                        changed = true;
                    }
                }
            }
            for p in def.properties {
                match c.index.get(&p.identifier) {
                    Some(&slot) => {
                        if c.properties[slot] != p {
                            c.properties[slot] = p;
                            changed = true;
                        }
                    }
                    None => {
                        c.index.insert(p.identifier.clone(), c.properties.len());
                        c.properties.push(p);
                        changed = true;
                    }
                }
            }
            if changed {
                c.updated = now;
            }
            out.push(c.to_json());
        }
        Ok(json!({ "items": out }))
    }
}

pub async fn apply(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(st.apply_containers(&body)?))
}

pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<Value>> {
    let dm = st.dm();
    let items: Vec<Value> = dm
        .schema
        .container_ids
        .iter()
        .filter(|(id, _)| q.space.as_ref().is_none_or(|s| &id.space == s))
        .filter_map(|(_, idx)| dm.schema.container_at(*idx))
        .map(Container::to_json)
        .collect();
    Ok(Json(paginate(
        items,
        q.limit,
        q.cursor.as_deref(),
        10,
        1000,
    )?))
}

fn container_ids(body: &Value) -> ApiResult<Vec<ContainerId>> {
    items_of(body, 100)?
        .iter()
        .enumerate()
        .map(|(i, item)| parse_container_id(item, &format!("items[{i}]")))
        .collect()
}

pub async fn by_ids(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let ids = container_ids(&body)?;
    let dm = st.dm();
    let items: Vec<Value> = ids
        .iter()
        .filter_map(|id| dm.schema.container(id))
        .map(|(_, c)| c.to_json())
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub async fn delete(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let ids = container_ids(&body)?;
    let mut dm = st.dm();
    let mut deleted = Vec::new();
    for id in ids {
        if let Some(idx) = dm.schema.container_ids.remove(&id) {
            if let Some(slot) = dm.schema.containers.get_mut(idx as usize) {
                *slot = None;
            }
            deleted.push(json!({"space": id.space, "externalId": id.external_id}));
        }
    }
    Ok(Json(json!({ "items": deleted })))
}
