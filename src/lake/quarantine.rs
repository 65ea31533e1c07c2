//! The quarantine (dead-letter) table of a view: instances the replicator cannot represent.
//!
//! A value that does not fit its declared column (wrong JSON type, outside the range of the
//! Arrow type) or an instance of the wrong type must neither be dropped silently nor stop
//! its view: the other instances of the page are committed as usual, and the refused
//! instance goes, as received, to `raw/<space>/<model>/<version>/views/<view>/rejected/`,
//! with the stream, the property and the reason (the dead-letter pattern of
//! kafka-delta-ingest).
//!
//! Exactly once: the rejected rows of a stream commit land in this table *before* the data
//! commit, with a `txn` action of the same stream key and the data commit's sequence number.
//! A crash between the two commits repeats the pages; the repeated quarantine commit is then
//! refused by the txn check, so each rejected instance is stored once per data commit.
//!
//! The snapshot never reads this table (it publishes only `nodes` and `edges`);
//! maintenance compacts and vacuums it like the other raw tables.

use std::sync::{Arc, LazyLock};

use deltalake::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::error::ArrowError;

use super::layout::InstanceKind;

/// Column names of the quarantine table, in order.
pub(crate) mod columns {
    /// The stream key (`<space>/<model>/<version>/<view>/<nodes|edges>[/...]`).
    pub(crate) const STREAM: &str = "stream";
    /// `nodes` or `edges`: the table the instance was meant for.
    pub(crate) const TABLE: &str = "table";
    pub(crate) const SPACE: &str = "space";
    pub(crate) const EXTERNAL_ID: &str = "externalId";
    pub(crate) const INSTANCE_TYPE: &str = "instanceType";
    /// The instance's version as CDF served it.
    pub(crate) const VERSION: &str = "version";
    pub(crate) const LAST_UPDATED_TIME: &str = "lastUpdatedTime";
    /// The property whose value was refused; null when the whole instance was (wrong type).
    pub(crate) const PROPERTY: &str = "property";
    /// Why, as the error message of the sync names it.
    pub(crate) const REASON: &str = "reason";
    /// The instance as received from the sync endpoint, as JSON text.
    pub(crate) const INSTANCE: &str = "instance";
    /// The stream's generation and the sequence number of the data commit the row belongs to.
    pub(crate) const GENERATION: &str = "generation";
    pub(crate) const SEQ: &str = "seq";
    /// When the row was quarantined, in milliseconds since the epoch.
    pub(crate) const QUARANTINED_TIME: &str = "quarantinedTime";
}

/// One instance the sync could not write to its table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RejectedRow {
    pub(crate) stream: String,
    pub(crate) table: InstanceKind,
    pub(crate) space: String,
    pub(crate) external_id: String,
    pub(crate) instance_type: String,
    pub(crate) version: i64,
    pub(crate) last_updated_time: i64,
    pub(crate) property: Option<String>,
    pub(crate) reason: String,
    /// The instance as received, as JSON text.
    pub(crate) instance: String,
}

/// What a quarantine commit shares with the data commit it precedes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RejectedStamp {
    pub(crate) generation: u64,
    pub(crate) seq: i64,
    pub(crate) quarantined_time: i64,
}

/// The schema of every quarantine table.
pub(crate) fn rejected_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        use columns::*;
        let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
        let int = |name: &str| Field::new(name, DataType::Int64, false);
        Arc::new(Schema::new(vec![
            text(STREAM, false),
            text(TABLE, false),
            text(SPACE, false),
            text(EXTERNAL_ID, false),
            text(INSTANCE_TYPE, false),
            int(VERSION),
            int(LAST_UPDATED_TIME),
            text(PROPERTY, true),
            text(REASON, false),
            text(INSTANCE, false),
            int(GENERATION),
            int(SEQ),
            int(QUARANTINED_TIME),
        ]))
    });
    SCHEMA.clone()
}

/// The rows as one batch of [`rejected_schema`].
pub(crate) fn rejected_batch(
    rows: &[RejectedRow],
    stamp: RejectedStamp,
) -> Result<RecordBatch, ArrowError> {
    let text = |f: &dyn Fn(&RejectedRow) -> &str| -> ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    let int = |f: &dyn Fn(&RejectedRow) -> i64| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Int64Array>())
    };
    let generation = i64::try_from(stamp.generation).unwrap_or(i64::MAX);
    let arrays = vec![
        text(&|r| &r.stream),
        text(&|r| r.table.as_str()),
        text(&|r| &r.space),
        text(&|r| &r.external_id),
        text(&|r| &r.instance_type),
        int(&|r| r.version),
        int(&|r| r.last_updated_time),
        Arc::new(
            rows.iter()
                .map(|r| r.property.as_deref())
                .collect::<StringArray>(),
        ) as ArrayRef,
        text(&|r| &r.reason),
        text(&|r| &r.instance),
        int(&|_| generation),
        int(&|_| stamp.seq),
        int(&|_| stamp.quarantined_time),
    ];
    RecordBatch::try_new(rejected_schema(), arrays)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::Array as _;

    #[test]
    fn a_batch_carries_every_row_with_the_commit_stamp() {
        let row = RejectedRow {
            stream: "sp/M/1/Pump/nodes".into(),
            table: InstanceKind::Nodes,
            space: "data".into(),
            external_id: "pump-1".into(),
            instance_type: "node".into(),
            version: 3,
            last_updated_time: 1_700_000_000_000,
            property: None,
            reason: "edge data/pump-1 cannot be written to the nodes table".into(),
            instance: "{}".into(),
        };
        let stamp = RejectedStamp {
            generation: 2,
            seq: 7,
            quarantined_time: 5,
        };
        let batch = rejected_batch(&[row.clone(), row], stamp).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), rejected_schema());
        let property = batch.column_by_name(columns::PROPERTY).unwrap();
        assert_eq!(property.null_count(), 2);
        let seq = batch
            .column_by_name(columns::SEQ)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned())
            .unwrap();
        assert_eq!(seq.values().to_vec(), [7, 7]);
    }
}
