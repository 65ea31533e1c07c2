//! `cdf-s3-replicator status`: per stream and per view, how far replication is.
//!
//! Read-only by construction: it reads the RAW state rows (one list call), resolves the
//! configured models like a sync does, opens each raw Delta table without creating it, and
//! reads `_manifest.json` and object metadata of the publish layer. It never writes a RAW
//! row, a Delta commit, a file or a directory, and reports no extraction-pipeline run, so
//! it is safe to run at any time, next to a running sync.
//!
//! - [`report`]: the serde types (`--json`), with what each figure means;
//! - [`render`]: the terminal table.
//!
//! A stream's figures come from its checkpoint ([`crate::lake::StreamCheckpoint`]), the copy
//! the next sync continues from: the RAW row, or the checkpoint in the stream's newest Delta
//! commit when the RAW row says less than the Delta log (see [`crate::sync::state`]). A row
//! that another lake wrote is not this lake's progress: the stream shows the failure the
//! next sync stops it with. The lake's identity (`raw/_lake.json`) is only read, never
//! created. Nothing that cannot be read fails the report: it shows as missing, or as an
//! error in its own row.

mod from_lake;
pub mod render;
pub mod report;

use std::collections::HashMap;

use chrono::SecondsFormat;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use futures::{StreamExt, TryStreamExt as _, stream};
use url::Url;

use self::report::{
    Agreement, CheckpointSource, Freshness, LastVerification, ManifestPresence, MembershipStatus,
    Progress, PublishedFileStatus, StatusReport, StreamStatus, VerificationPasses, ViewStatus,
};
use crate::cdf::CdfClient;
use crate::clock::now_ms;
use crate::context::Context;
use crate::failure::Failure;
use crate::job::ViewSelection;
use crate::lake::{
    DEFAULT_STREAM_COMMIT_SCAN, Destination, InstanceKind, LakeError, LakeTable, layout,
};
use crate::lake::{Phase, StreamCheckpoint};
use crate::plan::{Plan, StreamSpec, model_label};
use crate::snapshot::manifest::{self, ManifestState};
use crate::snapshot::{ViewTarget, plan_views};
use crate::sync::state::{Repair, reconcile};
use crate::sync::state_store::{Owner, StateRow, ThisLake, another_lakes_row};
use crate::verify::record::VerifyRecord;

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct StatusOptions {
    /// Only the streams and publish folders of these views.
    pub selection: ViewSelection,
    /// Set when CDF cannot be reached, saying why: the report then shows what the lake
    /// alone holds ([`from_lake`]) and reads nothing from CDF.
    pub cdf_unreachable: Option<String>,
}

/// How many tables are opened (and streams read) at once: enough to hide S3 latency, few
/// enough to stay polite next to a running sync.
const CONCURRENT_READS: usize = 8;

/// Commit files read at once while looking for data changes after a published version.
const COMMIT_CHUNK: u64 = 16;

/// Gathers the status of every configured stream and view. Never fails as a whole: what
/// could not be read is reported where it belongs.
pub async fn gather(context: &Context, options: &StatusOptions) -> StatusReport {
    if let Some(why) = &options.cdf_unreachable {
        return from_lake::gather(context, options, why).await;
    }
    let now = now_ms();
    let extractor = &context.config.extractor;
    let plan = Plan::resolve(
        &context.client,
        &context.config.data_modeling,
        extractor.sync_page_size,
    )
    .await
    .for_views(&options.selection);
    let plan_errors = plan.problems().to_vec();
    let specs = plan.streams();
    let database = &extractor.state_store.database;
    let state_table = &extractor.state_store.table;
    let (rows, state_error) = read_state_rows(&context.client, database, state_table).await;

    let destination = &context.destination;
    let lake = read_lake(destination).await;
    let state_location = format!("{database}/{state_table}");
    let targets = plan_views(specs);
    let tables = open_tables(destination, &targets).await;

    let streams: Vec<StreamStatus> = stream::iter(specs.iter())
        .map(|spec| {
            let row = rows.get(&spec.key);
            let table = tables.get(&table_path_of(spec));
            let state = StateSeen {
                row,
                unreadable: state_error.is_some(),
                location: &state_location,
                lake: &lake,
            };
            stream_status(spec, state, table, now)
        })
        .buffered(CONCURRENT_READS)
        .collect()
        .await;

    let store = read_store(destination);
    let record = match &store {
        Ok(Some(store)) => VerifyRecord::load(store).await.ok().flatten(),
        _ => None,
    };
    let mut views: Vec<ViewStatus> = stream::iter(targets.iter())
        .map(|target| view_status(target, &store, &tables, now))
        .buffered(CONCURRENT_READS)
        .collect()
        .await;
    if let Some(record) = &record {
        add_verifications(&mut views, record, now);
    }

    let mut report = StatusReport {
        generated_at: rfc3339(now).unwrap_or_default(),
        generated_at_ms: now,
        state_table: format!("{database}/{state_table}"),
        state_error,
        plan_errors,
        streams,
        views,
        verification: record.as_ref().map(|record| VerificationPasses {
            last_complete_at: record.last_complete_ms.and_then(rfc3339),
            in_progress_files_done: record.in_progress.as_ref().map(|p| p.done.len()),
        }),
    };
    redact(&mut report);
    report
}

