//! The validated configuration, with every default applied and plain Rust types.

use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigIssue;
use super::secret::Secret;

/// CDF's largest page for `instances/sync`; larger configured values are clamped to it.
pub const MAX_SYNC_PAGE_SIZE: u32 = 2_000;
/// CDF allows 8 concurrent instance reads per project by default.
pub const MAX_PARALLELISM: u32 = 8;

/// The complete, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Whether this configuration came from the local file alone or was merged with the
    /// remote configuration of an extraction pipeline (then it is reloaded on every run).
    pub(crate) kind: ConfigKind,
    /// `logger`: log level and format.
    pub logger: LoggerSettings,
    pub(crate) cognite: CogniteSettings,
    /// `extractor`: state table, batch sizes, parallelism, time budgets, snapshot and
    /// maintenance settings.
    pub extractor: ExtractorSettings,
    /// The data models to replicate, grouped by the space that holds each model.
    pub data_modeling: Vec<SpaceSelection>,
    /// `destination`: where the raw and published data go.
    pub destination: Destination,
    /// Glue Data Catalog registration after each snapshot (`destination.catalog.glue`);
    /// `None` when off.
    pub(crate) catalog: Option<GlueCatalogSettings>,
    /// Non-fatal notes for the operator, e.g. a value clamped to a CDF limit. Log them.
    pub warnings: Vec<ConfigIssue>,
    /// The `${VAR}` references that supplied the credentials, to show them in place of the
    /// values.
    pub(crate) secret_sources: SecretSources,
}

/// Which variable supplied each credential of the file (a value that is exactly `${VAR}`);
/// `None` for a credential written in the file or absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SecretSources {
    pub(crate) client_secret: Option<String>,
    pub(crate) s3_secret_access_key: Option<String>,
    pub(crate) s3_access_key_id: Option<String>,
}

