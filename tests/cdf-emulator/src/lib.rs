//! A stateful emulator of the Cognite Data Fusion (CDF) REST API subset that
//! cdf-s3-replicator uses: OAuth2 client credentials, Data Modeling schema and instances
//! (including `instances/sync`), RAW and extraction pipelines, plus fault injection and a
//! controllable clock for tests.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let emu = cdf_emulator::Emulator::start(cdf_emulator::EmulatorConfig::default()).await?;
//! println!("{} {}", emu.base_url(), emu.token_url());
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

mod auth;
mod clock;
mod config;
mod control;
mod datasets;
mod deep;
mod error;
mod extpipes;
mod faults;
mod ids;
mod instances;
mod raw;
mod request_log;
pub mod sample_model;
mod schema;
mod server;
mod state;
mod timefmt;

pub use config::{EmulatorConfig, THREE_DAYS};
pub use control::{Control, ViewMember};
pub use error::ApiError;
pub use faults::FaultSpec;
pub use ids::{ContainerId, NodeId, ViewId};
pub use instances::cursor::{EXPIRED_CURSOR, INVALID_CURSOR};
pub use instances::seed::SeedNode;
pub use instances::store::Kind as InstanceKind;
pub use instances::sync::BACKFILL_SORT_NEEDS_TWO_PHASE;
pub use request_log::RequestRecord;
pub use server::Emulator;
pub use timefmt::{format_timestamp, parse_timestamp};
