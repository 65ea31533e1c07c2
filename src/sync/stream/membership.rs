//! The membership scan: the table converges to the instances that match the stream's query
//! *now*, including those that sync never reports.
//!
//! Sync reports a change of an instance that matches the query when it changes. An
//! instance that stops matching (a view filter on its properties or its node type, a
//! `nested` filter whose referenced node changed, a delete and re-create with other
//! containers between two reads, a node re-created empty by a direct relation) produces no
//! event, and a `nested` filter can let an instance enter without one. Only a listing of the
//! query's current members shows these, so a caught-up stream runs a pass on an interval:
//!
//! 1. **Listing.** Every member is listed with its version, no properties. A member the
//!    table lacks, or holds in another version or as removed, is fetched in its current
//!    state (list by `instanceReferences` and the stream's filter, with the stream's
//!    sources: only instances that still match come back) and committed.
//! 2. **Checking.** The table's live instances are checked in key order, a thousand per
//!    request, against the same filter. One that no longer matches gets an exit row: its
//!    identity and version, property columns null, and `_exitedTime` set. Exit rows remove
//!    the instance from the publish layer like a deletion; `deletedTime` stays for
//!    deletions in CDF.
//!
//! Each commit goes through the stream's own commit path (txn sequence number and
//! checkpoint in one Delta commit, then RAW), and the pass's progress (list cursor, last
//! key checked) is part of the checkpoint, so a pass resumes where a deadline stopped it
//! and a repeated step never commits twice.
//!
//! Why the order of events cannot undo a pass: the table's state is read before the
//! requests that compare with it, and sync commits of this stream between them invalidate
//! it. A change in CDF after a request that compares reaches the stream as an ordinary
//! event, which is committed after the pass's row and wins. An instance deleted before a
//! check gets an exit row, and its deletion still arrives from sync.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use tokio::time::Instant;

use super::{StreamContext, StreamRun, now_ms};
use crate::cdf::dto::{Filter, Instance, InstanceType, ListRequest, NodeReference, SyncTarget};
use crate::failure::{Cause, Failure};
use crate::flatten::{FlattenError, Flattener};
use crate::lake::live_keys::{InstanceKey, KeyState, LiveKeys};
use crate::schema::system::EXITED_TIME;
use crate::sync::scheduler::Turn;
use crate::sync::state::{MembershipPass, MembershipScan};
use crate::sync::summary::StreamReport;

/// Instances per list page and per `instanceReferences` check: CDF's list page limit.
const PAGE: usize = 1000;

/// What one step of a pass found.
#[derive(Default)]
struct Step {
    /// Members to fetch and commit in their current state.
    refresh: Vec<InstanceKey>,
    /// Live table instances that no longer match.
    exits: Vec<InstanceKey>,
}

impl StreamRun {
    /// Whether a pass is in progress or due.
    pub(super) fn membership_due(&self, ctx: &StreamContext) -> bool {
        let Some(interval) = ctx.membership_scan_interval else {
            return false;
        };
        let scan = &self.checkpoint.membership;
        scan.pass.is_some()
            || scan.last_pass.is_none_or(|last| {
                now_ms().saturating_sub(last)
                    >= i64::try_from(interval.as_millis()).unwrap_or(i64::MAX)
            })
    }

