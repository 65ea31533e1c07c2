//! Semantic validation: turns the document as written into a [`Config`], applying defaults
//! and reporting every problem (key path, value, expectation) rather than only the first.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::duration::{describe, parse_duration};
use super::error::{ConfigError, ConfigIssue, Issues, index, join};
use super::identifiers::{check_bucket, check_external_id, check_space, check_version};
use super::model::{
    CogniteFile, ConfigFile, DataModelFile, DestinationFile, DurationValue, ExtractorFile, Int,
    LoggerFile, MaintenanceFile, S3File, SnapshotFile, SpaceFile, Text,
};
use super::secret::Secret;
use super::settings::{
    ClientCredentials, CogniteSettings, Config, ConfigKind, DataModelSelection, Destination,
    ExtractorSettings, LocalDestination, LogFormat, LogLevel, LoggerSettings, MAX_PARALLELISM,
    MAX_SYNC_PAGE_SIZE, MaintenanceSettings, RawStateStore, S3Destination, SnapshotSettings,
    SpaceSelection, StaticS3Credentials, defaults,
};

impl ClientCredentials {
    /// Stands in for credentials that failed validation; never leaves this module.
    fn placeholder() -> Self {
        ClientCredentials {
            token_url: String::new(),
            client_id: String::new(),
            secret: Secret::new(""),
            scopes: Vec::new(),
            audience: None,
            resource: None,
        }
    }
}

/// What the `type` key asks for.
pub(crate) fn config_kind(file: &ConfigFile, issues: &mut Issues) -> ConfigKind {
    match &file.kind {
        None => ConfigKind::Local,
        Some(Text(kind)) => match kind.trim().to_ascii_lowercase().as_str() {
            "local" => ConfigKind::Local,
            "remote" => ConfigKind::Remote,
            _ => {
                issues.push(
                    "type",
                    format!("unknown configuration type {kind:?}; expected `local` or `remote`"),
                );
                ConfigKind::Local
            }
        },
    }
}

/// Validates a complete configuration.
/// `notes` are earlier warnings (from parsing) to keep in [`Config::warnings`].
pub(crate) fn validate(
    file: ConfigFile,
    kind: ConfigKind,
    notes: Vec<ConfigIssue>,
) -> Result<Config, ConfigError> {
    let mut issues = Issues::default();
    let mut warnings = Issues::from(notes);
    let logger = logger(file.logger.as_ref(), &mut issues);
    let cognite = cognite(file.cognite.as_ref(), kind, &mut issues);
    let extractor = extractor(file.extractor.as_ref(), &mut issues, &mut warnings);
    let data_modeling = data_modeling(file.data_modeling.as_deref(), &mut issues, &mut warnings);
    let destination = destination(file.destination.as_ref(), &mut issues);
    issues.into_result(Config {
        kind,
        logger,
        cognite,
        extractor,
        data_modeling,
        destination,
        warnings: warnings.into_vec(),
    })
}

/// The part of a `type: remote` file that is needed to fetch the remote configuration.
pub(crate) struct RemoteBootstrap {
    pub logger: LoggerSettings,
    pub cognite: CogniteSettings,
    pub pipeline_external_id: String,
}

/// Validates only what a `type: remote` file must hold on its own: `cognite` (with the
/// extraction pipeline) and `logger`. The rest may come from the remote configuration.
pub(crate) fn validate_bootstrap(file: &ConfigFile) -> Result<RemoteBootstrap, ConfigError> {
    let mut issues = Issues::default();
    let logger = logger(file.logger.as_ref(), &mut issues);
    let cognite = cognite(file.cognite.as_ref(), ConfigKind::Remote, &mut issues);
    let pipeline_external_id = cognite.extraction_pipeline.clone().unwrap_or_default();
    issues.into_result(RemoteBootstrap {
        logger,
        cognite,
        pipeline_external_id,
    })
}

