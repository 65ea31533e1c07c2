//! Publishing one file (`nodes.parquet` or `edges.parquet`) of a view: skip it, merge the
//! new commits into it, or rebuild it.
//!
//! What the previous file reflects is read from the object at the key, not taken on the
//! manifest's word: the manifest's entry counts only when it names that very object (same
//! ETag); otherwise the file's footer stamp says which version it was built from
//! ([`find_previous`]). A file that says nothing (an older release's, another tool's) is
//! rebuilt.

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use deltalake::parquet::arrow::parquet_to_arrow_schema;
use tokio::time::Instant;

use super::arrival::StreamStates;
use super::budget::{Budget, Shortfall, merge_bytes};
use super::build::Built;
use super::build::FileTarget;
use super::error::{SnapshotError, SnapshotResult};
use super::incremental::{MergeOutcome, MergeTarget, merge_changes};
use super::keys::KeyColumns;
use super::manifest::{
    FileEntry, SORT_COLUMNS, column_specs, now_rfc3339, schema_fingerprint, tool_version,
};
use super::plan::{TableTarget, ViewTarget};
use super::reader::{self, ObjectVersion, object_path};
use super::rebuild::rebuild;
use super::resume::{Outcome, Workspace, work_dir};
use super::scope::Scope;
use super::sorter::SortSettings;
use super::stamp::{FileStamp, PartStamp, Stamped};
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
    /// The run's deadline: a merge or rebuild that does not fit in the time left is left
    /// for the next run ([`super::budget`]).
    pub(crate) budget: Budget,
    /// Raw bytes a resumable rebuild reads between two checkpoints ([`super::resume`]).
    pub(crate) checkpoint_bytes: u64,
    /// Rows above which a file is published in parts (`extractor.snapshot.part-rows`).
    pub(crate) part_rows: u64,
    /// Which of a view's objects this publish builds.
    pub(crate) scope: Scope,
}

