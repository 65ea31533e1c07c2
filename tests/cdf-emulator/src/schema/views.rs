//! Views: named, versioned projections of container properties (plus connections).
//! A view version is immutable: re-applying an identical definition is a no-op.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::{ListParams, Schema, UsedFor, items_of, opt_string, paginate};
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::ids::{
    ContainerId, NodeId, ViewId, parse_container_id, parse_node_id, parse_source_ref,
    parse_view_id, parse_view_id_opt_version, str_field, validate_schema_xid, validate_space,
    validate_version,
};
use crate::state::AppState;

#[derive(Debug, Clone, PartialEq)]
pub struct MappedProperty {
    pub container: ContainerId,
    pub container_prop: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// View hint for direct relations.
    pub source: Option<ViewId>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ViewProperty {
    Mapped(MappedProperty),
    /// Edge connection or reverse direct relation, normalized for responses.
    Connection(Value),
}

#[derive(Debug, Clone, PartialEq)]
struct ViewDef {
    id: ViewId,
    name: Option<String>,
    description: Option<String>,
    filter: Option<Value>,
    implements: Vec<ViewId>,
    properties: Vec<(String, ViewProperty)>,
}

#[derive(Debug, Clone)]
pub struct View {
    pub id: ViewId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub filter: Option<Value>,
    pub implements: Vec<ViewId>,
    pub own: Vec<(String, ViewProperty)>,
    /// Own plus inherited properties; later `implements` entries override earlier ones and
    /// the view's own properties override all inherited ones.
    pub all: Vec<(String, ViewProperty)>,
    index: HashMap<String, usize>,
    pub used_for: UsedFor,
    pub created: i64,
    pub updated: i64,
    /// Creation order, to pick the newest version when createdTime ties.
    pub serial: u64,
}

impl View {
    pub fn property(&self, name: &str) -> Option<&ViewProperty> {
        self.index
            .get(name)
            .and_then(|i| self.all.get(*i))
            .map(|(_, p)| p)
    }

    pub fn mapped(&self) -> impl Iterator<Item = (&str, &MappedProperty)> {
        self.all.iter().filter_map(|(n, p)| match p {
            ViewProperty::Mapped(m) => Some((n.as_str(), m)),
            ViewProperty::Connection(_) => None,
        })
    }

    /// Containers the view maps properties from, in first-use order.
    pub fn mapped_containers(&self) -> Vec<ContainerId> {
        let mut out: Vec<ContainerId> = Vec::new();
        for (_, m) in self.mapped() {
            if !out.contains(&m.container) {
                out.push(m.container.clone());
            }
        }
        out
    }

    /// The definition of a mapped property as answered by the API; `with_container` is false
    /// for `typing` entries.
    pub fn mapped_json(
        schema: &Schema,
        name: &str,
        m: &MappedProperty,
        with_container: bool,
    ) -> Map<String, Value> {
        let mut out = match schema
            .container(&m.container)
            .and_then(|(_, c)| c.prop(&m.container_prop))
        {
            Some((_, p)) => p.definition_json(),
            None => Map::new(),
        };
        if let (Some(src), Some(Value::Object(t))) = (&m.source, out.get_mut("type")) {
            t.insert("source".into(), src.to_json());
        }
        if with_container {
            out.insert("container".into(), m.container.to_json());
            out.insert(
                "containerPropertyIdentifier".into(),
                json!(m.container_prop),
            );
        }
        out.insert(
            "name".into(),
            json!(m.name.clone().unwrap_or_else(|| name.to_string())),
        );
        if let Some(d) = &m.description {
            out.insert("description".into(), json!(d));
        }
        out
    }

