//! Publishing one kind of a view (nodes or edges) in the form its size calls for: one file
//! (`nodes.parquet`, [`super::file`]), or a folder of parts (`nodes/part-00003-of-00016.parquet`)
//! split by the hash of [`super::parts`].
//!
//! # Parts
//!
//! Every part is a published file of its own: sorted by (`space`, `externalId`), one row
//! per live instance, stamped in its footer with what it reflects and which part it is, and
//! listed in the manifest with its ETag and write id (the guard of [`super::view`] checks
//! every part). Each part is skipped, merged or rebuilt on its own:
//!
//! - the commits after the oldest part's version are read once and each changed row is
//!   routed to its part; a part that none of them touches is not rewritten (its manifest
//!   entry moves on to the new version, which its rows already reflect);
//! - parts without a usable previous state (missing, replaced, unstamped), or all of them
//!   when the changes cannot be merged (a completed generation, a schema change), are
//!   rebuilt from every active raw file, at most [`PARTS_PER_PASS`] parts per read of the
//!   raw table, sharing the sort's memory budget.
//!
//! A part that reflects an older version than another simply replays the commits it has
//! not seen plus some it has: the last arrival wins, so replaying a change changes nothing.
//!
//! # Switching forms
//!
//! A change of form or part count (see [`super::parts::choose_count`]) rebuilds the file in
//! the new form. The new objects have other keys than the old ones, so the old form stays
//! readable until the manifest names the new one; the run removes the old form's objects
//! after the manifest and the catalog point at the new one ([`super::retire`]).

use std::collections::BTreeMap;

use deltalake::arrow::array::RecordBatch;
use tokio::time::Instant;

use super::budget::{Shortfall, merge_bytes};
use super::build::{Built, FileTarget, ReadStats, RowSink};
use super::decode::published_in_order;
use super::error::{SnapshotError, SnapshotResult};
use super::file::{Previous, PublishContext, Source, describe, find_previous, publish_file};
use super::incremental::{Changed, changes_after, open_previous};
use super::keys::KeyColumns;
use super::manifest::{
    ColumnSpec, FileEntry, PartsEntry, SORT_COLUMNS, column_specs, now_rfc3339, tool_version,
};
use super::parts::{self, HASH_NAME, choose_count};
use super::piece_entry;
use super::plan::{TableTarget, ViewTarget};
use super::rebuild::rebuild_inputs;
use super::shards;
use super::sorter::{SortSettings, Sorter};
use super::stamp::FileStamp;
use super::stamp::PartStamp;
use super::summary::{FileAction, FileReport, PartsReport};
use crate::lake::layout::{self, PublishPaths};
use crate::lake::{InstanceKind, LakeTable};

/// Parts rebuilt per read of the raw table: each holds a share of the sort's memory budget,
/// so more at once would make their sorted runs too small.
pub(crate) const PARTS_PER_PASS: usize = 16;

