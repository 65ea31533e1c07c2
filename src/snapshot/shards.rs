//! Rebuild shards: the full rebuild of a view in parts, split by raw file across workers.
//!
//! A unit of one part rebuilds its part by reading the whole raw table and keeping the
//! rows of its part, so every part unit reads every raw row: a view far larger than one
//! invocation's reading speed could never be rebuilt that way. When every part of a kind
//! needs a full rebuild (the first build, or a change of part count), the plan step starts a
//! *shard build* instead:
//!
//! ```text
//! _work/shards/<space>/<model>/<version>/<view>/<kind>/<build-id>/build.json
//! _work/shards/.../<build-id>/part-00003/shard-00001.parquet
//! _work/shards/.../<build-id>/shard-00001.done.json
//! ```
//!
//! 1. **plan** ([`plan`]): reads the raw table's log once and records the build: the table
//!    version, the schema's fingerprint, the streams' generation state, every raw file to
//!    read in arrival order, the part count, and the split of the files into S shards of
//!    contiguous arrival ranges of about equal bytes. A build an earlier run started that
//!    still fits the table is continued instead: only its shards without a `done` record
//!    run again.
//! 2. **shard units** ([`run_shard`]), before the part units: each reads its range of raw
//!    files, routes every row to its part, sorts each part's rows (deduplicated, tombstones
//!    kept: they must still meet the rows of earlier shards), writes one sorted run per part,
//!    then a `done` record naming its runs.
//! 3. **part units**: a part that is rebuilt finds the complete build of its part count
//!    ([`complete`]) and merges its S runs, earliest shard first (the last arrival wins),
//!    into the published part, stamped with the build's version; without a complete build
//!    it reads the raw table itself, as before. The next incremental merge reads the
//!    commits after the build's version.
//! 4. **finalize** removes the kind's builds once the view's manifest names its parts.
//!
//! A build that no longer fits the raw table (another schema, a recreated table) is never
//! used; the plan step deletes the kind's other builds when it starts one. Two overlapping
//! runs can delete each other's build; the parts then read the raw table themselves, so the
//! worst an overlap costs is time.

use deltalake::logstore::ObjectStoreRef;
use serde::{Deserialize, Serialize};

use super::arrival::StreamStates;
use super::build::{RawFile, ReadStats};
use super::error::{SnapshotError, SnapshotResult};
use super::file::{PublishContext, Source};
use super::kway::{Tombstones, merge};
use super::manifest::now_rfc3339;
use super::partitioned::{PARTS_PER_PASS, PartSorters};
use super::plan::{TableTarget, ViewTarget};
use super::reader::{self, BatchStream};
use super::rebuild::rebuild_inputs;
use super::work_store::{delete, get_json, list, put_json};
use super::writer::ParquetSink;
use crate::lake::layout::ViewFolder;
use crate::lake::{InstanceKind, ModelRef};

/// Version of the build document; a build of another version is not used.
const FORMAT_VERSION: u32 = 1;

/// The folder of one kind's shard builds, relative to the destination prefix.
pub(crate) fn builds_dir(model: &ModelRef, folder: &ViewFolder, kind: InstanceKind) -> String {
    format!(
        "_work/shards/{}/{}/{}/{}/{kind}",
        model.space(),
        model.external_id(),
        model.version(),
        folder.as_str(),
    )
}

/// One build, as the plan step recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShardBuild {
    format_version: u32,
    pub(crate) build_id: String,
    source_table: String,
    pub(crate) table_version: Option<u64>,
    raw_schema_fingerprint: String,
    pub(crate) streams: StreamStates,
    files: Vec<BuildFile>,
    /// The index of the first file of each shard, ascending from 0.
    starts: Vec<usize>,
    /// The part count the runs are split into.
    pub(crate) parts: u32,
    /// When the build read the log: the published parts' build time.
    pub(crate) started_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BuildFile {
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

/// What one shard wrote: a run per part that has rows in its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShardDone {
    shard: u32,
    runs: Vec<PartRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartRun {
    part: u32,
    rows: u64,
    bytes: u64,
}

/// What a shard unit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ShardReport {
    pub(crate) stats: ReadStats,
    /// Sorted runs written (one per part with rows).
    pub(crate) runs: u64,
    /// Rows and bytes of those runs.
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
}

