//! References to views, containers, data models and nodes.

use serde::{Deserialize, Serialize, Serializer};

/// A view at one version. Serialises with `"type":"view"`, which sync `select` sources and
/// `hasData` filters require; the `type` key is ignored when reading.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewReference {
    pub(crate) space: String,
    pub(crate) external_id: String,
    pub(crate) version: String,
}

impl ViewReference {
    /// The view `external_id` at `version` in `space`.
    pub fn new(
        space: impl Into<String>,
        external_id: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        Self {
            space: space.into(),
            external_id: external_id.into(),
            version: version.into(),
        }
    }

    /// The `"<externalId>/<version>"` key under which sync returns this view's properties.
    pub(crate) fn properties_key(&self) -> String {
        format!("{}/{}", self.external_id, self.version)
    }

    /// The same view as a by-id lookup key.
    pub fn to_id(&self) -> ViewId {
        ViewId {
            space: self.space.clone(),
            external_id: self.external_id.clone(),
            version: Some(self.version.clone()),
        }
    }
}

impl std::fmt::Display for ViewReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.space, self.external_id, self.version)
    }
}

impl Serialize for ViewReference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TypedRef {
            kind: "view",
            space: &self.space,
            external_id: &self.external_id,
            version: Some(&self.version),
        }
        .serialize(serializer)
    }
}

/// A container. Serialises with `"type":"container"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerReference {
    pub(crate) space: String,
    pub(crate) external_id: String,
}

impl ContainerReference {
    #[cfg(test)]
    pub(crate) fn new(space: impl Into<String>, external_id: impl Into<String>) -> Self {
        Self {
            space: space.into(),
            external_id: external_id.into(),
        }
    }
}

impl Serialize for ContainerReference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TypedRef {
            kind: "container",
            space: &self.space,
            external_id: &self.external_id,
            version: None,
        }
        .serialize(serializer)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TypedRef<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    space: &'a str,
    external_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
}

/// A view or a container, as used by `hasData` filters and `through` of reverse relations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceReference {
    View(ViewReference),
    Container(ContainerReference),
}

/// The inner references already write their own `type` tag.
impl Serialize for SourceReference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SourceReference::View(view) => view.serialize(serializer),
            SourceReference::Container(container) => container.serialize(serializer),
        }
    }
}

/// A view lookup key for `views/byids`; without `version` CDF returns every version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewId {
    /// The space the view lives in.
    pub space: String,
    /// The view's external id within its space.
    pub external_id: String,
    /// The version to fetch; `None` fetches every version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A data-model lookup key for `datamodels/byids`; without `version` CDF returns every
/// version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataModelId {
    pub(crate) space: String,
    pub(crate) external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<String>,
}

impl DataModelId {
    /// The model `external_id` in `space`, at `version` or, with `None`, at every version.
    pub fn new(
        space: impl Into<String>,
        external_id: impl Into<String>,
        version: Option<String>,
    ) -> Self {
        Self {
            space: space.into(),
            external_id: external_id.into(),
            version,
        }
    }
}

/// A node: direct-relation values, node and edge `type`, edge `startNode` / `endNode`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReference {
    pub(crate) space: String,
    pub(crate) external_id: String,
}

impl NodeReference {
    /// The node `external_id` in `space`.
    pub fn new(space: impl Into<String>, external_id: impl Into<String>) -> Self {
        Self {
            space: space.into(),
            external_id: external_id.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_serialise_with_their_type_tag() {
        let view = ViewReference::new("s", "Pump", "2");
        assert_eq!(
            serde_json::to_value(&view).unwrap(),
            json!({"type":"view","space":"s","externalId":"Pump","version":"2"})
        );
        let container = ContainerReference::new("s", "PumpC");
        assert_eq!(
            serde_json::to_value(&container).unwrap(),
            json!({"type":"container","space":"s","externalId":"PumpC"})
        );
        assert_eq!(
            serde_json::to_value(SourceReference::View(view.clone())).unwrap(),
            json!({"type":"view","space":"s","externalId":"Pump","version":"2"})
        );
        assert_eq!(view.properties_key(), "Pump/2");
    }

    #[test]
    fn references_read_with_or_without_type() {
        let with: ViewReference = serde_json::from_value(
            json!({"type":"view","space":"s","externalId":"Pump","version":"2"}),
        )
        .unwrap();
        let without: ViewReference =
            serde_json::from_value(json!({"space":"s","externalId":"Pump","version":"2"})).unwrap();
        assert_eq!(with, without);
        let source: SourceReference =
            serde_json::from_value(json!({"type":"container","space":"s","externalId":"C"}))
                .unwrap();
        assert_eq!(
            source,
            SourceReference::Container(ContainerReference::new("s", "C"))
        );
    }

    #[test]
    fn ids_leave_out_absent_versions() {
        let id = DataModelId::new("s", "M", None);
        assert_eq!(
            serde_json::to_value(&id).unwrap(),
            json!({"space":"s","externalId":"M"})
        );
    }
}