/// Publishes one file. Returns the report and the manifest entry that describes the file
/// now at `path`: when nothing could be written, what the object at the key was found to
/// reflect (the manifest's entry, `listed`, if even that could not be found out). Fails
/// only with a [`SnapshotError::Conflict`]: another run replaced the file while this one
/// read it.
pub(crate) async fn publish_file(
    ctx: &PublishContext<'_>,
    view: &ViewTarget,
    target: &TableTarget,
    listed: Option<&FileEntry>,
    path: &str,
) -> SnapshotResult<(FileReport, Option<FileEntry>)> {
    let started = Instant::now();
    let table_path = layout::raw_table_path(&view.model, &view.folder, target.kind);
    let outcome = match find_previous(&ctx.store, path, &table_path, listed, None).await {
        Ok(found) => {
            if let Some(note) = &found.note
                && listed.is_some()
            {
                tracing::warn!(view = %view.folder, kind = %target.kind, %note, "the manifest does not describe the published file; using what the file says");
            }
            publish(ctx, view, target, &found, path)
                .await
                .map_err(|error| (error, found.entry))
        }
        Err(error) => Err((error, listed.cloned())),
    };
    let (mut report, entry) = match outcome {
        Ok(done) => done,
        Err((error, _)) if error.is_conflict() => return Err(error),
        Err((error, in_place)) => {
            tracing::warn!(view = %view.folder, kind = %target.kind, %error, "publishing failed");
            (
                FileReport::failed(target.kind, error.to_failure()),
                in_place,
            )
        }
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok((report, entry))
}

/// The file at a publish key, as far as it can be described.
pub(super) struct Previous {
    /// What the object at the key reflects; `None` when there is no object, or one that
    /// does not say.
    pub(super) entry: Option<FileEntry>,
    /// Why the manifest's entry was not taken as it is, when it was not.
    pub(super) note: Option<String>,
}

/// Finds out what the object at `path` reflects: the manifest's entry when it names that
/// object, the object's own stamp otherwise. `part` is the part the object must be (`None`
/// for a single file); an object stamped as another part is not taken.
pub(super) async fn find_previous(
    store: &ObjectStoreRef,
    path: &str,
    table_path: &str,
    listed: Option<&FileEntry>,
    part: Option<&PartStamp>,
) -> SnapshotResult<Previous> {
    let unknown = |note: String| {
        Ok(Previous {
            entry: None,
            note: Some(note),
        })
    };
    let meta = match store.head(&object_path(path)).await {
        Ok(meta) => meta,
        Err(deltalake::ObjectStoreError::NotFound { .. }) => {
            return unknown(match listed {
                Some(_) => format!("{path} is missing"),
                None => "no previous file in the manifest".to_owned(),
            });
        }
        Err(error) => return Err(SnapshotError::store("checking", path, error)),
    };
    if let Some(entry) = listed
        && entry.e_tag.is_some()
        && entry.e_tag == meta.e_tag
    {
        return Ok(Previous {
            entry: Some(entry.clone()),
            note: None,
        });
    }

    // The manifest does not name this object: a run that overlapped another, a crash between
    // a data file and the manifest, a hand edit, or a manifest of an older release.
    let version = ObjectVersion {
        size: meta.size,
        e_tag: meta.e_tag.clone(),
    };
    let footer = match reader::footer(store, path, version).await {
        Ok(footer) => footer,
        Err(error) if error.is_conflict() => return Err(error),
        Err(error) => return unknown(format!("{path} is unreadable: {error}")),
    };
    let stamp = match FileStamp::of(&footer) {
        Stamped::Stamp(stamp) => stamp,
        Stamped::Unstamped => {
            return unknown(format!(
                "{path} does not say which raw table version it reflects (written by an older release or another tool)"
            ));
        }
        Stamped::Invalid(reason) => {
            return unknown(format!("{path} has an unreadable build stamp: {reason}"));
        }
    };
    if stamp.source_table != table_path {
        return unknown(format!(
            "{path} was built from another raw table ({})",
            stamp.source_table
        ));
    }
    if stamp.part.as_ref() != part {
        return unknown(match &stamp.part {
            Some(p) => format!(
                "{path} was built as part {} of {} ({})",
                p.index, p.count, p.hash
            ),
            None => format!("{path} was built as a single file, not as a part"),
        });
    }
    let file_metadata = footer.file_metadata();
    let schema = match parquet_to_arrow_schema(
        file_metadata.schema_descr(),
        file_metadata.key_value_metadata(),
    ) {
        Ok(schema) => schema,
        Err(error) => return unknown(format!("{path} has an unreadable schema: {error}")),
    };
    let note = match listed {
        Some(entry) if entry.write_id.as_deref() == Some(stamp.write_id.as_str()) => None,
        Some(entry) => Some(format!(
            "{path} is not the file the manifest names: it reflects version {}, the manifest says {}",
            show_version(stamp.table_version),
            show_version(entry.table_version)
        )),
        None => Some(format!(
            "the manifest does not describe {path}, which reflects version {}",
            show_version(stamp.table_version)
        )),
    };
    let entry = FileEntry {
        path: path.rsplit('/').next().unwrap_or(path).to_owned(),
        source_table: stamp.source_table,
        table_version: stamp.table_version,
        rows: u64::try_from(file_metadata.num_rows()).unwrap_or(0),
        bytes: meta.size,
        streams: stamp.streams,
        raw_schema_fingerprint: stamp.raw_schema_fingerprint,
        publish_schema: column_specs(&schema),
        sorted_by: SORT_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
        written_at: stamp.written_at,
        tool_version: stamp.tool_version,
        e_tag: meta.e_tag,
        write_id: Some(stamp.write_id),
        parts: None,
    };
    Ok(Previous {
        entry: Some(entry),
        note,
    })
}

fn show_version(version: Option<u64>) -> String {
    version.map_or_else(|| "none (no raw table)".to_owned(), |v| v.to_string())
}

/// The raw table a file is built from, as this run found it.
pub(super) struct Source {
    /// `None` when no stream writes this kind of instance.
    pub(super) table: Option<LakeTable>,
    pub(super) table_path: String,
    pub(super) version: Option<u64>,
    pub(super) raw_schema: SchemaRef,
    pub(super) publish_schema: SchemaRef,
    pub(super) fingerprint: String,
    pub(super) keys: KeyColumns,
}

impl Source {
    /// Opens the raw table of `target` (at its newest version).
    pub(super) async fn open(
        ctx: &PublishContext<'_>,
        view: &ViewTarget,
        target: &TableTarget,
    ) -> SnapshotResult<Self> {
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
        let publish_schema = publish_schema(&raw_schema);
        let fingerprint = schema_fingerprint(&raw_schema);
        let keys = KeyColumns::of(&publish_schema, &table_path)?;
        Ok(Self {
            table,
            table_path,
            version,
            raw_schema,
            publish_schema,
            fingerprint,
            keys,
        })
    }

    /// The target of a file built from this source at `path`, stamped as `part`.
    pub(super) fn file_target<'a>(
        &self,
        ctx: &'a PublishContext<'_>,
        path: &'a str,
        part: Option<PartStamp>,
    ) -> FileTarget<'a> {
        FileTarget {
            store: &ctx.store,
            path,
            raw_schema: self.raw_schema.clone(),
            publish_schema: self.publish_schema.clone(),
            keys: self.keys,
            sort: &ctx.sort,
            stamp: FileStamp {
                write_id: FileStamp::new_write_id(),
                source_table: self.table_path.clone(),
                table_version: self.version,
                streams: StreamStates::new(),
                raw_schema_fingerprint: self.fingerprint.clone(),
                written_at: now_rfc3339(),
                tool_version: tool_version(),
                part,
            },
        }
    }
}