fn logger(file: Option<&LoggerFile>, issues: &mut Issues) -> LoggerSettings {
    let Some(console) = file.and_then(|l| l.console.as_ref()) else {
        return LoggerSettings::default();
    };
    let level = match &console.level {
        None => LogLevel::default(),
        Some(Text(level)) => match level.trim().to_ascii_uppercase().as_str() {
            "TRACE" => LogLevel::Trace,
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARNING" | "WARN" => LogLevel::Warning,
            "ERROR" | "CRITICAL" => LogLevel::Error,
            _ => {
                issues.push(
                    "logger.console.level",
                    format!(
                        "unknown log level {level:?}; expected DEBUG, INFO, WARNING, ERROR \
                         (or TRACE, WARN, CRITICAL)"
                    ),
                );
                LogLevel::default()
            }
        },
    };
    let format = match &console.format {
        None => None,
        Some(Text(format)) => match format.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => {
                issues.push(
                    "logger.console.format",
                    format!("unknown log format {format:?}; expected `text` or `json`"),
                );
                None
            }
        },
    };
    LoggerSettings { level, format }
}

fn cognite(file: Option<&CogniteFile>, kind: ConfigKind, issues: &mut Issues) -> CogniteSettings {
    let Some(file) = file else {
        issues.push("cognite", "required section is missing");
        return CogniteSettings {
            host: String::new(),
            project: String::new(),
            credentials: ClientCredentials::placeholder(),
            extraction_pipeline: None,
            timeout: defaults::HTTP_TIMEOUT,
            max_retries: defaults::MAX_RETRIES,
        };
    };
    let host = match required_text(file.host.as_ref(), "cognite.host", issues) {
        Some(host) => base_url(&host, "cognite.host", issues),
        None => String::new(),
    };
    let project = required_text(file.project.as_ref(), "cognite.project", issues);
    if let Some(project) = &project
        && project.contains(['/', ' ', '?', '#'])
    {
        issues.push(
            "cognite.project",
            format!("{project:?} is not a CDF project name; expected the project's URL name"),
        );
    }

    let auth_path = "cognite.idp-authentication";
    let credentials = match &file.idp_authentication {
        None => {
            issues.push(auth_path, "required section is missing");
            None
        }
        Some(auth) => {
            let token_url = required_text(
                auth.token_url.as_ref(),
                &join(auth_path, "token-url"),
                issues,
            )
            .map(|url| token_url(&url, &join(auth_path, "token-url"), issues));
            let client_id = required_text(
                auth.client_id.as_ref(),
                &join(auth_path, "client-id"),
                issues,
            );
            let secret = match &auth.secret {
                None => {
                    issues.push(join(auth_path, "secret"), "required key is missing");
                    None
                }
                Some(secret) if secret.expose().trim().is_empty() => {
                    issues.push(join(auth_path, "secret"), "must not be empty");
                    None
                }
                Some(secret) => Some(secret.clone()),
            };
            let mut scopes = Vec::new();
            for (i, Text(scope)) in auth.scopes.iter().flat_map(|s| s.0.iter()).enumerate() {
                let before = scopes.len();
                scopes.extend(scope.split_whitespace().map(str::to_string));
                if scopes.len() == before {
                    issues.push(
                        index(&join(auth_path, "scopes"), i),
                        "empty scope; expected e.g. https://<cluster>.cognitedata.com/.default",
                    );
                }
            }
            Some(ClientCredentials {
                token_url: token_url.unwrap_or_default(),
                client_id: client_id.unwrap_or_default(),
                secret: secret.unwrap_or_else(|| Secret::new("")),
                scopes,
                audience: optional_text(auth.audience.as_ref()),
                resource: optional_text(auth.resource.as_ref()),
            })
        }
    };

    let pipeline_path = "cognite.extraction-pipeline.external-id";
    let extraction_pipeline = file
        .extraction_pipeline
        .as_ref()
        .and_then(|p| optional_text(p.external_id.as_ref()));
    match &extraction_pipeline {
        None if kind == ConfigKind::Remote => issues.push(
            pipeline_path,
            "required when `type: remote`: the configuration is read from this extraction \
             pipeline",
        ),
        Some(xid) if xid.chars().count() > 255 => {
            issues.push(pipeline_path, "expected at most 255 characters")
        }
        _ => {}
    }

    CogniteSettings {
        host,
        project: project.unwrap_or_default(),
        credentials: credentials.unwrap_or_else(ClientCredentials::placeholder),
        extraction_pipeline,
        timeout: duration(
            file.timeout.as_ref(),
            "cognite.timeout",
            defaults::HTTP_TIMEOUT,
            Duration::from_secs(1),
            Some(Duration::from_secs(3_600)),
            issues,
        ),
        max_retries: int(
            file.max_retries,
            "cognite.max-retries",
            defaults::MAX_RETRIES,
            0,
            50,
            issues,
        ),
    }
}

