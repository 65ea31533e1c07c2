//! The page loop of one stream: fetch sync pages, buffer them as Arrow batches, commit them
//! to Delta together with the cursor, then checkpoint in RAW.
//!
//! Order of effects per commit, and why it is crash-safe:
//! 1. Delta commit: data files + `txn` (appId = stream key, version = seq) + checkpoint in
//!    the commit metadata. Atomic; a retry of the same seq is refused by the txn check.
//! 2. RAW row with the same checkpoint. If the process dies before this, the next run finds
//!    the newer checkpoint in the Delta log ([`super::state::reconcile`]).
//!
//! A cursor is only ever stored (in either place) together with, or after, the data of every
//! page before it, so a crash can repeat a page's fetch but never skip or duplicate its rows.
//! A page that cannot be buffered discards everything buffered since the last commit and
//! keeps the committed cursor, so the next run reads those pages again.
//!
//! An instance the flattener refuses (a value that does not fit its column, an instance of
//! the wrong type) does not stop the stream: it is quarantined in the view's `rejected`
//! table ([`crate::lake::quarantine`]), committed with the stream's `txn` and the data
//! commit's sequence number just before the data commit, so a repeated page never stores
//! it twice.

mod membership;
mod superseded;

use std::sync::Arc;
use std::time::Duration;

use deltalake::arrow::array::RecordBatch;
use tokio::time::Instant;

use super::scheduler::Turn;
use super::state::{
    Reconciled, RestartReason, Resume, StreamCheckpoint, new_generation, reconcile,
};
use super::state_store::{Owner, StateRow, StateStore, another_lakes_row};
use super::summary::{StreamReport, StreamStatus};
use crate::cdf::dto::Instance;
use crate::cdf::{CdfClient, CdfError};
use crate::clock::now_ms;
use crate::failure::{Cause, Failure};
use crate::flatten::FlattenError;
use crate::flatten::Flattener;
use crate::lake::live_keys::LiveKeys;
use crate::lake::quarantine::{RejectedRow, RejectedStamp, rejected_batch};
use crate::lake::{
    CommitOutcome, Destination, LakeError, LakeTable, StreamCommit, StreamMetadata, WriteOptions,
};
use crate::plan::{RESULT_SET, StreamSpec};
use crate::progress::Progress;
use crate::schema::arrival::stamp_arrival;

/// What the Delta table knows about a stream at the start of a run.
enum TableState {
    /// The checkpoint of the stream's newest commit (`None`: the stream never committed).
    Known(Option<StreamCheckpoint>),
    /// The table holds commits of the stream up to `seq`, but the newest one is no longer in
    /// the log (log retention removed it), so its cursor is unknown.
    CommitOutOfReach { seq: i64, table_version: u64 },
}

/// What every stream of a run shares.
#[derive(Debug, Clone)]
pub struct StreamContext {
    pub(crate) client: CdfClient,
    pub(crate) destination: Destination,
    pub(crate) state_store: StateStore,
    /// How the streams' Delta commits are written (row groups, compression, commit retries).
    pub write_options: WriteOptions,
    /// Buffer this many rows (or `byte_budget` bytes) before committing.
    pub(crate) row_budget: usize,
    pub(crate) byte_budget: usize,
    /// Time kept free before the deadline for the last flush and checkpoint.
    pub(crate) deadline_margin: Duration,
    /// How often a caught-up stream runs a membership scan pass; `None`: never.
    pub(crate) membership_scan_interval: Option<Duration>,
    /// Where commits and finished streams are reported as they happen.
    pub(crate) progress: Progress,
}

/// A stream in progress: everything carried from one turn to the next.
pub(crate) struct StreamRun {
    spec: Arc<StreamSpec>,
    table: LakeTable,
    flattener: Flattener,
    /// Finished batches not yet committed.
    pending: Vec<RecordBatch>,
    /// The cursor that follows the newest page in `pending` (or the newest empty page).
    pending_cursor: Option<String>,
    /// Instances of the buffered pages that go to the quarantine table with the next commit.
    rejected: Vec<RejectedRow>,
    /// The view's quarantine table, opened on the first rejected instance.
    rejected_table: Option<LakeTable>,
    checkpoint: StreamCheckpoint,
    opens_generation: bool,
    report: StreamReport,
    /// The table's live instances while a membership pass runs, kept up to date by the
    /// pass's own commits and dropped by every other commit of the stream.
    live_keys: Option<LiveKeys>,
}

