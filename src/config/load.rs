//! Loading a configuration file: read, parse, substitute `${VAR}`, validate, and decide
//! whether a remote configuration is needed.

use std::fmt;
use std::path::Path;

use serde_yaml_ng::Value;

use super::deserialize::{deserialize_all, take_out_all};
use super::env::{EnvSource, Scope, substitute, substitute_collecting};
use super::error::{ConfigError, ConfigIssue, Issues};
use super::findings::Findings;
use super::guard::{MAX_DOCUMENT_BYTES, secret_values_outside_credentials, too_large};
use super::parse::{collapse_spellings, parse_yaml, require_mapping, require_text_keys};
use super::settings::{CogniteSettings, Config, ConfigKind, LoggerSettings, SecretSources};
use super::validate::{self, config_kind, validate_bootstrap};

/// A loaded configuration file: complete, or a `type: remote` stub that needs the
/// configuration stored in an extraction pipeline.
#[derive(Clone)]
pub(crate) enum RawConfig {
    /// `type: local` (or no `type`): nothing more to fetch.
    Complete(Box<Config>),
    /// `type: remote`: fetch the configuration of `pipeline_external_id` with `cognite` and
    /// pass it with `local` to [`merge_remote`](super::merge_remote).
    NeedsRemote {
        /// The local document after `${VAR}` substitution.
        local: Value,
        /// The validated CDF connection of the local file, for fetching the remote part.
        cognite: Box<CogniteSettings>,
        /// The local logger settings, to log while fetching.
        logger: LoggerSettings,
        pipeline_external_id: String,
    },
}

impl fmt::Debug for RawConfig {
    /// `local` holds substituted secrets in plain text, so it is not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawConfig::Complete(config) => f.debug_tuple("Complete").field(config).finish(),
            RawConfig::NeedsRemote {
                cognite,
                logger,
                pipeline_external_id,
                ..
            } => f
                .debug_struct("NeedsRemote")
                .field("local", &"<document, not shown>")
                .field("cognite", cognite)
                .field("logger", logger)
                .field("pipeline_external_id", pipeline_external_id)
                .finish(),
        }
    }
}

impl RawConfig {
    /// Reads and validates the file at `path`, substituting `${VAR}` from `env`.
    pub(crate) fn load(path: &Path, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let text = read_bounded(path)?;
        Self::from_yaml(&text, &path.display().to_string(), env)
    }

    /// Like [`RawConfig::load`] for YAML text; `origin` names it in syntax errors.
    ///
    /// Every problem of the document is reported at once (see [`Findings`]): all unknown
    /// keys, all variables that cannot be expanded, all values of the wrong type and all
    /// semantic problems. Unknown keys are found before substitution, so a misspelled
    /// section is reported as the misspelling it is and its values are never expanded.
    pub(crate) fn from_yaml(
        text: &str,
        origin: &str,
        env: &dyn EnvSource,
    ) -> Result<Self, ConfigError> {
        let mut document = parse_yaml(text, origin)?;
        require_mapping(&document, &format!("the configuration ({origin})"))?;
        require_text_keys(&document)?;
        let mut notes = Vec::new();
        collapse_spellings(&mut document, "", &mut notes);
        let mut findings = Findings::default();

        // Unknown keys, in the document as written.
        let (_, rejected) = deserialize_all(document.clone());
        let mut unknown = Vec::new();
        for rejected in rejected.into_iter().filter(|r| r.unknown.is_some()) {
            if let Some(meant) = rejected.meant_path() {
                findings.meant(&meant);
            }
            unknown.push(rejected.at.clone());
            findings.refused(rejected.issue);
        }
        take_out_all(&mut document, &unknown);

        let substitution = substitute_collecting(&mut document, env, Scope::Local);
        for (path, variable) in &substitution.empty {
            findings.empty_variable(path, variable);
        }
        for issue in substitution.issues.iter().cloned() {
            findings.refused(issue);
        }

        let (file, rejected) = deserialize_all(document.clone());
        for rejected in rejected {
            findings.refused(rejected.issue);
        }
        let Some(file) = file else {
            return Err(findings.into_result().err().unwrap_or_else(unexplained));
        };

        let mut issues = Issues::default();
        let kind = config_kind(&file, &mut issues);
        findings.later(issues.into_vec());
        match kind {
            ConfigKind::Local => {
                let config = match validate::validate(file, kind, notes) {
                    Ok(config) => Some(config),
                    Err(ConfigError::Invalid(semantic)) => {
                        findings.later(semantic);
                        None
                    }
                    Err(other) => return Err(other),
                };
                findings.into_result()?;
                let Some(mut config) = config else {
                    return Err(unexplained());
                };
                config.secret_sources = SecretSources::from_references(&substitution.references);
                no_secret_outside_credentials(&document, &config.cognite, Some(&config), env)?;
                Ok(RawConfig::Complete(Box::new(config)))
            }
            ConfigKind::Remote => {
                let bootstrap = match validate_bootstrap(&file) {
                    Ok(bootstrap) => Some(bootstrap),
                    Err(ConfigError::Invalid(semantic)) => {
                        findings.later(semantic);
                        None
                    }
                    Err(other) => return Err(other),
                };
                findings.into_result()?;
                let Some(bootstrap) = bootstrap else {
                    return Err(unexplained());
                };
                no_secret_outside_credentials(&document, &bootstrap.cognite, None, env)?;
                Ok(RawConfig::NeedsRemote {
                    local: document,
                    cognite: Box::new(bootstrap.cognite),
                    logger: bootstrap.logger,
                    pipeline_external_id: bootstrap.pipeline_external_id,
                })
            }
        }
    }
}