fn extractor(
    file: Option<&ExtractorFile>,
    issues: &mut Issues,
    warnings: &mut Issues,
) -> ExtractorSettings {
    let p = |key: &str| join("extractor", key);
    let Some(file) = file else {
        return default_extractor();
    };

    let raw = file.state_store.as_ref().and_then(|s| s.raw.as_ref());
    let state_text = |value: Option<&Text>, key: &str, default: &str, issues: &mut Issues| {
        let path = join("extractor.state-store.raw", key);
        match value {
            None => default.to_string(),
            Some(Text(v)) if v.trim().is_empty() => {
                issues.push(
                    path,
                    format!("must not be empty; the default is {default:?}"),
                );
                String::new()
            }
            Some(Text(v)) => v.clone(),
        }
    };
    let state_store = RawStateStore {
        database: state_text(
            raw.and_then(|r| r.database.as_ref()),
            "database",
            defaults::STATE_DATABASE,
            issues,
        ),
        table: state_text(
            raw.and_then(|r| r.table.as_ref()),
            "table",
            defaults::STATE_TABLE,
            issues,
        ),
    };

    let one_second = Duration::from_secs(1);
    let poll_time = duration(
        file.poll_time.as_ref(),
        &p("poll-time"),
        defaults::POLL_TIME,
        one_second,
        None,
        issues,
    );
    let snapshot_interval = duration(
        file.snapshot_interval.as_ref(),
        &p("snapshot-interval"),
        defaults::SNAPSHOT_INTERVAL,
        one_second,
        None,
        issues,
    );

    let subscription_batch_size = int(
        file.subscription_batch_size,
        &p("subscription-batch-size"),
        defaults::SUBSCRIPTION_BATCH_SIZE,
        1,
        u64::from(u32::MAX),
        issues,
    );
    let sync_page_size = subscription_batch_size.min(MAX_SYNC_PAGE_SIZE);
    if subscription_batch_size > MAX_SYNC_PAGE_SIZE {
        warnings.push(
            p("subscription-batch-size"),
            format!(
                "{subscription_batch_size} is above CDF's largest sync page; pages of \
                 {MAX_SYNC_PAGE_SIZE} are requested"
            ),
        );
    }

    let rows_max = u64::from(u32::MAX);
    let ingest_batch_size = int(
        file.ingest_batch_size,
        &p("ingest-batch-size"),
        defaults::INGEST_BATCH_SIZE,
        1,
        rows_max,
        issues,
    );
    let s3_ingest_batch_size = int(
        file.s3_ingest_batch_size,
        &p("s3-ingest-batch-size"),
        defaults::S3_INGEST_BATCH_SIZE,
        1,
        rows_max,
        issues,
    );
    let ingest_batch_bytes = int(
        file.ingest_batch_bytes,
        &p("ingest-batch-bytes"),
        defaults::INGEST_BATCH_BYTES,
        1,
        u64::MAX,
        issues,
    );
    let parallelism = int(
        file.parallelism,
        &p("parallelism"),
        defaults::PARALLELISM,
        1,
        u64::from(MAX_PARALLELISM),
        issues,
    );

    let time_budget = file.time_budget.as_ref().map(|value| {
        duration(
            Some(value),
            &p("time-budget"),
            Duration::ZERO,
            one_second,
            None,
            issues,
        )
    });
    let deadline_margin = duration(
        file.deadline_margin.as_ref(),
        &p("deadline-margin"),
        defaults::DEADLINE_MARGIN,
        Duration::ZERO,
        Some(Duration::from_secs(900)),
        issues,
    );
    if let Some(budget) = time_budget
        && budget > Duration::ZERO
        && budget <= deadline_margin
    {
        issues.push(
            p("time-budget"),
            format!(
                "{} leaves no time after the deadline-margin of {}; expected a time-budget \
                     longer than deadline-margin",
                describe(budget),
                describe(deadline_margin)
            ),
        );
    }

    ExtractorSettings {
        state_store,
        poll_time,
        snapshot_interval,
        subscription_batch_size,
        sync_page_size,
        ingest_batch_size,
        s3_ingest_batch_size,
        ingest_batch_bytes,
        parallelism,
        time_budget,
        deadline_margin,
        snapshot: snapshot(file.snapshot.as_ref(), issues),
        maintenance: maintenance(file.maintenance.as_ref(), issues, warnings),
    }
}

