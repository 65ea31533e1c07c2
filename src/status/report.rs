//! The status report: what `cdf-s3-replicator status` prints, as serde types so that
//! `--json` and the terminal table show the same figures.
//!
//! Every field is read, never computed from a guess: checkpoint fields come from the RAW
//! state row (or, when the Delta log is ahead of it, from the checkpoint stored in the
//! stream's newest Delta commit), table and file fields from the Delta log and
//! `_manifest.json`. A piece that is missing is `null` / a variant saying so, never an
//! error for the whole report.

use serde::Serialize;

use crate::lake::Phase;

/// Everything `status` found, at one instant.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// When the report was gathered, RFC 3339 UTC; every age and lag is relative to it.
    pub(crate) generated_at: String,
    /// The same instant in epoch milliseconds.
    pub(crate) generated_at_ms: i64,
    /// The RAW state table, `database/table`.
    pub(crate) state_table: String,
    /// Why the state rows could not be read (`null` when they could, or when the table does
    /// not exist yet). Streams are still shown, from the Delta log alone.
    pub state_error: Option<String>,
    /// Models or views that could not be resolved, each naming the cause.
    pub plan_errors: Vec<crate::failure::Failure>,
    /// Every configured stream, whether it ever ran or not.
    pub streams: Vec<StreamStatus>,
    /// Every configured view's publish folder.
    pub views: Vec<ViewStatus>,
    /// The scheduled verifications: when the last complete pass ended, and whether one is
    /// in progress (`null`: none ever ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationPasses>,
}

/// The state of the scheduled verification passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationPasses {
    /// When the last complete pass ended, RFC 3339.
    pub last_complete_at: Option<String>,
    /// Files verified so far by the pass in progress (`null`: none in progress).
    pub in_progress_files_done: Option<usize>,
}

impl StatusReport {
    /// Whether the configured models could be read at all: a report with no streams and
    /// plan errors shows nothing but the errors.
    pub fn could_plan(&self) -> bool {
        !self.streams.is_empty() || self.plan_errors.is_empty()
    }
}

/// How far a stream is, per its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Progress {
    /// Streaming, and the last sync call returned a short page (nothing more was waiting)
    /// and succeeded.
    CaughtUp,
    /// In its backfill, or streaming but the last call returned a full page: more is
    /// waiting, the next run continues.
    Behind,
    /// The last turn failed (`lastError` says why); the next run retries from the
    /// committed cursor.
    Failed,
    /// Neither a RAW row nor a Delta commit: the stream never ran.
    NotStarted,
    /// Streaming, but only RAW says whether its last call found more waiting, and the RAW
    /// row could not be read (CDF unreachable: see `stateError`).
    Unknown,
}

impl Progress {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Progress::CaughtUp => "caught up",
            Progress::Behind => "behind",
            Progress::Failed => "failed",
            Progress::NotStarted => "not started",
            Progress::Unknown => "unknown",
        }
    }
}

/// Whether the RAW row and the Delta log agree on the stream's last commit (its `seq`, the
/// Delta `txn` version of the stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Agreement {
    /// Same sequence number in both.
    Agree,
    /// The Delta log holds newer commits than RAW records (a run stopped between its Delta
    /// commit and its RAW write): the next run continues from the Delta log. The figures
    /// shown are from the Delta log's checkpoint.
    DeltaAhead,
    /// RAW records more commits than the table holds (the table was deleted or replaced):
    /// the next run starts a new generation.
    RawAhead,
    /// The table has commits of the stream but there is no RAW row (deleted, never written
    /// to this state table, or unreadable): the next run continues from the Delta log and
    /// writes the row.
    NoStateRow,
    /// A RAW row but no commit yet (the generation began, nothing committed so far).
    NoCommits,
    /// Neither.
    NotStarted,
    /// One side could not be read; `error` says which.
    Unknown,
    /// The RAW row was written for another lake (two deployments share the state table):
    /// the next run stops the stream with `StateOfAnotherLake`, as `error` says, and the
    /// figures shown are this lake's, from its Delta log.
    OtherLake,
}

impl Agreement {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Agreement::Agree => "agree",
            Agreement::DeltaAhead => "delta ahead",
            Agreement::RawAhead => "raw ahead",
            Agreement::NoStateRow => "no raw row",
            Agreement::NoCommits => "no commits",
            Agreement::NotStarted => "-",
            Agreement::Unknown => "unknown",
            Agreement::OtherLake => "other lake's row",
        }
    }
}

/// Which copy of the checkpoint the stream's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum CheckpointSource {
    /// The RAW state row.
    Raw,
    /// The checkpoint in the metadata of the stream's newest Delta commit.
    Delta,
}

