//! Replicates Cognite Data Fusion (CDF) data-modeling instances into Delta Lake tables on S3
//! and publishes Parquet snapshots for BI tools.
//!
//! Data flow: [`config`] → [`context`] (clients) → [`sync`] (CDF [`cdf`] sync pages →
//! [`flatten`] into Arrow by [`schema`] → Delta commits in the [`lake`], cursors in RAW) →
//! [`snapshot`] (deduplicated Parquet files per view in the publish layer).
//! [`flatten`] into Arrow by [`schema`] → Delta commits in the [`lake`], cursors in RAW);
//! [`maintenance`] compacts, checkpoints and vacuums the raw tables on its own schedule.

pub mod catalog;
pub mod cdf;
pub mod config;
pub mod context;
pub mod failpoint;
pub mod failure;
pub mod flatten;
pub mod jobs;
pub mod lake;
pub mod lambda;
pub mod maintenance;
pub mod plan;
pub mod schema;
pub mod secret;
pub mod snapshot;
pub mod status;
pub mod sync;
pub mod telemetry;
