//! Stream checkpoints in a CDF RAW table, one row per stream, keyed by the stream key.
//!
//! RAW is where the original replicator kept its state, so operators keep their habits:
//! list the rows to see progress.
//!
//! A row is the stream's [`StreamCheckpoint`] plus three columns that say whose it is:
//! - `lakeId` and `lakeLocation`: the lake the row was written for
//!   ([`crate::lake::LakeIdentity`]). A sync never uses the row of another lake: two
//!   deployments sharing one state table would otherwise take each other's rows for their
//!   own and start over on every run. A row without them (written by an earlier version) is
//!   adopted by the first lake that starts the stream, which writes its id into it.
//! - `seal`: a checksum of the lake id, the stream key and the checkpoint fields that place
//!   the stream in its Delta log (generation, seq, query hash, phase, cursor, rows). A row
//!   whose seal holds is exactly as this lake wrote it for this stream, so a sync may
//!   resume from it without reading the Delta log; any other row (edited by hand, copied
//!   from another stream, adopted) is checked against the log first
//!   ([`super::state::reconcile`]). It detects mistakes, not malice.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::state::StreamCheckpoint;
use crate::cdf::dto::RawRowWrite;
use crate::cdf::{CdfClient, CdfError};
use crate::failure::{Cause, Failure};
use crate::lake::{Destination, IdentityError};

/// The column with the id of the lake a row was written for.
const LAKE_ID: &str = "lakeId";
/// The column with the location of that lake, for messages.
const LAKE_LOCATION: &str = "lakeLocation";
/// The column with the row's checksum.
const SEAL: &str = "seal";
/// Changes when the sealed fields change; a row sealed otherwise counts as unsealed.
const SEAL_VERSION: u32 = 1;

/// The lake a state store's rows belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThisLake {
    /// The lake's id (`raw/_lake.json`).
    pub(crate) id: String,
    /// Where the lake is now.
    pub(crate) location: String,
}

/// A stream's row as read from the state table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StateRow {
    /// The checkpoint columns.
    pub(crate) checkpoint: StreamCheckpoint,
    /// The lake the row was written for; `None` in rows of earlier versions.
    pub(crate) lake_id: Option<String>,
    /// Where that lake was when the row was written.
    pub(crate) lake_location: Option<String>,
    /// The seal as stored.
    seal: Option<String>,
}

/// Whose a row is, seen from one lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Written for this lake.
    ThisLake,
    /// Written before rows recorded their lake: the first lake that starts the stream
    /// adopts it.
    Nobody,
    /// Written for another lake.
    Other {
        /// The other lake's id.
        id: String,
        /// Where it was, if the row says.
        location: Option<String>,
    },
}