fn default_extractor() -> ExtractorSettings {
    ExtractorSettings {
        state_store: RawStateStore {
            database: defaults::STATE_DATABASE.to_string(),
            table: defaults::STATE_TABLE.to_string(),
        },
        poll_time: defaults::POLL_TIME,
        snapshot_interval: defaults::SNAPSHOT_INTERVAL,
        subscription_batch_size: defaults::SUBSCRIPTION_BATCH_SIZE,
        sync_page_size: defaults::SUBSCRIPTION_BATCH_SIZE.min(MAX_SYNC_PAGE_SIZE),
        ingest_batch_size: defaults::INGEST_BATCH_SIZE,
        s3_ingest_batch_size: defaults::S3_INGEST_BATCH_SIZE,
        ingest_batch_bytes: defaults::INGEST_BATCH_BYTES,
        parallelism: defaults::PARALLELISM,
        time_budget: None,
        deadline_margin: defaults::DEADLINE_MARGIN,
        snapshot: default_snapshot(),
        maintenance: default_maintenance(),
    }
}

impl Default for ExtractorSettings {
    fn default() -> Self {
        default_extractor()
    }
}

fn default_snapshot() -> SnapshotSettings {
    SnapshotSettings {
        temp_dir: std::env::temp_dir(),
        memory_budget_bytes: defaults::SNAPSHOT_MEMORY_BUDGET_MB * 1024 * 1024,
    }
}

fn snapshot(file: Option<&SnapshotFile>, issues: &mut Issues) -> SnapshotSettings {
    let mut settings = default_snapshot();
    let Some(file) = file else {
        return settings;
    };
    match &file.temp_dir {
        Some(Text(dir)) if dir.trim().is_empty() => {
            issues.push("extractor.snapshot.temp-dir", "must not be empty")
        }
        Some(Text(dir)) => settings.temp_dir = PathBuf::from(dir),
        None => {}
    }
    let mb: u64 = int(
        file.memory_budget_mb,
        "extractor.snapshot.memory-budget-mb",
        defaults::SNAPSHOT_MEMORY_BUDGET_MB,
        1,
        1024 * 1024,
        issues,
    );
    settings.memory_budget_bytes = mb * 1024 * 1024;
    settings
}

fn default_maintenance() -> MaintenanceSettings {
    MaintenanceSettings {
        enabled: true,
        vacuum_retention: Duration::from_secs(defaults::VACUUM_RETENTION_HOURS * 3_600),
        checkpoint_interval: defaults::CHECKPOINT_INTERVAL,
        compact_min_files: defaults::COMPACT_MIN_FILES,
    }
}

fn maintenance(
    file: Option<&MaintenanceFile>,
    issues: &mut Issues,
    warnings: &mut Issues,
) -> MaintenanceSettings {
    let Some(file) = file else {
        return default_maintenance();
    };
    let path = |key: &str| join("extractor.maintenance", key);
    let hours: u64 = int(
        file.vacuum_retention_hours,
        &path("vacuum-retention-hours"),
        defaults::VACUUM_RETENTION_HOURS,
        1,
        24 * 365 * 100,
        issues,
    );
    if hours < defaults::VACUUM_RETENTION_HOURS {
        warnings.push(
            path("vacuum-retention-hours"),
            format!(
                "{hours} is below Delta's customary {} hours: readers of older table versions \
                 (time travel, a snapshot that is still reading) may find files deleted",
                defaults::VACUUM_RETENTION_HOURS
            ),
        );
    }
    MaintenanceSettings {
        enabled: file.enabled.unwrap_or(true),
        vacuum_retention: Duration::from_secs(hours * 3_600),
        checkpoint_interval: int(
            file.checkpoint_interval,
            &path("checkpoint-interval"),
            defaults::CHECKPOINT_INTERVAL,
            1,
            1_000_000,
            issues,
        ),
        compact_min_files: int(
            file.compact_min_files,
            &path("compact-min-files"),
            defaults::COMPACT_MIN_FILES,
            2,
            1_000_000,
            issues,
        ),
    }
}

