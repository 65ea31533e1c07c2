//! A remote document may *repeat* the function's CDF connection and destination, never
//! change them.
//!
//! The Python replicator's README stores its whole `config.yaml` in the extraction pipeline,
//! `cognite` and `destination` included. Those sections are accepted when every key in them
//! equals the function's own value, and then ignored: the function keeps its own connection
//! and destination. A key that differs is refused with its path, the value it has (secrets
//! redacted), the function's own value and the fix.

use serde_yaml_ng::Value;

use super::own_values::{OwnValues, lookup, scalar_text};
use crate::config::env::key_text;
use crate::config::error::{ConfigIssue, Issues, join};
use crate::config::parse::same_key;
use crate::config::settings::CogniteSettings;
use crate::config::validate::destination::normalize_prefix;

/// The keys of `destination.s3` a remote configuration may set: they change how requests
/// are made, not where they go or with which credentials.
pub(crate) const REMOTE_DESTINATION_KNOBS: [&str; 1] = ["request-timeout"];

/// Keys of `destination.s3` that a remote document may never set, not even to the same
/// value: the function writes with its own credentials (in Lambda, its role).
const STATIC_KEYS: [&str; 2] = ["access-key-id", "secret-access-key"];

/// The keys of `cognite` that make up the connection; the others (`timeout`,
/// `max-retries`) are tuning knobs a remote document may set.
const CONNECTION_KEYS: [&str; 4] = [
    "host",
    "project",
    "idp-authentication",
    "extraction-pipeline",
];

/// Whether the remote document has a `cognite` section naming the connection (which the
/// merge then checks against the function's own, see [`connection_unchanged`]).
pub(crate) fn names_the_connection(remote: &Value) -> bool {
    let Some(Value::Mapping(cognite)) = lookup(remote, &["cognite"]) else {
        return false;
    };
    cognite.keys().any(|key| {
        CONNECTION_KEYS
            .iter()
            .any(|known| same_key(key, &Value::from(*known)))
    })
}

/// Checks every key of the remote document's `destination` except the tuning knobs against
/// the function's own destination (`local`, the local document with its spellings
/// collapsed). A key that repeats it is removed, so the merge keeps the function's own;
/// one that differs is reported. Returns whether any key was removed.
pub(crate) fn destination_repeated(
    remote: &mut Value,
    local: &Value,
    own: &OwnValues,
    issues: &mut Issues,
) -> bool {
    let Value::Mapping(top) = remote else {
        return false;
    };
    let Some((key, destination)) = top
        .iter_mut()
        .find(|(key, _)| same_key(key, &Value::from("destination")))
    else {
        return false;
    };
    let destination_path = key_text(key);
    let local_destination = lookup(local, &["destination"]);
    let Value::Mapping(destination) = destination else {
        let function_has = own_mapping(local_destination, "destination");
        issues.push(
            &destination_path,
            differs(&destination_path, &shown(destination, own), &function_has),
        );
        return false;
    };
    let mut repeated = Vec::new();
    let mut repeated_in_any_s3 = false;
    for (key, value) in destination.iter_mut() {
        let path = join(&destination_path, &key_text(key));
        if !same_key(key, &Value::from("s3")) {
            let own_value = local_destination.and_then(|d| lookup(d, &[&key_text(key)]));
            if own_value == Some(value) {
                repeated.push(key.clone());
            } else {
                let function_has = own_value.map_or("none".to_owned(), |v| shown(v, own));
                issues.push(&path, differs(&path, &shown(value, own), &function_has));
            }
            continue;
        }
        let local_s3 = local_destination.and_then(|d| lookup(d, &["s3"]));
        let Value::Mapping(s3) = value else {
            let function_has = own_mapping(local_s3, "s3");
            issues.push(&path, differs(&path, &shown(value, own), &function_has));
            continue;
        };
        let mut repeated_in_s3 = Vec::new();
        for (knob, knob_value) in s3.iter() {
            let knob_path = join(&path, &key_text(knob));
            let is = |names: &[&str]| names.iter().any(|n| same_key(knob, &Value::from(*n)));
            if is(&REMOTE_DESTINATION_KNOBS) {
                continue;
            }
            if is(&STATIC_KEYS) {
                issues.push(
                    &knob_path,
                    format!(
                        "the remote configuration may not change where data goes or which \
                         credentials are used: static keys are never taken from it (the \
                         function writes with its own credentials; in Lambda, its role). \
                         Remove {knob_path} from the configuration stored in the extraction \
                         pipeline; {}",
                        knobs_note()
                    ),
                );
                continue;
            }
            match s3_key_repeats(&key_text(knob), knob_value, local_s3, own) {
                Ok(()) => repeated_in_s3.push(knob.clone()),
                Err(function_has) => issues.push(
                    &knob_path,
                    differs(&knob_path, &shown(knob_value, own), &function_has),
                ),
            }
        }
        for knob in &repeated_in_s3 {
            s3.remove(knob);
        }
        repeated_in_any_s3 |= !repeated_in_s3.is_empty();
        if !repeated_in_s3.is_empty() && s3.is_empty() {
            repeated.push(key.clone());
        }
    }
    let removed = repeated_in_any_s3 || !repeated.is_empty();
    for key in &repeated {
        destination.remove(key);
    }
    if destination.is_empty() {
        top.retain(|key, _| !same_key(key, &Value::from("destination")));
    }
    removed
}