impl StreamRun {
    /// Opens the stream's table and decides where to resume: the Delta log says what was
    /// committed, the RAW row at most adds what no commit records
    /// ([`super::state::reconcile`]). A row of another lake stops the stream here, before
    /// anything is read or written for it.
    pub(crate) async fn start(
        ctx: &StreamContext,
        spec: Arc<StreamSpec>,
        state_row: Option<StateRow>,
        force_resync: bool,
    ) -> Result<Self, Failure> {
        let lake = ctx
            .state_store
            .lake(&ctx.destination)
            .await
            .map_err(|e| e.to_failure())?;
        let owner = state_row.as_ref().map(|row| row.owner(&lake.id));
        if let Some(Owner::Other { id, location }) = &owner {
            let failure = another_lakes_row(
                &spec.key,
                &ctx.state_store.location(),
                lake,
                id,
                location.as_deref(),
            );
            tracing::error!(stream = %spec.key, "{}", failure.message);
            return Err(failure);
        }
        // A row exactly as this lake wrote it for this stream needs no look into the log
        // unless the log is ahead of it; any other row is checked against the log.
        let sealed = state_row
            .as_ref()
            .is_some_and(|row| row.is_sealed_for(&spec.key, &lake.id));
        let state_row = state_row.map(|row| row.checkpoint);
        let url = ctx
            .destination
            .raw_table_url(&spec.model, &spec.view_folder, spec.instance_kind())
            .map_err(|e| Failure::lake("the Delta table", &e))?;
        let table = LakeTable::open(&ctx.destination, url, ctx.write_options.clone())
            .await
            .map_err(|e| Failure::lake("opening the Delta table", &e))?;
        let query_hash = spec.query_hash();
        let Reconciled {
            mut resume,
            repaired,
        } = match table_state(&table, &spec.key, state_row.as_ref(), sealed).await? {
            TableState::Known(from_table) => reconcile(state_row, from_table, &query_hash),
            TableState::CommitOutOfReach { seq, table_version } => {
                // No generation of this stream can be numbered above the table's version
                // (each generation that committed used at least one commit), so starting
                // above it keeps generations increasing without knowing the lost one.
                let previous = state_row.unwrap_or_default();
                let lost = StreamCheckpoint {
                    seq,
                    generation: previous.generation.max(table_version),
                    ..previous
                };
                Reconciled {
                    resume: Resume::Restart(
                        new_generation(&lost, &query_hash),
                        RestartReason::CommitOutOfReach { table_seq: seq },
                    ),
                    repaired: None,
                }
            }
        };
        if let Some(repair) = &repaired {
            tracing::warn!(stream = %spec.key, %repair, generation = resume.checkpoint().generation, seq = resume.checkpoint().seq, "the state row says less than the Delta log; continuing from the log and repairing the row");
        }
        if owner == Some(Owner::Nobody) {
            tracing::info!(stream = %spec.key, lake_id = %lake.id, "adopting a state row that names no lake; it is this lake's from now on");
        }
        if force_resync && matches!(resume, Resume::Continue(_)) {
            resume = Resume::Restart(
                new_generation(resume.checkpoint(), &query_hash),
                RestartReason::Forced,
            );
        }
        let mut report = StreamReport::new(spec.key.clone(), StreamStatus::Behind);
        let opens_generation = match &resume {
            // A stream without a cursor is at the start of its generation's backfill: a
            // run that restarted it may have stopped before its first commit.
            Resume::Continue(checkpoint) => checkpoint.cursor.is_none(),
            Resume::Restart(checkpoint, reason) => {
                tracing::info!(stream = %spec.key, generation = checkpoint.generation, ?reason, "starting a new generation");
                if checkpoint.generation > 1 {
                    report.cursor_resets += 1;
                }
                true
            }
        };
        let restarted = matches!(resume, Resume::Restart(..));
        let checkpoint = match resume {
            Resume::Continue(c) | Resume::Restart(c, _) => c,
        };
        report.generation = checkpoint.generation;
        if restarted {
            // Record the decision before the first commit: the next run continues this
            // generation even if this one stops before its first commit.
            ctx.state_store
                .save(&spec.key, &checkpoint)
                .await
                .map_err(|e| Failure::cdf("writing the state row of the new generation", &e))?;
        } else if repaired.is_some() || !sealed {
            // A repaired or adopted row is rewritten now, with this lake's id and seal, so
            // that `status` and the next run see the checkpoint this run continues from.
            if let Err(error) = ctx.state_store.save(&spec.key, &checkpoint).await {
                tracing::warn!(stream = %spec.key, %error, "could not rewrite the state row; the Delta log has the checkpoint");
            }
        }
        let schema = spec.schema(table.arrow_schema().as_deref());
        Ok(Self {
            flattener: Flattener::new(&schema),
            spec,
            table,
            pending: Vec::new(),
            pending_cursor: checkpoint.cursor.clone(),
            rejected: Vec::new(),
            rejected_table: None,
            checkpoint,
            opens_generation,
            report,
            live_keys: None,
        })
    }