    /// Runs the pass in progress (or starts one) until it completes or the deadline is
    /// near. A failure ends the turn like any other failure of the stream.
    pub(super) async fn scan_membership(
        &mut self,
        ctx: &StreamContext,
        deadline: Instant,
    ) -> Result<(), Turn<Self, StreamReport>> {
        if self.checkpoint.membership.pass.is_none() {
            self.checkpoint.membership.pass = Some(Box::new(MembershipPass {
                started: now_ms(),
                ..MembershipPass::default()
            }));
            tracing::info!(stream = %self.spec.key, "membership scan: starting a pass");
        }
        let mut keys = match self.live_keys.take() {
            Some(keys) => keys,
            None => self
                .table
                .live_keys(&self.spec.key, self.checkpoint.generation)
                .await
                .map_err(|e| {
                    self.fail_now(Failure::lake("reading the table's live instances", &e))
                })?,
        };
        while let Some(pass) = self.checkpoint.membership.pass.as_deref().cloned() {
            let step = if Instant::now() + ctx.deadline_margin >= deadline {
                Err(None)
            } else {
                self.next_step(ctx, &keys, &pass).await
            };
            let step = match step {
                Ok(step) => step,
                // The deadline came first (before the step, or during one of its requests):
                // the pass continues in the next run from the progress saved here.
                Err(None) => {
                    self.report.membership.pass_pending = true;
                    self.live_keys = Some(keys);
                    self.save_checkpoint(ctx).await;
                    return Ok(());
                }
                Err(Some(failure)) => return Err(self.fail_now(failure)),
            };
            let Some((step, progress, fetched)) = step else {
                // Every live instance was checked: the pass is complete.
                let finished = self.checkpoint.membership.pass.take().unwrap_or_default();
                self.checkpoint.membership = MembershipScan {
                    last_pass: Some(now_ms()),
                    pass: None,
                };
                self.report.membership.passes_completed += 1;
                self.report.membership.pass_pending = false;
                tracing::info!(
                    stream = %self.spec.key,
                    refreshed = finished.refreshed,
                    exited = finished.exited,
                    "membership scan: pass complete"
                );
                self.save_checkpoint(ctx).await;
                break;
            };
            self.commit_step(ctx, &mut keys, step, progress, fetched)
                .await?;
        }
        self.live_keys = Some(keys);
        Ok(())
    }

    /// The pass's next step with the current state of the instances it refreshes; `None`
    /// when the pass is complete. Fails with `None` when the run's deadline cut a request.
    async fn next_step(
        &mut self,
        ctx: &StreamContext,
        keys: &LiveKeys,
        pass: &MembershipPass,
    ) -> Result<Option<(Step, MembershipPass, Vec<Instance>)>, Option<Failure>> {
        let step = if pass.listed {
            self.check_step(ctx, keys, pass).await
        } else {
            self.list_step(ctx, keys, pass).await
        };
        let deadline_or =
            |failure: Failure| (failure.cause != Cause::DeadlineReached).then_some(failure);
        let Some((step, progress)) = step.map_err(deadline_or)? else {
            return Ok(None);
        };
        let fetched = self
            .fetch_current(ctx, &step.refresh)
            .await
            .map_err(deadline_or)?;
        Ok(Some((step, progress, fetched)))
    }

    /// One page of the members listing: what the table lacks or holds in another version.
    async fn list_step(
        &mut self,
        ctx: &StreamContext,
        keys: &LiveKeys,
        pass: &MembershipPass,
    ) -> Result<Option<(Step, MembershipPass)>, Failure> {
        let request = ListRequest {
            instance_type: self.instance_type(),
            filter: self.query_filter(),
            sources: Vec::new(),
            limit: PAGE as u32,
            cursor: pass.list_cursor.clone(),
        };
        self.report.membership.requests += 1;
        let page = ctx
            .client
            .list_instances(&request)
            .await
            .map_err(|e| Failure::cdf("listing the stream's members", &e))?;
        self.report.membership.checked += page.items.len() as u64;
        let refresh = page
            .items
            .iter()
            .filter(|member| {
                keys.get(&(member.space.clone(), member.external_id.clone()))
                    .is_none_or(|state| !state.live || state.version != member.version)
            })
            .map(|member| (member.space.clone(), member.external_id.clone()))
            .collect();
        let mut progress = pass.clone();
        match page.next_cursor {
            Some(cursor) => progress.list_cursor = Some(cursor),
            None => {
                progress.list_cursor = None;
                progress.listed = true;
            }
        }
        Ok(Some((
            Step {
                refresh,
                exits: Vec::new(),
            },
            progress,
        )))
    }