/// Each published file's last scheduled verification, from the lake's record.
fn add_verifications(views: &mut [ViewStatus], record: &VerifyRecord, now: i64) {
    for view in views {
        for file in &mut view.files {
            let key = crate::verify::report::unit_key(&view.model, &view.view, &file.kind);
            file.verification = record.files.get(&key).map(|found| LastVerification {
                verified_at: rfc3339(found.verified_at_ms).unwrap_or_default(),
                age_ms: (now - found.verified_at_ms).max(0),
                sampled: found.sampled,
                divergences: found.divergence_count(),
                classes: found.divergences.clone(),
                error: found.error.clone(),
            });
        }
    }
}

/// Error texts quote CDF, S3 and Delta answers (and `lastError` was stored by a sync),
/// which may echo a secret or token.
fn redact(report: &mut StatusReport) {
    let redact_opt = |text: &mut Option<String>| {
        if let Some(value) = text.as_mut() {
            *value = crate::secret::redact(value);
        }
    };
    redact_opt(&mut report.state_error);
    report.plan_errors = std::mem::take(&mut report.plan_errors)
        .into_iter()
        .map(Failure::redacted)
        .collect();
    for stream in &mut report.streams {
        redact_opt(&mut stream.last_error);
        redact_opt(&mut stream.error);
    }
    for view in &mut report.views {
        redact_opt(&mut view.error);
        for file in &mut view.files {
            redact_opt(&mut file.error);
            if let Some(verification) = file.verification.as_mut() {
                redact_opt(&mut verification.error);
            }
        }
    }
}

/// A stream's RAW row, or why it does not parse.
type RowSlot = Result<StateRow, String>;

/// This lake as status sees it, without writing.
struct LakeSeen {
    /// Its id (a placeholder while it has none) and location, as messages name it.
    this: ThisLake,
    /// Whether it has an identity yet (without one, the next sync creates it, so every row
    /// that names a lake is another lake's), or why the identity could not be read.
    identity: Result<bool, String>,
}

async fn read_lake(destination: &Destination) -> LakeSeen {
    let location = destination.location();
    let (id, identity) = match destination.read_identity().await {
        Ok(Some(identity)) => (identity.lake_id, Ok(true)),
        Ok(None) => ("(none yet: the next sync creates it)".to_owned(), Ok(false)),
        Err(error) => ("(unknown)".to_owned(), Err(error.to_string())),
    };
    LakeSeen {
        this: ThisLake { id, location },
        identity,
    }
}

/// What status knows of a stream's state row.
struct StateSeen<'a> {
    row: Option<&'a RowSlot>,
    /// The state table could not be read at all.
    unreadable: bool,
    /// The state table, `database/table`.
    location: &'a str,
    lake: &'a LakeSeen,
}

/// Every state row (one paged list call, as a sync makes). A missing database or table
/// means that no stream has run yet. Unlike a sync, which ignores a row that does not
/// parse (and restarts the stream), status keeps the reason to show it.
async fn read_state_rows(
    client: &CdfClient,
    database: &str,
    table: &str,
) -> (HashMap<String, RowSlot>, Option<String>) {
    match client.list_all_rows(database, table, None).await {
        Ok(rows) => {
            let parsed = rows
                .into_iter()
                .map(|row| {
                    let state = StateRow::parse(row.columns).map_err(|e| {
                        format!("the RAW state row does not parse ({e}); the next sync continues from the Delta log and rewrites it")
                    });
                    (row.key, state)
                })
                .collect();
            (parsed, None)
        }
        Err(error) if error.is_not_found() => (HashMap::new(), None),
        Err(error) => (
            HashMap::new(),
            Some(format!(
                "cannot read the state table {database}/{table}: {error}"
            )),
        ),
    }
}

