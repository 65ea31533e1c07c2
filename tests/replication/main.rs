//! Replication tests against the CDF emulator, a real S3 protocol server on loopback and
//! independent readers (Python `deltalake`, DuckDB). One test binary, one module per theme.

mod catalog;
mod chaos;
mod column_mapping;
mod commit_fixture;
mod data_safety;
mod deep_json;
mod end_to_end;
mod exactly_once;
mod generative;
mod lambda;
mod load;
mod maintenance;
mod remote_config;
mod resilience;
mod s3_faults;
mod schema_changes;
mod snapshot;
mod status;
mod support;
mod typed_failures;
