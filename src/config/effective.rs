//! The effective configuration as YAML, in the file's own key names, for `check-config`.
//!
//! A user diffs it with their file to see what the defaults filled in and how each value
//! was read, so it is written as a configuration file is: kebab-case keys (snake_case where
//! the file has it: `data_modeling`, `data_models`, `external_id`), durations in the
//! configuration's syntax (`90s`, `15m`, `1d`), every default spelled out (except
//! `s3-ingest-batch-size`, shown only when set). Loading the text again gives the same
//! configuration. A credential is never printed: it appears as the
//! `${VAR}` reference that supplied it, else as [`REDACTED`].

use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use super::settings::{
    ClientCredentials, CogniteSettings, Config, ConfigKind, Destination, ExtractorSettings,
    GlueCatalogSettings, LogFormat, LogLevel, LoggerSettings, S3Destination, SpaceSelection,
    defaults,
};

/// Stands for a credential written in the file itself.
pub const REDACTED: &str = "<redacted>";

const MIB: u64 = 1024 * 1024;

impl Config {
    /// The configuration as YAML text that loads back to the same configuration (with the
    /// same variables set); credentials appear as their `${VAR}` reference or
    /// [`REDACTED`]. A configuration merged from an extraction pipeline is shown complete,
    /// without `type: remote`.
    pub fn to_effective_yaml(&self) -> String {
        let mut root = Mapping::new();
        if self.kind == ConfigKind::Remote {
            // Shown merged: loading it back needs no extraction pipeline.
            root.insert("type".into(), text("local"));
        }
        root.insert("logger".into(), logger(&self.logger));
        root.insert("cognite".into(), cognite(self));
        root.insert("extractor".into(), extractor(&self.extractor));
        root.insert(
            "data_modeling".into(),
            Value::Sequence(self.data_modeling.iter().map(space).collect()),
        );
        root.insert("destination".into(), destination(self));
        // A mapping of strings, numbers and booleans always serializes; the fallback only
        // keeps this function total.
        serde_yaml_ng::to_string(&Value::Mapping(root))
            .unwrap_or_else(|error| format!("# the configuration could not be shown: {error}\n"))
    }
}

/// Text as the file would hold it: a literal `${` is written `$${`, so that loading the text
/// again does not read it as a variable.
fn text(value: &str) -> Value {
    Value::String(value.replace("${", "$${"))
}

/// A credential: its variable reference, else [`REDACTED`].
fn credential(source: Option<&String>) -> Value {
    match source {
        Some(variable) => Value::String(format!("${{{variable}}}")),
        None => Value::String(REDACTED.to_owned()),
    }
}

fn number(n: impl Into<u64>) -> Value {
    Value::Number(n.into().into())
}

fn size(n: usize) -> Value {
    number(u64::try_from(n).unwrap_or(u64::MAX))
}

/// A duration in the configuration's syntax, in its largest whole unit.
pub(crate) fn duration_text(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_nanos() != 0 {
        format!("{}ms", duration.as_millis())
    } else if secs != 0 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else {
        super::duration::describe(duration)
    }
}

fn duration(value: Duration) -> Value {
    Value::String(duration_text(value))
}

fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Mapping(
        entries
            .into_iter()
            .map(|(key, value)| (Value::from(key), value))
            .collect(),
    )
}

fn insert_some(mapping: &mut Mapping, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        mapping.insert(key.into(), value);
    }
}

fn logger(logger: &LoggerSettings) -> Value {
    let level = match logger.level {
        LogLevel::Trace => "TRACE",
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warning => "WARNING",
        LogLevel::Error => "ERROR",
    };
    let mut console = Mapping::new();
    console.insert("level".into(), text(level));
    insert_some(
        &mut console,
        "format",
        logger.format.map(|format| {
            text(match format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            })
        }),
    );
    map([("console", Value::Mapping(console))])
}

fn cognite(config: &Config) -> Value {
    let CogniteSettings {
        host,
        project,
        credentials,
        extraction_pipeline,
        timeout,
        max_retries,
    } = &config.cognite;
    let mut out = Mapping::new();
    out.insert("host".into(), text(host));
    out.insert("project".into(), text(project));
    out.insert(
        "idp-authentication".into(),
        idp_authentication(credentials, config.secret_sources.client_secret.as_ref()),
    );
    insert_some(
        &mut out,
        "extraction-pipeline",
        extraction_pipeline
            .as_deref()
            .map(|xid| map([("external-id", text(xid))])),
    );
    out.insert("timeout".into(), duration(*timeout));
    out.insert("max-retries".into(), number(*max_retries));
    Value::Mapping(out)
}

fn idp_authentication(credentials: &ClientCredentials, secret_source: Option<&String>) -> Value {
    let mut out = Mapping::new();
    out.insert("token-url".into(), text(&credentials.token_url));
    out.insert("client-id".into(), text(&credentials.client_id));
    out.insert("secret".into(), credential(secret_source));
    if !credentials.scopes.is_empty() {
        out.insert(
            "scopes".into(),
            Value::Sequence(credentials.scopes.iter().map(|s| text(s)).collect()),
        );
    }
    insert_some(
        &mut out,
        "audience",
        credentials.audience.as_deref().map(text),
    );
    insert_some(
        &mut out,
        "resource",
        credentials.resource.as_deref().map(text),
    );
    Value::Mapping(out)
}

