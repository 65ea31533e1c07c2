//! Publishing one view: `nodes.parquet`, then `edges.parquet` (each possibly a folder of
//! parts, [`super::partitioned`]), then `_manifest.json`.
//!
//! # A published file always matches its manifest
//!
//! Two runs may publish the same view at once (an operator's `snapshot` beside the scheduled
//! function, `run` beside the Lambda). A file and its manifest are two objects, so neither
//! order of writes can make them change together; what keeps them consistent is this:
//!
//! 1. The run reads the manifest and remembers its ETag.
//! 2. For each file it finds out what the object at the key reflects: the manifest's entry
//!    if it names that very object (same ETag), the file's own footer stamp otherwise
//!    ([`super::stamp`]). It skips, merges (reading exactly that object, every read
//!    conditional on its ETag) or rebuilds, and stamps what it writes.
//! 3. Before the manifest, it checks that every file the new manifest names is still the
//!    object it describes (a HEAD per file, and per part of a file in parts).
//! 4. It writes the manifest conditionally on the ETag of step 1 (`If-Match`, or
//!    `If-None-Match` when there was none).
//!
//! A failed check, a failed condition or a replaced object during a read is a conflict: the
//! view starts over from step 1, up to [`ATTEMPTS`] times. Whichever order the two runs'
//! writes land in, the manifest that lands last was checked against the files after every
//! other manifest written since its run read one, so a file that replaced its files later
//! belongs to a run whose own manifest write then fails, and that run starts over: it finds
//! its own file at the key, not named by the manifest, takes the file's stamp as what it
//! reflects, merges the newer commits into it and writes a manifest naming it. Both runs
//! end with file == manifest, at the newest version either of them read.
//!
//! A manifest that does not name the file (a crash between a data file and the manifest, a
//! hand edit, a store without conditional writes losing the race, a manifest of an older
//! release) is never trusted: the file's stamp is (step 2), and the manifest is rewritten
//! to describe the file even when the file itself is current.

use std::collections::BTreeMap;

use deltalake::logstore::object_store::ObjectStoreExt as _;
use tokio::time::Instant;

use super::error::{SnapshotError, SnapshotResult};
use super::file::PublishContext;
use super::manifest::{self, FORMAT_VERSION, FileEntry, Manifest, ManifestState};
use super::partitioned::publish_kind;
use super::piece_entry;
use super::plan::ViewTarget;
use super::reader::{self, ObjectVersion, object_path};
use super::stamp::{FileStamp, Stamped};
use super::summary::{FileAction, ViewReport};
use crate::failure::Failure;
use crate::lake::InstanceKind;
use crate::lake::layout::PublishPaths;

/// Attempts per view before a run leaves it to the next run (each conflict means another
/// run published the view meanwhile).
pub(crate) const ATTEMPTS: u32 = 5;

