//! Identifiers of spaces, containers, views and instances, and their JSON reference forms.

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

/// `{"type":"container","space":..,"externalId":..}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId {
    pub space: String,
    pub external_id: String,
}

/// `{"type":"view","space":..,"externalId":..,"version":..}`; also used for data-model ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewId {
    pub space: String,
    pub external_id: String,
    pub version: String,
}

/// A node reference `{"space":..,"externalId":..}` (direct relations, edge ends, types).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    pub space: String,
    pub external_id: String,
}

/// A source of instance data: a view or a container.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceRef {
    View(ViewId),
    Container(ContainerId),
}

impl ContainerId {
    pub fn new(space: impl Into<String>, external_id: impl Into<String>) -> Self {
        ContainerId {
            space: space.into(),
            external_id: external_id.into(),
        }
    }
    pub fn to_json(&self) -> Value {
        json!({"type": "container", "space": self.space, "externalId": self.external_id})
    }
}

impl std::fmt::Display for ContainerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.space, self.external_id)
    }
}

impl ViewId {
    pub fn new(
        space: impl Into<String>,
        external_id: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        ViewId {
            space: space.into(),
            external_id: external_id.into(),
            version: version.into(),
        }
    }
    pub fn to_json(&self) -> Value {
        json!({"type": "view", "space": self.space, "externalId": self.external_id, "version": self.version})
    }
    /// The id without the `type` key, as data-model ids are written.
    pub fn to_plain_json(&self) -> Value {
        json!({"space": self.space, "externalId": self.external_id, "version": self.version})
    }
    /// The `"xid/version"` key used inside instance `properties`.
    pub fn prop_key(&self) -> String {
        format!("{}/{}", self.external_id, self.version)
    }
}

impl std::fmt::Display for ViewId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.space, self.external_id, self.version)
    }
}

impl NodeId {
    pub fn new(space: impl Into<String>, external_id: impl Into<String>) -> Self {
        NodeId {
            space: space.into(),
            external_id: external_id.into(),
        }
    }
    pub fn to_json(&self) -> Value {
        json!({"space": self.space, "externalId": self.external_id})
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.space, self.external_id)
    }
}

fn obj<'a>(v: &'a Value, what: &str) -> ApiResult<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object, got {v}")))
}

pub fn str_field<'a>(o: &'a Map<String, Value>, key: &str, what: &str) -> ApiResult<&'a str> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ApiError::bad_request(format!(
            "{what}: `{key}` must be a string, got {other}"
        ))),
        None => Err(ApiError::bad_request(format!(
            "{what}: missing required field `{key}`"
        ))),
    }
}

pub fn opt_str_field<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> ApiResult<Option<&'a str>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::bad_request(format!(
            "{what}: `{key}` must be a string, got {other}"
        ))),
    }
}

pub fn parse_container_id(v: &Value, what: &str) -> ApiResult<ContainerId> {
    let o = obj(v, what)?;
    if let Some(t) = o.get("type").and_then(Value::as_str)
        && t != "container"
    {
        return Err(ApiError::bad_request(format!(
            "{what}: expected a container reference, got type `{t}`"
        )));
    }
    Ok(ContainerId::new(
        str_field(o, "space", what)?,
        str_field(o, "externalId", what)?,
    ))
}

/// Parses a view reference; `version` is required.
pub fn parse_view_id(v: &Value, what: &str) -> ApiResult<ViewId> {
    let (id, version) = parse_view_id_opt_version(v, what)?;
    match version {
        Some(version) => Ok(ViewId {
            space: id.space,
            external_id: id.external_id,
            version,
        }),
        None => Err(ApiError::bad_request(format!(
            "{what}: missing required field `version`"
        ))),
    }
}

/// Parses a view or data-model reference whose `version` may be left out.
pub fn parse_view_id_opt_version(v: &Value, what: &str) -> ApiResult<(NodeId, Option<String>)> {
    let o = obj(v, what)?;
    if let Some(t) = o.get("type").and_then(Value::as_str)
        && t != "view"
        && t != "datamodel"
    {
        return Err(ApiError::bad_request(format!(
            "{what}: expected a view reference, got type `{t}`"
        )));
    }
    let space = str_field(o, "space", what)?;
    let xid = str_field(o, "externalId", what)?;
    let version = opt_str_field(o, "version", what)?.map(str::to_string);
    Ok((NodeId::new(space, xid), version))
}

pub fn parse_node_id(v: &Value, what: &str) -> ApiResult<NodeId> {
    let o = obj(v, what)?;
    Ok(NodeId::new(
        str_field(o, "space", what)?,
        str_field(o, "externalId", what)?,
    ))
}

/// A source reference: `type` decides, otherwise a `version` key means a view.
pub fn parse_source_ref(v: &Value, what: &str) -> ApiResult<SourceRef> {
    let o = obj(v, what)?;
    match o.get("type").and_then(Value::as_str) {
        Some("view") => parse_view_id(v, what).map(SourceRef::View),
        Some("container") => parse_container_id(v, what).map(SourceRef::Container),
        Some(other) => Err(ApiError::bad_request(format!(
            "{what}: unknown source type `{other}`; expected `view` or `container`"
        ))),
        None if o.contains_key("version") => parse_view_id(v, what).map(SourceRef::View),
        None => parse_container_id(v, what).map(SourceRef::Container),
    }
}

const RESERVED_SPACES: [&str; 8] = [
    "space", "cdf", "dms", "pg3", "shared", "system", "node", "edge",
];

/// Checks a space id against `^[a-zA-Z][a-zA-Z0-9_-]{0,41}[a-zA-Z0-9]?$` and the reserved names.
pub fn validate_space(space: &str) -> ApiResult<()> {
    let b = space.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 43
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        && (b.len() < 43 || b[b.len() - 1].is_ascii_alphanumeric());
    if !ok {
        return Err(ApiError::bad_request(format!(
            "Invalid space identifier `{space}`: must match ^[a-zA-Z][a-zA-Z0-9_-]{{0,41}}[a-zA-Z0-9]?$"
        )));
    }
    if RESERVED_SPACES.contains(&space) {
        return Err(ApiError::bad_request(format!(
            "Space identifier `{space}` is reserved"
        )));
    }
    Ok(())
}

/// Checks a view/container/data-model externalId against `^[a-zA-Z]([a-zA-Z0-9_]{0,253}[a-zA-Z0-9])?$`.
pub fn validate_schema_xid(xid: &str, what: &str) -> ApiResult<()> {
    let b = xid.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 255
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && b[b.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid {what} externalId `{xid}`: must match ^[a-zA-Z]([a-zA-Z0-9_]{{0,253}}[a-zA-Z0-9])?$"
        )))
    }
}

/// Checks a view/data-model version against `^[a-zA-Z0-9]([.a-zA-Z0-9_-]{0,41}[a-zA-Z0-9])?$`.
pub fn validate_version(version: &str, what: &str) -> ApiResult<()> {
    let b = version.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 43
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid {what} version `{version}`: must match ^[a-zA-Z0-9]([.a-zA-Z0-9_-]{{0,41}}[a-zA-Z0-9])?$"
        )))
    }
}

/// Checks a node/edge externalId: 1–256 characters, no NUL.
pub fn validate_instance_xid(xid: &str) -> ApiResult<()> {
    let n = xid.chars().count();
    if n == 0 || n > 256 || xid.contains('\0') {
        return Err(ApiError::bad_request(format!(
            "Invalid instance externalId `{xid}`: must be 1-256 characters without NUL"
        )));
    }
    Ok(())
}