    /// The next thousand live instances of the table, checked against the query. `None`
    /// when none is left.
    async fn check_step(
        &mut self,
        ctx: &StreamContext,
        keys: &LiveKeys,
        pass: &MembershipPass,
    ) -> Result<Option<(Step, MembershipPass)>, Failure> {
        let lower = match &pass.checked_up_to {
            Some(key) => Bound::Excluded(key.clone()),
            None => Bound::Unbounded,
        };
        let batch: Vec<(&InstanceKey, &KeyState)> = keys
            .range((lower, Bound::Unbounded))
            .filter(|(_, state)| state.live)
            .take(PAGE)
            .collect();
        let Some((last, _)) = batch.last() else {
            return Ok(None);
        };
        let request = self.among(batch.iter().map(|(key, _)| *key), false);
        self.report.membership.requests += 1;
        let page =
            ctx.client.list_instances(&request).await.map_err(|e| {
                Failure::cdf("checking the table's instances against the query", &e)
            })?;
        self.report.membership.checked += batch.len() as u64;
        let matching: BTreeMap<InstanceKey, i64> = page
            .items
            .into_iter()
            .map(|member| {
                (
                    (member.space.clone(), member.external_id.clone()),
                    member.version,
                )
            })
            .collect();
        let mut step = Step::default();
        for (key, state) in &batch {
            match matching.get(*key) {
                None => step.exits.push((*key).clone()),
                Some(&version) if version != state.version => step.refresh.push((*key).clone()),
                Some(_) => {}
            }
        }
        let mut progress = pass.clone();
        progress.checked_up_to = Some((*last).clone());
        Ok(Some((step, progress)))
    }

    /// Writes the refreshed instances and the exit rows in one commit with the pass's
    /// progress, and brings `keys` up to date with what was committed.
    async fn commit_step(
        &mut self,
        ctx: &StreamContext,
        keys: &mut LiveKeys,
        step: Step,
        mut progress: MembershipPass,
        fetched: Vec<Instance>,
    ) -> Result<(), Turn<Self, StreamReport>> {
        let exits: Vec<Instance> = step
            .exits
            .iter()
            .filter_map(|key| keys.get(key).map(|state| self.exit_instance(key, state)))
            .collect();
        progress.refreshed += fetched.len() as u64;
        progress.exited += exits.len() as u64;
        self.checkpoint.membership.pass = Some(Box::new(progress));
        if fetched.is_empty() && exits.is_empty() {
            return Ok(());
        }
        let batches = self
            .membership_batches(&fetched, &exits)
            .map_err(|failure| self.fail_now(failure))?;
        self.commit_batches(ctx, batches, false).await?;
        self.report.membership.refreshed += fetched.len() as u64;
        self.report.membership.exited += exits.len() as u64;
        for instance in &exits {
            if let Some(state) =
                keys.get_mut(&(instance.space.clone(), instance.external_id.clone()))
            {
                state.live = false;
            }
        }
        for instance in &fetched {
            keys.insert(
                (instance.space.clone(), instance.external_id.clone()),
                key_state(instance),
            );
        }
        if !exits.is_empty() {
            tracing::info!(stream = %self.spec.key, exited = exits.len(), "membership scan: instances left the query");
        }
        Ok(())
    }

    /// The current state of `keys` among the instances that match the query now, with the
    /// stream's sources. Instances that no longer match (or no longer exist) are left out.
    async fn fetch_current(
        &mut self,
        ctx: &StreamContext,
        keys: &[InstanceKey],
    ) -> Result<Vec<Instance>, Failure> {
        let mut fetched = Vec::new();
        for chunk in keys.chunks(PAGE) {
            let request = self.among(chunk.iter(), true);
            self.report.membership.requests += 1;
            let page = ctx
                .client
                .list_instances(&request)
                .await
                .map_err(|e| Failure::cdf("fetching the current state of members", &e))?;
            let wanted: HashSet<&InstanceKey> = chunk.iter().collect();
            fetched.extend(page.items.into_iter().filter(|item| {
                !item.is_deleted()
                    && wanted.contains(&(item.space.clone(), item.external_id.clone()))
            }));
        }
        Ok(fetched)
    }

    /// The row that records that `key` left the query: its last identity and version.
    pub(super) fn exit_instance(&self, key: &InstanceKey, state: &KeyState) -> Instance {
        let reference = |r: &(String, String)| NodeReference::new(&r.0, &r.1);
        Instance {
            instance_type: self.instance_type(),
            space: key.0.clone(),
            external_id: key.1.clone(),
            version: state.version,
            r#type: state.type_ref.as_ref().map(reference),
            start_node: state.ends.as_ref().map(|ends| reference(&ends[0])),
            end_node: state.ends.as_ref().map(|ends| reference(&ends[1])),
            created_time: state.created_time,
            last_updated_time: now_ms(),
            deleted_time: None,
            properties: Default::default(),
        }
    }