/// Publishes one view's files and manifest. Never fails as a whole: problems are in the
/// report, and files that could not be written keep their previous state.
pub(crate) async fn publish_view(ctx: &PublishContext<'_>, target: &ViewTarget) -> ViewReport {
    let started = Instant::now();
    let paths = ctx.destination.publish_paths(&target.model, &target.folder);
    let mut attempt = 1;
    let mut report = loop {
        match publish_once(ctx, target, &paths).await {
            Ok(report) => break report,
            Err((mut report, conflict)) => {
                if attempt < ATTEMPTS {
                    tracing::info!(view = %target.folder, attempt, %conflict, "another snapshot run published the view meanwhile; starting over");
                    attempt += 1;
                    continue;
                }
                tracing::warn!(view = %target.folder, attempts = attempt, %conflict, "another snapshot run kept publishing the view; leaving it to the next run");
                report.error = Some(Failure::new(
                    conflict.cause(),
                    format!(
                        "{conflict} ({attempt} attempts; the next snapshot publishes the view)"
                    ),
                ));
                break report;
            }
        }
    };
    report.attempts = attempt;
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// One attempt; `Err` is a conflict with another run, with what this attempt did.
async fn publish_once(
    ctx: &PublishContext<'_>,
    target: &ViewTarget,
    paths: &PublishPaths,
) -> Result<ViewReport, (ViewReport, SnapshotError)> {
    let mut report = ViewReport {
        model: target.model_label(),
        view: target.folder.to_string(),
        files: Vec::with_capacity(2),
        manifest_written: false,
        attempts: 1,
        duration_ms: 0,
        error: None,
        retire: None,
    };
    let read = match manifest::read_versioned(&ctx.store, &paths.manifest).await {
        Ok(read) => read,
        Err(error) => {
            tracing::warn!(view = %target.folder, %error, "the manifest could not be read; the view's files are left as they are");
            report.error = Some(error.to_failure());
            return Ok(report);
        }
    };
    if let ManifestState::Unusable(reason) = &read.state {
        tracing::warn!(view = %target.folder, %reason, "the manifest is unusable; the files say what they reflect");
    }

    let mut entries = BTreeMap::new();
    for kind in [InstanceKind::Nodes, InstanceKind::Edges] {
        if !ctx.scope.includes(kind) {
            continue;
        }
        let listed = read.state.entry(kind);
        let (file, entry) = match publish_kind(ctx, target, kind, listed, paths).await {
            Ok(done) => done,
            Err(conflict) => return Err((report, conflict)),
        };
        tracing::info!(view = %target.folder, %kind, action = ?file.action, rows = file.rows, "published file");
        if !ctx.scope.writes_manifest()
            && file.action != FileAction::Failed
            && let Some(entry) = &entry
        {
            let path = piece_entry::entry_path(&target.model, &target.folder, &entry.path);
            piece_entry::save(&ctx.store, &path, entry).await;
        }
        report.files.push(file);
        if let Some(entry) = entry {
            entries.insert(kind.as_str().to_owned(), entry);
        }
        crate::failpoint::hit(match kind {
            InstanceKind::Nodes => "snapshot-after-nodes-file",
            InstanceKind::Edges => "snapshot-after-edges-file",
        });
    }

    if !ctx.scope.writes_manifest() {
        // One object of a view in pieces: the assembling step writes the manifest.
        return Ok(report);
    }
    // A file the deadline left keeps the view's place in line (`pendingSince`); once every
    // file is done, the manifest drops it.
    let behind = report.files.iter().any(|f| f.action == FileAction::Behind);
    let current = match &read.state {
        ManifestState::Found(manifest) => {
            manifest.files == entries && (behind || manifest.pending_since.is_none())
        }
        ManifestState::Missing | ManifestState::Unusable(_) => entries.is_empty(),
    };
    if current {
        if entries.values().any(|e| e.parts.is_some()) {
            report.retire = Some(paths.dir.clone());
        }
        return Ok(report);
    }
    // Every object the new manifest names: each file, or each part of a file in parts.
    for entry in entries.values() {
        for (path, object) in entry.objects(&paths.dir) {
            match still_in_place(ctx, &path, object).await {
                Ok(()) => {}
                Err(error) if error.is_conflict() => return Err((report, error)),
                Err(error) => {
                    report.error = Some(error.to_failure());
                    return Ok(report);
                }
            }
        }
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model: target.model_label(),
        view: target.folder.to_string(),
        written_at: manifest::now_rfc3339(),
        tool_version: manifest::tool_version(),
        files: entries,
        pending_since: behind.then(|| waiting_since(&read.state)),
    };
    match manifest::write(&ctx.store, &paths.manifest, &read, &manifest).await {
        Ok(()) => {
            report.manifest_written = true;
            report.retire = Some(paths.dir.clone());
            crate::failpoint::hit("snapshot-after-manifest");
            Ok(report)
        }
        Err(error) if error.is_conflict() => Err((report, error)),
        Err(error) => {
            report.error = Some(error.to_failure());
            Ok(report)
        }
    }
}

/// Since when a view has been waiting, for a manifest written while some of its work is
/// left: what the previous manifest said, or the earliest time for a view never published.
fn waiting_since(previous: &ManifestState) -> String {
    match previous {
        ManifestState::Found(manifest) => manifest
            .pending_since
            .clone()
            .unwrap_or_else(|| manifest.written_at.clone()),
        ManifestState::Missing | ManifestState::Unusable(_) => NEVER.to_owned(),
    }
}

/// The `pendingSince` of a view that was never published in full.
const NEVER: &str = "1970-01-01T00:00:00.000Z";

/// Checks that the object at `path` is the one `entry` describes: same ETag, or (for a
/// store without ETags) same write id in its footer. An entry of an older release, which
/// names neither, cannot be checked and passes.
async fn still_in_place(
    ctx: &PublishContext<'_>,
    path: &str,
    entry: &FileEntry,
) -> SnapshotResult<()> {
    if entry.e_tag.is_none() && entry.write_id.is_none() {
        return Ok(());
    }
    let replaced = || SnapshotError::Conflict {
        path: path.to_owned(),
        reason: "another snapshot run replaced the file after this run wrote or checked it".into(),
    };
    let meta = match ctx.store.head(&object_path(path)).await {
        Ok(meta) => meta,
        Err(deltalake::ObjectStoreError::NotFound { .. }) => return Err(replaced()),
        Err(error) => return Err(SnapshotError::store("checking", path, error)),
    };
    if entry.e_tag.is_some() && meta.e_tag.is_some() {
        return if entry.e_tag == meta.e_tag {
            Ok(())
        } else {
            Err(replaced())
        };
    }
    let version = ObjectVersion {
        size: meta.size,
        e_tag: meta.e_tag,
    };
    let footer = reader::footer(&ctx.store, path, version).await?;
    match FileStamp::of(&footer) {
        Stamped::Stamp(stamp) if entry.write_id.as_deref() == Some(stamp.write_id.as_str()) => {
            Ok(())
        }
        _ => Err(replaced()),
    }
}
