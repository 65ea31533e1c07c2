//! A handle on one raw Delta table: open it, create it on first write, refresh it.

use std::collections::HashMap;

use deltalake::Path;
use deltalake::arrow::datatypes::SchemaRef as ArrowSchemaRef;
use deltalake::kernel::Action;
use deltalake::kernel::StructType;
use deltalake::kernel::transaction::{
    CommitBuilder, CommitProperties, TableReference, TransactionError,
};
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::DeltaOperation;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use percent_encoding::percent_decode_str;
use url::Url;

use super::destination::{Destination, register_storage_handlers};
use super::error::{LakeError, LakeResult};

/// Parquet compression of data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCompression {
    /// Snappy: fastest, read by every Parquet reader.
    Snappy,
    /// Zstandard at the given level (1..=22): smaller files at a modest CPU cost.
    Zstd(i32),
}

/// How appends write their files and how hard they fight for a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Maximum rows per Parquet row group. Each append writes one file; large appends get
    /// several row groups so that readers can parallelize and skip.
    pub rows_per_row_group: usize,
    /// Data file compression.
    pub compression: FileCompression,
    /// How many times one append tries to commit when concurrent writers win the race.
    pub max_commit_attempts: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            rows_per_row_group: 256 * 1024,
            compression: FileCompression::Zstd(3),
            max_commit_attempts: 10,
        }
    }
}

impl WriteOptions {
    pub(crate) fn writer_properties(&self, url: &Url) -> LakeResult<WriterProperties> {
        let compression = match self.compression {
            FileCompression::Snappy => Compression::SNAPPY,
            FileCompression::Zstd(level) => {
                let level = ZstdLevel::try_new(level).map_err(|e| LakeError::InvalidOption {
                    option: "zstd compression level",
                    value: level.to_string(),
                    reason: e.to_string(),
                })?;
                Compression::ZSTD(level)
            }
        };
        if self.rows_per_row_group == 0 {
            return Err(LakeError::InvalidOption {
                option: "rows-per-row-group",
                value: "0".into(),
                reason: format!("expected a positive row count (table {url})"),
            });
        }
        Ok(WriterProperties::builder()
            .set_created_by(format!(
                "cdf-s3-replicator {} (delta-rs {})",
                env!("CARGO_PKG_VERSION"),
                deltalake::crate_version()
            ))
            .set_compression(compression)
            .set_max_row_group_row_count(Some(self.rows_per_row_group))
            .build())
    }
}

/// One Delta table of the raw layer.
///
/// The handle caches the table snapshot it last loaded or committed. Reads (txn versions,
/// files, schema) answer from that snapshot; [`LakeTable::refresh`] moves it to the newest
/// version. A stale snapshot never causes a wrong write: appends are checked against
/// concurrent commits when they commit.
pub struct LakeTable {
    pub(crate) url: Url,
    pub(crate) table: DeltaTable,
    pub(crate) options: WriteOptions,
}

impl std::fmt::Debug for LakeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeTable")
            .field("url", &self.url.as_str())
            .field("version", &self.version())
            .finish()
    }
}

impl LakeTable {
    /// Opens the table at `url` of `destination`, loading its newest snapshot. A table that
    /// does not exist yet is not an error: the first append creates it.
    pub async fn open(
        destination: &Destination,
        url: Url,
        options: WriteOptions,
    ) -> LakeResult<Self> {
        if let Destination::Local(_) = destination {
            let path = url
                .to_file_path()
                .map_err(|()| LakeError::InvalidDestination {
                    field: "path",
                    value: url.to_string(),
                    reason: "expected a file:// URL for a local destination".into(),
                })?;
            std::fs::create_dir_all(&path).map_err(|source| LakeError::LocalIo {
                path: path.display().to_string(),
                source,
            })?;
        }
        Self::open_with_storage_options(url, destination.storage_options(), options).await
    }

    /// Opens the table at `url` of `destination` for reading: `None` when it does not exist.
    /// Unlike [`Self::open`], it never creates anything, so that read-only commands (status,
    /// verify) leave a lake exactly as they found it.
    pub async fn open_existing(destination: &Destination, url: Url) -> LakeResult<Option<Self>> {
        if let Destination::Local(_) = destination {
            let log = url.to_file_path().map(|p| p.join("_delta_log"));
            if !log.is_ok_and(|log| log.is_dir()) {
                return Ok(None);
            }
        }
        let table = Self::open_with_storage_options(
            url,
            destination.storage_options(),
            WriteOptions::default(),
        )
        .await?;
        Ok(table.exists().then_some(table))
    }

    /// Opens a table with explicit delta-rs storage options.
    pub async fn open_with_storage_options(
        url: Url,
        storage_options: HashMap<String, String>,
        options: WriteOptions,
    ) -> LakeResult<Self> {
        register_storage_handlers();
        options.writer_properties(&url)?;
        let table = DeltaTableBuilder::from_url(url.clone())
            .and_then(|builder| builder.with_storage_options(storage_options).build())
            .map_err(|e| LakeError::delta(&url, "configuring the table storage", e))?;
        let mut handle = LakeTable {
            url,
            table,
            options,
        };
        handle.refresh().await?;
        Ok(handle)
    }

