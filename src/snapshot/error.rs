//! Errors of the publish layer. Each names the object, table or local file involved, because
//! they end up in a log line and in the run summary, where nobody can attach a debugger.

use deltalake::ObjectStoreError;
use deltalake::arrow::error::ArrowError;
use deltalake::parquet::errors::ParquetError;

use crate::failure::{Cause, Failure};
use crate::lake::LakeError;
use crate::schema::{AlignError, PublishError};

pub(crate) type SnapshotResult<T> = Result<T, SnapshotError>;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Lake(#[from] LakeError),

    /// A table that streams write does not exist: none of them has committed yet, because
    /// their sync failed or has not run. Publishing an empty file would tell readers that
    /// every instance was deleted.
    #[error(
        "the raw table {table} does not exist: no sync of its streams ({streams}) has succeeded \
         yet. Run sync first (if it ran, see the sync summary for their error). The published \
         file is left as it was"
    )]
    NoRawTable { table: String, streams: String },

    #[error("{operation} {path}: {source}")]
    Store {
        /// What was being done (`reading`, `writing`, `checking`).
        operation: &'static str,
        path: String,
        #[source]
        source: ObjectStoreError,
    },

    #[error("Parquet file {path}: {context}: {source}")]
    Parquet {
        path: String,
        context: &'static str,
        #[source]
        source: ParquetError,
    },

    #[error("raw file {path}: does not fit the table schema: {source}")]
    Align {
        path: String,
        #[source]
        source: Box<AlignError>,
    },

    #[error("raw file {path}: converting to the publish form: {source}")]
    Publish {
        path: String,
        #[source]
        source: Box<PublishError>,
    },

    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: ArrowError,
    },

    #[error("local spill file {path}: {context}: {source}")]
    Spill {
        path: String,
        context: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("local spill file {path}: {context}: {source}")]
    SpillFormat {
        path: String,
        context: &'static str,
        #[source]
        source: ArrowError,
    },

    #[error("manifest {path}: {reason}")]
    Manifest { path: String, reason: String },

    /// Another snapshot run of the same destination changed `path` while this run worked
    /// on the view: the view's publication starts over from what is there now.
    #[error("{path}: {reason}")]
    Conflict { path: String, reason: String },

    /// A rebuild shard whose build no longer describes the raw table (its schema changed, or
    /// the build's objects are gone): the next run plans a new build.
    #[error("rebuild shards under {dir}: {reason}")]
    ShardBuild { dir: String, reason: String },

    #[error("raw table {table}: column {column:?} is missing or is not a string column")]
    MissingKeyColumn { table: String, column: &'static str },

    /// A task that decoded, sorted or encoded rows on another thread panicked or was
    /// cancelled.
    #[error("{context}: the worker task failed: {source}")]
    Worker {
        context: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl SnapshotError {
    /// A store error. A failed precondition (a read or write pinned to an object version
    /// that is no longer there) is a [`SnapshotError::Conflict`].
    pub(crate) fn store(
        operation: &'static str,
        path: impl Into<String>,
        source: ObjectStoreError,
    ) -> Self {
        match source {
            ObjectStoreError::Precondition { .. } => SnapshotError::Conflict {
                path: path.into(),
                reason: format!("replaced by another snapshot run while {operation} it"),
            },
            source => SnapshotError::Store {
                operation,
                path: path.into(),
                source,
            },
        }
    }

    /// A Parquet error; one that is a store error underneath (the reader's or the upload's
    /// request failed) is classified as that store error.
    pub(crate) fn parquet(
        path: impl Into<String>,
        context: &'static str,
        source: ParquetError,
    ) -> Self {
        match source {
            ParquetError::External(inner) => match inner.downcast::<ObjectStoreError>() {
                Ok(store) => Self::store("reading", path, *store),
                Err(inner) => SnapshotError::Parquet {
                    path: path.into(),
                    context,
                    source: ParquetError::External(inner),
                },
            },
            source => SnapshotError::Parquet {
                path: path.into(),
                context,
                source,
            },
        }
    }

    pub(crate) fn arrow(context: impl Into<String>, source: ArrowError) -> Self {
        SnapshotError::Arrow {
            context: context.into(),
            source,
        }
    }

    /// Why the file failed, for whoever decides whether to run again.
    pub(crate) fn cause(&self) -> Cause {
        match self {
            SnapshotError::Lake(error) => Cause::of_lake(error),
            // The next snapshot after the view's first successful sync publishes it.
            SnapshotError::NoRawTable { .. } => Cause::NotSynced,
            SnapshotError::Store { source, .. } => crate::failure::of_object_store(source),
            // Two runs published the view at once; the next run finds one consistent state.
            SnapshotError::Conflict { .. } => Cause::CommitConflict,
            SnapshotError::ShardBuild { .. } => Cause::UnitIncomplete,
            SnapshotError::Align { .. } | SnapshotError::Manifest { .. } => Cause::LakeInconsistent,
            SnapshotError::Spill { .. } | SnapshotError::SpillFormat { .. } => Cause::LocalStorage,
            SnapshotError::Parquet { .. }
            | SnapshotError::Publish { .. }
            | SnapshotError::Arrow { .. }
            | SnapshotError::MissingKeyColumn { .. }
            | SnapshotError::Worker { .. } => Cause::Internal,
        }
    }

    /// The error as a failure of a run's part, classified by [`Self::cause`].
    pub(crate) fn to_failure(&self) -> Failure {
        Failure::new(self.cause(), self.to_string())
    }

    /// Whether another run changed what this run was working on.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, SnapshotError::Conflict { .. })
    }

    /// Whether the error says that an object does not exist (as opposed to being unreadable).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(
            self,
            SnapshotError::Store {
                source: ObjectStoreError::NotFound { .. },
                ..
            }
        )
    }
}