    pub(crate) fn key(&self) -> &str {
        &self.spec.key
    }

    /// The figures so far, for a stream the deadline left between turns (nothing is
    /// buffered then: a turn only yields after a commit).
    pub(crate) fn into_report(mut self, status: StreamStatus) -> StreamReport {
        self.report.status = status;
        self.report.lag_ms = self.checkpoint.newest_change.map(|t| now_ms() - t);
        self.report
    }

    /// How long ago the stream last succeeded; the scheduler serves the most overdue first.
    pub(crate) fn last_success(&self) -> Option<i64> {
        self.checkpoint.last_success
    }

    /// Runs pages until the stream is caught up (a short page of the streaming phase), has
    /// made one budget-sized commit (then it yields its turn), fails, or the deadline is near.
    pub(crate) async fn turn(
        mut self,
        ctx: &StreamContext,
        deadline: Instant,
    ) -> Turn<Self, StreamReport> {
        loop {
            if Instant::now() + ctx.deadline_margin >= deadline {
                return self.finish(ctx, StreamStatus::Behind, None).await;
            }
            let request = self.spec.request(self.pending_cursor.clone());
            let mut response = match ctx.client.sync(&request).await {
                Ok(response) => response,
                // The run's deadline cut the call short: the turn ends as it does when the
                // deadline is near between two pages, committing what it read.
                Err(error) if error.is_deadline_reached() => {
                    return self.finish(ctx, StreamStatus::Behind, None).await;
                }
                Err(error) if error.requires_resync() => {
                    if let Err(done) = self.restart_generation(ctx, &error).await {
                        return done;
                    }
                    continue;
                }
                Err(error) => {
                    let failure = Failure::cdf("sync failed", &error);
                    return self.finish(ctx, StreamStatus::Failed, Some(failure)).await;
                }
            };
            self.report.pages += 1;
            let Some(next_cursor) = response.cursor_of(RESULT_SET).map(str::to_owned) else {
                let failure = Failure::new(
                    Cause::CdfRejected,
                    "the sync response carried no cursor for the stream",
                );
                return self.finish(ctx, StreamStatus::Failed, Some(failure)).await;
            };
            let items = response.take_items(RESULT_SET);
            let short_page = items.len() < self.spec.expression.limit as usize;
            if let Err(error) = self.buffer_page(items) {
                // Rows of this page and of the buffered pages may be lost with the error, so
                // none of them is committed and the stored cursor stays at the last commit:
                // the next run reads these pages again.
                self.discard_buffer();
                let failure = Failure::new(Cause::Internal, error.to_string());
                return self.finish(ctx, StreamStatus::Failed, Some(failure)).await;
            }
            self.pending_cursor = Some(next_cursor);
            self.checkpoint.last_success = Some(now_ms());
            ctx.progress.stream_fetched(
                &self.spec.key,
                self.checkpoint.phase,
                self.report.rows + self.buffered_rows() as u64,
                self.report.rows,
            );

            let backfill_done =
                self.checkpoint.phase == super::state::Phase::Backfill && short_page;
            if backfill_done {
                self.checkpoint.phase = super::state::Phase::Streaming;
                // The backfill listed every member: it counts as a membership pass.
                self.checkpoint.membership = super::state::MembershipScan {
                    last_pass: Some(now_ms()),
                    pass: None,
                };
            }
            if backfill_done || self.opens_generation && short_page {
                // Always commit at the end of a backfill, even without rows: the snapshot
                // learns from this commit which generation is complete.
                if let Err(done) = self.commit(ctx, backfill_done).await {
                    return done;
                }
            }
            if backfill_done {
                // Changes made while the backfill ran come in the streaming phase: read on
                // until its first short page, so that `caughtUp` means caught up.
                self.checkpoint.caught_up = false;
                continue;
            }
            if short_page {
                self.checkpoint.caught_up = true;
                if self.checkpoint.phase == super::state::Phase::Streaming
                    && self.membership_due(ctx)
                {
                    // The pass compares with the table: commit what is buffered first.
                    if self.buffered_rows() > 0
                        && let Err(done) = self.commit(ctx, false).await
                    {
                        return done;
                    }
                    if let Err(done) = self.scan_membership(ctx, deadline).await {
                        return done;
                    }
                }
                return self.finish(ctx, StreamStatus::CaughtUp, None).await;
            }
            self.checkpoint.caught_up = false;
            if self.buffered_rows() >= ctx.row_budget || self.buffered_bytes() >= ctx.byte_budget {
                if let Err(done) = self.commit(ctx, false).await {
                    return done;
                }
                return Turn::Again(self);
            }
        }
    }