    pub fn to_json(&self, schema: &Schema, include_inherited: bool) -> Value {
        let props = if include_inherited {
            &self.all
        } else {
            &self.own
        };
        let properties: Map<String, Value> = props
            .iter()
            .map(|(name, p)| {
                let v = match p {
                    ViewProperty::Mapped(m) => {
                        Value::Object(Self::mapped_json(schema, name, m, true))
                    }
                    ViewProperty::Connection(c) => c.clone(),
                };
                (name.clone(), v)
            })
            .collect();
        let mut v = json!({
            "space": self.id.space, "externalId": self.id.external_id, "version": self.id.version,
            "createdTime": self.created, "lastUpdatedTime": self.updated,
            "writable": true, "queryable": true, "usedFor": self.used_for.as_str(), "isGlobal": false,
            "implements": self.implements.iter().map(ViewId::to_json).collect::<Vec<_>>(),
            "mappedContainers": self.mapped_containers().iter().map(ContainerId::to_json).collect::<Vec<_>>(),
            "properties": properties,
        });
        if let Some(n) = &self.name {
            v["name"] = json!(n);
        }
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        if let Some(f) = &self.filter {
            v["filter"] = f.clone();
        }
        v
    }
}

fn normalize_connection(o: &Map<String, Value>, what: &str) -> ApiResult<Value> {
    let ct = match o.get("connectionType").and_then(Value::as_str) {
        Some(ct) => ct.to_string(),
        None if o.contains_key("through") => "multi_reverse_direct_relation".to_string(),
        None => "multi_edge_connection".to_string(),
    };
    let mut out = Map::new();
    match ct.as_str() {
        "single_edge_connection" | "multi_edge_connection" => {
            let ty = parse_node_id(
                o.get("type").ok_or_else(|| {
                    ApiError::bad_request(format!("{what}: edge connection needs `type`"))
                })?,
                &format!("{what}.type"),
            )?;
            let source = parse_view_id(
                o.get("source").ok_or_else(|| {
                    ApiError::bad_request(format!("{what}: edge connection needs `source`"))
                })?,
                &format!("{what}.source"),
            )?;
            let direction = o
                .get("direction")
                .and_then(Value::as_str)
                .unwrap_or("outwards");
            if direction != "outwards" && direction != "inwards" {
                return Err(ApiError::bad_request(format!(
                    "{what}: `direction` must be outwards or inwards, got `{direction}`"
                )));
            }
            out.insert("connectionType".into(), json!(ct));
            out.insert("type".into(), ty.to_json());
            out.insert("source".into(), source.to_json());
            if let Some(es) = o.get("edgeSource").filter(|v| !v.is_null()) {
                out.insert(
                    "edgeSource".into(),
                    parse_view_id(es, &format!("{what}.edgeSource"))?.to_json(),
                );
            }
            out.insert("direction".into(), json!(direction));
        }
        "single_reverse_direct_relation" | "multi_reverse_direct_relation" => {
            let source = parse_view_id(
                o.get("source").ok_or_else(|| {
                    ApiError::bad_request(format!("{what}: reverse direct relation needs `source`"))
                })?,
                &format!("{what}.source"),
            )?;
            let through = o.get("through").and_then(Value::as_object).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{what}: reverse direct relation needs a `through` object"
                ))
            })?;
            let through_source = match parse_source_ref(
                through.get("source").unwrap_or(&Value::Null),
                &format!("{what}.through.source"),
            )? {
                crate::ids::SourceRef::View(v) => v.to_json(),
                crate::ids::SourceRef::Container(c) => c.to_json(),
            };
            let identifier = str_field(through, "identifier", &format!("{what}.through"))?;
            out.insert("connectionType".into(), json!(ct));
            out.insert("source".into(), source.to_json());
            out.insert(
                "through".into(),
                json!({"source": through_source, "identifier": identifier}),
            );
            let targets_list = o
                .get("targetsList")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            out.insert("targetsList".into(), json!(targets_list));
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "{what}: unknown connectionType `{other}`"
            )));
        }
    }
    for key in ["name", "description"] {
        if let Some(Value::String(s)) = o.get(key) {
            out.insert(key.into(), json!(s));
        }
    }
    Ok(Value::Object(out))
}

fn parse_view_property(name: &str, v: &Value, what: &str) -> ApiResult<ViewProperty> {
    let what = format!("{what}.properties.{name}");
    super::containers::validate_identifier(name, &what)?;
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))?;
    if !o.contains_key("container") {
        return normalize_connection(o, &what).map(ViewProperty::Connection);
    }
    let container = parse_container_id(&o["container"], &format!("{what}.container"))?;
    let container_prop = str_field(o, "containerPropertyIdentifier", &what)?.to_string();
    let source = match o.get("source").filter(|s| !s.is_null()) {
        Some(s) => Some(parse_view_id(s, &format!("{what}.source"))?),
        None => None,
    };
    Ok(ViewProperty::Mapped(MappedProperty {
        container,
        container_prop,
        name: opt_string(o, "name"),
        description: opt_string(o, "description"),
        source,
    }))
}

fn parse_view(item: &Value, what: &str) -> ApiResult<ViewDef> {
    let o = item
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))?;
    let space = str_field(o, "space", what)?;
    validate_space(space)?;
    let xid = str_field(o, "externalId", what)?;
    validate_schema_xid(xid, "view")?;
    let version = str_field(o, "version", what)?;
    validate_version(version, "view")?;
    let implements = match o.get("implements") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| parse_view_id(v, &format!("{what}.implements[{i}]")))
            .collect::<ApiResult<Vec<_>>>()?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "{what}: `implements` must be an array, got {other}"
            )));
        }
    };
    let properties = match o.get("properties") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(n, v)| Ok((n.clone(), parse_view_property(n, v, what)?)))
            .collect::<ApiResult<Vec<_>>>()?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "{what}: `properties` must be an object, got {other}"
            )));
        }
    };
    Ok(ViewDef {
        id: ViewId::new(space, xid, version),
        name: opt_string(o, "name"),
        description: opt_string(o, "description"),
        filter: o.get("filter").filter(|f| !f.is_null()).cloned(),
        implements,
        properties,
    })
}