/// Whether the remote `value` of `destination.s3.<key>` equals the function's own;
/// otherwise the function's own value as a refusal shows it.
fn s3_key_repeats(
    key: &str,
    value: &Value,
    local_s3: Option<&Value>,
    own: &OwnValues,
) -> Result<(), String> {
    let given = scalar_text(value);
    let local_text = |name: &str| {
        local_s3
            .and_then(|s3| lookup(s3, &[name]))
            .and_then(scalar_text)
    };
    let quoted =
        |text: Option<&str>| text.map_or("none".to_owned(), |t| own.redacted(&format!("{t:?}")));
    match key.replace('_', "-").as_str() {
        "bucket" => {
            let function = own.value("AWS_S3_BUCKET");
            (given.as_deref() == function && function.is_some())
                .then_some(())
                .ok_or_else(|| quoted(function))
        }
        "prefix" => {
            let function = own.value("S3_PREFIX");
            let normalized = |text: Option<&str>| normalize_prefix(text.unwrap_or_default()).ok();
            let same = function.is_some()
                && normalized(given.as_deref()).is_some()
                && normalized(given.as_deref()) == normalized(function);
            same.then_some(()).ok_or_else(|| quoted(function))
        }
        "region" => own
            .same_region(given.as_deref())
            .then_some(())
            .ok_or_else(|| quoted(own.region())),
        "endpoint-url" => {
            let function = local_text("endpoint-url");
            let trimmed =
                |text: &Option<String>| text.as_deref().map(|t| t.trim_end_matches('/').to_owned());
            (trimmed(&given) == trimmed(&function))
                .then_some(())
                .ok_or_else(|| quoted(function.as_deref()))
        }
        "allow-http" => {
            let function = local_s3
                .and_then(|s3| lookup(s3, &["allow-http"]))
                .cloned()
                .unwrap_or(Value::Bool(false));
            let as_flag = |v: &Value| match v {
                Value::Bool(flag) => Some(*flag),
                Value::Null => Some(false),
                _ => None,
            };
            (as_flag(value).is_some() && as_flag(value) == as_flag(&function))
                .then_some(())
                .ok_or_else(|| shown(&function, own))
        }
        _ => {
            let function = local_s3.and_then(|s3| lookup(s3, &[key]));
            (function == Some(value))
                .then_some(())
                .ok_or_else(|| function.map_or("none".to_owned(), |v| shown(v, own)))
        }
    }
}

/// The refusal of a destination key whose value differs from the function's own.
fn differs(path: &str, given: &str, function_has: &str) -> String {
    format!(
        "the remote configuration may not change where data goes or which credentials are \
         used: it has {given} where the function's own destination has {function_has}. Remove \
         {path} from the configuration stored in the extraction pipeline (the function's own \
         destination applies: the local file's, in Lambda the stack's Bucket and Prefix), or \
         make it equal; {}",
        knobs_note()
    )
}