    /// Flattens a page. Tombstones go before live rows: CDF applies a page's deletes before
    /// its upserts, and the snapshot takes the last row of a key as its state. An instance
    /// the flattener refuses is quarantined (the flattener leaves it out of its batch).
    fn buffer_page(&mut self, mut items: Vec<Instance>) -> Result<(), FlattenError> {
        items.sort_by_key(|item| !item.is_deleted());
        for item in &items {
            match self.flattener.push(item) {
                Ok(()) => {}
                Err(error @ (FlattenError::Value(_) | FlattenError::WrongInstanceType { .. })) => {
                    tracing::warn!(stream = %self.spec.key, %error, "quarantining an instance that cannot be written");
                    self.rejected.push(self.rejected_row(item, &error));
                }
                Err(error) => return Err(error),
            }
            let changed = item.deleted_time.unwrap_or(item.last_updated_time);
            self.checkpoint.newest_change = self.checkpoint.newest_change.max(Some(changed));
        }
        if self.flattener.len() >= BATCH_ROWS {
            let batch = self.flattener.finish()?;
            self.pending.push(batch);
        }
        Ok(())
    }

    fn rejected_row(&self, instance: &Instance, error: &FlattenError) -> RejectedRow {
        let property = match error {
            FlattenError::Value(mismatch) => Some(mismatch.property.clone()),
            _ => None,
        };
        RejectedRow {
            stream: self.spec.key.clone(),
            table: self.spec.instance_kind(),
            space: instance.space.clone(),
            external_id: instance.external_id.clone(),
            instance_type: instance.instance_type.as_str().to_owned(),
            version: instance.version,
            last_updated_time: instance.last_updated_time,
            property,
            reason: error.to_string(),
            instance: instance_json_text(instance),
        }
    }

    /// Rows waiting for the next commit, quarantined ones included (they must be committed
    /// before the cursor of their page is stored).
    fn buffered_rows(&self) -> usize {
        self.pending
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>()
            + self.flattener.len()
            + self.rejected.len()
    }

    /// Forgets everything read since the last commit and goes back to its cursor.
    fn discard_buffer(&mut self) {
        self.flattener = Flattener::new(&self.spec.schema(self.table.arrow_schema().as_deref()));
        self.pending.clear();
        self.rejected.clear();
        self.pending_cursor = self.checkpoint.cursor.clone();
    }

    fn buffered_bytes(&self) -> usize {
        self.pending
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum::<usize>()
            + self.flattener.estimated_bytes()
    }

    /// An expired or invalid cursor: keep what was read under the old generation, then
    /// start a new generation with a full backfill.
    async fn restart_generation(
        &mut self,
        ctx: &StreamContext,
        error: &CdfError,
    ) -> Result<(), Turn<Self, StreamReport>> {
        tracing::warn!(stream = %self.spec.key, %error, "cursor rejected; starting a new generation with a full backfill");
        if self.buffered_rows() > 0 {
            self.commit(ctx, false).await?;
        }
        self.checkpoint = new_generation(&self.checkpoint, &self.spec.query_hash());
        if let Err(error) = ctx.state_store.save(&self.spec.key, &self.checkpoint).await {
            return Err(self.fail_now(Failure::cdf(
                "writing the state row of the new generation",
                &error,
            )));
        }
        self.pending_cursor = None;
        self.opens_generation = true;
        self.report.cursor_resets += 1;
        self.report.generation = self.checkpoint.generation;
        Ok(())
    }

