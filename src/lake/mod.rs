//! The raw layer: Delta Lake tables on S3 (or a local directory), written exactly once per
//! stream commit.
//!
//! - [`destination`]: bucket/prefix or directory, table URLs and the storage options that make
//!   S3 commits conditional (put-if-absent).
//! - [`layout`]: where each table and published file lives.
//! - [`identity`]: the lake's identity (`raw/_lake.json`), which its RAW state rows record.
//! - [`commit_metadata`]: what each replicator commit stores in its commitInfo (stream key,
//!   checkpoint, generation and its flags, compaction origin), versioned: the on-disk
//!   contract that sync, snapshot and maintenance read back.
//! - [`quarantine`]: the per-view table of instances that could not be written.
//! - [`LakeTable`]: open or create a table, [`LakeTable::append`] batches with a `txn` action
//!   and stream metadata in one commit, read a stream's state back
//!   ([`LakeTable::txn_version`], [`LakeTable::last_stream_commit`]), read the log
//!   ([`LakeTable::active_files`], [`LakeTable::changes_since`]) and maintain the table
//!   ([`LakeTable::compact`], [`LakeTable::create_checkpoint`], [`LakeTable::vacuum`]).

mod append;
pub(crate) mod commit_metadata;
mod compaction;
pub(crate) mod destination;
mod error;
pub(crate) mod identity;
pub(crate) mod layout;
pub(crate) mod live_keys;
mod log;
mod maintenance;
pub(crate) mod quarantine;
mod schema_evolution;
mod stream_state;
mod table;

pub use append::{CommitOutcome, CommitReport, StreamCommit};
pub use commit_metadata::CompactionInfo;
pub use commit_metadata::{
    CompactionCommitInfo, MembershipPass, MembershipScan, Phase, StreamCheckpoint,
    StreamCommitInfo, StreamMetadata,
};
pub use compaction::CompactionOptions;
pub use compaction::CompactionOutcome;
pub(crate) use compaction::{CompactedGroup, DEFAULT_MAX_LOG_SCAN, DEFAULT_TARGET_FILE_SIZE};
pub(crate) use destination::StaticCredentials;
pub use destination::{Destination, LocalDestination, S3Destination};
pub use error::LakeError;
pub(crate) use error::LakeResult;
pub use identity::{IDENTITY_PATH, IdentityError, LakeIdentity};
pub use layout::{InstanceKind, ModelRef, ViewFolder};
pub use log::VersionChanges;
#[cfg(test)]
pub(crate) use log::{AppTransaction, DataFile};
pub use maintenance::VacuumScope;
pub(crate) use stream_state::DEFAULT_STREAM_COMMIT_SCAN;
pub use table::{FileCompression, LakeTable, WriteOptions};