fn resolve(schema: &Schema, def: &ViewDef) -> ApiResult<Vec<(String, ViewProperty)>> {
    let mut all: Vec<(String, ViewProperty)> = Vec::new();
    let put = |all: &mut Vec<(String, ViewProperty)>, name: &str, p: &ViewProperty| match all
        .iter_mut()
        .find(|(n, _)| n == name)
    {
        Some(slot) => slot.1 = p.clone(),
        None => all.push((name.to_string(), p.clone())),
    };
    for parent in &def.implements {
        let pv = schema.view(parent).ok_or_else(|| {
            ApiError::bad_request(format!(
                "View {} implements view {parent}, which does not exist",
                def.id
            ))
            .with_missing(vec![parent.to_json()])
        })?;
        for (n, p) in &pv.all {
            put(&mut all, n, p);
        }
    }
    for (n, p) in &def.properties {
        if let ViewProperty::Mapped(m) = p {
            let (_, c) = schema.container(&m.container).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "View {} property `{n}` maps container {}, which does not exist",
                    def.id, m.container
                ))
                .with_missing(vec![m.container.to_json()])
            })?;
            if c.prop(&m.container_prop).is_none() {
                return Err(ApiError::bad_request(format!(
                    "View {} property `{n}` maps property `{}` of container {}, which has no such property",
                    def.id, m.container_prop, m.container
                )));
            }
        }
        put(&mut all, n, p);
    }
    Ok(all)
}

fn derive_used_for(schema: &Schema, all: &[(String, ViewProperty)]) -> UsedFor {
    let mut kinds = all.iter().filter_map(|(_, p)| match p {
        ViewProperty::Mapped(m) => schema.container(&m.container).map(|(_, c)| c.used_for),
        ViewProperty::Connection(_) => None,
    });
    let Some(first) = kinds.next() else {
        return UsedFor::Node;
    };
    if kinds.all(|k| k == first) {
        first
    } else {
        UsedFor::All
    }
}

impl crate::state::Shared {
    /// Creates views; applies the items in order so a batch may hold a parent and its child.
    pub fn apply_views(&self, body: &Value) -> ApiResult<Value> {
        let items = items_of(body, 100)?;
        let defs = items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_view(item, &format!("items[{i}]")))
            .collect::<ApiResult<Vec<_>>>()?;
        let now = self.clock.now_ms();
        let mut dm = self.dm();
        let mut out = Vec::new();
        for def in defs {
            out.push(apply_view_def(&mut dm.schema, def, now)?);
        }
        Ok(json!({ "items": out }))
    }
}

/// Applies one view item (also used for inline views in data models); returns its JSON.
pub(crate) fn apply_view_item(
    schema: &mut Schema,
    item: &Value,
    what: &str,
    now: i64,
) -> ApiResult<ViewId> {
    let def = parse_view(item, what)?;
    let id = def.id.clone();
    apply_view_def(schema, def, now)?;
    Ok(id)
}

/// Properties a view may expose, own and inherited (CDF "View properties (per view)").
pub const MAX_VIEW_PROPERTIES: usize = 300;
/// Views a view may implement (CDF "Implemented views (per view)").
pub const MAX_VIEW_IMPLEMENTS: usize = 10;

/// Compiles a stored view's `filter` against the schema, so that a view whose filter no read
/// could use is refused when it is created rather than failing every later read.
fn check_filter(schema: &Schema, id: &ViewId) -> ApiResult<()> {
    let Some(filter) = schema.view(id).and_then(|v| v.filter.as_ref()) else {
        return Ok(());
    };
    let params = Map::new();
    let compiler = crate::instances::filter::Compiler {
        schema,
        params: &params,
    };
    compiler.compile(filter).map(|_| ()).map_err(|e| {
        ApiError::bad_request(format!("View {id} has an invalid filter: {}", e.message))
    })
}

