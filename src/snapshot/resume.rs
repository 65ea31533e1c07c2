//! A full rebuild that survives its invocation: its sorted runs are kept in the lake, under
//! the destination prefix, so that the next run continues where this one stopped.
//!
//! ```text
//! _work/snapshot/<space>/<model>/<version>/<view>/<nodes|edges>/<build-id>/progress.json
//! _work/snapshot/<space>/<model>/<version>/<view>/<nodes|edges>/<build-id>/run-00001-<random>.parquet
//! ```
//!
//! A build starts by reading the raw table's log once and recording, in its progress
//! document, everything the rest of the build needs: the table version, the raw schema's
//! fingerprint, the streams' generation state after the log, and every raw file to read in
//! arrival order. It then reads raw files into the sorter ([`super::sorter`]) and, at each
//! checkpoint, merges what it sorted into one run (tombstones kept: they must still meet
//! older runs), uploads it and rewrites the progress document with the raw files consumed
//! and the runs made so far. When every raw file is consumed, the runs (oldest first) and
//! what is still in the sorter are merged into the published file, and the build's folder
//! is deleted.
//!
//! - Checkpoints happen only in a run with a deadline: every
//!   [`super::SliceSettings::checkpoint_bytes`] of raw input (so that a killed invocation loses
//!   at most that much), and when the next raw file or the final merge would not fit in the
//!   time left. A run without a deadline sorts on local disk only, as it always did, and
//!   still continues a build that an earlier run left.
//! - A run that starts a build consumes at least one raw file before it stops, so a build
//!   advances even when every estimate is too large for the time left.
//! - The next run continues with the recorded raw files even when the table has moved on:
//!   the file it publishes reflects the recorded version, and the next incremental merge
//!   reads the commits after it.
//! - A build no longer valid (another raw table, a changed schema, an older table version:
//!   the table was recreated) or one whose raw files or runs are gone (vacuumed, deleted)
//!   is abandoned and its folder deleted; so are runs a killed invocation uploaded but never
//!   recorded. Two overlapping runs may both continue a build: each progress document
//!   describes runs that exist, whichever is written last, and a run that finds a recorded
//!   object missing starts the build over, so the worst an overlap costs is repeated work.

use super::arrival::StreamStates;
use super::budget::Budget;
use super::build::{Built, FileTarget, RawFile, ReadStats};
use super::error::{SnapshotError, SnapshotResult};
use super::kway::{Tombstones, merge};
use super::manifest::now_rfc3339;
use super::reader::{self, BatchStream};
use super::sorter::{Runs, Sorter};
use super::stamp::FileStamp;
use super::work_store;
use super::writer::{ParquetSink, WrittenFile};
use crate::lake::layout::ViewFolder;
use crate::lake::{InstanceKind, LakeTable, ModelRef};
use deltalake::ObjectStoreError;
use deltalake::logstore::ObjectStoreRef;
use serde::{Deserialize, Serialize};

/// Version of the progress document; a document of another version is abandoned.
const FORMAT_VERSION: u32 = 1;

/// Name of the progress document in a build's folder.
const PROGRESS: &str = "progress.json";

/// Runs kept before a checkpoint merges them all into one, so that the final merge reads
/// a bounded number of runs (each holds one batch and one row group's bytes in memory).
const MAX_RUNS: usize = 8;

/// The folder of one published file's builds: `_work/snapshot/<space>/<model>/<version>/
/// <view>/<kind>`, relative to the destination prefix.
pub(crate) fn work_dir(model: &ModelRef, folder: &ViewFolder, kind: InstanceKind) -> String {
    format!(
        "_work/snapshot/{}/{}/{}/{}/{}",
        model.space(),
        model.external_id(),
        model.version(),
        folder.as_str(),
        kind
    )
}