impl StateRow {
    /// The row of `columns`, or why they are not a checkpoint.
    pub(crate) fn parse(columns: Map<String, Value>) -> Result<Self, serde_json::Error> {
        let text = |key: &str| {
            columns
                .get(key)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let (lake_id, lake_location, seal) = (text(LAKE_ID), text(LAKE_LOCATION), text(SEAL));
        let checkpoint = serde_json::from_value::<StreamCheckpoint>(Value::Object(columns))?;
        Ok(Self {
            checkpoint,
            lake_id,
            lake_location,
            seal,
        })
    }

    /// Whose the row is, seen from the lake `lake_id`.
    pub(crate) fn owner(&self, lake_id: &str) -> Owner {
        match &self.lake_id {
            None => Owner::Nobody,
            Some(id) if id == lake_id => Owner::ThisLake,
            Some(id) => Owner::Other {
                id: id.clone(),
                location: self.lake_location.clone(),
            },
        }
    }

    /// Whether the row is exactly as the lake `lake_id` wrote it for stream `key`.
    pub(crate) fn is_sealed_for(&self, key: &str, lake_id: &str) -> bool {
        self.lake_id.as_deref() == Some(lake_id)
            && self.seal.as_deref() == Some(seal(lake_id, key, &self.checkpoint).as_str())
    }

    /// The columns of the row that stores `checkpoint` of stream `key` for `lake`.
    pub(crate) fn columns(
        key: &str,
        checkpoint: &StreamCheckpoint,
        lake: Option<&ThisLake>,
    ) -> Option<Map<String, Value>> {
        let Ok(Value::Object(mut columns)) = serde_json::to_value(checkpoint) else {
            return None;
        };
        if let Some(lake) = lake {
            columns.insert(LAKE_ID.into(), Value::String(lake.id.clone()));
            columns.insert(LAKE_LOCATION.into(), Value::String(lake.location.clone()));
            columns.insert(SEAL.into(), Value::String(seal(&lake.id, key, checkpoint)));
        }
        Some(columns)
    }
}

/// The checksum of the fields that place a stream in its Delta log. FNV-1a: stable across
/// releases and platforms; it guards against edits, not against an adversary.
fn seal(lake_id: &str, key: &str, checkpoint: &StreamCheckpoint) -> String {
    let fields = serde_json::json!([
        SEAL_VERSION,
        lake_id,
        key,
        checkpoint.generation,
        checkpoint.seq,
        checkpoint.query_hash,
        checkpoint.phase,
        checkpoint.cursor,
        checkpoint.rows_total,
    ]);
    let hash = fields
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{SEAL_VERSION}:{hash:016x}")
}

/// The failure of a stream whose row another lake wrote: it names both lakes, the state
/// table and the fix. Shared by the sync, which stops the stream with it, and `status`.
pub(crate) fn another_lakes_row(
    key: &str,
    state_table: &str,
    this: &ThisLake,
    other_id: &str,
    other_location: Option<&str>,
) -> Failure {
    let other_location = other_location.unwrap_or("an unknown location");
    let same_place = if other_location == this.location {
        " It names this lake's location: if the lake was deleted and started afresh there, \
         delete the stream's state row too."
    } else {
        ""
    };
    Failure::new(
        Cause::StateOfAnotherLake,
        format!(
            "the state row of stream {key} in the RAW state table {state_table} belongs to \
             another lake: lake {other_id} at {other_location} wrote it, and this is lake {} \
             at {}. Two deployments share one state table; give each its own \
             `extractor.state-store.raw.table` (the SAM template uses one per stack). This \
             stream is left alone until then: nothing is resynced or overwritten.{same_place}",
            this.id, this.location
        ),
    )
}

/// The RAW table that holds the checkpoints.
#[derive(Debug, Clone)]
pub(crate) struct StateStore {
    client: CdfClient,
    database: String,
    table: String,
    /// The lake the rows are written for, read (or created) by the first stream that starts.
    lake: Arc<OnceCell<ThisLake>>,
}

impl StateStore {
    pub(crate) fn new(
        client: CdfClient,
        database: impl Into<String>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            database: database.into(),
            table: table.into(),
            lake: Arc::new(OnceCell::new()),
        }
    }

    /// The same table, read and written through a client bound to `deadline`.
    pub(crate) fn with_deadline(&self, deadline: tokio::time::Instant) -> Self {
        Self {
            client: self.client.with_deadline(deadline),
            ..self.clone()
        }
    }

    pub(crate) fn location(&self) -> String {
        format!("{}/{}", self.database, self.table)
    }

    /// The lake whose rows this store reads and writes: the identity of `destination`,
    /// established on the first call (one read, and one write the very first time) and
    /// kept for the life of the store.
    pub(crate) async fn lake(&self, destination: &Destination) -> Result<&ThisLake, IdentityError> {
        self.lake
            .get_or_try_init(|| async {
                let identity = destination.establish_identity().await?;
                Ok(ThisLake {
                    id: identity.lake_id,
                    location: destination.location(),
                })
            })
            .await
    }

    /// Every row. A missing database or table means no stream has run yet. A row that
    /// does not parse is reported and left out: the stream then continues from its Delta
    /// log, which repairs the row.
    pub(crate) async fn load_all(&self) -> Result<HashMap<String, StateRow>, CdfError> {
        let rows = match self
            .client
            .list_all_rows(&self.database, &self.table, None)
            .await
        {
            Ok(rows) => rows,
            Err(error) if error.is_not_found() => return Ok(HashMap::new()),
            Err(error) => return Err(error),
        };
        let mut states = HashMap::with_capacity(rows.len());
        for row in rows {
            match StateRow::parse(row.columns) {
                Ok(state) => {
                    states.insert(row.key, state);
                }
                Err(error) => tracing::warn!(
                    state_table = %self.location(),
                    stream = %row.key,
                    %error,
                    "ignoring a state row that does not parse; the stream continues from its Delta log"
                ),
            }
        }
        Ok(states)
    }