/// A raw table as status found it: `Ok(None)` when it does not exist (yet).
type TableSlot = Result<Option<LakeTable>, String>;

fn table_path_of(spec: &StreamSpec) -> String {
    layout::raw_table_path(&spec.model, &spec.view_folder, spec.instance_kind())
}

/// Opens every raw table that a planned stream writes, once each (the edge streams of a
/// view share one table), keyed by its path relative to the prefix.
async fn open_tables(
    destination: &Destination,
    targets: &[ViewTarget],
) -> HashMap<String, TableSlot> {
    let wanted: Vec<(String, Result<Url, LakeError>)> = targets
        .iter()
        .flat_map(|target| {
            [InstanceKind::Nodes, InstanceKind::Edges]
                .into_iter()
                .filter(|kind| target.table(*kind).has_streams())
                .map(|kind| {
                    (
                        layout::raw_table_path(&target.model, &target.folder, kind),
                        destination.raw_table_url(&target.model, &target.folder, kind),
                    )
                })
        })
        .collect();
    stream::iter(wanted)
        .map(|(path, url)| async move {
            let slot = match url {
                Ok(url) => open_table(destination, url).await,
                Err(error) => Err(error.to_string()),
            };
            (path, slot)
        })
        .buffer_unordered(CONCURRENT_READS)
        .collect()
        .await
}

/// Opens a table for reading, never creating anything.
async fn open_table(destination: &Destination, url: Url) -> TableSlot {
    LakeTable::open_existing(destination, url)
        .await
        .map_err(|e| format!("opening the raw table: {e}"))
}

/// The publish layer's object store, or `None` for a local lake whose directory does not
/// exist (nothing was ever written; [`Destination::object_store`] would create it).
fn read_store(destination: &Destination) -> Result<Option<ObjectStoreRef>, String> {
    if let Destination::Local(local) = destination
        && !local.root().is_dir()
    {
        return Ok(None);
    }
    destination
        .object_store()
        .map(Some)
        .map_err(|e| format!("opening the destination: {e}"))
}

