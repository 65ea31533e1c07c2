//! Writing instances as JSON straight into a byte buffer. Object keys are escaped once per
//! request (in the [`SelectPlan`]), so a page of thousands of instances costs little more
//! than copying their values.

use serde::Serialize;
use serde_json::{Map, Value};

use super::filter::{Compiler, Filter, view_has_data};
use super::store::{Instance, Kind, Store};
use crate::error::{ApiError, ApiResult};
use crate::ids::{SourceRef, parse_source_ref};
use crate::schema::views::{View, ViewProperty};
use crate::schema::{ContainerIdx, Schema};

/// One entry of `select.sources` (or `sources` of list/byids): which properties to return.
#[derive(Debug, Clone)]
pub struct SelectSource {
    pub source: SourceRef,
    /// `None` means all properties (`["*"]` or no list).
    pub properties: Option<Vec<String>>,
}

impl SelectSource {
    /// Parses `{"source": ref, "properties": [...]}`; a missing list means all properties.
    pub fn parse(v: &Value, what: &str) -> ApiResult<SelectSource> {
        let src = v
            .get("source")
            .ok_or_else(|| ApiError::bad_request(format!("{what}: missing `source`")))?;
        let source = parse_source_ref(src, &format!("{what}.source"))?;
        // Answering unconverted values to a caller that asked for conversion would be silently
        // wrong, so an unsupported conversion is refused instead.
        if v.get("targetUnits")
            .is_some_and(|t| !t.is_null() && t.as_array().is_none_or(|a| !a.is_empty()))
        {
            return Err(ApiError::bad_request(format!(
                "{what}.targetUnits: unit conversion is not supported by the emulator"
            )));
        }
        let properties = match v.get("properties") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => {
                let names = a
                    .iter()
                    .map(|p| {
                        p.as_str().map(str::to_string).ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "{what}.properties must be strings, got {p}"
                            ))
                        })
                    })
                    .collect::<ApiResult<Vec<_>>>()?;
                if names.iter().any(|n| n == "*") {
                    None
                } else {
                    Some(names)
                }
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "{what}.properties must be an array, got {other}"
                )));
            }
        };
        Ok(SelectSource { source, properties })
    }
}

struct PropPlan {
    key: Vec<u8>,
    container: ContainerIdx,
    slot: usize,
}

struct SourcePlan {
    key: Vec<u8>,
    has_data: Filter,
    props: Vec<PropPlan>,
}

struct SpaceGroup {
    key: Vec<u8>,
    sources: Vec<SourcePlan>,
}

/// The compiled shape of the `properties` object for one result set.
pub struct SelectPlan {
    groups: Vec<SpaceGroup>,
}

fn key_bytes(name: &str) -> Vec<u8> {
    let mut k = serde_json::to_vec(name).unwrap_or_else(|_| b"\"\"".to_vec());
    k.push(b':');
    k
}

fn put<T: Serialize + ?Sized>(buf: &mut Vec<u8>, v: &T) {
    // Serializing plain data into a Vec cannot fail; `null` keeps the output valid regardless.
    if serde_json::to_writer(&mut *buf, v).is_err() {
        buf.extend_from_slice(b"null");
    }
}

fn view_props<'a>(
    view: &'a View,
    wanted: &Option<Vec<String>>,
    what: &str,
) -> ApiResult<Vec<(&'a str, &'a crate::schema::MappedProperty)>> {
    match wanted {
        None => Ok(view.mapped().collect()),
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                match view.property(n) {
                    Some(ViewProperty::Mapped(m)) => {
                        let name = view
                            .all
                            .iter()
                            .find(|(k, _)| k == n)
                            .map_or("", |(k, _)| k.as_str());
                        out.push((name, m));
                    }
                    // Connections have no stored values; selecting them yields nothing.
                    Some(ViewProperty::Connection(_)) => {}
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "{what}: property `{n}` does not exist in view {}",
                            view.id
                        )));
                    }
                }
            }
            Ok(out)
        }
    }
}