async fn publish(
    ctx: &PublishContext<'_>,
    view: &ViewTarget,
    target: &TableTarget,
    found: &Previous,
    path: &str,
) -> SnapshotResult<(FileReport, Option<FileEntry>)> {
    let source = Source::open(ctx, view, target).await?;
    let Source {
        table,
        version,
        publish_schema: publish,
        fingerprint,
        ..
    } = &source;
    let (table, version) = (table.as_ref(), *version);
    let file = source.file_target(ctx, path, None);

    let previous = found.entry.as_ref();
    let mut report = FileReport::new(target.kind, FileAction::Rebuilt);
    report.source_version = version;
    report.previous_version = previous.and_then(|p| p.table_version);

    let reason = match previous {
        None => found
            .note
            .clone()
            .unwrap_or_else(|| "no previous file in the manifest".to_owned()),
        Some(entry)
            if entry.table_version == version && entry.raw_schema_fingerprint == *fingerprint =>
        {
            report.action = FileAction::Skipped;
            report.rows = entry.rows;
            report.bytes = entry.bytes;
            report.reason = found.note.clone();
            return Ok((report, Some(entry.clone())));
        }
        Some(entry) => match table {
            Some(table) if entry.table_version.is_some() => {
                if let Err(shortfall) = ctx.budget.admit(merge_bytes(table, entry)?) {
                    return Ok(behind(report, shortfall, found));
                }
                let merge_target = MergeTarget {
                    file: &file,
                    previous: entry,
                    raw_fingerprint: fingerprint,
                };
                match merge_changes(table, &merge_target).await {
                    Ok(MergeOutcome::Merged(built)) => {
                        report.action = FileAction::Incremental;
                        report.reason = found.note.clone();
                        let entry = describe(&built, &file, publish);
                        fill(&mut report, &built);
                        return Ok((report, Some(entry)));
                    }
                    Ok(MergeOutcome::NeedsRebuild(reason)) => reason,
                    Err(error) if error.is_conflict() => return Err(error),
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
    // A rebuild is resumable: it starts whenever the time left holds more than a file's
    // fixed cost, and stops at the deadline keeping its progress.
    if let Err(shortfall) = ctx.budget.admit(0) {
        return Ok(behind(report, shortfall, found));
    }
    tracing::info!(view = %view.folder, kind = %target.kind, %reason, "rebuilding the published file");
    let work = Workspace {
        store: &ctx.store,
        dir: work_dir(&view.model, &view.folder, target.kind),
        budget: ctx.budget,
        checkpoint_bytes: ctx.checkpoint_bytes,
    };
    match rebuild(table, &file, &target.streams, &work).await? {
        Outcome::Built {
            built,
            table_version,
            written_at,
        } => {
            // A build continued from an earlier run reflects the version it started from;
            // the next incremental merge reads the commits after it.
            let file = FileTarget {
                stamp: FileStamp {
                    table_version,
                    written_at,
                    ..file.stamp.clone()
                },
                ..file
            };
            report.source_version = table_version;
            report.reason = Some(reason);
            let entry = describe(&built, &file, publish);
            fill(&mut report, &built);
            Ok((report, Some(entry)))
        }
        Outcome::Behind { stats, reason } => {
            tracing::info!(view = %view.folder, kind = %target.kind, %reason, "leaving the rebuild for the next snapshot");
            report.action = FileAction::Behind;
            report.reason = Some(reason);
            report.commits_read = stats.commits_read;
            report.files_read = stats.files_read;
            report.rows_read = stats.rows_read;
            report.spilled_runs = stats.spilled_runs;
            Ok((report, found.entry.clone()))
        }
    }
}

/// A file the deadline leaves for the next run: the object at the key stays what it was.
fn behind(
    report: FileReport,
    shortfall: Shortfall,
    found: &Previous,
) -> (FileReport, Option<FileEntry>) {
    tracing::info!(kind = %report.kind, %shortfall, "leaving the file for the next snapshot");
    let report = FileReport {
        action: FileAction::Behind,
        reason: Some(shortfall.to_string()),
        ..report
    };
    (report, found.entry.clone())
}

fn fill(report: &mut FileReport, built: &Built) {
    report.rows = built.written.rows;
    report.bytes = built.written.bytes;
    report.commits_read = built.stats.commits_read;
    report.files_read = built.stats.files_read;
    report.rows_read = built.stats.rows_read;
    report.spilled_runs = built.stats.spilled_runs;
}

/// The manifest entry of the file this run wrote: what its stamp says, plus the store's
/// answer (size, ETag).
pub(super) fn describe(built: &Built, file: &FileTarget<'_>, publish: &SchemaRef) -> FileEntry {
    let stamp = &file.stamp;
    FileEntry {
        path: file.path.rsplit('/').next().unwrap_or(file.path).to_owned(),
        source_table: stamp.source_table.clone(),
        table_version: stamp.table_version,
        rows: built.written.rows,
        bytes: built.written.bytes,
        streams: built.streams.clone(),
        raw_schema_fingerprint: stamp.raw_schema_fingerprint.clone(),
        publish_schema: column_specs(publish),
        sorted_by: SORT_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
        written_at: stamp.written_at.clone(),
        tool_version: stamp.tool_version.clone(),
        e_tag: built.written.e_tag.clone(),
        write_id: Some(stamp.write_id.clone()),
        parts: None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{RecordBatch, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::snapshot::kway::BatchSink as _;
    use crate::snapshot::stamp::STAMP_KEY;
    use crate::snapshot::writer::{ParquetSink, WrittenFile};

    const TABLE: &str = "raw/s/M/1/views/Pump/nodes";
    const PATH: &str = "publish/s/M/1/Pump/nodes.parquet";

    fn stamp(version: u64) -> FileStamp {
        FileStamp {
            write_id: FileStamp::new_write_id(),
            source_table: TABLE.into(),
            table_version: Some(version),
            streams: StreamStates::new(),
            raw_schema_fingerprint: "f".into(),
            written_at: now_rfc3339(),
            tool_version: tool_version(),
            part: None,
        }
    }

    async fn write(store: &ObjectStoreRef, stamp: Option<&FileStamp>) -> WrittenFile {
        let schema = Arc::new(Schema::new(vec![
            Field::new("space", DataType::Utf8, false),
            Field::new("externalId", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["s", "s"])),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        )
        .unwrap();
        let mut sink = ParquetSink::create(store, PATH, schema).unwrap();
        if let Some(stamp) = stamp {
            sink.annotate(STAMP_KEY, stamp.to_json());
        }
        sink.write(batch).await.unwrap();
        sink.close().await.unwrap()
    }

    /// The manifest's entry for a file written with `stamp`.
    fn listed(stamp: &FileStamp, written: &WrittenFile) -> FileEntry {
        FileEntry {
            path: "nodes.parquet".into(),
            source_table: TABLE.into(),
            table_version: stamp.table_version,
            rows: 2,
            bytes: written.bytes,
            streams: StreamStates::new(),
            raw_schema_fingerprint: "f".into(),
            publish_schema: Vec::new(),
            sorted_by: Vec::new(),
            written_at: stamp.written_at.clone(),
            tool_version: stamp.tool_version.clone(),
            e_tag: written.e_tag.clone(),
            write_id: Some(stamp.write_id.clone()),
            parts: None,
        }
    }

    fn memory() -> ObjectStoreRef {
        Arc::new(deltalake::logstore::object_store::memory::InMemory::new())
    }

    #[tokio::test]
    async fn an_entry_naming_the_object_at_the_key_is_taken_as_it_is() {
        let store = memory();
        let current = stamp(5);
        let written = write(&store, Some(&current)).await;
        let entry = listed(&current, &written);
        let found = find_previous(&store, PATH, TABLE, Some(&entry), None)
            .await
            .unwrap();
        assert_eq!(found.entry, Some(entry));
        assert_eq!(found.note, None);
    }

    /// A newer manifest over an older file (the overlap of two runs): the file's own stamp
    /// says what it reflects, whatever the manifest claims.
    #[tokio::test]
    async fn a_file_the_manifest_does_not_name_says_itself_what_it_reflects() {
        let store = memory();
        let newer = stamp(9);
        let entry = listed(&newer, &write(&store, Some(&newer)).await);
        let older = stamp(4);
        let written = write(&store, Some(&older)).await;
        let found = find_previous(&store, PATH, TABLE, Some(&entry), None)
            .await
            .unwrap();
        let previous = found.entry.expect("described by its stamp");
        assert_eq!(previous.table_version, Some(4));
        assert_eq!(previous.write_id.as_deref(), Some(older.write_id.as_str()));
        assert_eq!(previous.e_tag, written.e_tag);
        assert_eq!((previous.rows, previous.bytes), (2, written.bytes));
        assert_eq!(previous.publish_schema.len(), 2);
        let note = found.note.expect("a note");
        assert!(note.contains("not the file the manifest names"), "{note}");
        assert!(
            note.contains("version 4") && note.contains("says 9"),
            "{note}"
        );

        // Without a manifest the stamp is all there is.
        let found = find_previous(&store, PATH, TABLE, None, None)
            .await
            .unwrap();
        assert_eq!(found.entry.and_then(|e| e.table_version), Some(4));
        assert!(found.note.is_some_and(|n| n.contains("does not describe")));
    }

    /// The same upload under another ETag (a store whose ETags are not stable) is still
    /// the file the manifest names.
    #[tokio::test]
    async fn the_write_id_identifies_an_upload_without_its_etag() {
        let store = memory();
        let current = stamp(5);
        let mut entry = listed(&current, &write(&store, Some(&current)).await);
        entry.e_tag = Some("\"other\"".into());
        let found = find_previous(&store, PATH, TABLE, Some(&entry), None)
            .await
            .unwrap();
        assert_eq!(found.note, None);
        assert_eq!(found.entry.and_then(|e| e.table_version), Some(5));
    }

    #[tokio::test]
    async fn files_that_cannot_vouch_for_themselves_are_rebuilt() {
        let store = memory();
        let current = stamp(5);
        let entry = listed(&current, &write(&store, Some(&current)).await);

        // Written by an older release (or another tool): no stamp.
        write(&store, None).await;
        let found = find_previous(&store, PATH, TABLE, Some(&entry), None)
            .await
            .unwrap();
        assert_eq!(found.entry, None);
        assert!(found.note.is_some_and(|n| n.contains("does not say")));

        // Copied from another view's folder.
        let mut foreign = stamp(5);
        foreign.source_table = "raw/s/M/1/views/Site/nodes".into();
        write(&store, Some(&foreign)).await;
        let found = find_previous(&store, PATH, TABLE, Some(&entry), None)
            .await
            .unwrap();
        assert_eq!(found.entry, None);
        assert!(found.note.is_some_and(|n| n.contains("another raw table")));

        // Gone.
        store.delete(&object_path(PATH)).await.unwrap();
        let found = find_previous(&store, PATH, TABLE, Some(&entry), None)
            .await
            .unwrap();
        assert_eq!(found.entry, None);
        assert!(found.note.is_some_and(|n| n.contains("is missing")));
    }
}
