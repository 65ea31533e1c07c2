//! Containers: the typed property storage that views map onto.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::types::PropertyType;
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
        m.insert("constraintState".into(), json!({}));
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
    pub constraints: Value,
    pub indexes: Value,
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
            "constraints": self.constraints, "indexes": self.indexes,
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
    constraints: Value,
    indexes: Value,
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
    let obj_or_empty = |key: &str| match o.get(key) {
        Some(v @ Value::Object(_)) => v.clone(),
        _ => json!({}),
    };
    Ok(ContainerDef {
        id: ContainerId::new(space, xid),
        name: opt_string(o, "name"),
        description: opt_string(o, "description"),
        used_for: UsedFor::parse(o.get("usedFor"), what)?,
        properties,
        constraints: obj_or_empty("constraints"),
        indexes: obj_or_empty("indexes"),
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
            if let Some((_, existing)) = dm.schema.container(&def.id) {
                for p in &def.properties {
                    if let Some((_, old)) = existing.prop(&p.identifier)
                        && old.ty.kind != p.ty.kind
                    {
                        return Err(ApiError::bad_request(format!(
                            "Cannot change the type of property `{}` in container {} from {} to {}",
                            p.identifier,
                            def.id,
                            old.ty.describe(),
                            p.ty.describe()
                        )));
                    }
                }
            }
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
                        constraints: json!({}),
                        indexes: json!({}),
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
            let mut changed = c.name != def.name
                || c.description != def.description
                || c.used_for != def.used_for
                || c.constraints != def.constraints
                || c.indexes != def.indexes;
            c.name = def.name;
            c.description = def.description;
            c.used_for = def.used_for;
            c.constraints = def.constraints;
            c.indexes = def.indexes;
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
