//! Publishing one file (`nodes.parquet` or `edges.parquet`) of a view: skip it, merge the
//! new commits into it, or rebuild it.

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use tokio::time::Instant;

use super::build::Built;
use super::build::FileTarget;
use super::error::{SnapshotError, SnapshotResult};
use super::incremental::{MergeOutcome, MergeTarget, merge_changes};
use super::keys::KeyColumns;
use super::manifest::{
    FileEntry, SORT_COLUMNS, column_specs, now_rfc3339, schema_fingerprint, tool_version,
};
use super::plan::{TableTarget, ViewTarget};
use super::reader::object_path;
use super::rebuild::rebuild;
use super::sorter::SortSettings;
use super::summary::{FileAction, FileReport};
use crate::lake::{Destination, LakeTable, WriteOptions, layout};
use crate::schema::publish_schema;

/// What every file of a run shares.
pub(crate) struct PublishContext<'a> {
    pub(crate) destination: &'a Destination,
    /// Rooted at the destination prefix.
    pub(crate) store: ObjectStoreRef,
    pub(crate) sort: SortSettings,
    /// Options the raw tables are opened with (only reads happen).
    pub(crate) table_options: WriteOptions,
}

/// Publishes one file. Returns the report and the manifest entry that describes the file
/// now at `path` (the previous entry if nothing was written).
pub(crate) async fn publish_file(
    ctx: &PublishContext<'_>,
    view: &ViewTarget,
    target: &TableTarget,
    previous: Option<&FileEntry>,
    path: &str,
) -> (FileReport, Option<FileEntry>) {
    let started = Instant::now();
    let (mut report, entry) = match publish(ctx, view, target, previous, path).await {
        Ok(done) => done,
        Err(error) => {
            tracing::warn!(view = %view.folder, kind = %target.kind, %error, "publishing failed");
            (
                FileReport::failed(target.kind, error.to_failure()),
                previous.cloned(),
            )
        }
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    (report, entry)
}

async fn publish(
    ctx: &PublishContext<'_>,
    view: &ViewTarget,
    target: &TableTarget,
    previous: Option<&FileEntry>,
    path: &str,
) -> SnapshotResult<(FileReport, Option<FileEntry>)> {
    let table_path = layout::raw_table_path(&view.model, &view.folder, target.kind);
    let table = if target.has_streams() {
        let url = ctx
            .destination
            .raw_table_url(&view.model, &view.folder, target.kind)?;
        // Opening loads the newest snapshot; no second refresh is needed.
        let table = LakeTable::open(ctx.destination, url, ctx.table_options.clone()).await?;
        // A stream's first commit creates its table, even when its backfill is empty, so
        // a missing table means that no stream got that far (not that the view is empty).
        if !table.exists() {
            return Err(SnapshotError::NoRawTable {
                table: table_path,
                streams: target.streams.join(", "),
            });
        }
        Some(table)
    } else {
        None
    };
    let version = table.as_ref().and_then(LakeTable::version);
    let raw_schema: SchemaRef = table
        .as_ref()
        .and_then(LakeTable::arrow_schema)
        .unwrap_or_else(|| target.schema_without_table.clone());
    let publish = publish_schema(&raw_schema);
    let fingerprint = schema_fingerprint(&raw_schema);
    let keys = KeyColumns::of(&publish, &table_path)?;
    let file = FileTarget {
        store: &ctx.store,
        path,
        raw_schema,
        publish_schema: publish.clone(),
        keys,
        sort: &ctx.sort,
    };

    let mut report = FileReport::new(target.kind, FileAction::Rebuilt);
    report.source_version = version;
    report.previous_version = previous.and_then(|p| p.table_version);

    let reason = match previous {
        None => "no previous file in the manifest".to_owned(),
        Some(entry)
            if entry.table_version == version && entry.raw_schema_fingerprint == fingerprint =>
        {
            match ctx.store.head(&object_path(path)).await {
                Ok(_) => {
                    report.action = FileAction::Skipped;
                    report.rows = entry.rows;
                    report.bytes = entry.bytes;
                    return Ok((report, Some(entry.clone())));
                }
                Err(deltalake::ObjectStoreError::NotFound { .. }) => format!("{path} is missing"),
                Err(error) => return Err(SnapshotError::store("checking", path, error)),
            }
        }
        Some(entry) => match &table {
            Some(table) if entry.table_version.is_some() => {
                let merge_target = MergeTarget {
                    file: &file,
                    previous: entry,
                    raw_fingerprint: &fingerprint,
                };
                match merge_changes(table, &merge_target).await {
                    Ok(MergeOutcome::Merged(built)) => {
                        report.action = FileAction::Incremental;
                        let entry =
                            describe(&built, &report, &table_path, &fingerprint, &publish, path);
                        fill(&mut report, &built);
                        return Ok((report, Some(entry)));
                    }
                    Ok(MergeOutcome::NeedsRebuild(reason)) => reason,
                    Err(error) => {
                        tracing::warn!(view = %view.folder, kind = %target.kind, %error, "incremental merge failed; rebuilding");
                        format!("the incremental merge failed: {error}")
                    }
                }
            }
            Some(_) => "the previous file was published before the raw table existed".to_owned(),
            None if entry.table_version.is_some() => "the raw table no longer exists".to_owned(),
            None => "the view schema changed".to_owned(),
        },
    };
    tracing::info!(view = %view.folder, kind = %target.kind, %reason, "rebuilding the published file");
    let built = rebuild(table.as_ref(), &file, &target.streams).await?;
    report.reason = Some(reason);
    let entry = describe(&built, &report, &table_path, &fingerprint, &publish, path);
    fill(&mut report, &built);
    Ok((report, Some(entry)))
}

fn fill(report: &mut FileReport, built: &Built) {
    report.rows = built.written.rows;
    report.bytes = built.written.bytes;
    report.commits_read = built.stats.commits_read;
    report.files_read = built.stats.files_read;
    report.rows_read = built.stats.rows_read;
    report.spilled_runs = built.stats.spilled_runs;
}

fn describe(
    built: &Built,
    report: &FileReport,
    table_path: &str,
    fingerprint: &str,
    publish: &SchemaRef,
    path: &str,
) -> FileEntry {
    FileEntry {
        path: path.rsplit('/').next().unwrap_or(path).to_owned(),
        source_table: table_path.to_owned(),
        table_version: report.source_version,
        rows: built.written.rows,
        bytes: built.written.bytes,
        streams: built.streams.clone(),
        raw_schema_fingerprint: fingerprint.to_owned(),
        publish_schema: column_specs(publish),
        sorted_by: SORT_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
        written_at: now_rfc3339(),
        tool_version: tool_version(),
    }
}