    /// The table URL.
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// Whether the table exists (as of the last load or refresh).
    pub fn exists(&self) -> bool {
        self.table.state.is_some()
    }

    /// The loaded Delta version, `None` while the table does not exist.
    pub fn version(&self) -> Option<u64> {
        self.table.version()
    }

    /// The table schema in Arrow form, `None` while the table does not exist.
    pub fn arrow_schema(&self) -> Option<ArrowSchemaRef> {
        self.table
            .state
            .as_ref()
            .map(|state| state.snapshot().arrow_schema())
    }

    /// An object store rooted at the table directory; data file paths from
    /// [`LakeTable::active_files`] and [`LakeTable::changes_since`] are relative to it.
    pub fn object_store(&self) -> ObjectStoreRef {
        self.table.object_store()
    }

    /// Loads the newest version of the table (or notices that it was created meanwhile).
    pub async fn refresh(&mut self) -> LakeResult<()> {
        let result = if self.table.state.is_some() {
            self.table.update_state().await
        } else {
            self.table.load().await
        };
        match result {
            Ok(()) => Ok(()),
            Err(DeltaTableError::NotATable(_)) if self.table.state.is_none() => Ok(()),
            Err(e) => Err(LakeError::delta(&self.url, "loading the table", e)),
        }
    }

    /// Commits `actions` on top of the loaded snapshot and loads the result. Checkpoints and
    /// log cleanup never run inside a data commit: a checkpoint follows the commit, where its
    /// failure cannot make a landed commit look failed, and log cleanup belongs to
    /// maintenance.
    pub(crate) async fn commit_on_snapshot(
        &mut self,
        properties: CommitProperties,
        actions: Vec<Action>,
        operation: DeltaOperation,
    ) -> Result<u64, DeltaTableError> {
        let state = self.table.snapshot()?;
        let properties = properties
            .with_create_checkpoint(false)
            .with_cleanup_expired_logs(Some(false));
        let finalized = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(
                Some(state as &dyn TableReference),
                self.table.log_store(),
                operation,
            )
            .await?;
        let version = finalized.version;
        self.table.state = Some(finalized.snapshot);
        Ok(version)
    }

    /// Creates the table with `schema` as version 0, unless another writer already did.
    /// Returns whether this call created it.
    ///
    /// The create commit gets no retries: if two writers race for version 0, the loser must
    /// not commit its protocol and schema again as version 1 (delta-rs would, on retry), it
    /// must load the winner's table instead.
    pub(crate) async fn create(&mut self, schema: &StructType) -> LakeResult<bool> {
        let created = self
            .table
            .create()
            .with_columns(schema.fields().cloned())
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_commit_properties(
                CommitProperties::default()
                    .with_max_retries(0)
                    .with_create_checkpoint(false)
                    .with_cleanup_expired_logs(Some(false)),
            )
            .await;
        match created {
            Ok(table) => {
                self.table = table;
                Ok(true)
            }
            Err(error) => {
                // Lost the race (or the table appeared since the last refresh): use theirs.
                self.refresh().await?;
                if self.exists() {
                    tracing::info!(table = %self.url, "table was created concurrently; using it");
                    Ok(false)
                } else {
                    Err(LakeError::delta(&self.url, "creating the table", error))
                }
            }
        }
    }

    /// Deletes files that no commit references. A failure leaves an orphan for a full vacuum,
    /// so it is logged (with `what` the files were), not returned.
    pub(crate) async fn delete_orphans<P: AsRef<str> + Sync>(&self, paths: &[P], what: &str) {
        let store = self.table.object_store();
        for path in paths {
            let path = path.as_ref();
            if let Err(error) = store.delete(&object_path(path)).await {
                tracing::warn!(table = %self.url, file = %path, %error,
                    "could not delete {what}; a full vacuum removes it");
            }
        }
    }
}

/// How orphans of a lost append are described in logs.
pub(crate) const LOST_COMMIT: &str = "a data file of a lost commit";
/// How merged files that were never committed are described in logs.
pub(crate) const UNCOMMITTED_COMPACTION: &str = "an uncommitted compacted file";

/// The object path of a file path as the Delta log writes it (percent-encoded).
pub(crate) fn object_path(path: &str) -> Path {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    match Path::parse(decoded.as_ref()) {
        Ok(path) => path,
        Err(_) => Path::from(decoded.as_ref()),
    }
}

/// Whether a commit failed because another writer committed first. Only then is it certain
/// that this attempt's commit file was not written.
pub(crate) fn is_commit_race(error: &DeltaTableError) -> bool {
    matches!(
        error,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(_)
                    | TransactionError::MaxCommitAttempts(_)
                    | TransactionError::VersionAlreadyExists(_)
            }
    )
}
