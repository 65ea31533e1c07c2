//! The function's own values, which a remote document may name with the Python replicator's
//! variables.
//!
//! The Python replicator's README stores the whole `config.yaml` in the extraction pipeline,
//! `${COGNITE_BASE_URL}`, `${AWS_S3_BUCKET}` and the other references included, and its
//! loader expanded them from the process environment. A remote document here may not read
//! the environment: whoever edits the pipeline's configuration could copy a credential into a
//! field that is printed or sent elsewhere. So each of those names stands for *the function's
//! own value of the key where the Python configuration uses it*, taken from the local
//! (bootstrap) document, and may be used only in that key. In that key the reference can
//! only repeat what the function already has; anywhere else it is refused.
//!
//! `${COGNITE_CLIENT_SECRET}` is stricter still: it must be the whole value of
//! `cognite.idp-authentication.secret`, so the secret never becomes part of a text that could
//! be printed or sent.

use serde_yaml_ng::Value;

use crate::config::parse::same_key;
use crate::config::settings::{CogniteSettings, defaults};

/// One variable of the Python replicator's `config.yaml` and `.env` example.
struct PythonVariable {
    name: &'static str,
    /// The key where the Python configuration uses it, spelled with `-`.
    home: &'static str,
    /// What it stands for, as messages name it.
    what: &'static str,
}

/// Every `${VAR}` of the Python replicator's documented `config.yaml`.
const PYTHON_VARIABLES: [PythonVariable; 12] = [
    PythonVariable {
        name: "COGNITE_BASE_URL",
        home: "cognite.host",
        what: "CDF host",
    },
    PythonVariable {
        name: "COGNITE_PROJECT",
        home: "cognite.project",
        what: "CDF project",
    },
    PythonVariable {
        name: "COGNITE_TOKEN_URL",
        home: "cognite.idp-authentication.token-url",
        what: "token URL",
    },
    PythonVariable {
        name: "COGNITE_CLIENT_ID",
        home: "cognite.idp-authentication.client-id",
        what: "client id",
    },
    PythonVariable {
        name: CLIENT_SECRET_VARIABLE,
        home: "cognite.idp-authentication.secret",
        what: "CDF client secret",
    },
    PythonVariable {
        name: "COGNITE_TOKEN_SCOPES",
        home: "cognite.idp-authentication.scopes",
        what: "token scopes",
    },
    PythonVariable {
        name: "COGNITE_EXTRACTION_PIPELINE",
        home: "cognite.extraction-pipeline.external-id",
        what: "extraction pipeline",
    },
    PythonVariable {
        name: STATE_DB_VARIABLE,
        home: "extractor.state-store.raw.database",
        what: "state database",
    },
    PythonVariable {
        name: STATE_TABLE_VARIABLE,
        home: "extractor.state-store.raw.table",
        what: "state table",
    },
    PythonVariable {
        name: "AWS_S3_BUCKET",
        home: "destination.s3.bucket",
        what: "bucket",
    },
    PythonVariable {
        name: "S3_PREFIX",
        home: "destination.s3.prefix",
        what: "key prefix",
    },
    PythonVariable {
        name: REGION_VARIABLE,
        home: "destination.s3.region",
        what: "region",
    },
];

const CLIENT_SECRET_VARIABLE: &str = "COGNITE_CLIENT_SECRET";
const STATE_DB_VARIABLE: &str = "COGNITE_STATE_DB";
const STATE_TABLE_VARIABLE: &str = "COGNITE_STATE_TABLE";
const REGION_VARIABLE: &str = "AWS_REGION";
/// The AWS SDKs' second region variable, read when `AWS_REGION` is not set.
const DEFAULT_REGION_VARIABLE: &str = "AWS_DEFAULT_REGION";