impl SelectPlan {
    pub fn build(schema: &Schema, sources: &[SelectSource], what: &str) -> ApiResult<SelectPlan> {
        let compiler = Compiler {
            schema,
            params: &Map::new(),
        };
        let mut groups: Vec<SpaceGroup> = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            let swhat = format!("{what}[{i}]");
            let (space, key, has_data, props) = match &s.source {
                SourceRef::View(vid) => {
                    let view = schema.view(vid).ok_or_else(|| {
                        ApiError::bad_request(format!("{swhat}: view {vid} does not exist"))
                            .with_missing(vec![vid.to_json()])
                    })?;
                    let mut props = Vec::new();
                    for (name, m) in view_props(view, &s.properties, &swhat)? {
                        let Some((idx, c)) = schema.container(&m.container) else {
                            continue;
                        };
                        let Some((slot, _)) = c.prop(&m.container_prop) else {
                            continue;
                        };
                        props.push(PropPlan {
                            key: key_bytes(name),
                            container: idx,
                            slot,
                        });
                    }
                    (
                        vid.space.clone(),
                        vid.prop_key(),
                        view_has_data(&compiler, view, 0)?,
                        props,
                    )
                }
                SourceRef::Container(cid) => {
                    let (idx, c) = schema.container(cid).ok_or_else(|| {
                        ApiError::bad_request(format!("{swhat}: container {cid} does not exist"))
                            .with_missing(vec![cid.to_json()])
                    })?;
                    let mut props = Vec::new();
                    for (slot, p) in c.properties.iter().enumerate() {
                        if s.properties
                            .as_ref()
                            .is_none_or(|names| names.contains(&p.identifier))
                        {
                            props.push(PropPlan {
                                key: key_bytes(&p.identifier),
                                container: idx,
                                slot,
                            });
                        }
                    }
                    if let Some(names) = &s.properties
                        && let Some(n) = names.iter().find(|n| c.prop(n).is_none())
                    {
                        return Err(ApiError::bad_request(format!(
                            "{swhat}: property `{n}` does not exist in container {cid}"
                        )));
                    }
                    (
                        cid.space.clone(),
                        cid.external_id.clone(),
                        Filter::HasContainers(vec![idx]),
                        props,
                    )
                }
            };
            let plan = SourcePlan {
                key: key_bytes(&key),
                has_data,
                props,
            };
            let space_key = key_bytes(&space);
            match groups.iter_mut().find(|g| g.key == space_key) {
                Some(g) => g.sources.push(plan),
                None => groups.push(SpaceGroup {
                    key: space_key,
                    sources: vec![plan],
                }),
            }
        }
        Ok(SelectPlan { groups })
    }

    fn write_properties(
        &self,
        buf: &mut Vec<u8>,
        inst: &Instance,
        store: &Store,
        explicit_nulls: bool,
    ) {
        buf.push(b'{');
        let mut first_group = true;
        for g in &self.groups {
            let mut opened = false;
            for s in &g.sources {
                if !s.has_data.matches(inst, store) {
                    continue;
                }
                if !opened {
                    if !first_group {
                        buf.push(b',');
                    }
                    first_group = false;
                    buf.extend_from_slice(&g.key);
                    buf.push(b'{');
                    opened = true;
                } else {
                    buf.push(b',');
                }
                buf.extend_from_slice(&s.key);
                buf.push(b'{');
                let mut first = true;
                for p in &s.props {
                    let v = inst.data.value(p.container, p.slot);
                    if v.is_none() && !explicit_nulls {
                        continue;
                    }
                    if !first {
                        buf.push(b',');
                    }
                    first = false;
                    buf.extend_from_slice(&p.key);
                    match v {
                        Some(v) => crate::deep::write_json(v, buf),
                        None => buf.extend_from_slice(b"null"),
                    }
                }
                buf.push(b'}');
            }
            if opened {
                buf.push(b'}');
            }
        }
        buf.push(b'}');
    }

    /// Writes one instance. Tombstones carry `deletedTime` and empty `properties`.
    pub fn write_instance(
        &self,
        buf: &mut Vec<u8>,
        inst: &Instance,
        store: &Store,
        explicit_nulls: bool,
    ) {
        let k = &inst.key;
        buf.extend_from_slice(b"{\"instanceType\":\"");
        buf.extend_from_slice(k.kind.as_str().as_bytes());
        buf.extend_from_slice(b"\",\"space\":");
        put(buf, k.space.as_str());
        buf.extend_from_slice(b",\"externalId\":");
        put(buf, k.external_id.as_str());
        buf.extend_from_slice(b",\"version\":");
        put(buf, &inst.version);
        if let Some(t) = &inst.data.ty {
            buf.extend_from_slice(b",\"type\":{\"space\":");
            put(buf, t.space.as_str());
            buf.extend_from_slice(b",\"externalId\":");
            put(buf, t.external_id.as_str());
            buf.push(b'}');
        }
        if k.kind == Kind::Edge {
            for (name, n) in [
                (&b",\"startNode\":"[..], &inst.data.start),
                (&b",\"endNode\":"[..], &inst.data.end),
            ] {
                if let Some(n) = n {
                    buf.extend_from_slice(name);
                    buf.extend_from_slice(b"{\"space\":");
                    put(buf, n.space.as_str());
                    buf.extend_from_slice(b",\"externalId\":");
                    put(buf, n.external_id.as_str());
                    buf.push(b'}');
                }
            }
        }
        buf.extend_from_slice(b",\"createdTime\":");
        put(buf, &inst.created);
        buf.extend_from_slice(b",\"lastUpdatedTime\":");
        put(buf, &inst.updated);
        match inst.deleted {
            Some(t) => {
                buf.extend_from_slice(b",\"deletedTime\":");
                put(buf, &t);
                buf.extend_from_slice(b",\"properties\":{}");
            }
            None => {
                buf.extend_from_slice(b",\"properties\":");
                self.write_properties(buf, inst, store, explicit_nulls);
            }
        }
        buf.push(b'}');
    }

    /// Convenience for in-process callers: one instance as a JSON value.
    pub fn to_value(&self, inst: &Instance, store: &Store, explicit_nulls: bool) -> Value {
        let mut buf = Vec::with_capacity(256);
        self.write_instance(&mut buf, inst, store, explicit_nulls);
        // Deep json values read back whole (serde_json's default stops at 128 levels).
        crate::deep::parse(&buf).unwrap_or(Value::Null)
    }
}