/// What a build needs to continue, as recorded after its last checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Progress {
    format_version: u32,
    build_id: String,
    /// The raw table, relative to the destination prefix.
    source_table: String,
    /// The raw table version whose files the build reads.
    pub(crate) table_version: Option<u64>,
    raw_schema_fingerprint: String,
    /// The streams' generation state after the log up to `table_version`.
    pub(crate) streams: StreamStates,
    /// Commits read to plan the build.
    commits_read: u64,
    /// Every raw file of the build, in arrival order.
    files: Vec<ProgressFile>,
    /// How many of `files` the runs hold.
    consumed: usize,
    /// The sorted runs, oldest first.
    runs: Vec<RunFile>,
    /// When the build read the log (RFC 3339): the published file's build time.
    pub(crate) started_at: String,
    updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ProgressFile {
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunFile {
    name: String,
    bytes: u64,
    rows: u64,
}

/// The plan of a build that has not checkpointed yet.
pub(crate) struct NewBuild {
    pub(crate) source_table: String,
    pub(crate) table_version: Option<u64>,
    pub(crate) raw_schema_fingerprint: String,
    pub(crate) streams: StreamStates,
    pub(crate) commits_read: u64,
    pub(crate) files: Vec<RawFile>,
}

impl Progress {
    pub(crate) fn start(build: NewBuild) -> Self {
        let now = now_rfc3339();
        Self {
            format_version: FORMAT_VERSION,
            build_id: format!("{:016x}", rand::random::<u64>()),
            source_table: build.source_table,
            table_version: build.table_version,
            raw_schema_fingerprint: build.raw_schema_fingerprint,
            streams: build.streams,
            commits_read: build.commits_read,
            files: build
                .files
                .into_iter()
                .map(|f| ProgressFile {
                    path: f.path,
                    size: f.size,
                })
                .collect(),
            consumed: 0,
            runs: Vec::new(),
            started_at: now.clone(),
            updated_at: now,
        }
    }

    /// Whether the build still describes the table: same table and schema, and a version
    /// the table has reached (an older current version means the table was recreated).
    fn fits(&self, source_table: &str, fingerprint: &str, current: Option<u64>) -> bool {
        self.format_version == FORMAT_VERSION
            && self.source_table == source_table
            && self.raw_schema_fingerprint == fingerprint
            && match (self.table_version, current) {
                (Some(recorded), Some(current)) => recorded <= current,
                (None, None) => true,
                _ => false,
            }
    }
}

/// Where a file's builds live, and the run's time.
pub(crate) struct Workspace<'a> {
    pub(crate) store: &'a ObjectStoreRef,
    pub(crate) dir: String,
    pub(crate) budget: Budget,
    /// Raw bytes read between two checkpoints of a run with a deadline.
    pub(crate) checkpoint_bytes: u64,
}

/// The end of a rebuild's part in this run.
pub(crate) enum Outcome {
    /// The file is published; it reflects `table_version`, which is older than the table's
    /// when the build began in an earlier run.
    Built {
        built: Built,
        table_version: Option<u64>,
        written_at: String,
    },
    /// The deadline came first: the progress is saved and the next run continues.
    Behind { stats: ReadStats, reason: String },
}

