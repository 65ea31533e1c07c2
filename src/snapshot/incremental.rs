//! Incremental publish: merge the commits after the published version into the previous
//! file, so that the cost follows the changes, not the history.
//!
//! The new commits' files are read in arrival order and reduced to the last row per key
//! (tombstones included), then stream-merged with the previous file. Both sides are sorted
//! by key; the changes are the newer run, so their row (or deletion) wins.
//!
//! The previous file's version is what the object at the key reflects: the manifest's entry
//! when it names that very object, the file's own footer stamp otherwise (after a crash
//! between a data file and the manifest, or a run that overlapped this one; see
//! [`super::view`]). Merging onto a file the commits after an *older* version would still be
//! harmless (the last arrival wins, so replaying a change the file already holds changes
//! nothing); merging after a *newer* version than the file holds would lose the commits in
//! between, which is why the version is never taken from a manifest that does not name the
//! file.

use deltalake::arrow::datatypes::Schema;

use super::arrival::{CommitOrigin, LogIndex};
use super::build::{Built, FileTarget, RawFile, ReadStats};
use super::decode::published_in_order;
use super::error::SnapshotResult;
use super::manifest::FileEntry;
use super::reader::{self, RowGroups};
use crate::lake::{LakeError, LakeTable};
use crate::schema::evolution::equivalent_types;

/// The previous file and what the merge needs to know about it.
pub(crate) struct MergeTarget<'a> {
    pub(crate) file: &'a FileTarget<'a>,
    pub(crate) previous: &'a FileEntry,
    pub(crate) raw_fingerprint: &'a str,
}

/// Either the merged file, or why only a full rebuild gives the right result.
pub(crate) enum MergeOutcome {
    Merged(Built),
    NeedsRebuild(String),
}

/// Merges the commits after the previous file's version up to the table's loaded version.
pub(crate) async fn merge_changes(
    table: &LakeTable,
    target: &MergeTarget<'_>,
) -> SnapshotResult<MergeOutcome> {
    let changes = match changes_after(table, target.previous, target.raw_fingerprint).await? {
        Changed::Changes(changes) => changes,
        Changed::NeedsRebuild(reason) => return Ok(MergeOutcome::NeedsRebuild(reason)),
    };
    let file = target.file;
    let previous = match open_previous(file, target.previous).await? {
        Ok(previous) => previous,
        Err(reason) => return Ok(MergeOutcome::NeedsRebuild(reason)),
    };
    let mut stats = ReadStats {
        commits_read: changes.commits_read,
        ..ReadStats::default()
    };
    let sorted = file.sort_files(table, &changes.files, &mut stats).await?;
    let mut runs = Vec::with_capacity(sorted.streams.len() + 1);
    runs.push(published_in_order(
        previous,
        file.path.to_owned(),
        file.publish_schema.clone(),
        file.sort.threads,
    ));
    runs.extend(sorted.streams);
    let written = file.write_merged(runs, &changes.index.streams).await?;
    drop(sorted.spill_dir);
    Ok(MergeOutcome::Merged(Built {
        written,
        streams: changes.index.streams,
        stats,
    }))
}

/// The raw files the commits after a published version added, in arrival order.
pub(crate) struct Changes {
    pub(crate) files: Vec<RawFile>,
    /// The index of those commits, from the published streams' state.
    pub(crate) index: LogIndex,
    pub(crate) commits_read: u64,
}

/// Either the changes to merge, or why only a full rebuild gives the right result.
pub(crate) enum Changed {
    Changes(Changes),
    NeedsRebuild(String),
}

/// The changes after `previous` (its version, generation state and schema) up to the
/// table's loaded version, unless something in between asks for a full rebuild.
pub(crate) async fn changes_after(
    table: &LakeTable,
    previous: &FileEntry,
    raw_fingerprint: &str,
) -> SnapshotResult<Changed> {
    let rebuild = |reason: String| Ok(Changed::NeedsRebuild(reason));
    let (Some(previous_version), Some(version)) = (previous.table_version, table.version()) else {
        return rebuild("the previous file predates the raw table".into());
    };
    if version < previous_version {
        return rebuild(format!(
            "the raw table is at version {version}, older than the published version {previous_version} (was it recreated?)"
        ));
    }
    if previous.raw_schema_fingerprint != raw_fingerprint {
        return rebuild(
            "the raw table schema differs from the one the previous file was built from".into(),
        );
    }
    let commits = match table.changes_between(previous_version + 1, version).await {
        Ok(commits) => commits,
        Err(LakeError::LogUnavailable { version, .. }) => {
            return rebuild(format!(
                "commit {version}, needed to merge incrementally, was removed by log retention"
            ));
        }
        Err(error) => return Err(error.into()),
    };
    if let Some(commit) = commits.iter().find(|c| c.metadata_changed) {
        return rebuild(format!(
            "the raw table schema changed at version {}",
            commit.version
        ));
    }
    let index = LogIndex::build(&commits, previous.streams.clone());
    if let Some(s) = &index.superseded {
        return rebuild(format!(
            "stream {} completed generation {} at version {}: instances missing from it must disappear",
            s.stream, s.generation, s.version
        ));
    }

    // Compaction rewrites rows these commits (or older ones) already hold.
    let mut files = Vec::new();
    for commit in &commits {
        if matches!(CommitOrigin::of(commit), CommitOrigin::Compaction { .. }) {
            continue;
        }
        for add in commit.adds.iter().filter(|a| a.data_change) {
            let counts = index
                .origins
                .get(&add.path)
                .is_none_or(|o| index.qualifies(o));
            if counts {
                files.push(RawFile {
                    path: add.path.clone(),
                    size: add.size.and_then(|s| u64::try_from(s).ok()),
                });
            }
        }
    }
    Ok(Changed::Changes(Changes {
        files,
        index,
        commits_read: commits.len() as u64,
    }))
}

/// Opens exactly the object `previous` describes at the target's path: every read is
/// conditional on its ETag, so a file that another run replaces meanwhile fails the merge as
/// a conflict instead of mixing into it commits that its own version does not line up with.
/// `Ok(Err(reason))` when the file cannot be merged into (missing, unreadable, other
/// columns) and must be rebuilt.
pub(crate) async fn open_previous(
    file: &FileTarget<'_>,
    previous: &FileEntry,
) -> SnapshotResult<Result<RowGroups, String>> {
    let version = reader::ObjectVersion {
        size: previous.bytes,
        e_tag: previous.e_tag.clone(),
    };
    let opened = match version.e_tag {
        Some(_) => reader::row_groups_of(file.store, file.path, version).await,
        None => reader::row_groups(file.store, file.path, None).await,
    };
    let object = match opened {
        Ok(object) => object,
        Err(error) if error.is_conflict() => return Err(error),
        Err(error) if error.is_not_found() => return Ok(Err(format!("{} is missing", file.path))),
        Err(error) => return Ok(Err(format!("the previous file is unreadable: {error}"))),
    };
    if !same_columns(object.schema(), &file.publish_schema) {
        return Ok(Err(format!(
            "the columns of {} differ from the publish schema",
            file.path
        )));
    }
    Ok(Ok(object))
}

/// Whether a file's columns are the publish schema's (names and types, in order).
fn same_columns(file: &Schema, publish: &Schema) -> bool {
    file.fields().len() == publish.fields().len()
        && file
            .fields()
            .iter()
            .zip(publish.fields())
            .all(|(a, b)| a.name() == b.name() && equivalent_types(a.data_type(), b.data_type()))
}
