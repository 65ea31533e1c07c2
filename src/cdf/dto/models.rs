//! Data models as returned by `datamodels` list and `datamodels/byids`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::refs::ViewReference;
use super::views::ViewDefinition;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataModel {
    pub(crate) space: String,
    pub(crate) external_id: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) created_time: i64,
    pub(crate) last_updated_time: i64,
    #[serde(default)]
    pub(crate) is_global: bool,
    #[serde(default)]
    pub(crate) views: Vec<DataModelView>,
}

impl DataModel {
    /// The references of all views, whether the model was fetched with inline views or not.
    pub fn view_references(&self) -> Vec<ViewReference> {
        self.views.iter().map(DataModelView::reference).collect()
    }
}

/// A view of a data model: a reference, or the full definition with `inlineViews=true`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum DataModelView {
    Reference(ViewReference),
    Inline(Box<ViewDefinition>),
}

impl DataModelView {
    pub(crate) fn reference(&self) -> ViewReference {
        match self {
            DataModelView::Reference(r) => r.clone(),
            DataModelView::Inline(view) => view.reference(),
        }
    }
}

/// References carry `"type":"view"`; inline definitions have no `type` key.
impl<'de> Deserialize<'de> for DataModelView {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = serde_json::Map::<String, Value>::deserialize(deserializer)?;
        let is_reference = object.contains_key("type") || !object.contains_key("properties");
        let value = Value::Object(object);
        if is_reference {
            serde_json::from_value(value)
                .map(DataModelView::Reference)
                .map_err(D::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(|view| DataModelView::Inline(Box::new(view)))
                .map_err(D::Error::custom)
        }
    }
}