    /// Commits everything buffered (possibly nothing, to record a generation marker) with
    /// the next sequence number, then checkpoints in RAW. On a lost race the stream stops
    /// for this invocation: another sync owns it right now.
    async fn commit(
        &mut self,
        ctx: &StreamContext,
        backfill_complete: bool,
    ) -> Result<(), Turn<Self, StreamReport>> {
        let mut batches = std::mem::take(&mut self.pending);
        match self.flattener.finish() {
            Ok(batch) if batch.num_rows() > 0 || batches.is_empty() => batches.push(batch),
            Ok(_) => {}
            Err(error) => {
                return Err(self.fail_now(Failure::new(Cause::Internal, error.to_string())));
            }
        }
        if backfill_complete {
            batches = match self.with_superseded_exits(batches).await {
                Ok(batches) => batches,
                Err(failure) => return Err(self.fail_now(failure)),
            };
        }
        // A sync commit changes what the table holds live.
        self.live_keys = None;
        self.commit_batches(ctx, batches, backfill_complete).await
    }

    /// Commits `batches` (and the quarantined rows) with the next sequence number and the
    /// current checkpoint, then checkpoints in RAW. Every row gets its `_arrival` value
    /// here, from the commit's generation and sequence number, which a retry of the same
    /// commit repeats.
    async fn commit_batches(
        &mut self,
        ctx: &StreamContext,
        batches: Vec<RecordBatch>,
        backfill_complete: bool,
    ) -> Result<(), Turn<Self, StreamReport>> {
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let mut next = self.checkpoint.clone();
        next.seq += 1;
        next.cursor = self.pending_cursor.clone();
        next.rows_total += rows;
        next.last_error = None;
        let commit = StreamCommit {
            app_id: self.spec.key.clone(),
            txn_version: next.seq,
            metadata: StreamMetadata::data_commit(&next, self.opens_generation, backfill_complete),
        };
        if let Err(failure) = self.quarantine(ctx, &next).await {
            return Err(self.fail_now(failure));
        }
        let seq = u64::try_from(next.seq).unwrap_or_default();
        let batches = match stamp_arrival(batches, next.generation, seq) {
            Ok(batches) => batches,
            Err(error) => {
                let failure = Failure::new(Cause::Internal, format!("the arrival column: {error}"));
                return Err(self.fail_now(failure));
            }
        };
        crate::failpoint::hit("before-delta-commit");
        match self.table.append(&batches, commit).await {
            Ok(CommitOutcome::Committed(report)) => {
                crate::failpoint::hit("after-delta-commit");
                self.report.commits += 1;
                self.report.rows += rows;
                self.report.bytes += report.bytes;
                self.report.files += report.files as u64;
                self.checkpoint = next;
                self.opens_generation = false;
                self.save_checkpoint(ctx).await;
                ctx.progress.stream_committed(
                    &self.spec.key,
                    self.checkpoint.phase,
                    self.report.rows,
                );
                Ok(())
            }
            Ok(CommitOutcome::AlreadyCommitted {
                table_txn_version, ..
            }) => {
                let message = format!(
                    "another sync committed step {table_txn_version} of this stream first; this invocation leaves it alone"
                );
                tracing::warn!(stream = %self.spec.key, "{message}");
                self.report.status = StreamStatus::Superseded;
                self.report.error = Some(Failure::new(Cause::CommitConflict, message));
                Err(Turn::Done(self.report.clone()))
            }
            Err(error) => Err(self.fail_now(Failure::lake("Delta commit failed", &error))),
        }
    }

