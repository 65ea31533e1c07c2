//! Table schemas derived from CDF view definitions.
//!
//! The raw (Delta) schema of a view's nodes or edges comes from the view definition (or the
//! identical `includeTyping` answer of sync), never from the values of a page: two pages of
//! one view must always produce the same columns and types, whatever values they hold.
//!
//! | CDF type | raw (Delta) | publish (Parquet) |
//! |---|---|---|
//! | text, enum, timeseries/file/sequence | Utf8 | Utf8 |
//! | int32 / int64 / float32 / float64 / boolean | same | same |
//! | timestamp | Timestamp(µs, UTC) | Timestamp(µs, UTC) |
//! | date | Date32 | Date32 |
//! | json | Utf8 (compact JSON text) | Utf8 |
//! | direct | `<p>.space`, `<p>.externalId` (Utf8) | same |
//! | list of X | `List<X>` (direct: `List<Struct{space, externalId}>`) | Utf8 (JSON text) |
//! | a type unknown to this version | Utf8 (JSON text of the whole value) | Utf8 |
//!
//! System columns come first (see [`system`]); property columns follow, sorted by property
//! identifier, all nullable (tombstones carry no properties). The raw-only columns
//! `_arrival` ([`arrival`]) and `_exitedTime` sit where a table gained them, after the
//! columns it had then (schema merges append). Which column a property fills
//! is decided by [`mapping`] for the whole table (all its source views and its current
//! schema): names are compared ignoring case and renamed as described in [`naming`],
//! same-name properties of different source views are qualified with the view, and a type
//! change that does not fit the existing column gets a new column. Every property column
//! carries field metadata `cdf.source` (the source view), `cdf.property` (the identifier),
//! `cdf.type` (the CDF type name) and, for lists, `cdf.list = "true"`.

pub(crate) mod arrival;
pub(crate) mod evolution;
pub(crate) mod json_text;
pub(crate) mod mapping;
pub(crate) mod naming;
pub(crate) mod publish;
pub(crate) mod system;
pub(crate) mod temporal;
pub(crate) mod value_type;
pub(crate) mod view_schema;

#[cfg(test)]
pub(crate) use evolution::widens_losslessly;
pub(crate) use evolution::{AlignError, align_batch};
pub(crate) use mapping::SourceProperties;
pub(crate) use publish::{PublishError, publish_batch, publish_schema};
pub use system::TableKind;
pub(crate) use value_type::ValueType;
pub(crate) use view_schema::PropertyColumn;
pub use view_schema::{PropertySource, ViewSchema};
