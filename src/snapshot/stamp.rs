//! What a published file says about itself: its build state, in its own footer.
//!
//! Every published file carries, in its Parquet key-value metadata under [`STAMP_KEY`], the
//! raw table and Delta version it was built from, each stream's generation state, the raw
//! schema fingerprint, and a write id unique to its upload. The footer is part of the same
//! object as the rows, so it cannot disagree with them; `_manifest.json` is a second object,
//! and two runs that overlap can leave it describing another upload than the one at the key.
//! A run therefore trusts a manifest entry only while it names the very object at the key
//! (same ETag, or same write id); otherwise the file's own stamp says what it reflects.

use deltalake::parquet::file::metadata::ParquetMetaData;
use serde::{Deserialize, Serialize};

use super::arrival::StreamStates;

/// The footer key holding a published file's [`FileStamp`] as JSON.
pub const STAMP_KEY: &str = "cdf_s3_replicator.built_from";

/// The build state a published file carries in its footer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileStamp {
    /// Unique per upload: tells two uploads of the same state apart.
    pub(crate) write_id: String,
    /// The raw table, relative to the destination prefix.
    pub(crate) source_table: String,
    /// The raw table's Delta version the rows reflect; `None` while the table does not exist.
    pub(crate) table_version: Option<u64>,
    /// Generation state of each stream writing to the raw table.
    pub(crate) streams: StreamStates,
    /// Fingerprint of the raw table schema the file was built from.
    pub(crate) raw_schema_fingerprint: String,
    pub(crate) written_at: String,
    pub(crate) tool_version: String,
    /// Which part of a file published in parts this file is; absent for a single file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) part: Option<PartStamp>,
}

/// A part's place among the parts of its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartStamp {
    /// 0-based.
    pub(crate) index: u32,
    pub(crate) count: u32,
    /// How rows were assigned to parts ([`super::parts::HASH_NAME`]).
    pub(crate) hash: String,
}

impl PartStamp {
    /// Part `index` of `count` under the current hash.
    pub(crate) fn new(index: u32, count: u32) -> Self {
        Self {
            index,
            count,
            hash: super::parts::HASH_NAME.to_owned(),
        }
    }
}

/// What a file's footer says about its build state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stamped {
    /// The footer has no stamp: written by an older release or another tool.
    Unstamped,
    /// A stamp that does not parse.
    Invalid(String),
    Stamp(Box<FileStamp>),
}

impl FileStamp {
    /// A fresh write id: 128 random bits in hex.
    pub(crate) fn new_write_id() -> String {
        format!("{:032x}", rand::random::<u128>())
    }

    /// The stamp as stored in the footer.
    pub(crate) fn to_json(&self) -> String {
        // A map of strings and integers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the stamp of a file's footer.
    pub(crate) fn of(metadata: &ParquetMetaData) -> Stamped {
        let value = metadata
            .file_metadata()
            .key_value_metadata()
            .and_then(|kvs| kvs.iter().find(|kv| kv.key == STAMP_KEY))
            .and_then(|kv| kv.value.as_deref());
        match value {
            None => Stamped::Unstamped,
            Some(text) => match serde_json::from_str::<FileStamp>(text) {
                Ok(stamp) => Stamped::Stamp(Box::new(stamp)),
                Err(error) => Stamped::Invalid(error.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::arrival::GenerationState;

    #[test]
    fn write_ids_differ_per_upload() {
        let a = FileStamp::new_write_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, FileStamp::new_write_id());
    }

    #[test]
    fn stamps_round_trip_as_json() {
        let stamp = FileStamp {
            write_id: FileStamp::new_write_id(),
            source_table: "raw/s/M/1/views/Pump/nodes".into(),
            table_version: Some(12),
            streams: StreamStates::from([(
                "s".to_owned(),
                GenerationState {
                    completed_generation: 2,
                    lowest_generation: Some(2),
                },
            )]),
            raw_schema_fingerprint: "0123".into(),
            written_at: "2024-01-01T00:00:00.000Z".into(),
            tool_version: "cdf-s3-replicator 0".into(),
            part: None,
        };
        let text = stamp.to_json();
        assert!(text.contains("\"tableVersion\":12"), "{text}");
        assert!(!text.contains("part"), "{text}");
        assert_eq!(serde_json::from_str::<FileStamp>(&text).unwrap(), stamp);
        let part = FileStamp {
            part: Some(PartStamp::new(3, 16)),
            ..stamp
        };
        let text = part.to_json();
        assert!(text.contains("\"index\":3,\"count\":16"), "{text}");
        assert_eq!(serde_json::from_str::<FileStamp>(&text).unwrap(), part);
    }
}
