//! Semantic validation: turns the document as written into a [`Config`], applying defaults
//! and reporting every problem (key path, value, expectation) rather than only the first.

mod connection;
mod data_modeling;
pub(crate) mod destination;
mod extractor;
mod values;

use super::error::{ConfigError, ConfigIssue, Issues};
use super::model::{ConfigFile, Text};
use super::settings::{CogniteSettings, Config, ConfigKind, LoggerSettings};

/// What the `type` key asks for.
pub(crate) fn config_kind(file: &ConfigFile, issues: &mut Issues) -> ConfigKind {
    match &file.kind {
        None => ConfigKind::Local,
        Some(Text(kind)) => match kind.trim().to_ascii_lowercase().as_str() {
            "local" => ConfigKind::Local,
            "remote" => ConfigKind::Remote,
            _ => {
                issues.push(
                    "type",
                    format!("unknown configuration type {kind:?}; expected `local` or `remote`"),
                );
                ConfigKind::Local
            }
        },
    }
}

/// Validates a complete configuration.
/// `notes` are earlier warnings (from parsing) to keep in [`Config::warnings`].
pub(crate) fn validate(
    file: ConfigFile,
    kind: ConfigKind,
    notes: Vec<ConfigIssue>,
) -> Result<Config, ConfigError> {
    let mut issues = Issues::default();
    let mut warnings = Issues::from(notes);
    let logger = connection::logger(file.logger.as_ref(), &mut issues);
    let cognite = connection::cognite(file.cognite.as_ref(), kind, &mut issues);
    let extractor = extractor::extractor(file.extractor.as_ref(), &mut issues, &mut warnings);
    let data_modeling =
        data_modeling::data_modeling(file.data_modeling.as_deref(), &mut issues, &mut warnings);
    let destination = destination::destination(file.destination.as_ref(), &mut issues);
    let catalog = destination::catalog(file.destination.as_ref(), &destination, &mut issues);
    issues.into_result(Config {
        kind,
        logger,
        cognite,
        extractor,
        data_modeling,
        destination,
        catalog,
        warnings: warnings.into_vec(),
        secret_sources: Default::default(),
    })
}

/// The part of a `type: remote` file that is needed to fetch the remote configuration.
pub(crate) struct RemoteBootstrap {
    pub(crate) logger: LoggerSettings,
    pub(crate) cognite: CogniteSettings,
    pub(crate) pipeline_external_id: String,
}

/// Validates only what a `type: remote` file must hold on its own: `cognite` (with the
/// extraction pipeline) and `logger`. The rest may come from the remote configuration.
pub(crate) fn validate_bootstrap(file: &ConfigFile) -> Result<RemoteBootstrap, ConfigError> {
    let mut issues = Issues::default();
    let logger = connection::logger(file.logger.as_ref(), &mut issues);
    let cognite = connection::cognite(file.cognite.as_ref(), ConfigKind::Remote, &mut issues);
    let pipeline_external_id = cognite.extraction_pipeline.clone().unwrap_or_default();
    issues.into_result(RemoteBootstrap {
        logger,
        cognite,
        pipeline_external_id,
    })
}
