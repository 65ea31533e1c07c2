//! Where each active file came from: the commit that added it, read back from the log.
//!
//! The scan runs backwards from the loaded version and stops as soon as every small file is
//! placed and everything that arrived since the oldest of them is known. Files it never
//! reaches were added earlier than all of that, so they cannot sit between two files that
//! are merged. When the log ends first (log retention) or the scan limit is reached, files
//! whose rows reach back beyond the scanned commits are not merged.

use std::collections::{HashMap, HashSet};

use futures::future::try_join_all;

use super::SourceFile;
use super::plan::{Origin, Unit, arrival_order};
use crate::lake::commit_metadata::CompactionInfo;
use crate::lake::error::LakeResult;
use crate::lake::log::{ActiveFile, VersionChanges};
use crate::lake::table::LakeTable;

/// How many commit files are fetched at once.
const SCAN_CHUNK: u64 = 16;

/// The active files placed in arrival order.
pub(crate) struct Located {
    pub(crate) units: Vec<Unit>,
    pub(crate) active_files: usize,
    pub(crate) small_files: usize,
    pub(crate) scanned_commits: u64,
}

impl LakeTable {
    /// Places the active files of the loaded version. Files smaller than `small_below` are
    /// the ones compaction may merge; the scan reads at most `max_scan` commits.
    pub(crate) async fn locate_active_files(
        &self,
        small_below: u64,
        max_scan: u64,
    ) -> LakeResult<Located> {
        let active: HashMap<String, ActiveFile> = self
            .active_files()?
            .into_iter()
            .map(|file| (file.path.clone(), file))
            .collect();
        let mut pending_small: HashSet<&str> = active
            .values()
            .filter(|file| file_size(file) < small_below)
            .map(|file| file.path.as_str())
            .collect();
        let mut located = Located {
            units: Vec::new(),
            active_files: active.len(),
            small_files: pending_small.len(),
            scanned_commits: 0,
        };
        let Some(newest) = self.version() else {
            return Ok(located);
        };
        if pending_small.is_empty() || max_scan == 0 {
            return Ok(located);
        }
        let oldest_allowed = newest.saturating_sub(max_scan - 1);
        let mut found: HashMap<&str, (Origin, usize)> = HashMap::new();
        let mut oldest_small_first: Option<u64> = None;
        // Every file added at `floor` or later is placed.
        let mut floor = newest + 1;
        let mut upper = newest;
        'scan: loop {
            let lower = upper.saturating_sub(SCAN_CHUNK - 1).max(oldest_allowed);
            let versions: Vec<u64> = (lower..=upper).rev().collect();
            let commits = try_join_all(versions.iter().map(|&v| self.read_commit(v))).await?;
            for (version, commit) in versions.into_iter().zip(commits) {
                let Some(commit) = commit else {
                    // Removed by log retention: everything older is gone too.
                    break 'scan;
                };
                located.scanned_commits += 1;
                floor = version;
                let origin = origin_of(&commit);
                for (index, add) in commit.adds.iter().enumerate() {
                    let Some((path, file)) = active.get_key_value(add.path.as_str()) else {
                        continue;
                    };
                    if found.contains_key(path.as_str()) {
                        continue;
                    }
                    found.insert(path.as_str(), (origin.clone(), index));
                    if pending_small.remove(path.as_str()) && file_size(file) < small_below {
                        let first = origin.first();
                        oldest_small_first =
                            Some(oldest_small_first.map_or(first, |f| f.min(first)));
                    }
                }
                let reached_oldest = oldest_small_first.is_none_or(|first| version <= first);
                if (pending_small.is_empty() && reached_oldest) || version == 0 {
                    break 'scan;
                }
            }
            if lower == oldest_allowed {
                break;
            }
            upper = lower - 1;
        }
        located.units = found
            .into_iter()
            .filter_map(|(path, (origin, index))| {
                let file = active.get(path)?;
                Some(Unit {
                    file: SourceFile {
                        path: file.path.clone(),
                        size: file_size(file),
                        rows: file.num_records,
                    },
                    position_known: origin.first() >= floor,
                    origin,
                    index,
                })
            })
            .collect();
        arrival_order(&mut located.units);
        Ok(located)
    }
}

/// The origin of the files a commit added.
pub(crate) fn origin_of(commit: &VersionChanges) -> Origin {
    if let Some(info) = CompactionInfo::of_commit(commit) {
        return Origin::Stream {
            app_id: info.app_id,
            generation: info.generation,
            first: info.first_version,
            last: info.last_version,
        };
    }
    let stream = commit.stream_commit.as_ref().and_then(|stream| {
        let generation = stream.metadata.generation?;
        let data_change = commit.adds.iter().all(|add| add.data_change);
        data_change.then(|| (stream.app_id.clone(), generation))
    });
    match stream {
        Some((app_id, generation)) => Origin::Stream {
            app_id,
            generation,
            first: commit.version,
            last: commit.version,
        },
        None => Origin::Foreign {
            version: commit.version,
        },
    }
}

fn file_size(file: &ActiveFile) -> u64 {
    u64::try_from(file.size).unwrap_or(0)
}