async fn stream_status(
    spec: &StreamSpec,
    state: StateSeen<'_>,
    table: Option<&TableSlot>,
    now: i64,
) -> StreamStatus {
    let mut errors: Vec<String> = Vec::new();
    let lake = state.lake;
    let mut other_lake = false;
    let mut sealed = false;
    let row = match state.row {
        Some(Ok(row)) => match (row.owner(&lake.this.id), &lake.identity) {
            (Owner::Other { .. }, Err(error)) => {
                errors.push(format!(
                    "whether the state row is this lake's cannot be told: {error}"
                ));
                Some(row)
            }
            (Owner::Other { id, location }, Ok(_)) => {
                let failure = another_lakes_row(
                    &spec.key,
                    state.location,
                    &lake.this,
                    &id,
                    location.as_deref(),
                );
                errors.push(failure.message);
                other_lake = true;
                None
            }
            (_, identity) => {
                sealed = *identity == Ok(true) && row.is_sealed_for(&spec.key, &lake.this.id);
                Some(row)
            }
        },
        Some(Err(error)) => {
            errors.push(error.clone());
            None
        }
        None => None,
    };
    let raw = row.map(|row| row.checkpoint.clone());
    let raw_known = !state.unreadable && !matches!(state.row, Some(Err(_)));
    let (table, table_known) = match table {
        Some(Ok(table)) => (table.as_ref(), true),
        Some(Err(error)) => {
            errors.push(error.clone());
            (None, false)
        }
        None => (None, true),
    };
    let mut delta_known = table_known;
    let delta_seq = match table {
        Some(table) => match table.txn_version(&spec.key).await {
            Ok(seq) => seq,
            Err(error) => {
                errors.push(format!("reading the stream's txn version: {error}"));
                delta_known = false;
                None
            }
        },
        None => None,
    };
    let agreement = if other_lake {
        Agreement::OtherLake
    } else if !raw_known || !delta_known {
        Agreement::Unknown
    } else {
        agreement(raw.as_ref().map(|c| c.seq), delta_seq)
    };
    // The Delta log's checkpoint is read where a sync would read it: where the log is ahead
    // of the row, or the row is not sealed by this lake for this stream (a scan of the log
    // costs reads, RAW does not).
    let read_log = match (&raw, delta_seq) {
        (Some(raw), Some(seq)) => seq != raw.seq || !sealed,
        (None, Some(_)) => true,
        _ => false,
    };
    let mut checkpoint = raw.clone().map(|c| (c, CheckpointSource::Raw));
    let mut repair = None;
    if read_log && let Some(table) = table {
        match table
            .last_stream_commit(&spec.key, DEFAULT_STREAM_COMMIT_SCAN)
            .await
        {
            Ok(Some(record)) => {
                let mut from_delta = record.metadata.checkpoint.clone().unwrap_or_default();
                from_delta.seq = record.txn_version;
                let reconciled =
                    reconcile(raw.clone(), Some(from_delta.clone()), &spec.query_hash());
                // What the next sync does with a row that says less: continue from the log.
                if raw.is_none() || reconciled.repaired.is_some() {
                    repair = reconciled.repaired.clone().filter(|_| raw.is_some()).map(|r| {
                        format!(
                            "{r}: the next sync continues from the Delta log and rewrites the row"
                        )
                    });
                    // A generation begun before its first commit stays the row's (only its
                    // unproven cursor goes); every other repair takes the log's checkpoint.
                    if reconciled.repaired != Some(Repair::UnprovenCursor) {
                        checkpoint = Some((from_delta, CheckpointSource::Delta));
                    }
                }
            }
            Ok(None) => {}
            Err(error) => errors.push(format!("reading the stream's newest commit: {error}")),
        }
    }
    let (phase, progress) = match &checkpoint {
        _ if other_lake => (checkpoint.as_ref().map(|(c, _)| c.phase), Progress::Failed),
        None => (None, Progress::NotStarted),
        Some((c, _)) => (Some(c.phase), progress(c)),
    };
    let c = checkpoint.as_ref().map(|(c, _)| c);
    StreamStatus {
        key: spec.key.clone(),
        model: model_label(&spec.model),
        view: spec.view.external_id.clone(),
        table: spec.instance_kind().as_str().to_owned(),
        table_path: table_path_of(spec),
        phase,
        progress,
        generation: c.map(|c| c.generation),
        rows: c.map(|c| c.rows_total),
        last_success_ms: c.and_then(|c| c.last_success),
        last_success: c.and_then(|c| c.last_success).and_then(rfc3339),
        last_success_age_ms: c.and_then(|c| c.last_success).map(|t| (now - t).max(0)),
        lag_ms: c.and_then(|c| c.newest_change).map(|t| (now - t).max(0)),
        last_error: c.and_then(|c| c.last_error.clone()),
        checkpoint_source: checkpoint.as_ref().map(|(_, source)| *source),
        agreement,
        raw_seq: raw.as_ref().map(|c| c.seq),
        delta_seq,
        query_changed: c
            .is_some_and(|c| !c.query_hash.is_empty() && c.query_hash != spec.query_hash()),
        repair,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
        membership: c.map(|c| membership_status(&c.membership, now)),
    }
}

fn membership_status(scan: &crate::lake::MembershipScan, now: i64) -> MembershipStatus {
    let pass = scan.pass.as_deref();
    MembershipStatus {
        last_pass: scan.last_pass.and_then(rfc3339),
        last_pass_age_ms: scan.last_pass.map(|t| (now - t).max(0)),
        pass_in_progress: pass.is_some(),
        refreshed: pass.map_or(0, |p| p.refreshed),
        exited: pass.map_or(0, |p| p.exited),
    }
}

/// Caught up means: streaming, the last call returned a short page, and the last turn did
/// not fail. Everything else with a checkpoint is behind (or failed).
pub(crate) fn progress(checkpoint: &StreamCheckpoint) -> Progress {
    if checkpoint.last_error.is_some() {
        Progress::Failed
    } else if checkpoint.phase == Phase::Streaming && checkpoint.caught_up {
        Progress::CaughtUp
    } else {
        Progress::Behind
    }
}

