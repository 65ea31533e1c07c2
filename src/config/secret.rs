//! A credential that must never reach a log line.

use std::fmt;

use serde::{Deserialize, Deserializer};

use super::model::Text;

/// A secret configuration value (client secret, S3 secret key).
///
/// `Debug` and `Display` print `***`, so a secret cannot leak through `{:?}` of a config
/// struct or an error message. Read the value only where it is sent, with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text, for the one place that sends it (token request, S3 signer).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Accepts any scalar, because a secret made only of digits is read by YAML as a number.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Text::deserialize(deserializer).map(|text| Secret(text.0))
    }
}
