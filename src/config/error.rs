//! Errors of configuration loading.
//!
//! Every problem names the key path it concerns (`data_modeling[1].data_models[0].version`),
//! so that a user can find it in the file without reading the loader's code.

use std::fmt;
use std::path::PathBuf;

/// One problem with one key of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path with `[index]` for list entries; empty for the document itself.
    pub(crate) path: String,
    /// What is wrong: the offending value (never a secret) and what was expected.
    pub(crate) message: String,
}

impl ConfigIssue {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(document): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The cause is part of the message and deliberately not a `source()`: error chains
    /// (`{:#}`) print every source after the message, which showed the cause twice.
    #[error("cannot read configuration file {}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        cause: std::io::Error,
    },

    /// The document is larger or nests deeper than a configuration can; refused before
    /// parsing (see `MAX_DOCUMENT_BYTES`, `MAX_NESTING`).
    #[error("{origin}: {message}")]
    TooLarge {
        /// The file or source the text came from.
        origin: String,
        /// Which limit was exceeded.
        message: String,
    },

    /// A `.env` file (read for `${VAR}` in local runs) exists but could not be read or parsed.
    #[error("cannot read environment file {}: {message}", path.display())]
    DotEnv {
        /// The `.env` file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// The text is not valid YAML. `line`/`column` are 1-based when the parser knows them.
    #[error("malformed YAML in {origin}: {message}")]
    Syntax {
        /// The file or source the text came from.
        origin: String,
        /// What the YAML parser said.
        message: String,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// 1-based column of the error, when known.
        column: Option<usize>,
    },

    /// The document is YAML but not a valid configuration. Lists every problem found.
    #[error("invalid configuration:{}", IssueList(.0))]
    Invalid(Vec<ConfigIssue>),

    /// `load_config` was asked for a complete configuration, but the file delegates to a
    /// remote configuration that the caller must fetch first (see `RawConfig`).
    #[error(
        "the configuration has `type: remote`: fetch the configuration of extraction pipeline \
         `{pipeline_external_id}` and merge it with `merge_remote`"
    )]
    RemoteNotFetched {
        /// The extraction pipeline whose configuration must be fetched.
        pipeline_external_id: String,
    },
}

impl ConfigError {
    #[cfg(test)]
    /// The issues of an `Invalid` error; empty for other kinds.
    pub(crate) fn issues(&self) -> &[ConfigIssue] {
        match self {
            ConfigError::Invalid(issues) => issues,
            _ => &[],
        }
    }
}

struct IssueList<'a>(&'a [ConfigIssue]);

impl fmt::Display for IssueList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for issue in self.0 {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

/// Collects semantic issues so that one run reports all of them, not only the first.
#[derive(Debug, Default)]
pub(crate) struct Issues(Vec<ConfigIssue>);

impl From<Vec<ConfigIssue>> for Issues {
    fn from(issues: Vec<ConfigIssue>) -> Self {
        Self(issues)
    }
}

impl Issues {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue::new(path, message));
    }

    pub(crate) fn into_vec(self) -> Vec<ConfigIssue> {
        self.0
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError::Invalid(self.0))
        }
    }
}

/// Joins a parent key path and a child key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Appends a list index to a key path.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}
