//! The root crate's integration tests, one test binary (`cargo test --test integration`), one
//! module per theme: the CDF client against the CDF emulator, the raw Delta layer, and
//! replication end to end against the emulator, a real S3 protocol server on loopback and
//! independent readers (Python `deltalake`, DuckDB, pyarrow). The lab they share is in
//! `support`.

mod arrival;
mod catalog;
mod cdf_client;
mod chaos;
mod check_config;
mod column_mapping;
mod commit_fixture;
mod data_safety;
mod deadlines;
mod deep_json;
mod end_to_end;
mod exactly_once;
mod fan_out;
mod generative;
mod interrupts;
mod lake_delta;
mod lake_identity;
mod lambda;
mod load;
mod long_names;
mod maintenance;
mod membership;
mod migration;
mod overlap;
mod parallel_rebuild;
mod parts;
mod rebuild_resume;
mod remote_config;
mod resilience;
mod resync;
mod s3_faults;
mod schema_changes;
mod slices;
mod snapshot;
mod state_repair;
mod status;
mod support;
mod typed_failures;
mod unreachable;
mod verify;
