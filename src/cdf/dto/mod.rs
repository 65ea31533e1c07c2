//! Wire types of the CDF API, named after the API's own terms.

mod extpipes;
mod filters;
mod instances;
mod instances_read;
mod list;
mod models;
mod property_type;
mod raw;
mod refs;
mod sync;
mod views;

#[cfg(test)]
mod contract_examples;

pub use extpipes::ExtpipeConfigWrite;
pub use extpipes::ExtpipeRunStatus;
pub use extpipes::ExtpipeRunWrite;
pub(crate) use extpipes::{ExtpipeConfig, ExtpipeRun};
pub use filters::Filter;
pub use instances::{Instance, InstanceType};
pub use instances_read::{AggregateRequest, ByIdsRequest, ByIdsResponse, ByIdsSource, InstanceId};
pub(crate) use instances_read::{AggregateResponse, MAX_BYIDS_ITEMS};
pub(crate) use list::MAX_LIST_LIMIT;
pub use list::{ListRequest, ListResponse};
pub(crate) use models::DataModel;
#[cfg(test)]
pub(crate) use models::DataModelView;
pub use property_type::{PropertyKind, PropertyType};
pub(crate) use raw::{RawName, RawRow, RawRowPage};
pub use raw::{RawRowQuery, RawRowWrite};
pub use refs::ViewReference;
#[cfg(test)]
pub(crate) use refs::{ContainerReference, SourceReference};
pub use refs::{DataModelId, NodeReference, ViewId};
pub use sync::SyncSelect;
#[cfg(test)]
pub(crate) use sync::TypingProperty;
pub use sync::{SelectSource, SyncExpression, SyncMode, SyncRequest};
#[cfg(test)]
pub(crate) use sync::{SortDirection, SyncSort};
pub(crate) use sync::{SyncResponse, SyncTarget};
#[cfg(test)]
pub(crate) use views::EdgeConnectionType;
pub use views::EdgeDirection;
pub(crate) use views::ViewDefinition;
pub use views::{EdgeConnection, MappedProperty, UsedFor, ViewProperty};

use serde::{Deserialize, Serialize};

/// `{"items": [...]}` request bodies.
#[derive(Debug, Serialize)]
pub(crate) struct ItemsRef<'a, T> {
    pub(crate) items: &'a [T],
}

/// `{"items": [...]}` responses (byids, create).
#[derive(Debug, Deserialize)]
pub(crate) struct Items<T> {
    #[serde(default = "Vec::new")]
    pub(crate) items: Vec<T>,
}

/// `{"items": [...], "nextCursor": ...}` responses of list endpoints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ItemsPage<T> {
    #[serde(default = "Vec::new")]
    pub(crate) items: Vec<T>,
    #[serde(default)]
    pub(crate) next_cursor: Option<String>,
}
