//! Full rebuild of a published file from every active file of the raw table, in bounded
//! memory: files are read in arrival order, sorted in budget-sized runs (spilled to local
//! temp space), and the runs are merged into the new file. With a deadline the rebuild is
//! resumable: its sorted runs are kept in the lake and the next run continues
//! ([`super::resume`]).

use super::arrival::{LogIndex, StreamStates};
use super::build::{Built, FileTarget, RawFile, ReadStats};
use super::error::SnapshotResult;
use super::resume::{self, NewBuild, Outcome, Progress, Workspace};
use crate::lake::{LakeError, LakeTable, VersionChanges};

/// Rebuilds the file from `table`, or writes an empty file when there is no table. `streams`
/// are the stream keys writing to the table (for files older than the readable log). A
/// build that an earlier run left in `work` is continued.
pub(crate) async fn rebuild(
    table: Option<&LakeTable>,
    target: &FileTarget<'_>,
    streams: &[String],
    work: &Workspace<'_>,
) -> SnapshotResult<Outcome> {
    let Some(table) = table.filter(|t| t.exists()) else {
        let streams = StreamStates::new();
        let written = target.write_merged(Vec::new(), &streams).await?;
        return Ok(Outcome::Built {
            built: Built {
                written,
                streams,
                stats: ReadStats::default(),
            },
            table_version: target.stamp.table_version,
            written_at: target.stamp.written_at.clone(),
        });
    };
    let stamp = &target.stamp;
    let found = work
        .find(
            &stamp.source_table,
            &stamp.raw_schema_fingerprint,
            table.version(),
        )
        .await?;
    if let Some(progress) = found {
        tracing::info!(table = %table.url(), version = ?progress.table_version, "continuing the full rebuild an earlier run left");
        match work.continue_build(table, target, progress.clone()).await {
            Err(error) if resume::is_missing(&error) => {
                tracing::warn!(table = %table.url(), %error, "an object the rebuild recorded is gone; starting it over");
                work.remove(&progress).await?;
            }
            outcome => return outcome,
        }
    }
    let RebuildInputs {
        files,
        index,
        commits_read,
    } = rebuild_inputs(table, streams).await?;
    let progress = Progress::start(NewBuild {
        source_table: stamp.source_table.clone(),
        table_version: table.version(),
        raw_schema_fingerprint: stamp.raw_schema_fingerprint.clone(),
        streams: index.streams,
        commits_read,
        files,
    });
    work.continue_build(table, target, progress).await
}

/// What a full rebuild reads: every active file whose rows count, in arrival order, and
/// the index of the readable log.
pub(crate) struct RebuildInputs {
    pub(crate) files: Vec<RawFile>,
    pub(crate) index: LogIndex,
    pub(crate) commits_read: u64,
}

/// Reads the log of `table` and lists the files a full rebuild reads.
pub(crate) async fn rebuild_inputs(
    table: &LakeTable,
    streams: &[String],
) -> SnapshotResult<RebuildInputs> {
    let commits = readable_log(table).await?;
    let commits_read = commits.len() as u64;
    let index = LogIndex::build(&commits, StreamStates::new());
    drop(commits);
    let files = files_in_arrival_order(table, &index, streams)?;
    Ok(RebuildInputs {
        files,
        index,
        commits_read,
    })
}

/// Every commit of the table that can still be read: all of them, or (when log retention
/// removed the oldest) those from the oldest readable one on.
async fn readable_log(table: &LakeTable) -> SnapshotResult<Vec<VersionChanges>> {
    match table.changes_since(None).await {
        Ok(commits) => Ok(commits),
        Err(LakeError::LogUnavailable { .. }) => {
            let Some(newest) = table.version() else {
                return Ok(Vec::new());
            };
            let oldest = oldest_readable(table, newest).await?;
            tracing::info!(table = %table.url(), oldest, "older commits were removed by log retention; files they added are attributed conservatively");
            Ok(table.changes_between(oldest, newest).await?)
        }
        Err(error) => Err(error.into()),
    }
}

/// The oldest readable commit. Retention removes a prefix of the log, so readability is
/// monotonic in the version and a binary search finds the boundary.
async fn oldest_readable(table: &LakeTable, newest: u64) -> SnapshotResult<u64> {
    let (mut low, mut high) = (0u64, newest);
    while low < high {
        let mid = low + (high - low) / 2;
        match table.version_changes(mid).await {
            Ok(_) => high = mid,
            Err(LakeError::LogUnavailable { .. }) => low = mid + 1,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(low)
}

/// The active files whose rows count, in arrival order.
fn files_in_arrival_order(
    table: &LakeTable,
    index: &LogIndex,
    streams: &[String],
) -> SnapshotResult<Vec<RawFile>> {
    let keep_unattributed = index.keeps_unattributed(streams);
    // Files older than the readable log come first, by modification time.
    let mut ordered: Vec<((u8, u64, u32, i64), RawFile)> = Vec::new();
    for file in table.active_files()? {
        let raw = RawFile {
            path: file.path.clone(),
            size: u64::try_from(file.size).ok(),
        };
        match index.origins.get(&file.path) {
            Some(origin) if index.qualifies(origin) => {
                ordered.push(((1, origin.version, origin.position, 0), raw));
            }
            Some(_) => {}
            None if keep_unattributed => {
                ordered.push(((0, 0, 0, file.modification_time_ms), raw));
            }
            None => {
                tracing::info!(table = %table.url(), file = %file.path, "dropping a file from before the newest completed generation");
            }
        }
    }
    ordered.sort_by_key(|a| a.0);
    Ok(ordered.into_iter().map(|(_, file)| file).collect())
}