fn data_modeling(
    file: Option<&[SpaceFile]>,
    issues: &mut Issues,
    warnings: &mut Issues,
) -> Vec<SpaceSelection> {
    let Some(spaces) = file else {
        issues.push(
            "data_modeling",
            "required key is missing; expected a list of spaces with their data_models",
        );
        return Vec::new();
    };
    if spaces.is_empty() {
        issues.push(
            "data_modeling",
            "empty list; expected at least one space with data_models",
        );
    }
    // (space, model) -> (path, version) of the first entry, to find models listed twice.
    let mut seen_models: HashMap<(String, String), Vec<ListedAt>> = HashMap::new();
    let mut out = Vec::with_capacity(spaces.len());
    for (i, entry) in spaces.iter().enumerate() {
        let path = index("data_modeling", i);
        let space =
            required_text(entry.space.as_ref(), &join(&path, "space"), issues).unwrap_or_default();
        if !space.is_empty()
            && let Err(expected) = check_space(&space)
        {
            issues.push(join(&path, "space"), format!("{space:?}: {expected}"));
        }
        let models_path = join(&path, "data_models");
        let models = match &entry.data_models {
            None => {
                issues.push(
                    &models_path,
                    "required key is missing; expected a list of data models, e.g. \
                     `- external_id: MyModel`",
                );
                &[][..]
            }
            Some(models) if models.is_empty() => {
                issues.push(&models_path, "empty list; expected at least one data model");
                &[][..]
            }
            Some(models) => models.as_slice(),
        };
        let mut selections = Vec::with_capacity(models.len());
        for (j, model) in models.iter().enumerate() {
            let model_path = index(&models_path, j);
            let selection = data_model(model, &model_path, issues, warnings);
            if !space.is_empty() && !selection.external_id.is_empty() {
                let key = (space.clone(), selection.external_id.clone());
                let earlier = seen_models.entry(key).or_default();
                for (earlier_path, earlier_version) in earlier.iter() {
                    let clash = match (earlier_version, &selection.version) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    };
                    if clash {
                        issues.push(
                            &model_path,
                            format!(
                                "data model {space}/{} {} is already listed at {earlier_path}; \
                                 list each model version once (an entry without version \
                                 follows the newest version)",
                                selection.external_id,
                                describe_version(&selection.version)
                            ),
                        );
                        break;
                    }
                }
                earlier.push((model_path.clone(), selection.version.clone()));
            }
            selections.push(selection);
        }
        out.push(SpaceSelection {
            space,
            data_models: selections,
        });
    }
    out
}

/// Key path and version of an entry of `data_models`.
type ListedAt = (String, Option<String>);

fn describe_version(version: &Option<String>) -> String {
    match version {
        Some(v) => format!("version {v:?}"),
        None => "(newest version)".to_string(),
    }
}

fn data_model(
    file: &DataModelFile,
    path: &str,
    issues: &mut Issues,
    warnings: &mut Issues,
) -> DataModelSelection {
    let xid_path = join(path, "external_id");
    let external_id =
        required_text(file.external_id.as_ref(), &xid_path, issues).unwrap_or_default();
    if !external_id.is_empty()
        && let Err(expected) = check_external_id(&external_id)
    {
        issues.push(&xid_path, format!("{external_id:?}: {expected}"));
    }

    let version_path = join(path, "version");
    let version = file.version.as_ref().map(|v| v.text.trim().to_string());
    if let Some(v) = &version {
        if let Err(expected) = check_version(v) {
            issues.push(&version_path, format!("{v:?}: {expected}"));
        } else if file.version.as_ref().is_some_and(|v| v.was_float) {
            warnings.push(
                &version_path,
                format!(
                    "the unquoted number was read as version {v:?}; quote versions (e.g. \
                     \"2.10\") so that YAML keeps them as written"
                ),
            );
        }
    }

    let views_path = join(path, "views");
    let views = file.views.as_ref().map(|views| {
        if views.is_empty() {
            issues.push(
                &views_path,
                "empty list would replicate nothing; leave `views` out to replicate every view \
                 of the model",
            );
        }
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        for (k, Text(view)) in views.iter().enumerate() {
            let view_path = index(&views_path, k);
            if let Err(expected) = check_external_id(view) {
                issues.push(&view_path, format!("{view:?}: {expected}"));
            } else if let Some(first) = first_seen.get(view.as_str()) {
                issues.push(
                    &view_path,
                    format!("view {view:?} is listed twice (also at views[{first}])"),
                );
            } else {
                first_seen.insert(view, k);
            }
        }
        views.iter().map(|Text(v)| v.clone()).collect()
    });

    DataModelSelection {
        external_id,
        version,
        views,
    }
}