impl ShardBuild {
    /// How many shards the build has.
    pub(crate) fn shards(&self) -> u32 {
        u32::try_from(self.starts.len()).unwrap_or(u32::MAX)
    }

    fn files_of(&self, shard: u32) -> Vec<RawFile> {
        let shard = shard as usize;
        let start = self.starts.get(shard).copied().unwrap_or(self.files.len());
        let end = self
            .starts
            .get(shard + 1)
            .copied()
            .unwrap_or(self.files.len());
        self.files[start..end]
            .iter()
            .map(|f| RawFile {
                path: f.path.clone(),
                size: f.size,
            })
            .collect()
    }

    /// Whether the build still describes the raw table `source` opened: the same table
    /// and schema, at a version the table has reached.
    fn fits(&self, source: &Source) -> bool {
        self.format_version == FORMAT_VERSION
            && self.source_table == source.table_path
            && self.raw_schema_fingerprint == source.fingerprint
            && match (self.table_version, source.version) {
                (Some(recorded), Some(current)) => recorded <= current,
                _ => false,
            }
    }
}

fn object(dir: &str, build_id: &str, name: &str) -> String {
    format!("{dir}/{build_id}/{name}")
}

fn run_name(part: u32, shard: u32) -> String {
    format!("part-{part:05}/shard-{shard:05}.parquet")
}

fn done_name(shard: u32) -> String {
    format!("shard-{shard:05}.done.json")
}

/// Splits files of `sizes` bytes into at most `wanted` contiguous ranges of about equal
/// bytes; returns each range's first index. Every range holds at least one file.
fn split_by_bytes(sizes: &[u64], wanted: u32) -> Vec<usize> {
    let wanted = (wanted.max(1) as usize).min(sizes.len().max(1));
    let total: u64 = sizes.iter().sum();
    let mut starts = vec![0];
    let mut seen = 0u64;
    for (index, size) in sizes.iter().enumerate() {
        let shard = starts.len() as u64;
        // A new range starts once the bytes before this file reach the next share.
        if index > 0
            && starts.len() < wanted
            && seen.saturating_mul(wanted as u64) >= total.saturating_mul(shard)
        {
            starts.push(index);
        }
        seen += size;
    }
    starts
}

/// The shard build of `target` in `parts` parts and the shards still to run: a build an
/// earlier run started that still fits the raw table (only its missing shards run again),
/// or a new one, split into at most `parts` shards (the kind's other builds are removed).
/// `None` when the raw table has no files to read.
pub(crate) async fn plan(
    ctx: &PublishContext<'_>,
    view: &ViewTarget,
    target: &TableTarget,
    parts: u32,
) -> SnapshotResult<Option<(ShardBuild, Vec<u32>)>> {
    let source = Source::open(ctx, view, target).await?;
    let Some(table) = source.table.as_ref() else {
        return Ok(None);
    };
    let dir = builds_dir(&view.model, &view.folder, target.kind);
    if let Some(found) = fitting(&ctx.store, &dir, parts, &source).await {
        tracing::info!(view = %view.folder, kind = %target.kind, build = %found.build.build_id, left = found.missing.len(), shards = found.build.shards(), "continuing a sharded full rebuild");
        return Ok(Some((found.build, found.missing)));
    }
    let inputs = rebuild_inputs(table, &target.streams).await?;
    if inputs.files.is_empty() {
        return Ok(None);
    }
    let sizes: Vec<u64> = inputs.files.iter().map(|f| f.size.unwrap_or(0)).collect();
    let build = ShardBuild {
        format_version: FORMAT_VERSION,
        build_id: format!("{:016x}", rand::random::<u64>()),
        source_table: source.table_path.clone(),
        table_version: source.version,
        raw_schema_fingerprint: source.fingerprint.clone(),
        streams: inputs.index.streams,
        files: inputs
            .files
            .into_iter()
            .map(|f| BuildFile {
                path: f.path,
                size: f.size,
            })
            .collect(),
        starts: split_by_bytes(&sizes, parts),
        parts,
        started_at: now_rfc3339(),
    };
    remove(&ctx.store, &dir).await?;
    put_json(
        &ctx.store,
        &object(&dir, &build.build_id, "build.json"),
        &build,
    )
    .await?;
    tracing::info!(view = %view.folder, kind = %target.kind, build = %build.build_id, shards = build.shards(), parts, files = build.files.len(), "planned a sharded full rebuild");
    let shards = (0..build.shards()).collect();
    Ok(Some((build, shards)))
}

