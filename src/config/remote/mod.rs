//! `type: remote`: merging the configuration stored in a CDF extraction pipeline over the
//! local file.
//!
//! Fetching is not done here (it needs the CDF client); this module is pure so it can be
//! tested without a network and reused by every entry point.
//!
//! - [`own_values`]: the function's own values, which a remote document may name with the
//!   Python replicator's variables (`${COGNITE_BASE_URL}`, `${AWS_S3_BUCKET}`, ...);
//! - [`repeats`]: a remote `cognite` or `destination` section may repeat the function's own
//!   connection and destination, never change them.

pub(crate) mod own_values;
mod repeats;

use serde_yaml_ng::Value;

use super::env::{EnvSource, Scope};
use super::error::{ConfigError, Issues};
use super::load::{no_secret_outside_credentials, substituted_document};
use super::parse::{collapse_spellings, same_key, to_config_file};
use super::settings::{Config, ConfigKind};
use super::validate::{self, config_kind, validate_bootstrap};
use own_values::OwnValues;
use repeats::{connection_unchanged, destination_repeated, names_the_connection};

/// Merges the remote configuration text over the local document and validates the result.
///
/// Whoever can edit the extraction pipeline's configuration must not be able to change where
/// data or credentials go, so:
///
/// - The remote text is parsed and `${VAR}`-substituted. Variables named `CDF_S3_REMOTE_*`
///   expand from the process environment (never a secret-looking name, an `AWS_*` variable
///   or a key of the Secrets Manager secret). The Python replicator's variables
///   (`${COGNITE_BASE_URL}`, `${AWS_S3_BUCKET}`, ...) stand for the function's own values
///   and may be used only in the keys where its configuration has them (see
///   [`own_values`]). Any other `${VAR}` is an error naming the key and the variable.
/// - Of `destination`, the tuning knobs in [`repeats::REMOTE_DESTINATION_KNOBS`] may be set; any
///   other key may only repeat the function's own value (then it is dropped) and is refused
///   when it differs, naming the key, both values and the fix. Static keys are always
///   refused. The destination comes from the local file (in Lambda: the stack's `Bucket`
///   and `Prefix`).
/// - The remote document may repeat the CDF connection (`cognite.host`, `project`,
///   `idp-authentication`, `extraction-pipeline`) but not change it.
/// - It may not say `type: remote` again, and must be a non-empty mapping.
/// - It is then merged over `local` (the local document after substitution, as held by
///   `RawConfig::NeedsRemote`, whose `type: remote` is dropped): mappings merge key by key
///   (recursively), anything else in the remote document replaces the local value (lists are
///   replaced, not appended). No string of the result outside a credential field may hold
///   a known secret value.
///
/// A `cognite` or `destination` section that only repeated the function's own values is
/// logged once at INFO, so that an operator sees why its values had no effect.
pub(crate) fn merge_remote(
    local: &Value,
    remote_yaml: &str,
    env: &dyn EnvSource,
) -> Result<Config, ConfigError> {
    let merged = merge(local, remote_yaml, env)?;
    if let Some(note) = merged.ignored_note() {
        tracing::info!(
            pipeline = merged.config.cognite.extraction_pipeline.as_deref(),
            "{note}"
        );
    }
    Ok(merged.config)
}

/// A merged configuration and the sections of the remote document that only repeated the
/// function's own values.
pub(crate) struct Merged {
    pub(crate) config: Config,
    /// `cognite` and/or `destination`.
    pub(crate) ignored: Vec<&'static str>,
}

impl Merged {
    /// The INFO line saying which sections were ignored, if any were.
    pub(crate) fn ignored_note(&self) -> Option<String> {
        let (sections, verbs) = match self.ignored.as_slice() {
            [] => return None,
            [one] => (
                format!("`{one}` section"),
                "repeats the function's own values and was",
            ),
            many => (
                format!(
                    "{} sections",
                    many.iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                "repeat the function's own values and were",
            ),
        };
        Some(format!(
            "the configuration stored in the extraction pipeline was loaded; its {sections} \
             {verbs} ignored: the CDF connection and the destination come from the function's \
             own configuration"
        ))
    }
}

/// [`merge_remote`] without the log line.
pub(crate) fn merge(
    local: &Value,
    remote_yaml: &str,
    env: &dyn EnvSource,
) -> Result<Merged, ConfigError> {
    let (local_file, _) = to_config_file(local.clone())?;
    let local_cognite = validate_bootstrap(&local_file)?.cognite;

    let mut notes = Vec::new();
    let mut merged = local.clone();
    collapse_spellings(&mut merged, "", &mut notes);
    if let Value::Mapping(map) = &mut merged {
        map.remove("type");
    }
    let own = OwnValues::new(&merged, &local_cognite, env);
    let mut remote = substituted_document(
        remote_yaml,
        "the remote configuration",
        env,
        Scope::Remote(&own),
    )?;
    collapse_spellings(&mut remote, "", &mut notes);
    let mut ignored = Vec::new();
    if names_the_connection(&remote) {
        ignored.push("cognite");
    }
    let mut issues = Issues::default();
    if destination_repeated(&mut remote, &merged, &own, &mut issues) {
        ignored.push("destination");
    }
    issues.into_result(())?;
    deep_merge(&mut merged, remote);

    let merged_document = merged.clone();
    let (file, _) = to_config_file(merged)?;
    let mut issues = Issues::default();
    if config_kind(&file, &mut issues) == ConfigKind::Remote {
        issues.push(
            "type",
            "the remote configuration says `type: remote` again; expected `local` or no `type` \
             key in the configuration stored in the extraction pipeline",
        );
    }
    issues.into_result(())?;
    let config = validate::validate(file, ConfigKind::Remote, notes)?;
    connection_unchanged(&local_cognite, &config.cognite, &own).map_err(ConfigError::Invalid)?;
    no_secret_outside_credentials(&merged_document, &config.cognite, Some(&config), env)?;
    Ok(Merged { config, ignored })
}

/// Remote-over-local merge. Keys match when they are equal up to `-` versus `_`, since both
/// spellings of a key are accepted; the remote spelling is kept.
pub(crate) fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base_map), Value::Mapping(over_map)) => {
            for (key, over_value) in over_map {
                let existing = base_map.keys().find(|k| same_key(k, &key)).cloned();
                match existing {
                    Some(existing_key) => {
                        let mut base_value = base_map.remove(&existing_key).unwrap_or(Value::Null);
                        deep_merge(&mut base_value, over_value);
                        base_map.insert(key, base_value);
                    }
                    None => {
                        base_map.insert(key, over_value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}
