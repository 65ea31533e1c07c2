//! Stream checkpoints in a CDF RAW table, one row per stream, keyed by the stream key.
//!
//! RAW is where the original replicator kept its state, so operators keep their habits:
//! list the rows to see progress, delete a row to resync a stream.

use std::collections::HashMap;

use serde_json::Value;

use super::state::StreamCheckpoint;
use crate::cdf::dto::RawRowWrite;
use crate::cdf::{CdfClient, CdfError};

/// The RAW table that holds the checkpoints.
#[derive(Debug, Clone)]
pub(crate) struct StateStore {
    client: CdfClient,
    database: String,
    table: String,
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

    /// Every checkpoint. A missing database or table means no stream has run yet. A row
    /// that does not parse is reported and left out, which restarts that stream (the same
    /// as deleting the row) instead of failing the run.
    pub(crate) async fn load_all(&self) -> Result<HashMap<String, StreamCheckpoint>, CdfError> {
        let rows = match self
            .client
            .list_all_rows(&self.database, &self.table, None)
            .await
        {
            Ok(rows) => rows,
            Err(error) if error.is_not_found() => return Ok(HashMap::new()),
            Err(error) => return Err(error),
        };
        let mut checkpoints = HashMap::with_capacity(rows.len());
        for row in rows {
            match serde_json::from_value::<StreamCheckpoint>(Value::Object(row.columns)) {
                Ok(checkpoint) => {
                    checkpoints.insert(row.key, checkpoint);
                }
                Err(error) => tracing::warn!(
                    state_table = %self.location(),
                    stream = %row.key,
                    %error,
                    "ignoring a state row that does not parse; the stream starts over"
                ),
            }
        }
        Ok(checkpoints)
    }

    /// Writes one stream's checkpoint (RAW insert replaces the whole row).
    pub(crate) async fn save(
        &self,
        key: &str,
        checkpoint: &StreamCheckpoint,
    ) -> Result<(), CdfError> {
        // A struct of strings and numbers always serialises to an object; were it not to,
        // skipping the write is safe because the Delta commit carries the same checkpoint.
        let Ok(Value::Object(columns)) = serde_json::to_value(checkpoint) else {
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