    /// Writes one stream's checkpoint (RAW insert replaces the whole row), stamped with
    /// this store's lake once it is known ([`StateStore::lake`]; every stream learns it
    /// before its first write).
    pub(crate) async fn save(
        &self,
        key: &str,
        checkpoint: &StreamCheckpoint,
    ) -> Result<(), CdfError> {
        // A struct of strings and numbers always serialises to an object; were it not to,
        // skipping the write is safe because the Delta commit carries the same checkpoint.
        let Some(columns) = StateRow::columns(key, checkpoint, self.lake.get()) else {
            tracing::error!(stream = %key, "a checkpoint did not serialise to a JSON object");
            return Ok(());
        };
        self.client
            .insert_rows(
                &self.database,
                &self.table,
                &[RawRowWrite::new(key, columns)],
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::Phase;

    fn checkpoint() -> StreamCheckpoint {
        StreamCheckpoint {
            cursor: Some("c9".into()),
            phase: Phase::Streaming,
            generation: 2,
            seq: 9,
            query_hash: "q".into(),
            rows_total: 90,
            ..StreamCheckpoint::default()
        }
    }

    fn lake(id: &str) -> ThisLake {
        ThisLake {
            id: id.into(),
            location: format!("s3://bucket/{id}/"),
        }
    }

    fn row_of(key: &str, checkpoint: &StreamCheckpoint, lake: Option<&ThisLake>) -> StateRow {
        StateRow::parse(StateRow::columns(key, checkpoint, lake).unwrap()).unwrap()
    }

    #[test]
    fn a_row_records_its_lake_and_reads_back() {
        let row = row_of("s/k", &checkpoint(), Some(&lake("a")));
        assert_eq!(row.checkpoint, checkpoint());
        assert_eq!(row.lake_id.as_deref(), Some("a"));
        assert_eq!(row.lake_location.as_deref(), Some("s3://bucket/a/"));
        assert_eq!(row.owner("a"), Owner::ThisLake);
        assert_eq!(
            row.owner("b"),
            Owner::Other {
                id: "a".into(),
                location: Some("s3://bucket/a/".into())
            }
        );
        assert!(row.is_sealed_for("s/k", "a"));
    }

    #[test]
    fn rows_of_earlier_versions_belong_to_nobody_and_are_not_sealed() {
        let columns = serde_json::to_value(checkpoint()).unwrap();
        let row = StateRow::parse(columns.as_object().unwrap().clone()).unwrap();
        assert_eq!(row.owner("a"), Owner::Nobody);
        assert!(!row.is_sealed_for("s/k", "a"));
    }

    #[test]
    fn an_edited_or_moved_row_loses_its_seal() {
        let sealed = StateRow::columns("s/k", &checkpoint(), Some(&lake("a"))).unwrap();
        for (column, value) in [
            ("generation", serde_json::json!(1)),
            ("seq", serde_json::json!(8)),
            ("queryHash", serde_json::json!("other")),
            ("phase", serde_json::json!("backfill")),
            ("cursor", serde_json::json!("c-of-another-stream")),
            ("rowsTotal", serde_json::json!(10)),
            ("seal", serde_json::json!("1:0000000000000000")),
        ] {
            let mut edited = sealed.clone();
            edited.insert(column.into(), value);
            let row = StateRow::parse(edited).unwrap();
            assert!(!row.is_sealed_for("s/k", "a"), "{column} edited");
        }
        let row = StateRow::parse(sealed).unwrap();
        assert!(!row.is_sealed_for("s/other", "a"), "another stream's row");
        assert!(!row.is_sealed_for("s/k", "b"), "another lake's row");
        // Informational columns are not sealed: a sync refreshes them without a commit.
        let mut refreshed = StateRow::columns("s/k", &checkpoint(), Some(&lake("a"))).unwrap();
        refreshed.insert("lastError".into(), serde_json::json!("sync failed"));
        assert!(
            StateRow::parse(refreshed)
                .unwrap()
                .is_sealed_for("s/k", "a")
        );
    }

    #[test]
    fn the_message_names_both_lakes_and_the_fix() {
        let failure = another_lakes_row(
            "s/k",
            "state/streams",
            &lake("b"),
            "a",
            Some("s3://bucket/a/"),
        );
        assert_eq!(failure.cause, Cause::StateOfAnotherLake);
        assert_eq!(failure.retry(), crate::failure::Retry::Useless);
        for part in [
            "s/k",
            "state/streams",
            "lake a at s3://bucket/a/",
            "lake b at s3://bucket/b/",
            "extractor.state-store.raw.table",
        ] {
            assert!(
                failure.message.contains(part),
                "{part}: {}",
                failure.message
            );
        }
        assert!(!failure.message.contains("deleted and started afresh"));
        let same_place = another_lakes_row(
            "s/k",
            "state/streams",
            &lake("b"),
            "a",
            Some("s3://bucket/b/"),
        );
        assert!(same_place.message.contains("deleted and started afresh"));
    }
}
