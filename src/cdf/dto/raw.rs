//! RAW databases, tables and rows.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Column values of a row: any JSON per column.
pub type RawColumns = serde_json::Map<String, Value>;

/// A row as stored in RAW.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawRow {
    pub key: String,
    #[serde(default)]
    pub columns: RawColumns,
    /// Epoch ms of the last change; writing identical content leaves it alone.
    #[serde(default)]
    pub last_updated_time: i64,
}

/// A row to insert. Insert is an upsert that replaces all columns of an existing row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawRowWrite {
    pub(crate) key: String,
    pub(crate) columns: RawColumns,
}

impl RawRowWrite {
    /// A row to write under `key` with exactly these columns.
    pub fn new(key: impl Into<String>, columns: RawColumns) -> Self {
        Self {
            key: key.into(),
            columns,
        }
    }
}

/// A RAW database or table name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RawName {
    pub(crate) name: String,
}

/// Parameters of one page of `rows` listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawRowQuery {
    /// 1..=10,000; the server default (25) applies when `None`.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; `None` for the first page.
    pub cursor: Option<String>,
    /// `None`: all columns. `Some(vec![])`: keys only. `Some(names)`: just those columns.
    pub columns: Option<Vec<String>>,
    /// Exclusive lower bound, epoch ms. Ignored by CDF when `cursor` is set.
    pub min_last_updated_time: Option<i64>,
    /// Inclusive upper bound, epoch ms. Ignored by CDF when `cursor` is set.
    pub max_last_updated_time: Option<i64>,
}

/// One page of rows; `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawRowPage {
    #[serde(default)]
    pub items: Vec<RawRow>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}