    /// Commits the rejected rows of the buffered pages to the view's quarantine table, with
    /// this stream's `txn` at the sequence number of the data commit that follows. When that
    /// version is already in the table, a previous run stored these rows and crashed before
    /// its data commit: nothing is written again.
    async fn quarantine(
        &mut self,
        ctx: &StreamContext,
        next: &StreamCheckpoint,
    ) -> Result<(), Failure> {
        if self.rejected.is_empty() {
            return Ok(());
        }
        let table = match self.rejected_table.take() {
            Some(table) => table,
            None => {
                let url = ctx
                    .destination
                    .rejected_table_url(&self.spec.model, &self.spec.view_folder)
                    .map_err(|e| Failure::lake("the quarantine table", &e))?;
                LakeTable::open(&ctx.destination, url, ctx.write_options.clone())
                    .await
                    .map_err(|e| Failure::lake("opening the quarantine table", &e))?
            }
        };
        let table = self.rejected_table.insert(table);
        let stamp = RejectedStamp {
            generation: next.generation,
            seq: next.seq,
            quarantined_time: now_ms(),
        };
        let batch = rejected_batch(&self.rejected, stamp).map_err(|e| {
            Failure::new(
                Cause::Internal,
                format!("assembling the quarantined rows: {e}"),
            )
        })?;
        let commit = StreamCommit {
            app_id: self.spec.key.clone(),
            txn_version: next.seq,
            metadata: StreamMetadata::quarantine_commit(next.generation),
        };
        let rows = self.rejected.len() as u64;
        match table.append(&[batch], commit).await {
            Ok(CommitOutcome::Committed(_)) => {
                self.report.rows_quarantined += rows;
                tracing::warn!(stream = %self.spec.key, rows, table = %table.url(), "instances quarantined");
            }
            Ok(CommitOutcome::AlreadyCommitted { .. }) => {
                tracing::info!(stream = %self.spec.key, seq = next.seq, "the quarantined rows of this commit were stored by an earlier run");
            }
            Err(error) => return Err(Failure::lake("quarantine commit failed", &error)),
        }
        self.rejected.clear();
        crate::failpoint::hit("after-quarantine-commit");
        Ok(())
    }

    fn fail_now(&mut self, failure: Failure) -> Turn<Self, StreamReport> {
        self.report.status = StreamStatus::Failed;
        self.report.error = Some(failure);
        Turn::Done(self.report.clone())
    }

    /// RAW is the second copy of the checkpoint, so a failed write only costs a log line:
    /// the next run reads the checkpoint from the Delta log.
    async fn save_checkpoint(&self, ctx: &StreamContext) {
        if let Err(error) = ctx.state_store.save(&self.spec.key, &self.checkpoint).await {
            tracing::warn!(stream = %self.spec.key, %error, "could not write the checkpoint to RAW; the Delta log has it");
        }
        crate::failpoint::hit("after-raw-checkpoint");
    }

    /// Ends the turn: commits what is buffered, or (when nothing is buffered) stores the
    /// newest cursor so that idle streams keep a fresh one.
    async fn finish(
        mut self,
        ctx: &StreamContext,
        status: StreamStatus,
        error: Option<Failure>,
    ) -> Turn<Self, StreamReport> {
        if self.buffered_rows() > 0 {
            if let Err(done) = self.commit(ctx, false).await {
                return done;
            }
        } else if self.pending_cursor != self.checkpoint.cursor
            || error.is_some()
            || status == StreamStatus::CaughtUp
        {
            self.checkpoint.cursor = self.pending_cursor.clone();
            // The state row lives in CDF RAW: never store an echoed secret there.
            self.checkpoint.last_error = error.as_ref().map(|e| crate::secret::redact(&e.message));
            self.save_checkpoint(ctx).await;
        }
        self.report.status = status;
        self.report.error = error;
        self.report.lag_ms = self.checkpoint.newest_change.map(|t| now_ms() - t);
        ctx.progress
            .stream_finished(&self.spec.key, status.label(), self.report.rows);
        Turn::Done(self.report)
    }
}

/// The instance as JSON text, as CDF sent it, for the quarantine table.
///
/// A `json` property may nest thousands of levels deep, and serde_json's serializer (like
/// the derived `Clone`) recurses once per level, which would overflow a worker's stack on
/// exactly the instances most likely to be quarantined. The envelope is serialized without
/// its properties, and each property value is written by the non-recursive
/// [`crate::flatten::write_json`].
fn instance_json_text(instance: &Instance) -> String {
    let envelope = Instance {
        instance_type: instance.instance_type,
        space: instance.space.clone(),
        external_id: instance.external_id.clone(),
        version: instance.version,
        r#type: instance.r#type.clone(),
        start_node: instance.start_node.clone(),
        end_node: instance.end_node.clone(),
        created_time: instance.created_time,
        last_updated_time: instance.last_updated_time,
        deleted_time: instance.deleted_time,
        properties: Default::default(),
    };
    // Serializing strings, integers and references cannot fail.
    let mut out = serde_json::to_vec(&envelope).unwrap_or_default();
    let empty = b"{}}";
    if !out.ends_with(empty) {
        return String::from_utf8(out).unwrap_or_default();
    }
    out.truncate(out.len() - empty.len());
    let key = |out: &mut Vec<u8>, key: &str| {
        // A string key cannot fail to serialize.
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
    };
    out.push(b'{');
    for (i, (space, views)) in instance.properties.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        key(&mut out, space);
        out.push(b'{');
        for (j, (view, values)) in views.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            key(&mut out, view);
            out.push(b'{');
            for (k, (property, value)) in values.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                key(&mut out, property);
                crate::flatten::write_json(value, &mut out);
            }
            out.push(b'}');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}}");
    String::from_utf8(out).unwrap_or_default()
}

