//! Tests of configuration loading against the original README's examples, malformed
//! documents, remote merging and `.env` handling.

mod catalog;
mod effective;
mod env_files;
mod malformed;
mod python_remote;
mod readme;
mod remote;
mod robustness;
mod security;
mod slips;
mod values;

use std::path::PathBuf;

use super::{Config, ConfigError, ConfigIssue, MapEnv, RawConfig, read_dotenv};

/// A complete, valid document with literal values; tests derive broken variants from it.
pub(super) const VALID: &str = r#"
cognite:
  host: https://api.cognitedata.com
  project: my-project
  idp-authentication:
    token-url: https://login.example.com/oauth2/token
    client-id: my-client
    secret: s3cr3t-value
    scopes: [https://api.cognitedata.com/.default]
extractor:
  poll-time: 900
  parallelism: 2
data_modeling:
  - space: plant
    data_models:
      - external_id: PlantModel
        version: "1"
        views: [Pump, Valve]
destination:
  local:
    path: ./lake
"#;

pub(super) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

pub(super) fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// The variables of the README's `.env` example.
pub(super) fn readme_env() -> MapEnv {
    read_dotenv(&fixture("readme.env"))
        .unwrap()
        .into_iter()
        .collect()
}

/// `VALID` with `from` replaced by `to`; `from` must occur.
pub(super) fn variant(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "test bug: {from:?} not in VALID");
    VALID.replacen(from, to, 1)
}

pub(super) fn load_with(yaml: &str, env: &MapEnv) -> Result<Config, ConfigError> {
    match RawConfig::from_yaml(yaml, "test.yaml", env)? {
        RawConfig::Complete(config) => Ok(*config),
        RawConfig::NeedsRemote { .. } => panic!("expected a local configuration"),
    }
}

pub(super) fn load(yaml: &str) -> Result<Config, ConfigError> {
    load_with(yaml, &MapEnv::new())
}

pub(super) fn issues(yaml: &str) -> Vec<ConfigIssue> {
    match load(yaml) {
        Ok(_) => panic!("expected an invalid configuration:\n{yaml}"),
        Err(ConfigError::Invalid(issues)) => issues,
        Err(other) => panic!("expected ConfigError::Invalid, got {other}"),
    }
}

/// Asserts that loading `yaml` fails with exactly one issue at `path` whose message
/// contains every needle.
#[track_caller]
pub(super) fn assert_single_issue(yaml: &str, path: &str, needles: &[&str]) {
    let found = issues(yaml);
    assert_eq!(found.len(), 1, "expected one issue, got: {found:#?}");
    assert_eq!(found[0].path, path, "{found:#?}");
    for needle in needles {
        assert!(
            found[0].message.contains(needle),
            "message {:?} lacks {needle:?}",
            found[0].message
        );
    }
}