fn destination(file: Option<&DestinationFile>, issues: &mut Issues) -> Destination {
    let placeholder = Destination::Local(LocalDestination {
        path: PathBuf::new(),
    });
    let Some(file) = file else {
        issues.push(
            "destination",
            "required section is missing; expected `s3` (bucket, prefix, region) or `local` \
             (path)",
        );
        return placeholder;
    };
    match (&file.s3, &file.local) {
        (Some(_), Some(_)) => {
            issues.push(
                "destination",
                "both `s3` and `local` are given; expected exactly one destination",
            );
            placeholder
        }
        (None, None) => {
            issues.push(
                "destination",
                "no destination given; expected exactly one of `s3` or `local`",
            );
            placeholder
        }
        (Some(s3), None) => Destination::S3(s3_destination(s3, issues)),
        (None, Some(local)) => {
            let path = required_text(local.path.as_ref(), "destination.local.path", issues)
                .unwrap_or_default();
            Destination::Local(LocalDestination {
                path: PathBuf::from(path),
            })
        }
    }
}

fn s3_destination(file: &S3File, issues: &mut Issues) -> S3Destination {
    let p = |key: &str| join("destination.s3", key);
    let endpoint_url = optional_text(file.endpoint_url.as_ref());
    let allow_http = file.allow_http.unwrap_or(false);
    if let Some(endpoint) = &endpoint_url {
        match Url::parse(endpoint) {
            Err(err) => issues.push(
                p("endpoint-url"),
                format!("{endpoint:?} is not a URL ({err}); expected e.g. https://s3.example.com"),
            ),
            Ok(url) => match url.scheme() {
                "https" => {}
                "http" if allow_http => {}
                "http" => issues.push(
                    p("endpoint-url"),
                    format!("{endpoint:?} uses plain http; set `allow-http: true` to allow it"),
                ),
                other => issues.push(
                    p("endpoint-url"),
                    format!("{endpoint:?} has scheme `{other}`; expected http(s)"),
                ),
            },
        }
    }

    let bucket = required_text(file.bucket.as_ref(), &p("bucket"), issues).unwrap_or_default();
    if !bucket.is_empty()
        && let Err(expected) = check_bucket(&bucket, endpoint_url.is_none())
    {
        issues.push(p("bucket"), format!("{bucket:?}: {expected}"));
    }

    let prefix = match file.prefix.as_ref() {
        None => String::new(),
        Some(Text(raw)) => normalize_prefix(raw).unwrap_or_else(|expected| {
            issues.push(p("prefix"), format!("{raw:?}: {expected}"));
            String::new()
        }),
    };

    let region = optional_text(file.region.as_ref());
    if let Some(region) = &region
        && region.contains(char::is_whitespace)
    {
        issues.push(
            p("region"),
            format!("{region:?}: expected a region name such as us-east-1"),
        );
    }

    let access_key_id = optional_text(file.access_key_id.as_ref());
    let secret_access_key = file
        .secret_access_key
        .as_ref()
        .filter(|s| !s.expose().trim().is_empty());
    let credentials = match (access_key_id, secret_access_key) {
        (Some(access_key_id), Some(secret)) => Some(StaticS3Credentials {
            access_key_id,
            secret_access_key: secret.clone(),
        }),
        (None, None) => None,
        (Some(_), None) => {
            issues.push(
                p("secret-access-key"),
                "missing while access-key-id is set; give both static keys or neither (then \
                 the default AWS credential chain is used)",
            );
            None
        }
        (None, Some(_)) => {
            issues.push(
                p("access-key-id"),
                "missing while secret-access-key is set; give both static keys or neither \
                 (then the default AWS credential chain is used)",
            );
            None
        }
    };

    S3Destination {
        bucket,
        prefix,
        region,
        endpoint_url: endpoint_url.map(|e| e.trim_end_matches('/').to_string()),
        allow_http,
        credentials,
    }
}

/// `""`, `/`, `a`, `/a/b/` -> `""`, `""`, `a/`, `a/b/`.
pub(crate) fn normalize_prefix(raw: &str) -> Result<String, String> {
    if raw.starts_with("s3://") {
        return Err(
            "expected a key prefix such as `cdf-data/`, not an s3:// URL; the bucket goes into \
             `bucket`"
                .to_string(),
        );
    }
    let body = raw.trim_start_matches('/').trim_end_matches('/');
    if body.is_empty() {
        return Ok(String::new());
    }
    if body.split('/').any(|seg| seg.is_empty()) {
        return Err("expected a key prefix without empty segments (`//`)".to_string());
    }
    if body.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("expected a key prefix without `.` or `..` segments".to_string());
    }
    Ok(format!("{body}/"))
}