/// Sorts the raw files of shard `shard` of build `build_id` into one run per part.
pub(crate) async fn run_shard(
    ctx: &PublishContext<'_>,
    view: &ViewTarget,
    target: &TableTarget,
    build_id: &str,
    shard: u32,
) -> SnapshotResult<ShardReport> {
    let dir = builds_dir(&view.model, &view.folder, target.kind);
    let gone = |reason: String| SnapshotError::ShardBuild {
        dir: format!("{dir}/{build_id}"),
        reason,
    };
    let build: ShardBuild = get_json(&ctx.store, &object(&dir, build_id, "build.json"))
        .await?
        .ok_or_else(|| gone("the build is gone (a newer plan replaced it)".into()))?;
    if shard >= build.shards() {
        return Err(gone(format!(
            "the build has {} shards, not shard {shard}",
            build.shards()
        )));
    }
    let source = Source::open(ctx, view, target).await?;
    let Some(table) = source.table.as_ref().filter(|_| build.fits(&source)) else {
        return Err(gone(
            "the raw table's schema or version no longer matches the build; the next plan starts a new one".into(),
        ));
    };
    let files = build.files_of(shard);
    let probe = source.file_target(ctx, "", None);
    let mut report = ShardReport::default();
    let mut done = ShardDone {
        shard,
        runs: Vec::new(),
    };
    let parts: Vec<u32> = (0..build.parts).collect();
    let budget = ctx.budget;
    for group in parts.chunks(PARTS_PER_PASS) {
        let mut sorters = PartSorters::new(&probe, build.parts, group);
        // Every file before the deadline, or the shard fails: a half-sorted shard is no
        // use, and the next run sorts it again.
        let read = probe
            .read_while(table, &files, &mut report.stats, &mut sorters, |_, _| {
                !budget.is_over()
            })
            .await;
        let read = match read {
            Ok(read) => read,
            Err(error) if error.is_not_found() => {
                // A raw file of the build is gone (vacuumed): the build can never complete,
                // so it goes, and the next plan starts a new one.
                delete(&ctx.store, &object(&dir, build_id, "build.json")).await?;
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        if read < files.len() {
            return Err(gone(format!(
                "the deadline came after {read} of the shard's {} raw files; the next run sorts it again",
                files.len()
            )));
        }
        for (part, sorter) in sorters.into_sorters() {
            if sorter.is_empty() {
                continue;
            }
            let runs = sorter.finish().await?;
            report.stats.spilled_runs += runs.spilled_runs;
            let path = object(&dir, build_id, &run_name(part, shard));
            let mut sink = ParquetSink::create(&ctx.store, &path, probe.publish_schema.clone())?;
            let merged = merge(
                runs.streams,
                probe.publish_schema.clone(),
                probe.keys,
                Tombstones::Keep,
                &mut sink,
            )
            .await;
            let written = match merged {
                Ok(_) => sink.close().await?,
                Err(error) => {
                    sink.abort().await;
                    return Err(error);
                }
            };
            drop(runs.spill_dir);
            report.runs += 1;
            report.rows += written.rows;
            report.bytes += written.bytes;
            done.runs.push(PartRun {
                part,
                rows: written.rows,
                bytes: written.bytes,
            });
        }
    }
    put_json(
        &ctx.store,
        &object(&dir, build_id, &done_name(shard)),
        &done,
    )
    .await?;
    tracing::info!(view = %view.folder, kind = %target.kind, build = build_id, shard, runs = report.runs, rows = report.rows, "sorted a rebuild shard");
    Ok(report)
}

/// A build whose every shard is done, for a kind in `count` parts, that fits `source`.
pub(crate) struct Complete {
    pub(crate) build: ShardBuild,
    dir: String,
    done: Vec<ShardDone>,
}

impl Complete {
    /// Bytes of the runs of `part`.
    pub(crate) fn bytes_of(&self, part: u32) -> u64 {
        self.done
            .iter()
            .flat_map(|d| &d.runs)
            .filter(|r| r.part == part)
            .map(|r| r.bytes)
            .sum()
    }

    /// The runs of `part` (path and bytes), earliest shard first.
    pub(crate) fn run_paths(&self, part: u32) -> Vec<(String, u64)> {
        self.done
            .iter()
            .flat_map(|done| {
                done.runs
                    .iter()
                    .filter(move |r| r.part == part)
                    .map(move |r| {
                        let name = run_name(part, done.shard);
                        (object(&self.dir, &self.build.build_id, &name), r.bytes)
                    })
            })
            .collect()
    }
}

/// Opens runs (see [`Complete::run_paths`]) for the final merge, in the order given.
pub(crate) async fn open_runs<'p>(
    store: &ObjectStoreRef,
    runs: &'p [(String, u64)],
    schema: deltalake::arrow::datatypes::SchemaRef,
) -> SnapshotResult<Vec<BatchStream<'p>>> {
    let mut streams = Vec::with_capacity(runs.len());
    for (path, bytes) in runs {
        let object = reader::open(store, path, Some(*bytes)).await?;
        streams.push(reader::batches_as(object, path, schema.clone()));
    }
    Ok(streams)
}

