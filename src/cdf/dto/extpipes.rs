//! Extraction-pipeline remote configuration and run reports.

use serde::{Deserialize, Serialize};

/// One configuration revision of an extraction pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtpipeConfig {
    pub(crate) external_id: String,
    pub revision: i64,
    #[serde(default)]
    pub(crate) created_time: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    /// Normally YAML; may be missing, which callers should treat as "keep the old config".
    #[serde(default)]
    pub config: Option<String>,
}

/// A new configuration revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtpipeConfigWrite {
    /// The extraction pipeline the revision belongs to.
    pub external_id: String,
    /// The configuration document, normally YAML; CDF stores it as text.
    pub config: String,
    /// A note on the revision; left out of the request when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The status of an extraction-pipeline run report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtpipeRunStatus {
    /// The invocation did its work.
    Success,
    /// The invocation failed; the run message says why.
    Failure,
    /// A heartbeat.
    Seen,
}

/// A run report to send. Messages longer than the API limit are shortened by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtpipeRunWrite {
    pub(crate) external_id: String,
    pub(crate) status: ExtpipeRunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) created_time: Option<i64>,
}

impl ExtpipeRunWrite {
    /// A report of `status` for pipeline `external_id`; CDF sets the creation time.
    pub fn new(
        external_id: impl Into<String>,
        status: ExtpipeRunStatus,
        message: Option<String>,
    ) -> Self {
        Self {
            external_id: external_id.into(),
            status,
            message,
            created_time: None,
        }
    }
}

/// A stored run as CDF returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtpipeRun {
    #[serde(default)]
    pub(crate) id: Option<i64>,
    pub(crate) external_id: String,
    pub status: ExtpipeRunStatus,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) created_time: Option<i64>,
}