/// Process variables whose values are credentials; never shown in a refusal.
const PROCESS_SECRET_VARIABLES: [&str; 3] = [
    CLIENT_SECRET_VARIABLE,
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// The names of [`PYTHON_VARIABLES`], for messages.
pub(crate) fn python_variable_names() -> String {
    PYTHON_VARIABLES
        .iter()
        .map(|v| v.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The function's own connection, destination and state store, by the Python replicator's
/// variable names, and the secret values a refusal must never show.
pub(crate) struct OwnValues {
    /// `(variable, value)`; `None` where the function has no such value.
    values: Vec<(&'static str, Option<String>)>,
    /// The region the function's S3 client uses: the local document's, else the SDK's
    /// variables (`AWS_REGION`, `AWS_DEFAULT_REGION`), which Lambda always sets.
    region: Option<String>,
    /// The local document's `destination.s3.region` alone.
    configured_region: Option<String>,
    secrets: Vec<String>,
}

impl OwnValues {
    /// Reads the own values from the local document `local` (after substitution and with its
    /// key spellings collapsed), its validated connection `cognite` and, for the region and
    /// the state store, the function's environment.
    ///
    /// The state store is the local document's, else the function's own `COGNITE_STATE_DB`
    /// / `COGNITE_STATE_TABLE` (the Python replicator's names for it, which its runtime
    /// secret holds), else the defaults. The connection and the destination come from the
    /// local document only: the environment can never add a destination the local document
    /// does not have.
    pub(crate) fn new(
        local: &Value,
        cognite: &CogniteSettings,
        env: &dyn crate::config::EnvSource,
    ) -> Self {
        let local_text = |path: &[&str]| lookup(local, path).and_then(scalar_text);
        let env_text = |name: &str| env.get(name).filter(|v| !v.trim().is_empty());
        let s3 = lookup(local, &["destination", "s3"]).filter(|s3| s3.is_mapping());
        let configured_region = local_text(&["destination", "s3", "region"]);
        let region = s3.and_then(|_| {
            configured_region
                .clone()
                .or_else(|| env_text(REGION_VARIABLE))
                .or_else(|| env_text(DEFAULT_REGION_VARIABLE))
        });
        let credentials = &cognite.credentials;
        let scopes = (!credentials.scopes.is_empty()).then(|| credentials.scopes.join(" "));
        let state = |key: &str, variable: &str, default: &str| {
            local_text(&["extractor", "state-store", "raw", key])
                .or_else(|| env_text(variable))
                .unwrap_or_else(|| default.to_owned())
        };
        let values = vec![
            ("COGNITE_BASE_URL", Some(cognite.host.clone())),
            ("COGNITE_PROJECT", Some(cognite.project.clone())),
            ("COGNITE_TOKEN_URL", Some(credentials.token_url.clone())),
            ("COGNITE_CLIENT_ID", Some(credentials.client_id.clone())),
            (
                CLIENT_SECRET_VARIABLE,
                Some(credentials.secret.expose().to_owned()),
            ),
            ("COGNITE_TOKEN_SCOPES", scopes),
            (
                "COGNITE_EXTRACTION_PIPELINE",
                cognite.extraction_pipeline.clone(),
            ),
            (
                STATE_DB_VARIABLE,
                Some(state(
                    "database",
                    STATE_DB_VARIABLE,
                    defaults::STATE_DATABASE,
                )),
            ),
            (
                STATE_TABLE_VARIABLE,
                Some(state("table", STATE_TABLE_VARIABLE, defaults::STATE_TABLE)),
            ),
            (
                "AWS_S3_BUCKET",
                local_text(&["destination", "s3", "bucket"]).filter(|_| s3.is_some()),
            ),
            (
                "S3_PREFIX",
                s3.map(|_| local_text(&["destination", "s3", "prefix"]).unwrap_or_default()),
            ),
            (REGION_VARIABLE, region.clone()),
        ];
        let mut secrets: Vec<String> = PROCESS_SECRET_VARIABLES
            .iter()
            .filter_map(|name| env_text(name))
            .collect();
        secrets.push(credentials.secret.expose().to_owned());
        secrets.extend(local_text(&["destination", "s3", "secret-access-key"]));
        secrets.retain(|s| !s.trim().is_empty());
        Self {
            values,
            region,
            configured_region,
            secrets,
        }
    }

    /// What `${name}` at key `path` resolves to, if `name` is one of the Python replicator's
    /// variables: the function's own value, or why it may not be used there. `whole` says
    /// whether the reference is the whole value. `None` for any other name.
    pub(crate) fn resolve(
        &self,
        name: &str,
        path: &str,
        whole: bool,
    ) -> Option<Result<String, String>> {
        let variable = PYTHON_VARIABLES.iter().find(|v| v.name == name)?;
        let (home, what) = (variable.home, variable.what);
        if !is_home(path, home) {
            return Some(Err(format!(
                "`${{{name}}}` stands for the function's own {what} and may be used in the \
                 remote configuration only in {home}, where the Python replicator's \
                 configuration has it; write the value itself"
            )));
        }
        if name == CLIENT_SECRET_VARIABLE && !whole {
            return Some(Err(format!(
                "`${{{name}}}` stands for the function's own {what} and must be the whole \
                 value of {home}; remove the key from the configuration stored in the \
                 extraction pipeline (the function's own secret applies)"
            )));
        }
        let value = self
            .values
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, value)| value.clone());
        Some(value.ok_or_else(|| {
            format!(
                "`${{{name}}}` stands for the function's own {what}, but the function has \
                 none: its local configuration sets no {home}. Remove the key from the \
                 configuration stored in the extraction pipeline; the connection and the \
                 destination come from the local configuration only"
            )
        }))
    }

    /// The function's own value of `variable` (one of the Python replicator's names).
    pub(crate) fn value(&self, variable: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == variable)
            .and_then(|(_, value)| value.as_deref())
    }

    /// Whether `region` is the region the function already uses. An absent region repeats
    /// only the local document's absent region, never one the SDK found in the environment.
    pub(crate) fn same_region(&self, region: Option<&str>) -> bool {
        match region {
            None => self.configured_region.is_none(),
            Some(region) => self.region.as_deref() == Some(region),
        }
    }

    /// The function's region, as a refusal shows it.
    pub(crate) fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// `text` with every known secret value replaced by `***`, for a refusal that shows a
    /// value.
    pub(crate) fn redacted(&self, text: &str) -> String {
        crate::secret::redact(&crate::secret::redact_values(text, &self.secrets))
    }
}

/// Whether the key path `path` (as in errors, either spelling) is `home`, or an entry of it
/// when `home` is a list (`scopes[0]`).
fn is_home(path: &str, home: &str) -> bool {
    let path = path.replace('_', "-");
    let entry = path
        .strip_suffix(']')
        .and_then(|p| p.rsplit_once('['))
        .filter(|(_, index)| index.chars().all(|c| c.is_ascii_digit()))
        .map(|(list, _)| list);
    path == home || entry == Some(home)
}

/// The value at `path` (keys in either spelling) of a mapping tree.
pub(crate) fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| match value {
        Value::Mapping(map) => map
            .iter()
            .find(|(k, _)| same_key(k, &Value::from(*key)))
            .map(|(_, v)| v),
        _ => None,
    })
}

/// A scalar as the text it means (`2024` and `true` as written); `None` for null, a
/// mapping or a list.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Tagged(tagged) => scalar_text(&tagged.value),
        Value::Null | Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_keys_in_either_spelling_and_list_entries() {
        assert!(is_home("cognite.host", "cognite.host"));
        assert!(is_home(
            "cognite.idp_authentication.client_id",
            "cognite.idp-authentication.client-id"
        ));
        assert!(is_home(
            "cognite.idp-authentication.scopes[1]",
            "cognite.idp-authentication.scopes"
        ));
        assert!(!is_home("cognite.hostname", "cognite.host"));
        assert!(!is_home(
            "extractor.state-store.raw.database",
            "cognite.host"
        ));
        assert!(!is_home("cognite.host[x]", "cognite.host"));
    }

    #[test]
    fn lookup_reads_either_spelling() {
        let value: Value =
            serde_yaml_ng::from_str("destination:\n  s3:\n    secret_access_key: k\n").unwrap();
        assert_eq!(
            lookup(&value, &["destination", "s3", "secret-access-key"]).and_then(scalar_text),
            Some("k".to_owned())
        );
        assert_eq!(lookup(&value, &["destination", "local"]), None);
    }
}
