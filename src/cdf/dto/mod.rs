//! Wire types of the CDF API, named after the API's own terms.

mod extpipes;
mod filters;
mod instances;
mod models;
mod property_type;
mod raw;
mod refs;
mod sync;
mod views;

#[cfg(test)]
mod contract_examples;

pub use extpipes::{
    ExtpipeConfig, ExtpipeConfigWrite, ExtpipeRun, ExtpipeRunStatus, ExtpipeRunWrite,
};
pub use filters::Filter;
pub use instances::{Instance, InstanceProperties, InstanceType, PropertyValues};
pub use models::{DataModel, DataModelView};
pub use property_type::{EnumValue, PropertyKind, PropertyType, UnitReference};
pub use raw::{RawColumns, RawName, RawRow, RawRowPage, RawRowQuery, RawRowWrite};
pub use refs::{
    ContainerReference, DataModelId, NodeReference, SourceReference, ViewId, ViewReference,
};
pub use sync::{
    SelectSource, SortDirection, SyncExpression, SyncMode, SyncRequest, SyncResponse, SyncSelect,
    SyncSort, SyncTarget, SyncTyping, TargetFilter, TargetUnit, TypingProperty, UnitTarget,
};
pub use views::{
    ConstraintState, EdgeConnection, EdgeConnectionType, EdgeDirection, MappedProperty,
    ReverseDirectRelation, ReverseRelationType, ThroughReference, UsedFor, ViewDefinition,
    ViewProperty,
};

use serde::{Deserialize, Serialize};

/// `{"items": [...]}` request bodies.
#[derive(Debug, Serialize)]
pub(crate) struct ItemsRef<'a, T> {
    pub items: &'a [T],
}

/// `{"items": [...]}` responses (byids, create).
#[derive(Debug, Deserialize)]
pub(crate) struct Items<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

/// `{"items": [...], "nextCursor": ...}` responses of list endpoints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ItemsPage<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}