    /// The refreshed instances and the exit rows as batches of the table's schema. The exit
    /// column is added only when there are exits, so a table gets it with its first exit.
    /// A refreshed instance the flattener refuses goes to the quarantine table with the
    /// commit, as in sync.
    fn membership_batches(
        &mut self,
        fetched: &[Instance],
        exits: &[Instance],
    ) -> Result<Vec<RecordBatch>, Failure> {
        let schema = self.spec.schema(self.table.arrow_schema().as_deref());
        let mut rejected = Vec::new();
        let mut flatten = |instances: &[Instance]| -> Result<RecordBatch, Failure> {
            let mut flattener = Flattener::new(&schema);
            for instance in instances {
                match flattener.push(instance) {
                    Ok(()) => {}
                    Err(
                        error @ (FlattenError::Value(_) | FlattenError::WrongInstanceType { .. }),
                    ) => {
                        tracing::warn!(stream = %self.spec.key, %error, "quarantining an instance that cannot be written");
                        rejected.push(self.rejected_row(instance, &error));
                    }
                    Err(error) => return Err(Failure::new(Cause::Internal, error.to_string())),
                }
            }
            flattener
                .finish()
                .map_err(|e| Failure::new(Cause::Internal, e.to_string()))
        };
        let mut batches = Vec::new();
        if !fetched.is_empty() {
            batches.push((flatten(fetched)?, None));
        }
        if !exits.is_empty() {
            batches.push((flatten(exits)?, Some(now_ms())));
        }
        self.rejected.extend(rejected);
        let with_exits = !exits.is_empty();
        batches
            .into_iter()
            .map(|(batch, exited)| {
                if with_exits {
                    with_exit_column(batch, exited)
                } else {
                    Ok(batch)
                }
            })
            .collect()
    }

    /// The request for those of `keys` (at most a page) that match the query now, with the
    /// stream's sources or without properties.
    fn among<'k>(
        &self,
        keys: impl Iterator<Item = &'k InstanceKey>,
        with_properties: bool,
    ) -> ListRequest {
        let references = keys
            .map(|(space, external_id)| NodeReference::new(space, external_id))
            .collect();
        let filter = Filter::all_of(
            self.query_filter()
                .into_iter()
                .chain([Filter::InstanceReferences(references)])
                .collect(),
        );
        ListRequest {
            instance_type: self.instance_type(),
            filter: Some(filter),
            sources: if with_properties {
                self.spec.select.sources.clone()
            } else {
                Vec::new()
            },
            limit: PAGE as u32,
            cursor: None,
        }
    }

    fn instance_type(&self) -> InstanceType {
        match self.spec.expression.target {
            SyncTarget::Nodes(_) => InstanceType::Node,
            SyncTarget::Edges(_) => InstanceType::Edge,
        }
    }

    /// The stream's own filter: the query whose membership the table mirrors.
    fn query_filter(&self) -> Option<Filter> {
        match &self.spec.expression.target {
            SyncTarget::Nodes(target) | SyncTarget::Edges(target) => target.filter.clone(),
        }
    }
}

/// The table's view of an instance after it was committed in its current state.
fn key_state(instance: &Instance) -> KeyState {
    let pair = |r: &NodeReference| (r.space.clone(), r.external_id.clone());
    KeyState {
        version: instance.version,
        live: true,
        created_time: instance.created_time,
        type_ref: instance.r#type.as_ref().map(pair),
        ends: instance
            .start_node
            .as_ref()
            .zip(instance.end_node.as_ref())
            .map(|(s, e)| Box::new([pair(s), pair(e)])),
    }
}

/// `batch` with the exit column appended: `exited` on every row, or null.
pub(super) fn with_exit_column(
    batch: RecordBatch,
    exited: Option<i64>,
) -> Result<RecordBatch, Failure> {
    let rows = batch.num_rows();
    let column: ArrayRef = Arc::new(Int64Array::from(vec![exited; rows]));
    let schema = batch.schema();
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(EXITED_TIME, DataType::Int64, true)));
    let mut columns = batch.columns().to_vec();
    columns.push(column);
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        columns,
    )
    .map_err(|e| {
        Failure::new(
            Cause::Internal,
            format!("membership scan: exit column: {e}"),
        )
    })
}