/// The complete build of the kind for `count` parts that fits `source`, if there is one.
/// Anything unreadable counts as no build: the parts then read the raw table themselves.
pub(crate) async fn complete(
    store: &ObjectStoreRef,
    view: &ViewTarget,
    kind: InstanceKind,
    count: u32,
    source: &Source,
) -> Option<Complete> {
    let dir = builds_dir(&view.model, &view.folder, kind);
    let found = fitting(store, &dir, count, source).await?;
    if found.missing.is_empty() {
        return Some(Complete {
            build: found.build,
            dir,
            done: found.done,
        });
    }
    tracing::info!(view = %view.folder, %kind, build = %found.build.build_id, left = found.missing.len(), shards = found.build.shards(), "a sharded rebuild is not complete; the parts read the raw table");
    None
}

/// A build of the kind that fits the raw table, and where its shards stand.
struct Fitting {
    build: ShardBuild,
    done: Vec<ShardDone>,
    /// Shards without a `done` record.
    missing: Vec<u32>,
}

/// The build under `dir` for `count` parts that fits `source` with the most shards done.
async fn fitting(
    store: &ObjectStoreRef,
    dir: &str,
    count: u32,
    source: &Source,
) -> Option<Fitting> {
    let objects = list(store, dir).await.ok()?;
    let mut best: Option<Fitting> = None;
    for path in objects.iter().filter(|p| p.ends_with("/build.json")) {
        let Ok(Some(build)) = get_json::<ShardBuild>(store, path).await else {
            continue;
        };
        if build.parts != count || !build.fits(source) {
            continue;
        }
        let mut done = Vec::with_capacity(build.starts.len());
        let mut missing = Vec::new();
        for shard in 0..build.shards() {
            let record = object(dir, &build.build_id, &done_name(shard));
            match get_json::<ShardDone>(store, &record).await {
                Ok(Some(record)) if record.shard == shard => done.push(record),
                _ => missing.push(shard),
            }
        }
        if best
            .as_ref()
            .is_none_or(|b| missing.len() < b.missing.len())
        {
            best = Some(Fitting {
                build,
                done,
                missing,
            });
        }
    }
    best
}

/// Deletes every object under `dir` (the kind's builds).
pub(crate) async fn remove(store: &ObjectStoreRef, dir: &str) -> SnapshotResult<()> {
    for path in list(store, dir).await? {
        delete(store, &path).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_contiguous_ranges_of_about_equal_bytes() {
        assert_eq!(split_by_bytes(&[10; 8], 4), vec![0, 2, 4, 6]);
        assert_eq!(split_by_bytes(&[10; 3], 8), vec![0, 1, 2]);
        assert_eq!(split_by_bytes(&[100, 1, 1, 1, 1], 2), vec![0, 1]);
        // A range starts once the bytes before it reach its share: a huge last file
        // leaves one range.
        assert_eq!(split_by_bytes(&[1, 1, 1, 100], 2), vec![0]);
        assert_eq!(split_by_bytes(&[5], 4), vec![0]);
        assert_eq!(split_by_bytes(&[], 4), vec![0]);
        // Every file belongs to exactly one range, in order.
        let starts = split_by_bytes(&[3, 9, 1, 4, 4, 7, 2, 8, 5], 3);
        assert_eq!(starts.len(), 3);
        assert!(starts.windows(2).all(|w| w[0] < w[1]));
    }
}