/// One stream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// The stream key (RAW row key and Delta `txn` appId).
    pub key: String,
    /// `space:model/version`.
    pub(crate) model: String,
    /// The view's externalId.
    pub(crate) view: String,
    /// `nodes` or `edges`.
    pub(crate) table: String,
    /// The raw table, relative to the destination prefix.
    pub(crate) table_path: String,
    /// `backfill` or `streaming`; `null` when the stream never ran.
    pub phase: Option<Phase>,
    /// How far the stream is.
    pub progress: Progress,
    /// The checkpoint's generation (a new one starts with each full backfill); `null` when the
    /// stream never ran.
    pub generation: Option<u64>,
    /// Rows the stream committed over its lifetime (`rowsTotal` of the checkpoint: the sum
    /// of the `rows` of its sync summaries), all generations included.
    pub rows: Option<u64>,
    /// The last successful sync call, epoch milliseconds and RFC 3339.
    pub(crate) last_success_ms: Option<i64>,
    /// The last successful sync call, RFC 3339 UTC.
    pub last_success: Option<String>,
    /// `generatedAt` minus `lastSuccess`, milliseconds.
    pub(crate) last_success_age_ms: Option<i64>,
    /// Milliseconds from the newest change the stream has seen (`newestChange`, the
    /// newest `lastUpdatedTime` or `deletedTime`) to `generatedAt`: the `Lag` metric. It
    /// grows while CDF has no changes, so read it with `progress`.
    pub lag_ms: Option<i64>,
    /// The error of the last failed turn, as the checkpoint stores it (redacted).
    pub last_error: Option<String>,
    pub(crate) checkpoint_source: Option<CheckpointSource>,
    /// Whether the RAW row and the Delta log agree on the stream's last commit.
    pub agreement: Agreement,
    /// `seq` of the RAW row.
    pub raw_seq: Option<i64>,
    /// The stream's `txn` version in the Delta log.
    pub delta_seq: Option<i64>,
    /// The configured query differs from the checkpoint's (`queryHash`): the next run
    /// starts a new generation.
    pub(crate) query_changed: bool,
    /// What the RAW row says less than the Delta log (an older generation, another
    /// stream's query, fewer commits...): the next run continues from the log and rewrites
    /// the row; the figures shown are the log's. `null` when the row agrees.
    pub repair: Option<String>,
    /// Why part of this stream could not be read (redacted); the other fields show what
    /// could.
    pub error: Option<String>,
    /// The stream's membership scan; `null` when the stream never ran.
    pub membership: Option<MembershipStatus>,
}

/// Where a stream's membership scan stands (README, "How sync works").
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipStatus {
    /// When the last complete pass (or the generation's backfill) ended, RFC 3339 UTC;
    /// `null` before the first.
    pub last_pass: Option<String>,
    /// `generatedAt` minus the last pass, milliseconds.
    pub last_pass_age_ms: Option<i64>,
    /// A pass is in progress; the next caught-up run continues it.
    pub pass_in_progress: bool,
    /// Instances refreshed by the pass in progress so far.
    pub refreshed: u64,
    /// Exit rows written by the pass in progress so far.
    pub exited: u64,
}

/// One view's publish folder.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewStatus {
    /// `space:model/version`.
    pub(crate) model: String,
    /// The view folder's full name (its path may be the short form of a long name).
    pub view: String,
    /// The folder, relative to the destination prefix.
    pub(crate) publish_path: String,
    /// `found`, `missing` (never published) or `unusable` (see `error`).
    pub(crate) manifest: ManifestPresence,
    /// `nodes` and `edges`.
    pub files: Vec<PublishedFileStatus>,
    /// Why the manifest could not be used (redacted).
    pub(crate) error: Option<String>,
    /// Set while a snapshot's deadline has left part of the view for a later run: since
    /// when the view has been waiting (the manifest's `pendingSince`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pending_since: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ManifestPresence {
    Found,
    Missing,
    Unusable,
}

/// Whether a published file reflects its raw table's newest data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Freshness {
    /// Built from the table's current version, or only maintenance commits (compaction:
    /// no data change, no stream commit) came after the version it was built from.
    Current,
    /// The table has stream commits after the version the file was built from: the next
    /// snapshot publishes them.
    Behind,
    /// The manifest has no entry for the file (the view was never published).
    Unpublished,
    /// The manifest names the file but the object is gone.
    Missing,
    /// The table or the manifest could not be read; `error` says why.
    Unknown,
}

impl Freshness {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Freshness::Current => "current",
            Freshness::Behind => "behind",
            Freshness::Unpublished => "unpublished",
            Freshness::Missing => "missing",
            Freshness::Unknown => "unknown",
        }
    }
}

/// One published file of a view.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedFileStatus {
    /// `nodes` or `edges`.
    pub kind: String,
    /// The object, relative to the destination prefix.
    pub(crate) path: String,
    /// Whether the file reflects the raw table's newest data.
    pub freshness: Freshness,
    /// When the file was published (the manifest entry's `writtenAt`), RFC 3339.
    pub published_at: Option<String>,
    /// `generatedAt` minus `publishedAt`, milliseconds.
    pub age_ms: Option<i64>,
    /// The object's last-modified time as the store reports it, RFC 3339.
    pub last_modified: Option<String>,
    /// The raw table's Delta version the file was built from.
    pub published_version: Option<u64>,
    /// The raw table's current Delta version (`null`: the view has no stream of this kind,
    /// or the table does not exist yet).
    pub table_version: Option<u64>,
    /// Rows in the published file, from the manifest.
    pub rows: Option<u64>,
    /// Rows in the raw table's active files, from the row counts the Delta log records for
    /// each file (no data file is read); `null` when a file has no statistics.
    pub table_rows: Option<u64>,
    /// Why the file's state is unknown (redacted).
    pub error: Option<String>,
    /// The last scheduled verification of the file against CDF (`null`: none yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<LastVerification>,
}

/// What the last scheduled verification of a published file found (the snapshot function
/// and `run` record it; the CLI's `verify` prints its own report and records nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastVerification {
    /// When, RFC 3339.
    pub verified_at: String,
    /// `generatedAt` minus `verifiedAt`, milliseconds.
    pub age_ms: i64,
    /// Distinct instances sampled.
    pub sampled: u64,
    /// Divergences of every class.
    pub divergences: u64,
    /// Divergences by class, only classes found.
    pub classes: std::collections::BTreeMap<String, u64>,
    /// Why the file could not be verified, when it could not (redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