/// Compares the RAW row's `seq` with the stream's `txn` version in the Delta log, the way
/// a sync reconciles the two at the start of a run.
pub(crate) fn agreement(raw_seq: Option<i64>, delta_seq: Option<i64>) -> Agreement {
    match (raw_seq, delta_seq) {
        (Some(raw), Some(delta)) if raw == delta => Agreement::Agree,
        (Some(raw), Some(delta)) if raw < delta => Agreement::DeltaAhead,
        (Some(_), Some(_)) => Agreement::RawAhead,
        (Some(raw), None) if raw > 0 => Agreement::RawAhead,
        (Some(_), None) => Agreement::NoCommits,
        (None, Some(_)) => Agreement::NoStateRow,
        (None, None) => Agreement::NotStarted,
    }
}

async fn view_status(
    target: &ViewTarget,
    store: &Result<Option<ObjectStoreRef>, String>,
    tables: &HashMap<String, TableSlot>,
    now: i64,
) -> ViewStatus {
    let paths = layout::publish_paths(&target.model, &target.folder);
    let (state, store) = match store {
        Ok(Some(store)) => (manifest::read(store, &paths.manifest).await, Some(store)),
        Ok(None) => (ManifestState::Missing, None),
        Err(error) => (ManifestState::Unusable(error.clone()), None),
    };
    let (presence, error) = match &state {
        ManifestState::Found(_) => (ManifestPresence::Found, None),
        ManifestState::Missing => (ManifestPresence::Missing, None),
        ManifestState::Unusable(reason) => (ManifestPresence::Unusable, Some(reason.clone())),
    };
    let mut files = Vec::with_capacity(2);
    for kind in [InstanceKind::Nodes, InstanceKind::Edges] {
        let table_path = layout::raw_table_path(&target.model, &target.folder, kind);
        let table = if target.table(kind).has_streams() {
            tables.get(&table_path)
        } else {
            None
        };
        let entry = state.entry(kind);
        // A file in parts is shown as its folder.
        let path = match entry.and_then(|e| e.parts.as_ref()) {
            Some(_) => paths.parts_dir(kind),
            None => paths.data_file(kind).to_owned(),
        };
        files.push(file_status(kind, &path, &paths.dir, entry, store, table, now).await);
    }
    ViewStatus {
        model: target.model_label(),
        view: target.folder.to_string(),
        publish_path: paths.dir.clone(),
        manifest: presence,
        files,
        error,
        pending_since: match &state {
            ManifestState::Found(manifest) => manifest.pending_since.clone(),
            _ => None,
        },
    }
}

async fn file_status(
    kind: InstanceKind,
    path: &str,
    dir: &str,
    entry: Option<&manifest::FileEntry>,
    store: Option<&ObjectStoreRef>,
    table: Option<&TableSlot>,
    now: i64,
) -> PublishedFileStatus {
    let mut status = PublishedFileStatus {
        kind: kind.as_str().to_owned(),
        path: path.to_owned(),
        freshness: Freshness::Unpublished,
        published_at: entry.map(|e| e.written_at.clone()),
        age_ms: entry
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e.written_at).ok())
            .map(|t| (now - t.timestamp_millis()).max(0)),
        last_modified: None,
        published_version: entry.and_then(|e| e.table_version),
        table_version: None,
        rows: entry.map(|e| e.rows),
        table_rows: None,
        error: None,
        verification: None,
    };
    let table = match table {
        Some(Ok(table)) => table.as_ref(),
        Some(Err(error)) => {
            status.freshness = Freshness::Unknown;
            status.error = Some(error.clone());
            return status;
        }
        None => None,
    };
    status.table_version = table.and_then(LakeTable::version);
    status.table_rows = table.and_then(table_rows);
    let Some(entry) = entry else {
        return status;
    };
    if let Some(store) = store {
        match last_modified(store, dir, entry).await {
            Ok(Some(modified)) => {
                status.last_modified = Some(modified.to_rfc3339_opts(SecondsFormat::Millis, true));
            }
            Ok(None) => {
                status.freshness = Freshness::Missing;
                return status;
            }
            Err(error) => {
                status.freshness = Freshness::Unknown;
                status.error = Some(format!("reading {path}: {error}"));
                return status;
            }
        }
    }
    status.freshness = match (entry.table_version, table) {
        (published, None) => {
            // No stream of this kind (an empty file with the system columns), or a table
            // that no longer exists: current exactly when the file was built without one.
            if published.is_none() {
                Freshness::Current
            } else {
                Freshness::Behind
            }
        }
        (None, Some(_)) => Freshness::Behind,
        (Some(published), Some(table)) => match table.version() {
            Some(current) if current == published => Freshness::Current,
            Some(current) if current > published => {
                match data_changed_between(table, published, current).await {
                    Ok(true) => Freshness::Behind,
                    Ok(false) => Freshness::Current,
                    Err(error) => {
                        status.error = Some(format!("reading the raw table's log: {error}"));
                        Freshness::Unknown
                    }
                }
            }
            // Older than the published version: the table was replaced.
            _ => Freshness::Behind,
        },
    };
    status
}