impl SecretSources {
    /// The sources among `references` (`(key path, variable)` pairs of whole-value
    /// references, in either spelling of the keys).
    pub(crate) fn from_references(references: &[(String, String)]) -> Self {
        let find = |key: &str| {
            references
                .iter()
                .find(|(path, _)| path.replace('_', "-") == key)
                .map(|(_, variable)| variable.clone())
        };
        Self {
            client_secret: find("cognite.idp-authentication.secret"),
            s3_secret_access_key: find("destination.s3.secret-access-key"),
            s3_access_key_id: find("destination.s3.access-key-id"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfigKind {
    #[default]
    Local,
    Remote,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoggerSettings {
    pub level: LogLevel,
    /// `None` lets the binary choose: JSON in Lambda, text elsewhere.
    pub format: Option<LogFormat>,
}

impl LoggerSettings {
    #[cfg(test)]
    /// The format to use, given whether the process runs in AWS Lambda.
    pub(crate) fn format_or_default(&self, in_lambda: bool) -> LogFormat {
        self.format.unwrap_or(if in_lambda {
            LogFormat::Json
        } else {
            LogFormat::Text
        })
    }
}

/// `logger.console.level` (case-insensitive): the least severe events logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    /// `TRACE`: everything, the most verbose.
    Trace,
    /// `DEBUG`: diagnostic detail.
    Debug,
    /// `INFO`: what each run did (the default).
    #[default]
    Info,
    /// `WARNING` or `WARN`: only what needs attention, and failures.
    Warning,
    /// `ERROR` or `CRITICAL`: only failures.
    Error,
}

impl LogLevel {
    /// The level as a `tracing` / `EnvFilter` directive.
    pub(crate) fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// `logger.console.format` (`text` or `json`): how log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log tools (CloudWatch Logs Insights).
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CogniteSettings {
    /// Base URL of the CDF cluster, without a trailing slash, e.g. `https://api.cognitedata.com`.
    pub(crate) host: String,
    pub(crate) project: String,
    pub(crate) credentials: ClientCredentials,
    /// External id of the extraction pipeline: run reports go there, and with `type: remote`
    /// the configuration comes from it.
    pub(crate) extraction_pipeline: Option<String>,
    /// Time limit for one HTTP request.
    pub(crate) timeout: Duration,
    /// Retries of one request on throttling, 5xx and connection errors.
    pub(crate) max_retries: u32,
}

/// OAuth2 client-credentials grant.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCredentials {
    pub(crate) token_url: String,
    pub(crate) client_id: String,
    pub(crate) secret: Secret,
    /// Individual scopes; a configured value with spaces is split, as OAuth2 scopes are
    /// space-separated.
    pub(crate) scopes: Vec<String>,
    pub(crate) audience: Option<String>,
    pub(crate) resource: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExtractorSettings {
    /// RAW database and table holding one state row per stream.
    pub(crate) state_store: RawStateStore,
    /// Pause between sync cycles of the long-running `run` command.
    pub poll_time: Duration,
    /// Pause between publish snapshots of the long-running `run` command.
    pub snapshot_interval: Duration,
    /// The `subscription-batch-size` as configured (may exceed CDF's limit).
    pub(crate) subscription_batch_size: u32,
    /// The page size sent to `instances/sync`: `subscription_batch_size` clamped to
    /// [`MAX_SYNC_PAGE_SIZE`].
    pub(crate) sync_page_size: u32,
    /// Rows buffered per stream before one Delta commit.
    pub(crate) ingest_batch_size: usize,
    /// Rows per Parquet row group in the raw tables.
    pub(crate) s3_ingest_batch_size: usize,
    /// Bytes buffered per stream before one Delta commit, whichever budget is reached first.
    pub(crate) ingest_batch_bytes: u64,
    /// Streams synced at the same time (1..=8).
    pub(crate) parallelism: u32,
    /// Time one sync or snapshot invocation may take outside Lambda; `None` runs until all
    /// streams are caught up (every view is published). In Lambda the invocation's
    /// deadline applies instead.
    pub time_budget: Option<Duration>,
    /// Time kept free before the deadline: for sync's last flush and checkpoint, and for
    /// what a snapshot's estimates miss.
    pub deadline_margin: Duration,
    /// How often each stream compares its table with the instances that match its query
    /// now (the membership scan); `None` (configured as 0) never.
    pub(crate) membership_scan_interval: Option<Duration>,
    /// How often the snapshot function verifies the published files against CDF; `None`
    /// (configured as 0) never. The CLI's `verify` runs whenever it is asked.
    pub verify_interval: Option<Duration>,
    /// Keys sampled per published file by a verification.
    pub verify_sample: usize,
    pub snapshot: SnapshotSettings,
    pub(crate) maintenance: MaintenanceSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawStateStore {
    pub(crate) database: String,
    pub(crate) table: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSettings {
    /// Local directory for spill files of the snapshot merge.
    pub temp_dir: PathBuf,
    /// Memory the snapshot merge may hold before spilling to `temp_dir`.
    pub(crate) memory_budget_bytes: u64,
    /// Rows above which a view's file is published as a folder of parts.
    pub(crate) part_rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceSettings {
    pub(crate) enabled: bool,
    /// Age after which files no longer referenced by the Delta log are deleted.
    pub(crate) vacuum_retention: Duration,
    /// Write a Delta checkpoint every this many commits.
    pub(crate) checkpoint_interval: u64,
    /// Compact a table's small files once it has at least this many.
    pub(crate) compact_min_files: usize,
}

/// Defaults of the `extractor` section.
pub mod defaults {
    use std::time::Duration;

    pub(crate) const STATE_DATABASE: &str = "s3_replicator_state";
    pub(crate) const STATE_TABLE: &str = "data_modeling_state";
    pub(crate) const POLL_TIME: Duration = Duration::from_secs(900);
    pub(crate) const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(900);
    pub(crate) const SUBSCRIPTION_BATCH_SIZE: u32 = 1_000;
    pub(crate) const INGEST_BATCH_SIZE: usize = 100_000;
    pub(crate) const S3_INGEST_BATCH_SIZE: usize = 10_000;
    pub(crate) const INGEST_BATCH_BYTES: u64 = 64 * 1024 * 1024;
    pub(crate) const PARALLELISM: u32 = 2;
    pub(crate) const DEADLINE_MARGIN: Duration = Duration::from_secs(20);
    /// Daily: membership changes without a sync event are rare, and a pass lists every
    /// instance of the stream (see docs/operations.md for its cost).
    pub(crate) const MEMBERSHIP_SCAN_INTERVAL: Duration = Duration::from_secs(24 * 3600);
    /// Daily: a verification samples every published file, about one request per view
    /// and kind per thousand instances (see docs/operations.md for its cost).
    pub(crate) const VERIFY_INTERVAL: Duration = Duration::from_secs(24 * 3600);
    /// Enough keys to see a divergence that touches 0.5% of a file's rows with 99%
    /// probability, in one fetch of each side per thousand.
    pub(crate) const VERIFY_SAMPLE: usize = 1000;
    /// A stuck S3 request must not eat a time slice; healthy requests of 64 MiB files
    /// finish well within this.
    pub(crate) const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    pub(crate) const SNAPSHOT_MEMORY_BUDGET_MB: u64 = 256;
    /// Parts of up to 10 million rows: a part's rebuild stays well within one Lambda
    /// invocation's time and `/tmp`, and views below it keep their single file.
    pub(crate) const SNAPSHOT_PART_ROWS: u64 = 10_000_000;
    pub(crate) const VACUUM_RETENTION_HOURS: u64 = 168;
    pub(crate) const CHECKPOINT_INTERVAL: u64 = 10;
    pub(crate) const COMPACT_MIN_FILES: usize = 10;
    pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(60);
    pub(crate) const MAX_RETRIES: u32 = 8;
}

/// A space and the data models of it to replicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceSelection {
    pub(crate) space: String,
    pub data_models: Vec<DataModelSelection>,
}

/// One data model to replicate, and which of its views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataModelSelection {
    /// The model's externalId.
    pub external_id: String,
    /// `None` follows the newest version of the model.
    pub version: Option<String>,
    /// View externalIds to replicate; `None` replicates every view of the model.
    pub views: Option<Vec<String>>,
}

/// `destination`: where the raw Delta tables and the published files go.
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    /// An S3 bucket and prefix.
    S3(S3Destination),
    /// A local directory, for trials and tests without S3.
    Local(LocalDestination),
}

/// An S3 bucket and key prefix (`destination.s3`).
#[derive(Debug, Clone, PartialEq)]
pub struct S3Destination {
    /// The bucket name.
    pub bucket: String,
    /// Key prefix: empty, or segments joined by `/` with exactly one trailing `/`
    /// (`cdf-data/`), so that `format!("{prefix}raw/...")` is always right.
    pub prefix: String,
    pub(crate) region: Option<String>,
    /// Endpoint of an S3-compatible store; `None` means AWS S3.
    pub endpoint_url: Option<String>,
    pub(crate) allow_http: bool,
    /// How long one S3 request may take before it is abandoned and retried.
    pub request_timeout: Duration,
    /// Static keys; `None` uses the default AWS credential chain (IAM role in AWS).
    pub credentials: Option<StaticS3Credentials>,
}

/// `destination.catalog.glue`: the database the snapshot registers its tables in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueCatalogSettings {
    /// An existing Glue database (lower case letters, digits, `_`): never created here.
    pub(crate) database: String,
    /// Endpoint of a Glue-compatible API (a test server); `None` means AWS Glue.
    pub(crate) endpoint_url: Option<String>,
}

/// Static S3 keys from the configuration, for local development only.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticS3Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: Secret,
}

/// A local directory (`destination.local`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDestination {
    /// As configured; a relative path is relative to the current directory.
    pub(crate) path: PathBuf,
}