fn apply_view_def(schema: &mut Schema, def: ViewDef, now: i64) -> ApiResult<Value> {
    if let Some(existing) = schema.views.get_mut(&def.id) {
        let same_shape = existing.filter == def.filter
            && existing.implements == def.implements
            && existing.own == def.properties;
        if !same_shape {
            return Err(ApiError::bad_request(format!(
                "View {} already exists with a different definition; views are immutable per version, \
                 so apply the change under a new version",
                def.id
            )));
        }
        if existing.name != def.name || existing.description != def.description {
            existing.name = def.name;
            existing.description = def.description;
            existing.updated = now;
        }
        let existing = &schema.views[&def.id];
        return Ok(existing.to_json(schema, true));
    }
    if def.implements.len() > MAX_VIEW_IMPLEMENTS {
        return Err(ApiError::bad_request(format!(
            "View {} implements {} views; a view may implement at most {MAX_VIEW_IMPLEMENTS}",
            def.id,
            def.implements.len()
        )));
    }
    let all = resolve(schema, &def)?;
    if all.len() > MAX_VIEW_PROPERTIES {
        return Err(ApiError::bad_request(format!(
            "View {} would have {} properties (own and inherited); a view may have at most {MAX_VIEW_PROPERTIES}",
            def.id,
            all.len()
        )));
    }
    let used_for = derive_used_for(schema, &all);
    schema.ensure_space(&def.id.space, now);
    let index = all
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.clone(), i))
        .collect();
    let serial = schema.next_serial();
    let view = View {
        id: def.id.clone(),
        name: def.name,
        description: def.description,
        filter: def.filter,
        implements: def.implements,
        own: def.properties,
        all,
        index,
        used_for,
        created: now,
        updated: now,
        serial,
    };
    let json = view.to_json(schema, true);
    let id = def.id;
    schema.views.insert(id.clone(), view);
    // The filter may refer to the view's own properties, so it is checked with the view in
    // place, and the view taken out again if its filter is unusable.
    if let Err(e) = check_filter(schema, &id) {
        schema.views.remove(&id);
        return Err(e);
    }
    Ok(json)
}

/// Keeps only the newest version per (space, externalId): highest createdTime, then latest applied.
pub fn newest_only<'a, T, K: Fn(&T) -> (NodeId, i64, u64)>(
    items: Vec<&'a T>,
    key: K,
) -> Vec<&'a T> {
    let mut best: std::collections::BTreeMap<NodeId, (&'a T, i64, u64)> = Default::default();
    for item in items {
        let (id, created, serial) = key(item);
        match best.get(&id) {
            Some((_, c, s)) if (*c, *s) >= (created, serial) => {}
            _ => {
                best.insert(id, (item, created, serial));
            }
        }
    }
    best.into_values().map(|(t, _, _)| t).collect()
}

pub async fn apply(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(st.apply_views(&body)?))
}

pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<Value>> {
    let dm = st.dm();
    let views: Vec<&View> = dm
        .schema
        .views
        .values()
        .filter(|v| q.space.as_ref().is_none_or(|s| &v.id.space == s))
        .collect();
    let views = if q.all_versions.unwrap_or(false) {
        views
    } else {
        newest_only(views, |v| {
            (
                NodeId::new(&v.id.space, &v.id.external_id),
                v.created,
                v.serial,
            )
        })
    };
    let inherited = q.include_inherited_properties.unwrap_or(true);
    let items = views
        .iter()
        .map(|v| v.to_json(&dm.schema, inherited))
        .collect();
    Ok(Json(paginate(
        items,
        q.limit,
        q.cursor.as_deref(),
        10,
        1000,
    )?))
}

pub async fn by_ids(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListParams>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let items = items_of(&body, 100)?;
    let dm = st.dm();
    let inherited = q.include_inherited_properties.unwrap_or(true);
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (id, version) = parse_view_id_opt_version(item, &format!("items[{i}]"))?;
        match version {
            Some(version) => {
                let vid = ViewId::new(id.space, id.external_id, version);
                if let Some(v) = dm.schema.view(&vid) {
                    out.push(v.to_json(&dm.schema, inherited));
                }
            }
            None => out.extend(
                dm.schema
                    .view_versions(&id)
                    .iter()
                    .map(|v| v.to_json(&dm.schema, inherited)),
            ),
        }
    }
    Ok(Json(json!({ "items": out })))
}

pub async fn delete(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let items = items_of(&body, 100)?;
    // Every id is parsed before anything is removed, so a bad item leaves no partial delete.
    let requested = items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_view_id_opt_version(item, &format!("items[{i}]")))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut dm = st.dm();
    let mut deleted = Vec::new();
    for (id, version) in requested {
        let ids: Vec<ViewId> = match version {
            Some(v) => vec![ViewId::new(id.space, id.external_id, v)],
            None => dm
                .schema
                .view_versions(&id)
                .iter()
                .map(|v| v.id.clone())
                .collect(),
        };
        for vid in ids {
            if dm.schema.views.remove(&vid).is_some() {
                deleted.push(vid.to_plain_json());
            }
        }
    }
    Ok(Json(json!({ "items": deleted })))
}
