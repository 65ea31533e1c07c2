//! The instances a completed backfill no longer lists get an exit row in the commit that
//! completes it.
//!
//! A new generation (a resync, an expired cursor, a changed query) reads every member of the
//! stream's query again. Once its backfill is complete, an instance it did not list is no
//! longer a member: it was deleted while no cursor could report it (its tombstone may be
//! purged by then), or it left the query. The snapshot reads the completion from the Delta
//! log and drops such instances ([`crate::snapshot::arrival`]). Readers that see only the
//! rows, such as SQL over the raw tables ordered by `_arrival`, need the fact in the data:
//! the completing commit therefore carries an exit row (`_exitedTime` set, as the
//! membership scan writes) for each instance whose latest row is of an older generation and
//! live. Both readers then agree at every commit, with no generation logic in the query.
//!
//! An older-generation latest row without `_arrival` (written before the column existed)
//! also gets an exit row, live or not: after the completion, every key's latest row then
//! has an `_arrival` value, which makes a resync the way to an exact SQL state for tables
//! that hold such rows.

use std::collections::HashSet;

use deltalake::arrow::array::{AsArray, RecordBatch};

use super::StreamRun;
use super::membership::with_exit_column;
use crate::cdf::dto::Instance;
use crate::failure::{Cause, Failure};
use crate::lake::live_keys::InstanceKey;
use crate::schema::system::{EXTERNAL_ID, SPACE};

impl StreamRun {
    /// `batches` (the rows of the commit that completes the current generation's backfill)
    /// with an exit row for every instance the generation left behind. Unchanged when
    /// there is none, or when the stream has no older generation.
    pub(super) async fn with_superseded_exits(
        &mut self,
        batches: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>, Failure> {
        let generation = self.checkpoint.generation;
        if generation <= 1 {
            return Ok(batches);
        }
        let superseded = self
            .table
            .superseded_keys(&self.spec.key, generation, self.opens_generation)
            .await
            .map_err(|e| Failure::lake("reading the rows of older generations", &e))?;
        let listed = keys_of(&batches);
        let exits: Vec<Instance> = superseded
            .iter()
            .filter(|(key, _)| !listed.contains(*key))
            .map(|(key, state)| self.exit_instance(key, state))
            .collect();
        if exits.is_empty() {
            return Ok(batches);
        }
        // The buffered rows were flattened with this flattener's schema: the exit rows get
        // the same one, so that the commit's batches agree.
        for exit in &exits {
            self.flattener
                .push(exit)
                .map_err(|e| Failure::new(Cause::Internal, format!("an exit row: {e}")))?;
        }
        let exit_batch = self
            .flattener
            .finish()
            .map_err(|e| Failure::new(Cause::Internal, format!("the exit rows: {e}")))?;
        tracing::info!(stream = %self.spec.key, generation, exited = exits.len(), "the completed backfill no longer lists these instances: exit rows");
        self.report.membership.exited += exits.len() as u64;
        let exited_at = super::now_ms();
        batches
            .into_iter()
            .filter(|batch| batch.num_rows() > 0)
            .map(|batch| with_exit_column(batch, None))
            .chain(std::iter::once(with_exit_column(
                exit_batch,
                Some(exited_at),
            )))
            .collect()
    }
}

/// The keys of the rows in `batches`.
fn keys_of(batches: &[RecordBatch]) -> HashSet<InstanceKey> {
    let mut keys = HashSet::new();
    for batch in batches {
        let (Some(space), Some(external_id)) = (
            batch
                .column_by_name(SPACE)
                .and_then(|c| c.as_string_opt::<i32>()),
            batch
                .column_by_name(EXTERNAL_ID)
                .and_then(|c| c.as_string_opt::<i32>()),
        ) else {
            continue;
        };
        for (space, external_id) in space.iter().zip(external_id.iter()) {
            if let (Some(space), Some(external_id)) = (space, external_id) {
                keys.insert((space.to_owned(), external_id.to_owned()));
            }
        }
    }
    keys
}
