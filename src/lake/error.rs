//! Errors of the lake layer.
//!
//! Every variant names the table (or destination) and the offending value, because these
//! errors end up in a Lambda log line and in the extraction-pipeline run message, where
//! nobody can attach a debugger.

use deltalake::DeltaTableError;
use deltalake::arrow::error::ArrowError;

/// Result type of the lake layer.
pub type LakeResult<T> = Result<T, LakeError>;

/// What went wrong in the lake layer.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// A path segment (space, model, version, view, ...) would escape or break the layout.
    #[error("invalid {what} {value:?} for an S3/local path segment: {reason}")]
    InvalidSegment {
        /// Which identifier was rejected (for example `view externalId`).
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The destination settings cannot form a valid location.
    #[error("invalid destination {field}: {value:?}: {reason}")]
    InvalidDestination {
        /// Which setting (for example `bucket`).
        field: &'static str,
        /// The rejected value.
        value: String,
        /// What was expected.
        reason: String,
    },

    /// A write or maintenance option is out of range.
    #[error("invalid {option} {value:?}: {reason}")]
    InvalidOption {
        /// The option (for example `rows-per-row-group`).
        option: &'static str,
        /// The rejected value.
        value: String,
        /// What was expected.
        reason: String,
    },

    /// A local directory could not be prepared.
    #[error("cannot prepare local table directory {path}: {source}")]
    LocalIo {
        /// The directory.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Any failure reported by delta-rs that is not a commit race.
    #[error("Delta table {url}: {context}: {source}")]
    Delta {
        /// The table URL.
        url: String,
        /// The step that failed (for example `loading the table`).
        context: &'static str,
        /// The delta-rs error.
        #[source]
        source: Box<DeltaTableError>,
    },

    /// Concurrent writers kept winning the commit race and the retry budget ran out.
    #[error(
        "Delta table {url}: commit of stream {app_id:?} (txn version {txn_version}) lost the \
         commit race {attempts} times against concurrent writers: {last_error}"
    )]
    Conflict {
        /// The table URL.
        url: String,
        /// The stream key.
        app_id: String,
        /// The txn version that could not be committed.
        txn_version: i64,
        /// How many commit attempts were made.
        attempts: u32,
        /// The conflict reported by delta-rs on the last attempt.
        last_error: String,
    },

    /// A column's type changed in a way that cannot be stored in the existing table without
    /// losing data. The caller decides what to do (typically: a new table generation).
    #[error(
        "Delta table {url}: column {column:?} is stored as {table_type} but the new data has \
         {batch_type}; this change cannot be stored without losing data (lossless widenings \
         are byte/short/integer to long or double, float to double, and any primitive to string)"
    )]
    IncompatibleType {
        /// The table URL.
        url: String,
        /// The column name.
        column: String,
        /// The Delta type of the column in the table.
        table_type: String,
        /// The Delta type of the column in the new data.
        batch_type: String,
    },

    /// The table has a non-nullable column that the new data does not provide.
    #[error(
        "Delta table {url}: column {column:?} is required (non-nullable) but the new data \
         does not contain it"
    )]
    MissingRequiredColumn {
        /// The table URL.
        url: String,
        /// The column name.
        column: String,
    },

    /// The batches passed to one append do not share one schema.
    #[error(
        "Delta table {url}: batch {index} of one append has a different schema than batch 0; \
         all batches of one append must share a schema"
    )]
    MixedBatchSchemas {
        /// The table URL.
        url: String,
        /// Index of the first deviating batch.
        index: usize,
    },

    /// The table does not exist yet and there is no data (no schema) to create it from.
    #[error(
        "Delta table {url} does not exist and the append carries no batch to take a schema from"
    )]
    TableMissing {
        /// The table URL.
        url: String,
    },

    /// A negative or otherwise unusable txn version was passed.
    #[error("stream {app_id:?}: txn version {txn_version} is invalid, expected a value >= 0")]
    InvalidTxnVersion {
        /// The stream key.
        app_id: String,
        /// The rejected version.
        txn_version: i64,
    },

    /// Converting or casting Arrow data for the table failed.
    #[error("Delta table {url}: {context}: {source}")]
    Arrow {
        /// The table URL.
        url: String,
        /// What was being done (names the column when there is one).
        context: String,
        /// The Arrow error.
        #[source]
        source: ArrowError,
    },

    /// A commit file in the requested range is gone (log retention) or never existed.
    #[error(
        "Delta table {url}: the commit file of version {version} is not available (removed by \
         log retention, or the version does not exist yet)"
    )]
    LogUnavailable {
        /// The table URL.
        url: String,
        /// The missing version.
        version: u64,
    },

    /// The replicator's commit metadata could not be encoded.
    #[error("Delta table {url}: encoding the commit metadata: {source}")]
    CommitMetadata {
        /// The table URL.
        url: String,
        /// The encoding error.
        #[source]
        source: serde_json::Error,
    },

    /// A data file of the table could not be read as the table's Parquet.
    #[error("Delta table {url}: data file {path}: {detail}")]
    UnreadableDataFile {
        /// The table URL.
        url: String,
        /// The file's path in the table.
        path: String,
        /// What was wrong.
        detail: String,
    },

    /// A commit file could not be parsed.
    #[error("Delta table {url}: commit file of version {version} is malformed: {reason}")]
    MalformedLog {
        /// The table URL.
        url: String,
        /// The version of the commit file.
        version: u64,
        /// What was wrong.
        reason: String,
    },

    /// The snapshot knows a txn version for the stream but its commit was not found in the log.
    #[error(
        "Delta table {url}: stream {app_id:?} is at txn version {txn_version}, but no commit \
         carrying it was found in the {scanned} newest readable commits"
    )]
    StreamCommitNotFound {
        /// The table URL.
        url: String,
        /// The stream key.
        app_id: String,
        /// The txn version recorded in the snapshot.
        txn_version: i64,
        /// How many commits were scanned.
        scanned: u64,
    },
}

impl LakeError {
    pub(crate) fn delta(
        url: &impl ToString,
        context: &'static str,
        source: DeltaTableError,
    ) -> Self {
        LakeError::Delta {
            url: url.to_string(),
            context,
            source: Box::new(source),
        }
    }

    pub(crate) fn arrow(
        url: &impl ToString,
        context: impl Into<String>,
        source: ArrowError,
    ) -> Self {
        LakeError::Arrow {
            url: url.to_string(),
            context: context.into(),
            source,
        }
    }
}