fn knobs_note() -> String {
    format!(
        "of `destination`, only destination.s3.{} may be set there",
        REMOTE_DESTINATION_KNOBS.join(", destination.s3.")
    )
}

/// A value as a refusal shows it: a scalar quoted, anything else as compact JSON, with every
/// known secret value replaced by `***`.
fn shown(value: &Value, own: &OwnValues) -> String {
    let text = match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => serde_json::to_string(value)
            .unwrap_or_else(|_| "a value that is not a plain mapping".to_owned()),
        other => format!("{:?}", scalar_text(other).unwrap_or_default()),
    };
    own.redacted(&text)
}

/// How a refusal names the function's own mapping, without listing its keys.
fn own_mapping(value: Option<&Value>, name: &str) -> String {
    match value {
        Some(Value::Mapping(_)) => format!("its own `{name}` mapping"),
        _ => "none".to_owned(),
    }
}

/// Refuses a merged configuration whose CDF connection differs from the function's own
/// (`local`), naming each key that differs with both values (never a secret's).
pub(crate) fn connection_unchanged(
    local: &CogniteSettings,
    merged: &CogniteSettings,
    own: &OwnValues,
) -> Result<(), Vec<ConfigIssue>> {
    let auth = "cognite.idp-authentication";
    let (ours, theirs) = (&local.credentials, &merged.credentials);
    let text = |value: &str| own.redacted(&format!("{value:?}"));
    let optional = |value: &Option<String>| value.as_deref().map_or("none".to_owned(), text);
    let list = |values: &[String]| own.redacted(&format!("{values:?}"));
    let mut changed: Vec<(String, Option<(String, String)>)> = Vec::new();
    let mut compare = |path: String, same: bool, shown: Option<(String, String)>| {
        if !same {
            changed.push((path, shown));
        }
    };
    compare(
        "cognite.host".into(),
        local.host == merged.host,
        Some((text(&merged.host), text(&local.host))),
    );
    compare(
        "cognite.project".into(),
        local.project == merged.project,
        Some((text(&merged.project), text(&local.project))),
    );
    compare(
        join(auth, "token-url"),
        ours.token_url == theirs.token_url,
        Some((text(&theirs.token_url), text(&ours.token_url))),
    );
    compare(
        join(auth, "client-id"),
        ours.client_id == theirs.client_id,
        Some((text(&theirs.client_id), text(&ours.client_id))),
    );
    compare(join(auth, "secret"), ours.secret == theirs.secret, None);
    compare(
        join(auth, "scopes"),
        ours.scopes == theirs.scopes,
        Some((list(&theirs.scopes), list(&ours.scopes))),
    );
    compare(
        join(auth, "audience"),
        ours.audience == theirs.audience,
        Some((optional(&theirs.audience), optional(&ours.audience))),
    );
    compare(
        join(auth, "resource"),
        ours.resource == theirs.resource,
        Some((optional(&theirs.resource), optional(&ours.resource))),
    );
    compare(
        "cognite.extraction-pipeline.external-id".into(),
        local.extraction_pipeline == merged.extraction_pipeline,
        Some((
            optional(&merged.extraction_pipeline),
            optional(&local.extraction_pipeline),
        )),
    );
    if changed.is_empty() {
        return Ok(());
    }
    Err(changed
        .into_iter()
        .map(|(path, shown)| {
            let difference = match shown {
                Some((given, function_has)) => {
                    format!("it has {given} where the function's own connection has {function_has}")
                }
                None => "it has another client secret than the function's own (neither is \
                         shown)"
                    .to_owned(),
            };
            let message = format!(
                "the remote configuration may not change the CDF connection or credentials: \
                 {difference}. Remove {path} from the configuration stored in the extraction \
                 pipeline (the function's own connection applies), or make it equal"
            );
            ConfigIssue::new(path, message)
        })
        .collect())
}
