//! `type: remote`: merging the configuration stored in a CDF extraction pipeline over the
//! local file.
//!
//! Fetching is not done here (it needs the CDF client); this module is pure so it can be
//! tested without a network and reused by every entry point.

use serde_yaml_ng::Value;

use super::env::{EnvSource, Scope, key_text};
use super::error::{ConfigError, ConfigIssue, Issues, join};
use super::load::{no_secret_outside_credentials, substituted_document};
use super::parse::{collapse_spellings, same_key, to_config_file};
use super::settings::{CogniteSettings, Config, ConfigKind};
use super::validate::{self, config_kind, validate_bootstrap};

/// Merges the remote configuration text over the local document and validates the result.
///
/// Whoever can edit the extraction pipeline's configuration must not be able to change where
/// data or credentials go, so:
///
/// - The remote text is parsed and `${VAR}`-substituted, but only variables named
///   `CDF_S3_REMOTE_*` from the process environment expand (never a secret-looking name,
///   an `AWS_*` variable or a key of the Secrets Manager secret); any other `${VAR}` is an
///   error naming the key and the variable.
/// - Of `destination`, only the tuning knobs in [`REMOTE_DESTINATION_KNOBS`] may be set;
///   any other key (`bucket`, `prefix`, `region`, `endpoint-url`, `allow-http`, static keys,
///   `local`) is an error naming the key. The destination comes from the local file (in
///   Lambda: the stack's `Bucket` and `Prefix`).
/// - The remote document may repeat the CDF connection (`cognite.host`, `project`,
///   `idp-authentication`, `extraction-pipeline`) but not change it.
/// - It may not say `type: remote` again, and must be a non-empty mapping.
/// - It is then merged over `local` (the local document after substitution, as held by
///   `RawConfig::NeedsRemote`, whose `type: remote` is dropped): mappings merge key by key
///   (recursively), anything else in the remote document replaces the local value (lists are
///   replaced, not appended). No string of the result outside a credential field may hold
///   a known secret value.
pub(crate) fn merge_remote(
    local: &Value,
    remote_yaml: &str,
    env: &dyn EnvSource,
) -> Result<Config, ConfigError> {
    let mut remote =
        substituted_document(remote_yaml, "the remote configuration", env, Scope::Remote)?;
    let (local_file, _) = to_config_file(local.clone())?;
    let local_cognite = validate_bootstrap(&local_file)?.cognite;

    let mut notes = Vec::new();
    let mut merged = local.clone();
    collapse_spellings(&mut merged, "", &mut notes);
    if let Value::Mapping(map) = &mut merged {
        map.remove("type");
    }
    collapse_spellings(&mut remote, "", &mut notes);
    let mut issues = Issues::default();
    destination_not_redirected(&remote, &mut issues);
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
    connection_unchanged(&local_cognite, &config.cognite)?;
    no_secret_outside_credentials(&merged_document, &config.cognite, Some(&config), env)?;
    Ok(config)
}

/// The keys of `destination.s3` a remote configuration may set: they change how requests
/// are made, not where they go or with which credentials.
pub(crate) const REMOTE_DESTINATION_KNOBS: [&str; 1] = ["request-timeout"];

/// Reports every key of the remote document's `destination` other than the tuning knobs.
fn destination_not_redirected(remote: &Value, issues: &mut Issues) {
    let Value::Mapping(top) = remote else { return };
    let Some((key, destination)) = top
        .iter()
        .find(|(key, _)| same_key(key, &Value::from("destination")))
    else {
        return;
    };
    let refuse = |issues: &mut Issues, path: String| {
        issues.push(
            path,
            format!(
                "the remote configuration may not change where data goes or which credentials \
                 are used; the destination comes from the local file (in Lambda: the stack's \
                 Bucket and Prefix). Remove it from the configuration stored in the extraction \
                 pipeline (of `destination`, only destination.s3.{} may be set there)",
                REMOTE_DESTINATION_KNOBS.join(", destination.s3.")
            ),
        )
    };
    let destination_path = key_text(key);
    let Value::Mapping(destination) = destination else {
        refuse(issues, destination_path);
        return;
    };
    for (key, value) in destination {
        let path = join(&destination_path, &key_text(key));
        if !same_key(key, &Value::from("s3")) {
            refuse(issues, path);
            continue;
        }
        let Value::Mapping(s3) = value else {
            refuse(issues, path);
            continue;
        };
        for (knob, _) in s3 {
            let allowed = REMOTE_DESTINATION_KNOBS
                .iter()
                .any(|allowed| same_key(knob, &Value::from(*allowed)));
            if !allowed {
                refuse(issues, join(&path, &key_text(knob)));
            }
        }
    }
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
