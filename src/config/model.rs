//! The configuration document as written: every key the file may contain, nothing more.
//!
//! Unknown keys are rejected at every level (`deny_unknown_fields`). Values stay loosely typed
//! here (`Option`, text, raw numbers) so that the validation pass can report every missing or
//! out-of-range value at once, with a message of its own, instead of stopping at the first.
//!
//! Key spelling: kebab-case, except `data_modeling`, `data_models` and `external_id`, which the
//! original replicator spelled in snake_case. The original (Python extractor-utils) also
//! accepted the other spelling of every key (it translated `-` to `_`), so each key has that
//! spelling as an alias. When one mapping holds both spellings, the later one is kept before
//! deserializing (see `parse::collapse_spellings`), as the original did.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(rename = "type")]
    pub(crate) kind: Option<Text>,
    pub(crate) logger: Option<LoggerFile>,
    pub(crate) cognite: Option<CogniteFile>,
    pub(crate) extractor: Option<ExtractorFile>,
    #[serde(alias = "data-modeling")]
    pub(crate) data_modeling: Option<Vec<SpaceFile>>,
    pub(crate) destination: Option<DestinationFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoggerFile {
    pub(crate) console: Option<ConsoleLoggerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsoleLoggerFile {
    pub(crate) level: Option<Text>,
    pub(crate) format: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct CogniteFile {
    pub(crate) host: Option<Text>,
    pub(crate) project: Option<Text>,
    #[serde(alias = "idp_authentication")]
    pub(crate) idp_authentication: Option<IdpAuthenticationFile>,
    #[serde(alias = "extraction_pipeline")]
    pub(crate) extraction_pipeline: Option<ExtractionPipelineFile>,
    pub(crate) timeout: Option<DurationValue>,
    #[serde(alias = "max_retries")]
    pub(crate) max_retries: Option<Int>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct IdpAuthenticationFile {
    #[serde(alias = "token_url")]
    pub(crate) token_url: Option<Text>,
    #[serde(alias = "client_id")]
    pub(crate) client_id: Option<Text>,
    pub(crate) secret: Option<Secret>,
    pub(crate) scopes: Option<OneOrMany>,
    pub(crate) audience: Option<Text>,
    pub(crate) resource: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ExtractionPipelineFile {
    #[serde(alias = "external_id")]
    pub(crate) external_id: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ExtractorFile {
    #[serde(alias = "state_store")]
    pub(crate) state_store: Option<StateStoreFile>,
    #[serde(alias = "poll_time")]
    pub(crate) poll_time: Option<DurationValue>,
    #[serde(alias = "snapshot_interval")]
    pub(crate) snapshot_interval: Option<DurationValue>,
    #[serde(alias = "subscription_batch_size")]
    pub(crate) subscription_batch_size: Option<Int>,
    #[serde(alias = "ingest_batch_size")]
    pub(crate) ingest_batch_size: Option<Int>,
    #[serde(alias = "s3_ingest_batch_size")]
    pub(crate) s3_ingest_batch_size: Option<Int>,
    #[serde(alias = "ingest_batch_bytes")]
    pub(crate) ingest_batch_bytes: Option<Int>,
    pub(crate) parallelism: Option<Int>,
    #[serde(alias = "time_budget")]
    pub(crate) time_budget: Option<DurationValue>,
    #[serde(alias = "deadline_margin")]
    pub(crate) deadline_margin: Option<DurationValue>,
    #[serde(alias = "membership_scan_interval")]
    pub(crate) membership_scan_interval: Option<DurationValue>,
    pub(crate) snapshot: Option<SnapshotFile>,
    pub(crate) maintenance: Option<MaintenanceFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateStoreFile {
    pub(crate) raw: Option<RawStateStoreFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStateStoreFile {
    pub(crate) database: Option<Text>,
    pub(crate) table: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct SnapshotFile {
    #[serde(alias = "temp_dir")]
    pub(crate) temp_dir: Option<Text>,
    #[serde(alias = "memory_budget_mb")]
    pub(crate) memory_budget_mb: Option<Int>,
    #[serde(alias = "part_rows")]
    pub(crate) part_rows: Option<Int>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct MaintenanceFile {
    pub(crate) enabled: Option<bool>,
    #[serde(alias = "vacuum_retention_hours")]
    pub(crate) vacuum_retention_hours: Option<Int>,
    #[serde(alias = "checkpoint_interval")]
    pub(crate) checkpoint_interval: Option<Int>,
    #[serde(alias = "compact_min_files")]
    pub(crate) compact_min_files: Option<Int>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpaceFile {
    pub(crate) space: Option<Text>,
    #[serde(alias = "data-models")]
    pub(crate) data_models: Option<Vec<DataModelFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DataModelFile {
    #[serde(alias = "external-id")]
    pub(crate) external_id: Option<Text>,
    pub(crate) version: Option<Version>,
    pub(crate) views: Option<Vec<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DestinationFile {
    pub(crate) s3: Option<S3File>,
    pub(crate) local: Option<LocalFile>,
    pub(crate) catalog: Option<CatalogFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogFile {
    pub(crate) glue: Option<GlueFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct GlueFile {
    pub(crate) database: Option<Text>,
    #[serde(alias = "endpoint_url")]
    pub(crate) endpoint_url: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct S3File {
    pub(crate) bucket: Option<Text>,
    pub(crate) prefix: Option<Text>,
    pub(crate) region: Option<Text>,
    #[serde(alias = "endpoint_url")]
    pub(crate) endpoint_url: Option<Text>,
    #[serde(alias = "allow_http")]
    pub(crate) allow_http: Option<bool>,
    #[serde(alias = "request_timeout")]
    pub(crate) request_timeout: Option<DurationValue>,
    #[serde(alias = "access_key_id")]
    pub(crate) access_key_id: Option<Text>,
    #[serde(alias = "secret_access_key")]
    pub(crate) secret_access_key: Option<Secret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalFile {
    pub(crate) path: Option<Text>,
}

/// A text value. YAML reads unquoted `2024` or `true` as a number or a boolean; where the
/// configuration expects text, such scalars mean their written form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Text(pub(crate) String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ScalarVisitor("a string"))
            .map(|s| Text(s.text))
    }
}

/// A version written as text (`"2"`) or, unquoted, as a number (`2`, `2.1`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Version {
    pub(crate) text: String,
    /// Written as a floating-point number: YAML may have changed it (`2.10` reads as `2.1`).
    pub(crate) was_float: bool,
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ScalarVisitor("a version string such as \"2\" or \"v1.3\""))
            .map(|s| Version {
                text: s.text,
                was_float: s.was_float,
            })
    }
}

struct Scalar {
    text: String,
    was_float: bool,
}

struct ScalarVisitor(&'static str);

impl ScalarVisitor {
    fn ok<E>(text: String) -> Result<Scalar, E> {
        Ok(Scalar {
            text,
            was_float: false,
        })
    }
}

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Self::ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Self::ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Self::ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Self::ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Self::ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        if !v.is_finite() {
            return Err(E::invalid_value(de::Unexpected::Float(v), &self));
        }
        // `{:?}` keeps a trailing `.0` (2.0 -> "2.0"), which is how the number was most
        // likely written.
        Ok(Scalar {
            text: format!("{v:?}"),
            was_float: true,
        })
    }
}

/// A whole number as written; range checks happen in validation so they can all be reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Int(pub(crate) i128);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(i128::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                Ok(Int(i128::from(v)))
            }
        }
        deserializer.deserialize_any(IntVisitor)
    }
}

/// A duration as written: whole seconds, or text such as `"15m"` (parsed in validation).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DurationValue {
    Seconds(i128),
    Text(String),
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds or a duration such as \"900s\", \"15m\", \"1h\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(i128::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(i128::from(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationValue, E> {
                Ok(DurationValue::Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// A list of strings, or one string standing for a one-element list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OneOrMany(pub(crate) Vec<Text>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a string or a list of strings")]
        enum Shape {
            One(Text),
            Many(Vec<Text>),
        }
        Ok(match Shape::deserialize(deserializer)? {
            Shape::One(one) => OneOrMany(vec![one]),
            Shape::Many(many) => OneOrMany(many),
        })
    }
}
