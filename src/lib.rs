//! Replicates Cognite Data Fusion data-modeling instances into Delta Lake tables on S3.
pub mod cdf;
pub mod config;
pub mod flatten;
pub mod schema;
