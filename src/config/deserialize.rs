//! Deserializing the value tree into the document model while reporting *every* unknown key
//! and value of the wrong type, not only the first one serde stops at.
//!
//! serde stops at the first problem. So each problem is recorded, the offending key is taken
//! out of the tree (every key of the model is optional, so the rest still deserializes), and
//! deserialization runs again, until it succeeds or [`MAX_REJECTED`] problems are recorded.
//! A list entry cannot be taken out without renumbering the entries after it, so it is
//! replaced by an empty stand-in that validation then reports at its own path.

use serde_path_to_error::Segment;
use serde_yaml_ng::{Mapping, Value};

use super::env::key_text;
use super::error::ConfigIssue;
use super::model::ConfigFile;
use super::parse::{UnknownKey, describe, render_path};

/// Problems recorded before giving up: far more than a real file has, and a bound on the
/// work a hostile document can cause (each round deserializes the whole tree again).
pub(crate) const MAX_REJECTED: usize = 100;

/// One step from a mapping into a key, or from a list into an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// A value the model refused, and where it was in the tree.
#[derive(Debug, Clone)]
pub(crate) struct Rejected {
    /// What is wrong, at the key path of the value.
    pub(crate) issue: ConfigIssue,
    /// Set when the key itself is unknown (a misspelling, a key at the wrong level).
    pub(crate) unknown: Option<UnknownKey>,
    /// Where the refused value was (taken out, or replaced in a list).
    pub(crate) at: Vec<Step>,
}

impl Rejected {
    /// The key path of the known key a misspelled key most likely meant.
    pub(crate) fn meant_path(&self) -> Option<String> {
        let suggestion = self.unknown.as_ref()?.suggestion.as_ref()?;
        let parent = match self.issue.path.rfind('.') {
            Some(at) => &self.issue.path[..at],
            None => "",
        };
        Some(super::error::join(parent, suggestion))
    }
}

/// Deserializes `value`, recording every refused value. The model is `None` only when a
/// problem could not be taken out of the tree (then the record ends with it).
pub(crate) fn deserialize_all(mut value: Value) -> (Option<ConfigFile>, Vec<Rejected>) {
    let mut rejected: Vec<Rejected> = Vec::new();
    while rejected.len() < MAX_REJECTED {
        let error = match serde_path_to_error::deserialize::<_, ConfigFile>(value.clone()) {
            Ok(file) => return (Some(file), rejected),
            Err(error) => error,
        };
        let mut at = steps(error.path());
        let (issue, unknown) = describe(render_path(error.path()), &error.inner().to_string());
        if let (Some(unknown), Some(at)) = (&unknown, &mut at)
            && at.last() != Some(&Step::Key(unknown.field.clone()))
        {
            at.push(Step::Key(unknown.field.clone()));
        }
        let struct_expected = issue.message.ends_with("expected a mapping of keys");
        let repeated = rejected.iter().any(|r| Some(&r.at) == at.as_ref());
        let taken_out = !repeated
            && at
                .as_ref()
                .is_some_and(|at| take_out(&mut value, at, struct_expected));
        rejected.push(Rejected {
            issue,
            unknown,
            at: at.unwrap_or_default(),
        });
        if !taken_out {
            return (None, rejected);
        }
    }
    (None, rejected)
}

/// Takes the keys at `locations` out of `value`, where they are still present.
pub(crate) fn take_out_all(value: &mut Value, locations: &[Vec<Step>]) {
    for at in locations {
        take_out(value, at, false);
    }
}

/// The tree steps of a serde path; `None` when a step is not a key or an index.
fn steps(path: &serde_path_to_error::Path) -> Option<Vec<Step>> {
    path.iter()
        .map(|segment| match segment {
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

/// Takes the value at `at` out of the tree: a key is removed from its mapping, a list entry
/// is replaced by an empty mapping (`mapping`) or empty text. `false` when there is no
/// such value.
fn take_out(value: &mut Value, at: &[Step], mapping: bool) -> bool {
    let Some((last, parents)) = at.split_last() else {
        return false;
    };
    let mut node = value;
    for step in parents {
        node = match child(node, step) {
            Some(next) => next,
            None => return false,
        };
    }
    match (untag(node), last) {
        (Value::Mapping(map), Step::Key(key)) => remove_key(map, key),
        (Value::Sequence(items), Step::Index(i)) => match items.get_mut(*i) {
            Some(item) => {
                *item = if mapping {
                    Value::Mapping(Mapping::new())
                } else {
                    Value::String(String::new())
                };
                true
            }
            None => false,
        },
        _ => false,
    }
}

fn untag(value: &mut Value) -> &mut Value {
    match value {
        Value::Tagged(tagged) => untag(&mut tagged.value),
        other => other,
    }
}

fn child<'a>(value: &'a mut Value, step: &Step) -> Option<&'a mut Value> {
    match (untag(value), step) {
        (Value::Mapping(map), Step::Key(key)) => map
            .iter_mut()
            .find(|(k, _)| key_text(k) == *key)
            .map(|(_, v)| v),
        (Value::Sequence(items), Step::Index(i)) => items.get_mut(*i),
        _ => None,
    }
}

fn remove_key(map: &mut Mapping, key: &str) -> bool {
    let found = map.keys().find(|k| key_text(k) == key).cloned();
    found.is_some_and(|k| map.remove(&k).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(yaml: &str) -> Vec<Rejected> {
        deserialize_all(serde_yaml_ng::from_str(yaml).unwrap()).1
    }

    #[test]
    fn every_unknown_key_and_wrong_value_is_recorded() {
        let found = rejected(
            "cognite:\n  hots: x\n  projekt: y\nextractor:\n  parallelism: many\n  \
             poll-tim: 5\nlogger: {console: {levle: INFO}}\n",
        );
        let paths: Vec<&str> = found.iter().map(|r| r.issue.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "cognite.hots",
                "cognite.projekt",
                "extractor.parallelism",
                "extractor.poll-tim",
                "logger.console.levle"
            ],
            "{found:#?}"
        );
        assert_eq!(
            found[0].meant_path().as_deref(),
            Some("cognite.host"),
            "{found:#?}"
        );
        assert!(found[2].unknown.is_none());
    }

    #[test]
    fn a_wrong_list_entry_is_replaced_not_renumbered() {
        let found = rejected(
            "data_modeling:\n  - plant\n  - space: b\n    data_models: [M]\n  - space: c\n    \
             bogus: 1\n",
        );
        let paths: Vec<&str> = found.iter().map(|r| r.issue.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "data_modeling[0]",
                "data_modeling[1].data_models[0]",
                "data_modeling[2].bogus"
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn the_record_is_bounded() {
        let keys: String = (0..MAX_REJECTED + 20)
            .map(|i| format!("  unknown{i}: 1\n"))
            .collect();
        let found = rejected(&format!("cognite:\n{keys}"));
        assert_eq!(found.len(), MAX_REJECTED);
    }
}