/// A CDF cluster URL: https (http only on the loopback interface), no query, no credentials.
fn base_url(text: &str, path: &str, issues: &mut Issues) -> String {
    let Some(url) = http_url(text, path, issues) else {
        return String::new();
    };
    if url.query().is_some() || url.fragment().is_some() {
        issues.push(
            path,
            format!("{text:?}: expected a base URL without query or fragment"),
        );
    }
    if url.path().contains("/api/") {
        issues.push(
            path,
            format!(
                "{text:?}: expected the cluster URL only, e.g. https://api.cognitedata.com \
                 (the client adds /api/v1/projects/<project>)"
            ),
        );
    }
    text.trim().trim_end_matches('/').to_string()
}

fn token_url(text: &str, path: &str, issues: &mut Issues) -> String {
    http_url(text, path, issues);
    text.trim().to_string()
}

fn http_url(text: &str, path: &str, issues: &mut Issues) -> Option<Url> {
    let url = match Url::parse(text.trim()) {
        Ok(url) => url,
        Err(err) => {
            issues.push(
                path,
                format!("{text:?} is not a valid URL ({err}); expected e.g. https://host"),
            );
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        // The value is not repeated: it holds credentials.
        issues.push(path, "the URL must not contain a user name or password");
        return None;
    }
    let loopback = matches!(
        url.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    match url.scheme() {
        "https" => Some(url),
        "http" if loopback => Some(url),
        "http" => {
            issues.push(
                path,
                format!(
                    "{text:?} uses plain http, which is allowed only for 127.0.0.1 or \
                     localhost; expected https://"
                ),
            );
            None
        }
        other => {
            issues.push(
                path,
                format!("{text:?} has scheme `{other}`; expected https://"),
            );
            None
        }
    }
}

/// A required text value: absent, null and blank are all reported.
fn required_text(value: Option<&Text>, path: &str, issues: &mut Issues) -> Option<String> {
    match value {
        None => {
            issues.push(path, "required key is missing");
            None
        }
        Some(Text(v)) if v.trim().is_empty() => {
            issues.push(path, "must not be empty");
            None
        }
        Some(Text(v)) => Some(v.trim().to_string()),
    }
}

/// An optional text value; blank counts as absent (an empty `${VAR}` means "not set").
fn optional_text(value: Option<&Text>) -> Option<String> {
    value
        .map(|Text(v)| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// An integer in `min..=max`, or `default` when absent.
fn int<T>(value: Option<Int>, path: &str, default: T, min: u64, max: u64, issues: &mut Issues) -> T
where
    T: TryFrom<u64> + Copy,
{
    let Some(Int(v)) = value else {
        return default;
    };
    if v < i128::from(min) || v > i128::from(max) {
        issues.push(
            path,
            format!("{v} is out of range; expected a whole number from {min} to {max}"),
        );
        return default;
    }
    u64::try_from(v)
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .unwrap_or(default)
}

/// A duration of at least `min` (and at most `max`), or `default` when absent.
fn duration(
    value: Option<&DurationValue>,
    path: &str,
    default: Duration,
    min: Duration,
    max: Option<Duration>,
    issues: &mut Issues,
) -> Duration {
    let parsed = match value {
        None => return default,
        Some(DurationValue::Seconds(s)) => match u64::try_from(*s) {
            Ok(s) => Ok(Duration::from_secs(s)),
            Err(_) => Err(format!(
                "{s} is negative or too large; expected seconds >= 0"
            )),
        },
        Some(DurationValue::Text(text)) => {
            parse_duration(text).map_err(|expected| format!("{text:?}: {expected}"))
        }
    };
    match parsed {
        Err(message) => {
            issues.push(path, message);
            default
        }
        Ok(d) if d < min => {
            issues.push(
                path,
                format!(
                    "{} is too short; expected at least {}",
                    describe(d),
                    describe(min)
                ),
            );
            default
        }
        Ok(d) if max.is_some_and(|max| d > max) => {
            issues.push(
                path,
                format!(
                    "{} is too long; expected at most {}",
                    describe(d),
                    describe(max.unwrap_or(d))
                ),
            );
            default
        }
        Ok(d) => d,
    }
}
