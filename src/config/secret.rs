//! Reading secrets from the configuration file.

use serde::{Deserialize, Deserializer};

use super::model::Text;
pub(crate) use crate::secret::Secret;

impl<'de> Deserialize<'de> for Secret {
    /// Accepts any scalar, because a secret made only of digits is read by YAML as a number.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Text::deserialize(deserializer).map(|text| Secret::new(text.0))
    }
}
