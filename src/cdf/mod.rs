//! Client for the parts of the Cognite Data Fusion (CDF) REST API the replicator uses:
//! data models and views, instance sync, list, byids and aggregate, RAW (the cursor state store) and extraction
//! pipelines (remote config and run reports).
//!
//! One [`CdfClient`] serves one project. It gets OAuth2 client-credentials tokens and caches
//! them, sends the identifying headers, retries transient failures with backoff, and turns
//! every failure into a [`CdfError`] that says which call failed and why.

mod auth;
mod client;
mod credentials;
pub mod dto;
mod error;
mod extpipes_api;
mod instances_api;
mod list_api;
mod models_api;
mod path;
mod raw_api;
mod reachability;
mod retry;
mod settings;
mod sync_api;

pub use client::CdfClient;
#[cfg(test)]
pub(crate) use client::decode_json;
pub use credentials::ClientCredentials;
pub use credentials::Secret;
pub use error::{ApiError, CdfError};
pub use models_api::DataModelListQuery;
pub use reachability::Unreachable;
pub use retry::RetryPolicy;
pub use settings::{ClientSettings, SDK_ID};