/// The `typing` object of one result set: space → "xid/version" → property → definition.
pub fn typing(schema: &Schema, sources: &[SelectSource]) -> Value {
    let mut out = Map::new();
    for s in sources {
        match &s.source {
            SourceRef::View(vid) => {
                let Some(view) = schema.view(vid) else {
                    continue;
                };
                let Ok(props) = view_props(view, &s.properties, "") else {
                    continue;
                };
                let mut m = Map::new();
                for (name, mp) in props {
                    m.insert(
                        name.to_string(),
                        Value::Object(View::mapped_json(schema, name, mp, false)),
                    );
                }
                insert_typing(&mut out, &vid.space, vid.prop_key(), m);
            }
            SourceRef::Container(cid) => {
                let Some((_, c)) = schema.container(cid) else {
                    continue;
                };
                let m: Map<String, Value> = c
                    .properties
                    .iter()
                    .filter(|p| {
                        s.properties
                            .as_ref()
                            .is_none_or(|n| n.contains(&p.identifier))
                    })
                    .map(|p| (p.identifier.clone(), Value::Object(p.definition_json())))
                    .collect();
                insert_typing(&mut out, &cid.space, cid.external_id.clone(), m);
            }
        }
    }
    Value::Object(out)
}

fn insert_typing(
    out: &mut Map<String, Value>,
    space: &str,
    key: String,
    props: Map<String, Value>,
) {
    let entry = out
        .entry(space.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = entry {
        m.insert(key, Value::Object(props));
    }
}
