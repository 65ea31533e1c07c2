//! Replicates Cognite Data Fusion (CDF) data-modeling instances into Delta Lake tables on S3
//! and publishes deduplicated Parquet files per view for BI tools.
//!
//! # Data flow
//!
//! ```text
//! config ─▶ context ─▶ plan ─┬─▶ sync ────────▶ lake (raw layer: Delta tables, full history)
//!  (YAML,    (CDF client,   │    cdf pages ─▶ flatten/schema ─▶ Delta commits, cursors in RAW
//!   remote)   destination)  ├─▶ snapshot ────▶ publish layer: nodes/edges.parquet per view (or parts)
//!                           │                  └─▶ catalog (Glue tables for Athena)
//!                           ├─▶ maintenance ─▶ compaction, checkpoints, vacuum of the raw tables
//!                           ├─▶ status ──────▶ read-only report of streams and files
//!                           └─▶ verify ──────▶ read-only comparison of the published files with CDF
//!                jobs: composes the above for the CLI (`src/bin`) and lambda (the functions)
//! ```
//!
//! An invocation loads the configuration, builds the clients, resolves the [`plan`] once and
//! hands it to the jobs it runs ([`jobs`]). Each job reports per part (stream, view, table)
//! and never fails as a whole; every problem is a [`failure::Failure`] with a cause that says
//! whether a retry can help, which the Lambda edge turns into its error type.
//!
//! # Modules
//!
//! - [`config`]: the configuration file (the original replicator's, plus this product's
//!   keys), its validation, and the guard on remote documents;
//! - [`context`]: the CDF client and the lake destination of a configuration, kept across runs;
//! - [`plan`]: models → views → streams (one sync query and cursor each) → tables;
//! - [`cdf`]: the CDF REST API: data models, `instances/sync`, RAW, extraction pipelines, with
//!   retries and token caching;
//! - [`schema`] and [`flatten`]: the Arrow schema of each raw table and the rows of sync pages;
//! - [`lake`]: the **raw layer**: Delta tables written exactly once per stream commit, the
//!   commit metadata format, quarantine, compaction and vacuum;
//! - [`sync`]: one time slice of every stream: pages, commits, checkpoints in RAW;
//! - [`snapshot`]: the **publish layer**: the latest state of every live instance per view,
//!   and ([`snapshot::catalog`]) its Glue Data Catalog tables for Athena;
//! - [`maintenance`]: the raw tables' upkeep on the snapshot's schedule;
//! - [`status`]: what `cdf-s3-replicator status` reports;
//! - [`verify`]: the read-only check of the published files against CDF (counts, a seeded
//!   sample compared value by value, manifests, foreign commits), divergences apart from lag;
//! - [`progress`]: live progress of a run, for the CLI's terminal display;
//! - [`job`]: the contract every job keeps: its inputs (deadline, selection of views,
//!   progress) and its outcome;
//! - [`jobs`]: the composition of the jobs, shared by the CLI and the functions, and a
//!   snapshot split into units for many workers ([`jobs::fan_out`]);
//! - [`failure`]: why a part of a run failed, and whether a retry helps;
//! - [`lambda`]: the two AWS Lambda functions, independent of the Lambda runtime crate;
//! - [`secret`] and [`telemetry`]: secrets that never reach a log, and the CLI's logging;
//! - [`failpoint`]: named crash points, compiled in for the test suite only.

// The module docs are a map of the crate's internals and link to crate-private items; they
// resolve with `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]
// Everything the library exposes says what a caller needs to know.
#![warn(missing_docs)]

pub mod cdf;
mod clock;
pub mod config;
pub mod context;
pub mod failpoint;
pub mod failure;
mod flatten;
pub mod job;
pub mod jobs;
pub mod lake;
pub mod lambda;
pub mod maintenance;
mod plan;
pub mod progress;
pub mod schema;
mod secret;
pub mod snapshot;
pub mod status;
pub mod sync;
pub mod telemetry;
pub mod verify;