/// When the objects `entry` names were last modified (the newest of them), or `None` when
/// one of them is missing. A file is one HEAD; a file in parts one listing of its folder.
async fn last_modified(
    store: &ObjectStoreRef,
    dir: &str,
    entry: &manifest::FileEntry,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, deltalake::ObjectStoreError> {
    let named = entry.objects(dir);
    if entry.parts.is_none() {
        let Some((path, _)) = named.first() else {
            return Ok(None);
        };
        return match store.head(&deltalake::Path::from(path.as_str())).await {
            Ok(meta) => Ok(Some(meta.last_modified)),
            Err(deltalake::ObjectStoreError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        };
    }
    let folder = format!("{dir}/{}", entry.path.trim_end_matches('/'));
    let listed: HashMap<String, chrono::DateTime<chrono::Utc>> = store
        .list(Some(&deltalake::Path::from(folder.as_str())))
        .map_ok(|meta| (meta.location.to_string(), meta.last_modified))
        .try_collect()
        .await?;
    let mut newest = None;
    for (path, _) in &named {
        match listed.get(path) {
            Some(&modified) => newest = newest.max(Some(modified)),
            None => return Ok(None),
        }
    }
    Ok(newest)
}

/// Rows of the table's active files, from the per-file row counts in the Delta log.
fn table_rows(table: &LakeTable) -> Option<u64> {
    let files = table.active_files().ok()?;
    files.iter().map(|f| f.num_records).sum()
}

/// Whether a commit after `after` up to `upto` changed data (a stream commit, or files added
/// or removed with `dataChange`), as opposed to maintenance alone (compaction), which the
/// next snapshot merges to no effect. A commit the log no longer has counts as a change:
/// the next snapshot cannot merge past it and rebuilds.
async fn data_changed_between(table: &LakeTable, after: u64, upto: u64) -> Result<bool, LakeError> {
    let mut first = after + 1;
    while first <= upto {
        let last = first.saturating_add(COMMIT_CHUNK - 1).min(upto);
        let changes = match table.changes_between(first, last).await {
            Ok(changes) => changes,
            Err(LakeError::LogUnavailable { .. }) => return Ok(true),
            Err(error) => return Err(error),
        };
        let changed = changes.iter().any(|c| {
            !c.txns.is_empty()
                || c.adds.iter().any(|f| f.data_change)
                || c.removes.iter().any(|f| f.data_change)
        });
        if changed {
            return Ok(true);
        }
        first = last + 1;
    }
    Ok(false)
}

fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_follows_the_sequence_numbers() {
        assert_eq!(agreement(Some(3), Some(3)), Agreement::Agree);
        assert_eq!(agreement(Some(2), Some(3)), Agreement::DeltaAhead);
        assert_eq!(agreement(Some(4), Some(3)), Agreement::RawAhead);
        assert_eq!(agreement(Some(4), None), Agreement::RawAhead);
        assert_eq!(agreement(Some(0), None), Agreement::NoCommits);
        assert_eq!(agreement(None, Some(1)), Agreement::NoStateRow);
        assert_eq!(agreement(None, None), Agreement::NotStarted);
    }

    #[test]
    fn caught_up_needs_streaming_a_short_page_and_no_error() {
        let mut c = StreamCheckpoint {
            phase: Phase::Streaming,
            caught_up: true,
            ..StreamCheckpoint::default()
        };
        assert_eq!(progress(&c), Progress::CaughtUp);
        c.last_error = Some("sync failed".into());
        assert_eq!(progress(&c), Progress::Failed);
        c.last_error = None;
        c.caught_up = false;
        assert_eq!(progress(&c), Progress::Behind);
        c.phase = Phase::Backfill;
        c.caught_up = true;
        assert_eq!(progress(&c), Progress::Behind);
    }
}
