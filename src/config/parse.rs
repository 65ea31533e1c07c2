//! YAML text to value tree, and value tree to the typed document, with errors that name the
//! key path.

use serde_yaml_ng::Value;

use super::deserialize::deserialize_all;
use super::env::key_text;
use super::error::{ConfigError, ConfigIssue, Issues, index, join};
use super::guard::check_bounds;
use super::model::ConfigFile;

/// Parses YAML text into a value tree (with `<<` merge keys applied). A document that is too
/// large or too deeply nested is refused before the parser sees it.
pub(crate) fn parse_yaml(text: &str, origin: &str) -> Result<Value, ConfigError> {
    check_bounds(text, origin)?;
    let syntax = |err: serde_yaml_ng::Error| {
        let location = err.location();
        ConfigError::Syntax {
            origin: origin.to_string(),
            message: err.to_string(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
        }
    };
    let mut value: Value = serde_yaml_ng::from_str(text).map_err(syntax)?;
    value.apply_merge().map_err(syntax)?;
    Ok(value)
}

/// Checks that the document is a non-empty mapping: a clearer message than serde's.
pub(crate) fn require_mapping(value: &Value, what: &str) -> Result<(), ConfigError> {
    let problem = match value {
        Value::Mapping(map) if !map.is_empty() => return Ok(()),
        Value::Mapping(_) | Value::Null => format!("{what} is empty"),
        Value::Sequence(_) => format!("{what} is a list"),
        _ => format!("{what} is a single value"),
    };
    Err(ConfigError::Invalid(vec![ConfigIssue::new(
        "",
        format!(
            "{problem}; expected a mapping with the sections cognite, data_modeling and \
             destination (and optionally type, logger, extractor)"
        ),
    )]))
}

/// Deserializes the value tree; every unknown key and every value of the wrong type is
/// reported, each naming its key path (see [`deserialize_all`]).
/// Returns notes about keys given in both spellings (see [`collapse_spellings`]).
pub(crate) fn to_config_file(
    mut value: Value,
) -> Result<(ConfigFile, Vec<ConfigIssue>), ConfigError> {
    let mut notes = Vec::new();
    let mut issues = Issues::default();
    non_text_keys(&value, "", &mut issues);
    issues.into_result(())?;
    collapse_spellings(&mut value, "", &mut notes);
    let (file, rejected) = deserialize_all(value);
    match file {
        Some(file) if rejected.is_empty() => Ok((file, notes)),
        _ => Err(ConfigError::Invalid(
            rejected.into_iter().map(|r| r.issue).collect(),
        )),
    }
}

/// Checks that every mapping key of the document is text (see [`non_text_keys`]).
pub(crate) fn require_text_keys(value: &Value) -> Result<(), ConfigError> {
    let mut issues = Issues::default();
    non_text_keys(value, "", &mut issues);
    issues.into_result(())
}

/// Reports every mapping key that is not text (`1: x`, `true: x`, `[a]: x`): every key of
/// the configuration is a name. serde would only say "expected field identifier".
fn non_text_keys(value: &Value, path: &str, issues: &mut Issues) {
    match value {
        Value::Mapping(map) => {
            for (key, item) in map {
                if key.is_string() {
                    non_text_keys(item, &join(path, &key_text(key)), issues);
                } else {
                    let kind = match key {
                        Value::Null => "null",
                        Value::Bool(_) => "a boolean",
                        Value::Number(_) => "a number",
                        Value::Sequence(_) => "a list",
                        Value::Mapping(_) => "a mapping",
                        _ => "a tagged value",
                    };
                    let shown = match key {
                        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => String::new(),
                        other => format!(" `{}`", key_text(other)),
                    };
                    issues.push(
                        path,
                        format!(
                            "the key{shown} is {kind}; every key of the configuration is a name \
                             such as `host` (quote it if it is meant as text)"
                        ),
                    );
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                non_text_keys(item, &index(path, i), issues);
            }
        }
        Value::Tagged(tagged) => non_text_keys(&tagged.value, path, issues),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

/// Keeps only the later of two keys that differ only in `-` versus `_` (`poll-time` and
/// `poll_time`) in one mapping, and notes it. The original replicator read both spellings
/// as one key with the later value winning, and its documented way of editing a remote
/// configuration (load, set `poll_time`, dump) produces exactly such pairs.
pub(crate) fn collapse_spellings(value: &mut Value, path: &str, notes: &mut Vec<ConfigIssue>) {
    match value {
        Value::Mapping(map) => {
            let entries = std::mem::take(map);
            for (key, item) in entries {
                if let Some(earlier) = map.keys().find(|k| same_key(k, &key)).cloned() {
                    map.remove(&earlier);
                    let (earlier, later) = (key_text(&earlier), key_text(&key));
                    notes.push(ConfigIssue::new(
                        join(path, &later),
                        format!(
                            "the key is given twice, as `{earlier}` and `{later}`; the later \
                             one (`{later}`) is used"
                        ),
                    ));
                }
                map.insert(key, item);
            }
            for (key, item) in map.iter_mut() {
                collapse_spellings(item, &join(path, &key_text(key)), notes);
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                collapse_spellings(item, &index(path, i), notes);
            }
        }
        Value::Tagged(tagged) => collapse_spellings(&mut tagged.value, path, notes),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

/// Whether two mapping keys name the same configuration key (`-` and `_` are equivalent).
pub(crate) fn same_key(a: &Value, b: &Value) -> bool {
    match (a.as_str(), b.as_str()) {
        (Some(a), Some(b)) => same_spelling(a, b),
        _ => a == b,
    }
}

pub(crate) fn render_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        out = match segment {
            Segment::Seq { index: i } => index(&out, *i),
            Segment::Map { key } => join(&out, key),
            Segment::Enum { variant } => join(&out, variant),
            Segment::Unknown => join(&out, "?"),
        };
    }
    out
}

/// A key that the document has but the configuration does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownKey {
    /// The key as written.
    pub(crate) field: String,
    /// The known key it most likely means, when one is close enough.
    pub(crate) suggestion: Option<String>,
}

/// Rewrites serde's messages into the words of a configuration file; for an unknown key,
/// also says which key it is and which one it most likely means.
pub(crate) fn describe(path: String, message: &str) -> (ConfigIssue, Option<UnknownKey>) {
    if let Some((field, expected)) = parse_unknown_field(message) {
        let path = if path == field || path.ends_with(&format!(".{field}")) {
            path
        } else {
            join(&path, &field)
        };
        let (mut message, suggestion) = unknown_key_message(&field, &expected);
        if suggestion.is_none()
            && !message.contains("(views are listed")
            && let Some(section) = belongs_under(&field)
            && parent_section(&path) != section
        {
            message.push_str(&format!(" (`{field}` belongs under `{section}`)"));
        }
        return (
            ConfigIssue::new(path, message),
            Some(UnknownKey {
                field,
                suggestion: suggestion.map(str::to_owned),
            }),
        );
    }
    let mut message = message
        .replace("unit value", "null (empty value)")
        .replace("invalid type: ", "wrong type: ")
        .replace("expected a sequence", "expected a list");
    // serde names the Rust type (`expected struct LocalFile`); users think in mappings.
    if let Some(at) = message.find("expected struct ") {
        message.truncate(at);
        message.push_str("expected a mapping of keys");
    }
    // A list written on one line without brackets reads as one text.
    if message.starts_with("wrong type: string") && message.ends_with("expected a list") {
        message.push_str(" (write a list as `[A, B]` or as lines starting with `- `)");
    }
    (ConfigIssue::new(path, message), None)
}

/// Where a key of the configuration belongs, for one written at the wrong level
/// (`extractor.data_modeling`, `cognite.bucket`).
fn belongs_under(field: &str) -> Option<&'static str> {
    let key = field.replace('_', "-");
    Some(match key.as_str() {
        "type" | "logger" | "cognite" | "extractor" | "data-modeling" | "destination" => {
            "the top level of the file"
        }
        "host" | "project" | "idp-authentication" | "extraction-pipeline" | "max-retries" => {
            "cognite"
        }
        "token-url" | "client-id" | "secret" | "scopes" | "audience" => {
            "cognite.idp-authentication"
        }
        "state-store"
        | "poll-time"
        | "snapshot-interval"
        | "subscription-batch-size"
        | "ingest-batch-size"
        | "s3-ingest-batch-size"
        | "ingest-batch-bytes"
        | "parallelism"
        | "time-budget"
        | "deadline-margin"
        | "verify-interval"
        | "verify-sample"
        | "maintenance" => "extractor",
        "space" | "data-models" => "data_modeling[] (each entry: space and data_models)",
        "external-id" | "version" | "views" => "data_modeling[].data_models[]",
        "bucket" | "prefix" | "region" | "access-key-id" | "secret-access-key" => "destination.s3",
        "s3" | "local" | "catalog" => "destination",
        _ => return None,
    })
}

/// The section a key path is in, as [`belongs_under`] names it.
fn parent_section(path: &str) -> String {
    let parent = path.rsplit_once('.').map_or("", |(parent, _)| parent);
    if parent.is_empty() {
        return "the top level of the file".to_owned();
    }
    parent.replace('_', "-")
}

/// Reads serde's `unknown field `x`, expected one of `a`, `b`` message.
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    let field = rest[..end].to_string();
    let expected = rest[end + 1..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((field, expected))
}

fn unknown_key_message<'a>(field: &str, expected: &'a [String]) -> (String, Option<&'a str>) {
    // Each key is accepted in two spellings (`poll-time`, `poll_time`); show each once, in the
    // spelling the documentation uses.
    let in_data_model = expected.iter().any(|k| k == "views");
    let documented = |key: &str| match key {
        "data_modeling" | "data_models" => true,
        "external_id" => in_data_model,
        _ => !key.contains('_'),
    };
    let mut keys: Vec<&str> = Vec::new();
    for key in expected {
        match keys.iter().position(|k| same_spelling(k, key)) {
            None => keys.push(key),
            Some(i) if documented(key) => keys[i] = key,
            Some(_) => {}
        }
    }
    let mut message = format!("unknown key `{field}`");
    let best = suggestion(field, &keys);
    if let Some(best) = best {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    if field == "views" && keys.contains(&"data_models") {
        message.push_str(" (views are listed per data model, under data_models[].views)");
    }
    let sep = if message.ends_with('?') { " " } else { "; " };
    if keys.is_empty() {
        message.push_str(&format!("{sep}this section takes no keys"));
    } else {
        message.push_str(&format!("{sep}expected one of: {}", keys.join(", ")));
    }
    (message, best)
}

fn same_spelling(a: &str, b: &str) -> bool {
    a.replace('_', "-") == b.replace('_', "-")
}

/// The closest known key, if it is close enough to be a likely typo.
fn suggestion<'a>(field: &str, keys: &[&'a str]) -> Option<&'a str> {
    let squash = |s: &str| {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let wanted = squash(field);
    keys.iter()
        .map(|key| (edit_distance(&wanted, &squash(key)), *key))
        .filter(|(distance, _)| *distance <= 2.min(wanted.len() / 3 + 1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, key)| key)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            row[j + 1] = substitution.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_for_typos() {
        let keys = ["token-url", "client-id", "secret", "scopes"];
        assert_eq!(suggestion("clientid", &keys), Some("client-id"));
        assert_eq!(suggestion("Client_ID", &keys), Some("client-id"));
        assert_eq!(suggestion("scope", &keys), Some("scopes"));
        assert_eq!(suggestion("secrte", &keys), Some("secret"));
        assert_eq!(suggestion("banana", &keys), None);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("abc", "abd"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