/// Stands in for the findings of a stage that failed without a problem of its own left to
/// report; every such failure has an earlier problem that explains it, so this is not seen.
fn unexplained() -> ConfigError {
    ConfigError::Invalid(vec![ConfigIssue::new(
        "",
        "the configuration could not be read into its sections",
    )])
}

#[cfg(test)]
/// Loads a configuration that must be complete on its own (`type: local`). A `type: remote`
/// file gives [`ConfigError::RemoteNotFetched`]; use [`RawConfig::load`] to handle both.
pub(crate) fn load_config(path: &Path, env: &dyn EnvSource) -> Result<Config, ConfigError> {
    match RawConfig::load(path, env)? {
        RawConfig::Complete(config) => Ok(*config),
        RawConfig::NeedsRemote {
            pipeline_external_id,
            ..
        } => Err(ConfigError::RemoteNotFetched {
            pipeline_external_id,
        }),
    }
}

/// Parses YAML text, checks that it is a mapping and substitutes `${VAR}` under the rules
/// of `scope`.
pub(crate) fn substituted_document(
    text: &str,
    origin: &str,
    env: &dyn EnvSource,
    scope: Scope,
) -> Result<Value, ConfigError> {
    let mut document = parse_yaml(text, origin)?;
    require_mapping(&document, &format!("the configuration ({origin})"))?;
    substitute(&mut document, env, scope)?;
    Ok(document)
}

/// Reads a configuration file, refusing one larger than [`MAX_DOCUMENT_BYTES`] without
/// reading all of it.
fn read_bounded(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let read_error = |cause| ConfigError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    // One byte more than the limit tells an oversized file from one of exactly the limit.
    file.take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(too_large(
            &path.display().to_string(),
            &format!("more than {MAX_DOCUMENT_BYTES}"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not UTF-8 text",
        ))
    })
}

/// Process variables whose values are credentials of the process itself; their values are
/// searched for like the configured secrets.
const PROCESS_SECRET_VARIABLES: [&str; 3] = [
    "COGNITE_CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Refuses a document where a non-credential string holds the value of a known secret: the
/// configured client secret or S3 secret key, or one of [`PROCESS_SECRET_VARIABLES`]. Such a
/// value would be printed by `check-config` or sent in a request (a key prefix, a RAW name).
pub(crate) fn no_secret_outside_credentials(
    document: &Value,
    cognite: &super::settings::CogniteSettings,
    config: Option<&Config>,
    env: &dyn EnvSource,
) -> Result<(), ConfigError> {
    let process: Vec<(String, String)> = PROCESS_SECRET_VARIABLES
        .iter()
        .filter_map(|name| env.get(name).map(|value| (format!("${{{name}}}"), value)))
        .collect();
    let mut secrets: Vec<(&str, &str)> =
        vec![("the CDF client secret", cognite.credentials.secret.expose())];
    if let Some(config) = config
        && let super::settings::Destination::S3(s3) = &config.destination
        && let Some(keys) = &s3.credentials
    {
        secrets.push(("the S3 secret access key", keys.secret_access_key.expose()));
    }
    secrets.extend(
        process
            .iter()
            .map(|(what, value)| (what.as_str(), value.as_str())),
    );
    let mut issues = Issues::default();
    secret_values_outside_credentials(document, &secrets, &mut issues);
    issues.into_result(())
}
