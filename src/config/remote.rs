//! `type: remote`: merging the configuration stored in a CDF extraction pipeline over the
//! local file.
//!
//! Fetching is not done here (it needs the CDF client); this module is pure so it can be
//! tested without a network and reused by every entry point.

use serde_yaml_ng::Value;

use super::env::EnvSource;
use super::error::{ConfigError, ConfigIssue, Issues};
use super::load::substituted_document;
use super::parse::{collapse_spellings, same_key, to_config_file};
use super::settings::{CogniteSettings, Config, ConfigKind};
use super::validate::{self, config_kind, validate_bootstrap};

/// Merges the remote configuration text over the local document and validates the result.
///
/// - `local` is the local document after `${VAR}` substitution (as held by
///   `RawConfig::NeedsRemote`); its `type: remote` is dropped before merging.
/// - The remote text is parsed and `${VAR}`-substituted with `env`, then merged over `local`:
///   mappings merge key by key (recursively), anything else in the remote document replaces
///   the local value (lists are replaced, not appended).
/// - The remote document may not say `type: remote` again, and must be a non-empty mapping.
/// - The remote document may repeat the CDF connection (`cognite.host`, `project`,
///   `idp-authentication`, `extraction-pipeline`) but not change it: whoever can edit the
///   pipeline's configuration must not be able to send the client secret to another server.
pub fn merge_remote(
    local: &Value,
    remote_yaml: &str,
    env: &dyn EnvSource,
) -> Result<Config, ConfigError> {
    let remote = substituted_document(remote_yaml, "the remote configuration", env)?;
    let (local_file, _) = to_config_file(local.clone())?;
    let local_cognite = validate_bootstrap(&local_file)?.cognite;

    let mut notes = Vec::new();
    let mut merged = local.clone();
    collapse_spellings(&mut merged, "", &mut notes);
    if let Value::Mapping(map) = &mut merged {
        map.remove("type");
    }
    let mut remote = remote;
    collapse_spellings(&mut remote, "", &mut notes);
    deep_merge(&mut merged, remote);

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
    connection_unchanged(&local_cognite, &config.cognite)?;
    Ok(config)
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

fn connection_unchanged(
    local: &CogniteSettings,
    merged: &CogniteSettings,
) -> Result<(), ConfigError> {
    let mut changed = Vec::new();
    if local.host != merged.host {
        changed.push("cognite.host");
    }
    if local.project != merged.project {
        changed.push("cognite.project");
    }
    if local.credentials != merged.credentials {
        changed.push("cognite.idp-authentication");
    }
    if local.extraction_pipeline != merged.extraction_pipeline {
        changed.push("cognite.extraction-pipeline");
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(ConfigError::Invalid(
        changed
            .into_iter()
            .map(|path| {
                ConfigIssue::new(
                    path,
                    "the remote configuration may not change the CDF connection or credentials; \
                     remove it from the remote configuration or make it equal to the local file",
                )
            })
            .collect(),
    ))
}