fn extractor(extractor: &ExtractorSettings) -> Value {
    let mut out = Mapping::new();
    out.insert(
        "state-store".into(),
        map([(
            "raw",
            map([
                ("database", text(&extractor.state_store.database)),
                ("table", text(&extractor.state_store.table)),
            ]),
        )]),
    );
    out.insert("poll-time".into(), duration(extractor.poll_time));
    out.insert(
        "snapshot-interval".into(),
        duration(extractor.snapshot_interval),
    );
    out.insert(
        "subscription-batch-size".into(),
        number(extractor.subscription_batch_size),
    );
    out.insert(
        "ingest-batch-size".into(),
        size(extractor.ingest_batch_size),
    );
    // Shown only when set: the key is warned about as a Python replicator setting whose
    // meaning changed, and the effective configuration must load without that warning.
    if extractor.s3_ingest_batch_size != defaults::S3_INGEST_BATCH_SIZE {
        out.insert(
            "s3-ingest-batch-size".into(),
            size(extractor.s3_ingest_batch_size),
        );
    }
    out.insert(
        "ingest-batch-bytes".into(),
        number(extractor.ingest_batch_bytes),
    );
    out.insert("parallelism".into(), number(extractor.parallelism));
    insert_some(&mut out, "time-budget", extractor.time_budget.map(duration));
    out.insert(
        "deadline-margin".into(),
        duration(extractor.deadline_margin),
    );
    // Configured as 0: never.
    out.insert(
        "membership-scan-interval".into(),
        duration(extractor.membership_scan_interval.unwrap_or_default()),
    );
    out.insert(
        "verify-interval".into(),
        duration(extractor.verify_interval.unwrap_or_default()),
    );
    out.insert("verify-sample".into(), size(extractor.verify_sample));
    let snapshot = &extractor.snapshot;
    out.insert(
        "snapshot".into(),
        map([
            ("temp-dir", text(&snapshot.temp_dir.to_string_lossy())),
            (
                "memory-budget-mb",
                number(snapshot.memory_budget_bytes / MIB),
            ),
            ("part-rows", number(snapshot.part_rows)),
        ]),
    );
    let maintenance = &extractor.maintenance;
    out.insert(
        "maintenance".into(),
        map([
            ("enabled", Value::Bool(maintenance.enabled)),
            (
                "vacuum-retention-hours",
                number(maintenance.vacuum_retention.as_secs() / 3_600),
            ),
            (
                "checkpoint-interval",
                number(maintenance.checkpoint_interval),
            ),
            ("compact-min-files", size(maintenance.compact_min_files)),
        ]),
    );
    Value::Mapping(out)
}

fn space(space: &SpaceSelection) -> Value {
    let models = space
        .data_models
        .iter()
        .map(|model| {
            let mut out = Mapping::new();
            out.insert("external_id".into(), text(&model.external_id));
            insert_some(&mut out, "version", model.version.as_deref().map(text));
            insert_some(
                &mut out,
                "views",
                model
                    .views
                    .as_ref()
                    .map(|views| Value::Sequence(views.iter().map(|v| text(v)).collect())),
            );
            Value::Mapping(out)
        })
        .collect();
    map([
        ("space", text(&space.space)),
        ("data_models", Value::Sequence(models)),
    ])
}

fn destination(config: &Config) -> Value {
    let mut out = Mapping::new();
    match &config.destination {
        Destination::Local(local) => {
            out.insert(
                "local".into(),
                map([("path", text(&local.path.to_string_lossy()))]),
            );
        }
        Destination::S3(s3) => {
            out.insert("s3".into(), s3_destination(s3, config));
        }
    }
    insert_some(&mut out, "catalog", config.catalog.as_ref().map(catalog));
    Value::Mapping(out)
}

fn s3_destination(s3: &S3Destination, config: &Config) -> Value {
    let mut out = Mapping::new();
    out.insert("bucket".into(), text(&s3.bucket));
    out.insert("prefix".into(), text(&s3.prefix));
    insert_some(&mut out, "region", s3.region.as_deref().map(text));
    insert_some(
        &mut out,
        "endpoint-url",
        s3.endpoint_url.as_deref().map(text),
    );
    out.insert("allow-http".into(), Value::Bool(s3.allow_http));
    out.insert("request-timeout".into(), duration(s3.request_timeout));
    if let Some(keys) = &s3.credentials {
        let sources = &config.secret_sources;
        let key_id = match &sources.s3_access_key_id {
            Some(variable) => credential(Some(variable)),
            None => text(&keys.access_key_id),
        };
        out.insert("access-key-id".into(), key_id);
        out.insert(
            "secret-access-key".into(),
            credential(sources.s3_secret_access_key.as_ref()),
        );
    }
    Value::Mapping(out)
}

fn catalog(glue: &GlueCatalogSettings) -> Value {
    let mut out = Mapping::new();
    out.insert("database".into(), text(&glue.database));
    insert_some(
        &mut out,
        "endpoint-url",
        glue.endpoint_url.as_deref().map(text),
    );
    map([("glue", Value::Mapping(out))])
}
