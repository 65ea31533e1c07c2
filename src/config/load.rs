//! Loading a configuration file: read, parse, substitute `${VAR}`, validate, and decide
//! whether a remote configuration is needed.

use std::fmt;
use std::path::Path;

use serde_yaml_ng::Value;

use super::env::{EnvSource, substitute};
use super::error::{ConfigError, Issues};
use super::parse::{parse_yaml, require_mapping, to_config_file};
use super::settings::{CogniteSettings, Config, ConfigKind, LoggerSettings};
use super::validate::{self, config_kind, validate_bootstrap};

/// A loaded configuration file: complete, or a `type: remote` stub that needs the
/// configuration stored in an extraction pipeline.
#[derive(Clone)]
pub enum RawConfig {
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
    pub fn load(path: &Path, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string(), env)
    }

    /// Like [`RawConfig::load`] for YAML text; `origin` names it in syntax errors.
    pub fn from_yaml(text: &str, origin: &str, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let document = substituted_document(text, origin, env)?;
        let (file, notes) = to_config_file(document.clone())?;
        let mut issues = Issues::default();
        let kind = config_kind(&file, &mut issues);
        issues.into_result(())?;
        match kind {
            ConfigKind::Local => Ok(RawConfig::Complete(Box::new(validate::validate(
                file, kind, notes,
            )?))),
            ConfigKind::Remote => {
                let bootstrap = validate_bootstrap(&file)?;
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

/// Loads a configuration that must be complete on its own (`type: local`). A `type: remote`
/// file gives [`ConfigError::RemoteNotFetched`]; use [`RawConfig::load`] to handle both.
pub fn load_config(path: &Path, env: &dyn EnvSource) -> Result<Config, ConfigError> {
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

/// Parses YAML text, checks that it is a mapping and substitutes `${VAR}`.
pub(crate) fn substituted_document(
    text: &str,
    origin: &str,
    env: &dyn EnvSource,
) -> Result<Value, ConfigError> {
    let mut document = parse_yaml(text, origin)?;
    require_mapping(&document, &format!("the configuration ({origin})"))?;
    substitute(&mut document, env)?;
    Ok(document)
}