impl Workspace<'_> {
    fn object(&self, build_id: &str, name: &str) -> String {
        format!("{}/{build_id}/{name}", self.dir)
    }

    /// The build to continue, if one fits the table; deletes every other object under the
    /// folder (abandoned builds, and runs that no progress document records).
    pub(crate) async fn find(
        &self,
        source_table: &str,
        fingerprint: &str,
        current: Option<u64>,
    ) -> SnapshotResult<Option<Progress>> {
        let objects = self.list().await?;
        let mut found: Option<Progress> = None;
        for path in objects
            .iter()
            .filter(|p| p.ends_with(&format!("/{PROGRESS}")))
        {
            match self.read(path).await {
                Ok(Some(progress)) if progress.fits(source_table, fingerprint, current) => {
                    if found
                        .as_ref()
                        .is_none_or(|f| f.updated_at < progress.updated_at)
                    {
                        found = Some(progress);
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%path, %error, "an unreadable build progress document is abandoned");
                }
            }
        }
        let keep: Vec<String> = found
            .iter()
            .flat_map(|p| {
                std::iter::once(self.object(&p.build_id, PROGRESS))
                    .chain(p.runs.iter().map(|run| self.object(&p.build_id, &run.name)))
            })
            .collect();
        let stale: Vec<&String> = objects.iter().filter(|o| !keep.contains(o)).collect();
        if !stale.is_empty() {
            tracing::info!(dir = %self.dir, objects = stale.len(), "removing the work of abandoned rebuilds");
        }
        for path in stale {
            self.delete(path).await?;
        }
        Ok(found)
    }

    async fn list(&self) -> SnapshotResult<Vec<String>> {
        work_store::list(self.store, &self.dir).await
    }

    async fn read(&self, path: &str) -> SnapshotResult<Option<Progress>> {
        work_store::get_json(self.store, path).await
    }

    async fn delete(&self, path: &str) -> SnapshotResult<()> {
        work_store::delete(self.store, path).await
    }

    /// Deletes a build's folder (its progress document first, so that a build half
    /// deleted is never continued).
    pub(crate) async fn remove(&self, progress: &Progress) -> SnapshotResult<()> {
        self.delete(&self.object(&progress.build_id, PROGRESS))
            .await?;
        for run in &progress.runs {
            self.delete(&self.object(&progress.build_id, &run.name))
                .await?;
        }
        Ok(())
    }

    async fn save(&self, progress: &mut Progress) -> SnapshotResult<()> {
        progress.updated_at = now_rfc3339();
        let path = self.object(&progress.build_id, PROGRESS);
        work_store::put_json(self.store, &path, progress).await
    }

    /// Continues `progress` (a new build, or one found by [`Workspace::find`]): reads raw
    /// files until they are all sorted or the time is up, then publishes or checkpoints.
    pub(crate) async fn continue_build(
        &self,
        table: &LakeTable,
        target: &FileTarget<'_>,
        mut progress: Progress,
    ) -> SnapshotResult<Outcome> {
        let mut stats = ReadStats {
            commits_read: if progress.consumed == 0 && progress.runs.is_empty() {
                progress.commits_read
            } else {
                0
            },
            ..ReadStats::default()
        };
        let bounded = self.budget.time_left().is_some();
        loop {
            // One segment: raw files into the sorter, up to a checkpoint.
            let mut sorter = Sorter::new(
                target.publish_schema.clone(),
                target.keys,
                target.sort.clone(),
            );
            let first = progress.consumed;
            let files: Vec<RawFile> = progress.files[first..]
                .iter()
                .map(|f| RawFile {
                    path: f.path.clone(),
                    size: f.size,
                })
                .collect();
            let mut segment_bytes = 0u64;
            let budget = self.budget;
            let checkpoint_at = self.checkpoint_bytes;
            let done = &progress;
            let read = target
                .read_while(table, &files, &mut stats, &mut sorter, |index, stats| {
                    if bounded && segment_bytes >= checkpoint_at {
                        return false;
                    }
                    let size = files[index].size.unwrap_or(0);
                    // The file, and writing out the segment with it if the time is up after it.
                    let needs = size + checkpoint_bytes(done, segment_bytes + size);
                    if stats.files_read > 0 && budget.admit(needs).is_err() {
                        return false;
                    }
                    segment_bytes += size;
                    true
                })
                .await?;
            let next = first + read;
            let runs = sorter.finish().await?;
            stats.spilled_runs += runs.spilled_runs;

            if next == progress.files.len() {
                let final_bytes =
                    progress.runs.iter().map(|r| r.bytes).sum::<u64>() + segment_bytes;
                if self.budget.admit(final_bytes).is_ok() {
                    return self.publish(target, progress, runs, stats).await;
                }
            }
            if next == first && runs.streams.is_empty() {
                return Ok(self.behind(stats, &progress));
            }
            progress.consumed = next;
            self.checkpoint(target, &mut progress, runs).await?;
            crate::failpoint::hit("snapshot-after-rebuild-checkpoint");
            let more = match progress.files.get(progress.consumed) {
                Some(file) => {
                    let size = file.size.unwrap_or(0);
                    self.budget
                        .admit(size + checkpoint_bytes(&progress, size))
                        .is_ok()
                }
                // Only the final merge is left, and it did not fit.
                None => false,
            };
            if !more {
                return Ok(self.behind(stats, &progress));
            }
        }
    }

    fn behind(&self, stats: ReadStats, progress: &Progress) -> Outcome {
        let reason = format!(
            "the deadline came first: the full rebuild sorted {} of {} raw files into {} runs kept under {}/{}; the next snapshot continues it",
            progress.consumed,
            progress.files.len(),
            progress.runs.len(),
            self.dir,
            progress.build_id
        );
        Outcome::Behind { stats, reason }
    }

    /// Merges the sorter's runs (and, past [`MAX_RUNS`], every earlier run) into one run in
    /// the store, and records it.
    async fn checkpoint(
        &self,
        target: &FileTarget<'_>,
        progress: &mut Progress,
        runs: Runs,
    ) -> SnapshotResult<()> {
        let Runs {
            streams: local,
            spill_dir,
            ..
        } = runs;
        let compact = progress.runs.len() + 1 > MAX_RUNS;
        let earlier: Vec<RunFile> = if compact {
            progress.runs.clone()
        } else {
            Vec::new()
        };
        let earlier_paths: Vec<String> = earlier
            .iter()
            .map(|r| self.object(&progress.build_id, &r.name))
            .collect();
        let mut streams = self.open_runs(target, &earlier, &earlier_paths).await?;
        streams.extend(local);
        let name = format!(
            "run-{:05}-{:08x}.parquet",
            progress.runs.len() + 1,
            rand::random::<u32>()
        );
        let path = self.object(&progress.build_id, &name);
        let written = self.write_run(target, &path, streams).await?;
        drop(spill_dir);
        let run = RunFile {
            name,
            bytes: written.bytes,
            rows: written.rows,
        };
        if compact {
            progress.runs = vec![run];
        } else {
            progress.runs.push(run);
        }
        self.save(progress).await?;
        for path in earlier_paths {
            self.delete(&path).await?;
        }
        tracing::info!(dir = %self.dir, build = %progress.build_id, consumed = progress.consumed, files = progress.files.len(), runs = progress.runs.len(), "saved the progress of a full rebuild");
        Ok(())
    }

    async fn write_run(
        &self,
        target: &FileTarget<'_>,
        path: &str,
        streams: Vec<BatchStream<'_>>,
    ) -> SnapshotResult<WrittenFile> {
        let schema = target.publish_schema.clone();
        let mut sink = ParquetSink::create(self.store, path, schema.clone())?;
        match merge(streams, schema, target.keys, Tombstones::Keep, &mut sink).await {
            Ok(_) => sink.close().await,
            Err(error) => {
                sink.abort().await;
                Err(error)
            }
        }
    }

    async fn open_runs<'p>(
        &self,
        target: &FileTarget<'_>,
        runs: &[RunFile],
        paths: &'p [String],
    ) -> SnapshotResult<Vec<BatchStream<'p>>> {
        let mut streams = Vec::with_capacity(runs.len());
        for (run, path) in runs.iter().zip(paths) {
            let object = reader::open(self.store, path, Some(run.bytes)).await?;
            streams.push(reader::batches_as(
                object,
                path,
                target.publish_schema.clone(),
            ));
        }
        Ok(streams)
    }

    /// The final merge: the runs in the store, then the sorter's, into the published file
    /// stamped with the build's version and state; then the build's folder goes.
    async fn publish(
        &self,
        target: &FileTarget<'_>,
        progress: Progress,
        runs: Runs,
        stats: ReadStats,
    ) -> SnapshotResult<Outcome> {
        let paths: Vec<String> = progress
            .runs
            .iter()
            .map(|r| self.object(&progress.build_id, &r.name))
            .collect();
        let mut streams = self.open_runs(target, &progress.runs, &paths).await?;
        let Runs {
            streams: local,
            spill_dir,
            ..
        } = runs;
        streams.extend(local);
        let file = FileTarget {
            store: target.store,
            path: target.path,
            raw_schema: target.raw_schema.clone(),
            publish_schema: target.publish_schema.clone(),
            keys: target.keys,
            sort: target.sort,
            stamp: FileStamp {
                table_version: progress.table_version,
                written_at: progress.started_at.clone(),
                ..target.stamp.clone()
            },
        };
        let written = file.write_merged(streams, &progress.streams).await?;
        drop(spill_dir);
        if !progress.runs.is_empty() {
            self.remove(&progress).await?;
        }
        Ok(Outcome::Built {
            built: Built {
                written,
                streams: progress.streams,
                stats,
            },
            table_version: progress.table_version,
            written_at: progress.started_at,
        })
    }
}

/// Bytes a checkpoint writes after a segment of `segment` raw bytes: the segment, and every
/// run when the runs are merged into one.
fn checkpoint_bytes(progress: &Progress, segment: u64) -> u64 {
    if progress.runs.len() + 1 > MAX_RUNS {
        segment + progress.runs.iter().map(|r| r.bytes).sum::<u64>()
    } else {
        segment
    }
}

/// Whether an error means that an object the build recorded is gone (a raw file vacuumed, a
/// run deleted by an overlapping run): the build cannot continue and starts over.
pub(crate) fn is_missing(error: &SnapshotError) -> bool {
    matches!(
        error,
        SnapshotError::Store {
            source: ObjectStoreError::NotFound { .. },
            ..
        }
    )
}