/// Publishes one kind of `view` as one file or in parts. Returns the report and the
/// manifest entry that describes what is now at the kind's keys (see
/// [`super::file::publish_file`]). Fails only with a [`SnapshotError::Conflict`].
pub(crate) async fn publish_kind(
    ctx: &PublishContext<'_>,
    view: &ViewTarget,
    kind: InstanceKind,
    listed: Option<&FileEntry>,
    paths: &PublishPaths,
) -> SnapshotResult<(FileReport, Option<FileEntry>)> {
    let target = view.table(kind);
    let current = listed.map_or(1, FileEntry::part_count);
    let fixed = ctx.scope.fixed_count(kind);
    let (count, rows) = match fixed {
        Some(count) => (count, listed.map(|e| e.rows)),
        None => part_count(ctx, view, target, listed).await,
    };
    let rows = rows.map_or_else(|| "?".to_owned(), |r| r.to_string());
    let switch = match listed {
        _ if count == current => None,
        // A unit of one object: the run's plan chose the form.
        _ if fixed.is_some() => Some(format!(
            "{} instead of {}, as the run's plan decided",
            form(count),
            form(current)
        )),
        Some(_) => Some(format!(
            "the file has {rows} rows: {} instead of {} (extractor.snapshot.part-rows is {})",
            form(count),
            form(current),
            ctx.part_rows
        )),
        None => Some(format!(
            "no previous parts; the raw table's files hold {rows} rows: {} (extractor.snapshot.part-rows is {})",
            form(count),
            ctx.part_rows
        )),
    };
    if ctx.scope.is_assemble() {
        return assemble(ctx, view, target, listed, paths, count).await;
    }
    if count <= 1 {
        let single = listed.filter(|e| e.parts.is_none());
        let (mut report, mut entry) =
            publish_file(ctx, view, target, single, paths.data_file(kind)).await?;
        if report.action == FileAction::Failed {
            // A failed switch back to one file left the parts as they were.
            if entry.is_none() {
                entry = listed.filter(|e| e.parts.is_some()).cloned();
            }
        } else if let Some(switch) = switch {
            report.reason = Some(switch);
        }
        return Ok((report, entry));
    }
    let started = Instant::now();
    let listed_parts = listed.filter(|e| e.part_count() == count);
    let mut publishing = Parts::new(ctx, view, target, paths, count);
    let outcome = publishing.publish(listed_parts, switch).await;
    let (mut report, entry) = match outcome {
        Ok(done) => done,
        Err(error) if error.is_conflict() => return Err(error),
        Err(error) => {
            tracing::warn!(view = %view.folder, %kind, %error, "publishing the parts failed");
            let mut report = FileReport::failed(kind, error.to_failure());
            report.parts = Some(publishing.report());
            (report, publishing.in_place(listed))
        }
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok((report, entry))
}

/// The assembling step of a view published in pieces: describes what the pieces' units
/// left at the kind's keys, builds nothing. A kind whose objects are not all in place (a
/// unit failed, or has not run) keeps the form the manifest named, and the kind's report
/// says which object is missing; the next run builds it.
async fn assemble(
    ctx: &PublishContext<'_>,
    view: &ViewTarget,
    target: &TableTarget,
    listed: Option<&FileEntry>,
    paths: &PublishPaths,
    count: u32,
) -> SnapshotResult<(FileReport, Option<FileEntry>)> {
    let kind = target.kind;
    let table_path = layout::raw_table_path(&view.model, &view.folder, kind);
    let kept = |object: &str| {
        let path = piece_entry::entry_path(&view.model, &view.folder, object);
        async move { piece_entry::load(&ctx.store, &path).await }
    };
    if count <= 1 {
        let path = paths.data_file(kind);
        let single = listed.filter(|e| e.parts.is_none());
        let kept = kept(&format!("{kind}.parquet")).await;
        let found = find_previous(
            &ctx.store,
            path,
            &table_path,
            kept.as_ref().or(single),
            None,
        )
        .await?;
        return Ok(match found.entry {
            Some(entry) => {
                let mut report = FileReport::new(kind, FileAction::Skipped);
                report.rows = entry.rows;
                report.bytes = entry.bytes;
                report.source_version = entry.table_version;
                report.reason = found.note;
                (report, Some(entry))
            }
            None => (
                FileReport::failed(kind, not_in_place(path, found.note)),
                listed.cloned(),
            ),
        });
    }
    let listed_parts = listed.filter(|e| e.part_count() == count);
    let mut parts = Parts::new(ctx, view, target, paths, count);
    let mut kept_entries = BTreeMap::new();
    for index in 0..count {
        let relative = layout::part_name(kind, index, count);
        if let Some(entry) = kept(&relative).await {
            kept_entries.insert(relative, entry);
        }
    }
    parts
        .find_previous(listed_parts, &table_path, &kept_entries)
        .await?;
    if let Some(missing) = parts.states.iter().find(|s| s.entry.is_none()) {
        let failure = not_in_place(&missing.path, missing.note.clone());
        let mut report = FileReport::failed(kind, failure);
        report.parts = Some(parts.report());
        return Ok((report, parts.in_place(listed)));
    }
    // The manifest already names exactly these parts, as they are.
    let unchanged = listed_parts
        .and_then(|l| l.parts.as_ref())
        .is_some_and(|p| {
            p.files.len() == parts.states.len()
                && p.files
                    .iter()
                    .zip(&parts.states)
                    .all(|(file, state)| state.entry.as_ref() == Some(file))
        });
    let entry = match listed_parts {
        Some(listed) if unchanged => Some(listed.clone()),
        _ => parts.in_place(listed),
    };
    let mut report = FileReport::new(kind, FileAction::Skipped);
    report.parts = Some(parts.report());
    if let Some(entry) = &entry {
        report.rows = entry.rows;
        report.bytes = entry.bytes;
        report.source_version = entry.table_version;
    }
    Ok((report, entry))
}

/// The failure of an object that the assembling step expected and did not find.
fn not_in_place(path: &str, note: Option<String>) -> crate::failure::Failure {
    crate::failure::Failure::new(
        crate::failure::Cause::UnitIncomplete,
        format!(
            "{path} is not in place ({}): the unit that publishes it did not finish; the next run publishes it",
            note.unwrap_or_else(|| "no object".into())
        ),
    )
}

fn form(count: u32) -> String {
    if count <= 1 {
        "one file".to_owned()
    } else {
        format!("{count} parts")
    }
}

/// The part count the kind gets in this run, and the rows it was decided from: the rows
/// published (the manifest's entry), or before the first publish the rows of the raw
/// table's active files (every change counts, so this is an upper bound).
async fn part_count(
    ctx: &PublishContext<'_>,
    view: &ViewTarget,
    target: &TableTarget,
    listed: Option<&FileEntry>,
) -> (u32, Option<u64>) {
    if !target.has_streams() {
        // Nothing to split: the file holds only the system columns.
        return (1, Some(0));
    }
    let current = listed.map_or(1, FileEntry::part_count);
    let rows = match listed {
        Some(entry) => Some(entry.rows),
        None => raw_rows(ctx, view, target).await,
    };
    match rows {
        Some(rows) => (choose_count(current, rows, ctx.part_rows), Some(rows)),
        None => (current, None),
    }
}

/// The rows of the raw table's active files, from the row counts its log records.
async fn raw_rows(
    ctx: &PublishContext<'_>,
    view: &ViewTarget,
    target: &TableTarget,
) -> Option<u64> {
    let url = ctx
        .destination
        .raw_table_url(&view.model, &view.folder, target.kind)
        .ok()?;
    let table = match LakeTable::open(ctx.destination, url, ctx.table_options.clone()).await {
        Ok(table) => table,
        Err(error) => {
            // Publishing opens it again and reports the failure.
            tracing::debug!(view = %view.folder, kind = %target.kind, %error, "could not count the raw rows");
            return None;
        }
    };
    let files = table.active_files().ok()?;
    Some(files.iter().filter_map(|f| f.num_records).sum())
}

/// One part while it is being published.
struct PartState {
    index: u32,
    path: String,
    /// What the object at the key reflects now: what was found, then what this run wrote.
    entry: Option<FileEntry>,
    /// Why the manifest's entry for it was not taken as it is.
    note: Option<String>,
    /// What this run did to it (`None` until decided).
    action: Option<FileAction>,
}

/// The parts of one kind of one view, published together.
struct Parts<'c, 'a> {
    ctx: &'c PublishContext<'a>,
    view: &'c ViewTarget,
    target: &'c TableTarget,
    kind: InstanceKind,
    count: u32,
    states: Vec<PartState>,
    stats: ReadStats,
    /// The one part this publish builds (a unit of one part), or `None` for all of them.
    only: Option<u32>,
}

impl<'c, 'a> Parts<'c, 'a> {
    fn new(
        ctx: &'c PublishContext<'a>,
        view: &'c ViewTarget,
        target: &'c TableTarget,
        paths: &PublishPaths,
        count: u32,
    ) -> Self {
        let states = (0..count)
            .map(|index| PartState {
                index,
                path: paths.part_file(target.kind, index, count),
                entry: None,
                note: None,
                action: None,
            })
            .collect();
        Self {
            ctx,
            view,
            target,
            kind: target.kind,
            count,
            states,
            stats: ReadStats::default(),
            only: ctx.scope.only_part(),
        }
    }

    /// Whether this publish builds the part.
    fn builds(&self, index: u32) -> bool {
        self.only.is_none_or(|only| only == index)
    }

    /// Finds out what each part built here reflects ([`find_previous`]).
    async fn find_previous(
        &mut self,
        listed: Option<&FileEntry>,
        table_path: &str,
        kept: &BTreeMap<String, FileEntry>,
    ) -> SnapshotResult<()> {
        let listed_parts: BTreeMap<&str, &FileEntry> = listed
            .and_then(|e| e.parts.as_ref())
            .map(|p| p.files.iter().map(|f| (f.path.as_str(), f)).collect())
            .unwrap_or_default();
        let only = self.only;
        for state in &mut self.states {
            if only.is_some_and(|only| only != state.index) {
                continue;
            }
            let relative = layout::part_name(self.kind, state.index, self.count);
            let listed = kept
                .get(&relative)
                .or_else(|| listed_parts.get(relative.as_str()).copied());
            let stamp = PartStamp::new(state.index, self.count);
            let Previous { entry, note } = find_previous(
                &self.ctx.store,
                &state.path,
                table_path,
                listed,
                Some(&stamp),
            )
            .await?;
            state.entry = entry.map(|e| relative_to_view(e, &relative));
            state.note = note;
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        listed: Option<&FileEntry>,
        switch: Option<String>,
    ) -> SnapshotResult<(FileReport, Option<FileEntry>)> {
        let table_path = layout::raw_table_path(&self.view.model, &self.view.folder, self.kind);
        self.find_previous(listed, &table_path, &BTreeMap::new())
            .await?;
        if let Some(note) = self.states.iter().find_map(|s| s.note.as_ref())
            && listed.is_some()
        {
            tracing::warn!(view = %self.view.folder, kind = %self.kind, %note, "the manifest does not describe every part; using what the parts say");
        }

        let source = Source::open(self.ctx, self.view, self.target).await?;
        let Some(table) = source.table.as_ref() else {
            // Parts are only chosen for kinds with streams, whose table exists.
            return Err(SnapshotError::NoRawTable {
                table: source.table_path.clone(),
                streams: self.target.streams.join(", "),
            });
        };

        // Skip what is current; everything else is merged if it can be, rebuilt otherwise.
        let mut rebuild: Vec<u32> = Vec::new();
        let mut rebuild_reason = switch.clone();
        let mut merge: Vec<u32> = Vec::new();
        let only = self.only;
        for state in &mut self.states {
            if only.is_some_and(|only| only != state.index) {
                continue;
            }
            match &state.entry {
                Some(e)
                    if e.table_version == source.version
                        && e.raw_schema_fingerprint == source.fingerprint =>
                {
                    state.action = Some(FileAction::Skipped);
                }
                Some(e) if e.table_version > source.version => {
                    rebuild.push(state.index);
                    rebuild_reason.get_or_insert_with(|| {
                        "the raw table is older than the published parts (was it recreated?)".into()
                    });
                }
                Some(e)
                    if e.table_version.is_some()
                        && e.raw_schema_fingerprint == source.fingerprint =>
                {
                    merge.push(state.index)
                }
                Some(e) if e.table_version.is_some() => {
                    rebuild.push(state.index);
                    rebuild_reason.get_or_insert_with(|| {
                        "the raw table schema differs from the one the previous parts were built from".into()
                    });
                }
                Some(_) => {
                    rebuild.push(state.index);
                    rebuild_reason.get_or_insert_with(|| {
                        "the previous parts were published before the raw table existed".into()
                    });
                }
                None => {
                    rebuild.push(state.index);
                    rebuild_reason.get_or_insert_with(|| {
                        state
                            .note
                            .clone()
                            .unwrap_or_else(|| "no previous part in the manifest".into())
                    });
                }
            }
        }
        let mut behind: Option<Shortfall> = None;
        if !merge.is_empty()
            && let Err(shortfall) = self.ctx.budget.admit(self.merge_bytes(table, &merge)?)
        {
            self.leave_behind(&merge);
            behind = Some(shortfall);
            merge.clear();
        }
        if !merge.is_empty() {
            match self.merge(&source, table, &merge).await {
                Ok(unmerged) => {
                    if let Some((parts, reason)) = unmerged {
                        rebuild.extend(parts);
                        rebuild_reason.get_or_insert(reason);
                    }
                }
                Err(error) if error.is_conflict() => return Err(error),
                Err(error) => {
                    tracing::warn!(view = %self.view.folder, kind = %self.kind, %error, "incremental merge of the parts failed; rebuilding them");
                    rebuild.extend(self.not_done(&merge));
                    rebuild_reason
                        .get_or_insert_with(|| format!("the incremental merge failed: {error}"));
                }
            }
        }
        rebuild.sort_unstable();
        rebuild.dedup();
        // A rebuild of parts is not resumable: from a complete shard build it reads the
        // parts' sorted runs, otherwise every raw file once per PARTS_PER_PASS parts; it
        // starts only when that fits in the time left.
        let sharded = if rebuild.is_empty() {
            None
        } else {
            shards::complete(&self.ctx.store, self.view, self.kind, self.count, &source).await
        };
        if !rebuild.is_empty() {
            let bytes = match &sharded {
                Some(build) => rebuild
                    .iter()
                    .map(|&part| build.bytes_of(part).saturating_mul(2))
                    .sum(),
                None => {
                    let passes = rebuild.len().div_ceil(PARTS_PER_PASS) as u64;
                    active_bytes(table)?.saturating_mul(passes)
                }
            };
            if let Err(shortfall) = self.ctx.budget.admit(bytes) {
                self.leave_behind(&rebuild);
                behind.get_or_insert(shortfall);
                rebuild.clear();
            }
        }
        if !rebuild.is_empty() {
            tracing::info!(view = %self.view.folder, kind = %self.kind, parts = rebuild.len(), count = self.count, reason = ?rebuild_reason, sharded = sharded.is_some(), "rebuilding parts");
            match &sharded {
                Some(build) => match self.rebuild_from_shards(&source, build, &rebuild).await {
                    Ok(()) => {
                        rebuild_reason = rebuild_reason
                            .map(|r| format!("{r} (from {} rebuild shards)", build.build.shards()));
                    }
                    Err(error) if error.is_conflict() => return Err(error),
                    Err(error) => {
                        tracing::warn!(view = %self.view.folder, kind = %self.kind, %error, "the shard build could not be read; rebuilding from the raw table");
                        let pending = self.not_done(&rebuild);
                        self.rebuild(&source, table, &pending).await?;
                    }
                },
                None => self.rebuild(&source, table, &rebuild).await?,
            }
        }

        let mut report = FileReport::new(self.kind, FileAction::Skipped);
        let summary = self.report();
        report.action = if behind.is_some() {
            FileAction::Behind
        } else if summary.rebuilt > 0 {
            FileAction::Rebuilt
        } else if summary.merged > 0
            || self
                .states
                .iter()
                .any(|s| self.builds(s.index) && s.action.is_none())
        {
            FileAction::Incremental
        } else {
            FileAction::Skipped
        };
        report.parts = Some(summary);
        report.source_version = source.version;
        report.previous_version = listed.and_then(|e| e.table_version);
        report.commits_read = self.stats.commits_read;
        report.files_read = self.stats.files_read;
        report.rows_read = self.stats.rows_read;
        report.spilled_runs = self.stats.spilled_runs;
        report.reason = if let Some(shortfall) = behind {
            Some(format!(
                "{} of {} parts left for the next run: {shortfall}",
                self.states
                    .iter()
                    .filter(|s| s.action == Some(FileAction::Behind))
                    .count(),
                self.count
            ))
        } else if summary.rebuilt > 0 {
            rebuild_reason.map(|r| {
                if summary.rebuilt < self.count {
                    format!("{} of {} parts rebuilt: {r}", summary.rebuilt, self.count)
                } else {
                    r
                }
            })
        } else {
            self.states.iter().find_map(|s| s.note.clone())
        };
        // Nothing moved: the manifest's entry still says exactly what is in place.
        let unchanged = self
            .states
            .iter()
            .all(|s| s.action == Some(FileAction::Skipped));
        let entry = match (self.only, listed) {
            // One part of many: the manifest is the assembling step's; the part's own
            // entry says what this publish left.
            (Some(only), _) => self.states[only as usize].entry.clone(),
            (None, Some(listed)) if unchanged && self.states.iter().all(|s| s.note.is_none()) => {
                Some(listed.clone())
            }
            // Parts the deadline left without any previous state: the form the manifest
            // named stays until they are built.
            (None, _) => self
                .aggregate(column_specs(&source.publish_schema))
                .or_else(|| self.in_place(listed)),
        };
        if let Some(entry) = &entry {
            report.rows = entry.rows;
            report.bytes = entry.bytes;
        }
        Ok((report, entry))
    }

    /// What merging `merge` reads and writes: the raw files added since the oldest of them
    /// was built, and each part read and written again.
    fn merge_bytes(&self, table: &LakeTable, merge: &[u32]) -> SnapshotResult<u64> {
        let entries: Vec<&FileEntry> = merge
            .iter()
            .filter_map(|&i| self.states[i as usize].entry.as_ref())
            .collect();
        let Some(oldest) = entries.iter().min_by_key(|e| e.table_version) else {
            return Ok(0);
        };
        let parts: u64 = entries.iter().map(|e| e.bytes.saturating_mul(2)).sum();
        let added = merge_bytes(table, oldest)?.saturating_sub(oldest.bytes.saturating_mul(2));
        Ok(added.saturating_add(parts))
    }

    /// Those of `parts` this run has not written yet (a failed pass may have written some).
    fn not_done(&self, parts: &[u32]) -> Vec<u32> {
        parts
            .iter()
            .copied()
            .filter(|&i| self.states[i as usize].action.is_none())
            .collect()
    }

    /// Leaves `parts` as they are for the next run.
    fn leave_behind(&mut self, parts: &[u32]) {
        for &index in parts {
            self.states[index as usize].action = Some(FileAction::Behind);
        }
    }

    /// Merges the commits after the oldest of `merge`'s parts into those parts. Returns
    /// the parts that could not be merged and why, to be rebuilt.
    async fn merge(
        &mut self,
        source: &Source,
        table: &LakeTable,
        merge: &[u32],
    ) -> SnapshotResult<Option<(Vec<u32>, String)>> {
        let oldest = merge
            .iter()
            .filter_map(|&i| self.states[i as usize].entry.as_ref())
            .min_by_key(|e| e.table_version)
            .cloned();
        let Some(oldest) = oldest else {
            return Ok(Some((merge.to_vec(), "no previous parts".into())));
        };
        let changes = match changes_after(table, &oldest, &source.fingerprint).await? {
            Changed::Changes(changes) => changes,
            Changed::NeedsRebuild(reason) => return Ok(Some((merge.to_vec(), reason))),
        };
        self.stats.commits_read += changes.commits_read;
        let probe = source.file_target(self.ctx, "", None);
        let mut sorters = PartSorters::new(&probe, self.count, merge);
        probe
            .read_into(table, &changes.files, &mut self.stats, &mut sorters)
            .await?;
        let mut unmerged = Vec::new();
        let mut unmerged_reason = None;
        for (index, sorter) in sorters.into_sorters() {
            let state = &self.states[index as usize];
            let Some(previous) = state.entry.clone() else {
                unmerged.push(index);
                continue;
            };
            if sorter.is_empty() {
                // None of the new commits holds an instance of this part: its rows are
                // already those of the new version.
                let state = &mut self.states[index as usize];
                state.entry = Some(FileEntry {
                    table_version: source.version,
                    streams: changes.index.streams.clone(),
                    ..previous
                });
                continue;
            }
            let path = state.path.clone();
            let file = source.file_target(self.ctx, &path, Some(PartStamp::new(index, self.count)));
            let object = match open_previous(&file, &previous).await? {
                Ok(object) => object,
                Err(reason) => {
                    unmerged.push(index);
                    unmerged_reason.get_or_insert(reason);
                    continue;
                }
            };
            let runs = sorter.finish().await?;
            self.stats.spilled_runs += runs.spilled_runs;
            let mut streams = Vec::with_capacity(runs.streams.len() + 1);
            streams.push(published_in_order(
                object,
                path.clone(),
                source.publish_schema.clone(),
                file.sort.threads,
            ));
            streams.extend(runs.streams);
            let written = file.write_merged(streams, &changes.index.streams).await?;
            drop(runs.spill_dir);
            let built = Built {
                written,
                streams: changes.index.streams.clone(),
                stats: ReadStats::default(),
            };
            self.record(index, &built, &file, source, FileAction::Incremental);
        }
        Ok((!unmerged.is_empty()).then(|| {
            (
                unmerged,
                unmerged_reason.unwrap_or_else(|| "no previous part".into()),
            )
        }))
    }

    /// Rebuilds `parts` from every active file of the raw table, [`PARTS_PER_PASS`] at a
    /// time.
    async fn rebuild(
        &mut self,
        source: &Source,
        table: &LakeTable,
        parts: &[u32],
    ) -> SnapshotResult<()> {
        let inputs = rebuild_inputs(table, &self.target.streams).await?;
        self.stats.commits_read += inputs.commits_read;
        let probe = source.file_target(self.ctx, "", None);
        for group in parts.chunks(PARTS_PER_PASS) {
            let mut sorters = PartSorters::new(&probe, self.count, group);
            probe
                .read_into(table, &inputs.files, &mut self.stats, &mut sorters)
                .await?;
            for (index, sorter) in sorters.into_sorters() {
                let path = self.states[index as usize].path.clone();
                let file =
                    source.file_target(self.ctx, &path, Some(PartStamp::new(index, self.count)));
                let runs = sorter.finish().await?;
                self.stats.spilled_runs += runs.spilled_runs;
                let written = file
                    .write_merged(runs.streams, &inputs.index.streams)
                    .await?;
                drop(runs.spill_dir);
                let built = Built {
                    written,
                    streams: inputs.index.streams.clone(),
                    stats: ReadStats::default(),
                };
                self.record(index, &built, &file, source, FileAction::Rebuilt);
            }
        }
        Ok(())
    }

    /// Rebuilds `parts` by merging each one's sorted runs of a complete shard build,
    /// earliest shard first; the parts reflect the build's table version.
    async fn rebuild_from_shards(
        &mut self,
        source: &Source,
        sharded: &shards::Complete,
        parts: &[u32],
    ) -> SnapshotResult<()> {
        let build = &sharded.build;
        for &index in parts {
            let path = self.states[index as usize].path.clone();
            let base = source.file_target(self.ctx, &path, Some(PartStamp::new(index, self.count)));
            let file = FileTarget {
                stamp: FileStamp {
                    table_version: build.table_version,
                    written_at: build.started_at.clone(),
                    ..base.stamp.clone()
                },
                ..base
            };
            let runs = sharded.run_paths(index);
            let streams =
                shards::open_runs(&self.ctx.store, &runs, source.publish_schema.clone()).await?;
            let written = file.write_merged(streams, &build.streams).await?;
            let built = Built {
                written,
                streams: build.streams.clone(),
                stats: ReadStats::default(),
            };
            self.record(index, &built, &file, source, FileAction::Rebuilt);
        }
        Ok(())
    }

    /// Records what this run wrote at part `index`: its entry, named relative to the view.
    fn record(
        &mut self,
        index: u32,
        built: &Built,
        file: &FileTarget<'_>,
        source: &Source,
        action: FileAction,
    ) {
        let entry = describe(built, file, &source.publish_schema);
        let relative = layout::part_name(self.kind, index, self.count);
        let state = &mut self.states[index as usize];
        state.entry = Some(relative_to_view(entry, &relative));
        state.action = Some(action);
    }

    /// What happened to the parts so far.
    fn report(&self) -> PartsReport {
        let count = |action| {
            self.states
                .iter()
                .filter(|s| s.action == Some(action))
                .count() as u32
        };
        let rebuilt = count(FileAction::Rebuilt);
        let merged = count(FileAction::Incremental);
        let built = if self.only.is_some() { 1 } else { self.count };
        PartsReport {
            count: self.count,
            rebuilt,
            merged,
            unchanged: built.saturating_sub(rebuilt + merged),
        }
    }

    /// The entry of the whole folder, when every part has one: the parts' totals, at the
    /// oldest part's version.
    fn aggregate(&self, publish_schema: Vec<ColumnSpec>) -> Option<FileEntry> {
        let parts: Vec<FileEntry> = self
            .states
            .iter()
            .map(|s| s.entry.clone())
            .collect::<Option<Vec<_>>>()?;
        let oldest = parts.iter().min_by_key(|p| p.table_version)?.clone();
        let files = parts
            .into_iter()
            .map(|p| FileEntry {
                publish_schema: Vec::new(),
                ..p
            })
            .collect::<Vec<_>>();
        Some(FileEntry {
            path: format!("{}/", self.kind),
            source_table: oldest.source_table,
            table_version: oldest.table_version,
            rows: files.iter().map(|p| p.rows).sum(),
            bytes: files.iter().map(|p| p.bytes).sum(),
            streams: oldest.streams,
            raw_schema_fingerprint: oldest.raw_schema_fingerprint,
            publish_schema,
            sorted_by: SORT_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
            written_at: now_rfc3339(),
            tool_version: tool_version(),
            e_tag: None,
            write_id: None,
            parts: Some(PartsEntry {
                count: self.count,
                hash: HASH_NAME.to_owned(),
                files,
            }),
        })
    }

    /// What is at the kind's keys after a failure: the parts, when every one of them can
    /// be described; otherwise a single file the manifest named, which nothing replaced.
    fn in_place(&self, listed: Option<&FileEntry>) -> Option<FileEntry> {
        if self.states.iter().all(|s| s.entry.is_some()) {
            let columns = self
                .states
                .iter()
                .filter_map(|s| s.entry.as_ref())
                .map(|e| e.publish_schema.clone())
                .chain(listed.map(|e| e.publish_schema.clone()))
                .find(|c| !c.is_empty())
                .unwrap_or_default();
            return self.aggregate(columns);
        }
        listed.filter(|e| e.parts.is_none()).cloned()
    }
}

/// Bytes of the raw table's active files: what a full rebuild reads.
fn active_bytes(table: &LakeTable) -> SnapshotResult<u64> {
    Ok(table
        .active_files()?
        .iter()
        .map(|f| u64::try_from(f.size).unwrap_or(0))
        .sum())
}

/// An entry of a part names its object relative to the view folder (`nodes/part-…`).
fn relative_to_view(entry: FileEntry, relative: &str) -> FileEntry {
    FileEntry {
        path: relative.to_owned(),
        ..entry
    }
}

/// One sorter per part being built, fed by routing each raw row to its part; the parts
/// share the sort's memory budget.
pub(super) struct PartSorters {
    count: u32,
    keys: KeyColumns,
    sorters: BTreeMap<u32, Sorter>,
}

impl PartSorters {
    pub(super) fn new(file: &FileTarget<'_>, count: u32, parts: &[u32]) -> Self {
        let share = file.sort.memory_budget_bytes / parts.len().max(1);
        let settings = SortSettings {
            memory_budget_bytes: share.max(1),
            temp_dir: file.sort.temp_dir.clone(),
            threads: file.sort.threads,
        };
        let sorters = parts
            .iter()
            .map(|&p| {
                (
                    p,
                    Sorter::new(file.publish_schema.clone(), file.keys, settings.clone()),
                )
            })
            .collect();
        Self {
            count,
            keys: file.keys,
            sorters,
        }
    }

    pub(super) fn into_sorters(self) -> BTreeMap<u32, Sorter> {
        self.sorters
    }
}

impl RowSink for PartSorters {
    #[allow(clippy::manual_async_fn)]
    fn push(
        &mut self,
        batch: RecordBatch,
    ) -> impl std::future::Future<Output = SnapshotResult<()>> + Send {
        async move {
            let sorters = &mut self.sorters;
            let routed =
                parts::split(&batch, &self.keys, self.count, |p| sorters.contains_key(&p))?;
            for (part, rows) in routed {
                if let Some(sorter) = sorters.get_mut(&part) {
                    sorter.push(rows).await?;
                }
            }
            Ok(())
        }
    }
}