/// Rows per Arrow batch inside the buffer; keeps builders small while commits stay large.
const BATCH_ROWS: usize = 8192;

/// Reads the stream's checkpoint from the Delta table. The txn version comes from the loaded
/// snapshot. The log is searched for the commit itself unless the RAW row is sealed by this
/// lake for this stream and records exactly that version (the usual case: the row is then
/// what this lake wrote after, or since, that commit). Otherwise (a crash between a commit
/// and its RAW write, a row that is missing, edited, adopted or ahead of the table) the
/// whole retained log is searched, because other streams of the same table may have
/// committed any number of times since.
async fn table_state(
    table: &LakeTable,
    key: &str,
    state_row: Option<&StreamCheckpoint>,
    sealed: bool,
) -> Result<TableState, Failure> {
    let Some(seq) = table
        .txn_version(key)
        .await
        .map_err(|e| Failure::lake("reading the stream's txn version", &e))?
    else {
        return Ok(TableState::Known(None));
    };
    let row_at_seq = || state_row.map(|row| StreamCheckpoint { seq, ..row.clone() });
    if sealed && state_row.is_some_and(|row| row.seq == seq) {
        return Ok(TableState::Known(row_at_seq()));
    }
    match table.last_stream_commit(key, u64::MAX).await {
        Ok(record) => Ok(TableState::Known(record.map(|record| {
            checkpoint_from_metadata(&record.metadata, record.txn_version)
        }))),
        // The commit left the log, and with it all the log could say beyond `seq`: a row
        // that records at least that version is the best copy there is.
        Err(LakeError::StreamCommitNotFound { .. })
            if state_row.is_some_and(|row| row.seq >= seq) =>
        {
            Ok(TableState::Known(row_at_seq()))
        }
        Err(LakeError::StreamCommitNotFound { .. }) => Ok(TableState::CommitOutOfReach {
            seq,
            table_version: table.version().unwrap_or_default(),
        }),
        Err(e) => Err(Failure::lake("reading the stream's last commit", &e)),
    }
}

fn checkpoint_from_metadata(metadata: &StreamMetadata, txn_version: i64) -> StreamCheckpoint {
    let mut checkpoint = metadata.checkpoint.clone().unwrap_or_default();
    checkpoint.seq = txn_version;
    checkpoint
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn deep_instance(levels: usize) -> Vec<u8> {
        let mut deep = String::from("1");
        for _ in 0..levels {
            deep = format!("[{deep}]");
        }
        format!(
            r#"{{"instanceType":"node","space":"s","externalId":"x \"q\"","version":3,"createdTime":1,"lastUpdatedTime":2,
               "properties":{{"schema":{{"Pump/1":{{"specs":{{"deep":{deep}}},"tag":"æ✓","n":null}}}}}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn the_quarantined_json_is_the_instance_as_received() {
        let body = deep_instance(3);
        let instance: Instance = crate::cdf::decode_json(&body).expect("instance");
        let text = instance_json_text(&instance);
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        let original: Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(parsed, original);
    }

    #[test]
    fn a_deep_instance_is_written_on_a_small_stack() {
        // 2 MiB, as a tokio worker has; serde_json's serializer overflows it at this depth.
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let body = deep_instance(5_000);
                let instance: Instance = crate::cdf::decode_json(&body).expect("instance");
                let text = instance_json_text(&instance);
                assert!(text.contains(&"[".repeat(5_000)));
                assert!(text.ends_with(r#"]},"tag":"æ✓"}}}}"#), "{text:.200}");
            })
            .expect("thread");
        assert!(handle.join().is_ok(), "writing a deep instance overflowed");
    }
}
