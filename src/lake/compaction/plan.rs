//! Which active files compaction may merge, and into which groups.
//!
//! The snapshot orders rows by arrival (Delta version, then position) and keeps a stream's
//! generations apart. A merged file can only keep that order if it replaces a stretch of the
//! table's history that no other data interleaves: a group is a run of files that are
//! adjacent in arrival order, all from one stream and one generation. Files whose origin is
//! not known (added by another tool, or before the readable log) and files that are already
//! large end a run; they are never merged.

use super::{CompactionGroup, CompactionInfo, SourceFile};

/// Where the rows of an active file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Rows of one stream generation, committed in versions `first..=last` (one version
    /// for a sync commit's file, a range for a compacted file).
    Stream {
        app_id: String,
        generation: u64,
        first: u64,
        last: u64,
    },
    /// A file this replicator did not write, at the version that added it.
    Foreign { version: u64 },
}

impl Origin {
    /// The oldest version whose rows the file holds.
    pub(crate) fn first(&self) -> u64 {
        match self {
            Origin::Stream { first, .. } => *first,
            Origin::Foreign { version } => *version,
        }
    }
}

/// An active file with a known origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    pub(crate) file: SourceFile,
    pub(crate) origin: Origin,
    /// Position of the file among the adds of the commit that added it.
    pub(crate) index: usize,
    /// Whether everything that arrived between this file and its neighbours is known, so
    /// that merging it cannot skip over an unknown file.
    pub(crate) position_known: bool,
}

/// Orders units by arrival: the first version they hold, then their place in the commit.
pub(crate) fn arrival_order(units: &mut [Unit]) {
    units.sort_by(|a, b| {
        (a.origin.first(), a.index, &a.file.path).cmp(&(b.origin.first(), b.index, &b.file.path))
    });
}

/// Groups runs of small, adjacent files of one stream generation, each group up to
/// `target_size` bytes, in arrival order. Groups of one file are dropped: merging them
/// would only rewrite the file.
pub(crate) fn group_runs(units: &[Unit], target_size: u64) -> Vec<CompactionGroup> {
    let mut groups = Vec::new();
    let mut run: Vec<&Unit> = Vec::new();
    let mut run_bytes = 0u64;
    let close = |run: &mut Vec<&Unit>, groups: &mut Vec<CompactionGroup>| {
        if run.len() >= 2
            && let Some(group) = group_of(run)
        {
            groups.push(group);
        }
        run.clear();
    };
    for unit in units {
        let size = unit.file.size;
        let mergeable = unit.position_known
            && size < target_size
            && matches!(unit.origin, Origin::Stream { .. });
        if !mergeable {
            close(&mut run, &mut groups);
            run_bytes = 0;
            continue;
        }
        let continues = run
            .last()
            .is_some_and(|last| same_stream_generation(&last.origin, &unit.origin));
        if !continues || run_bytes + size > target_size {
            close(&mut run, &mut groups);
            run_bytes = 0;
        }
        run_bytes += size;
        run.push(unit);
    }
    close(&mut run, &mut groups);
    groups
}

fn same_stream_generation(a: &Origin, b: &Origin) -> bool {
    match (a, b) {
        (
            Origin::Stream {
                app_id: a_app,
                generation: a_gen,
                ..
            },
            Origin::Stream {
                app_id: b_app,
                generation: b_gen,
                ..
            },
        ) => a_app == b_app && a_gen == b_gen,
        _ => false,
    }
}

fn group_of(run: &[&Unit]) -> Option<CompactionGroup> {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return None;
    };
    let (
        Origin::Stream {
            app_id,
            generation,
            first: first_version,
            ..
        },
        Origin::Stream {
            last: last_version, ..
        },
    ) = (&first.origin, &last.origin)
    else {
        return None;
    };
    Some(CompactionGroup {
        info: CompactionInfo {
            app_id: app_id.clone(),
            generation: *generation,
            first_version: *first_version,
            last_version: *last_version,
            source_files: run.len(),
        },
        files: run.iter().map(|unit| unit.file.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(path: &str, size: u64, app: &str, generation: u64, first: u64, last: u64) -> Unit {
        Unit {
            file: SourceFile {
                path: path.into(),
                size,
                rows: Some(1),
            },
            origin: Origin::Stream {
                app_id: app.into(),
                generation,
                first,
                last,
            },
            index: 0,
            position_known: true,
        }
    }

    fn paths(group: &CompactionGroup) -> Vec<&str> {
        group.files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn adjacent_files_of_one_stream_generation_form_one_group() {
        let units = [
            unit("a", 10, "s", 1, 1, 1),
            unit("b", 10, "s", 1, 2, 2),
            unit("c", 10, "s", 1, 4, 4),
        ];
        let groups = group_runs(&units, 100);
        assert_eq!(groups.len(), 1);
        assert_eq!(paths(&groups[0]), ["a", "b", "c"]);
        let info = &groups[0].info;
        assert_eq!((info.first_version, info.last_version), (1, 4));
        assert_eq!(info.source_files, 3);
    }

    #[test]
    fn another_stream_generation_or_large_file_ends_a_run() {
        let units = [
            unit("a1", 10, "a", 1, 1, 1),
            unit("a2", 10, "a", 1, 2, 2),
            unit("b", 10, "b", 1, 3, 3),
            unit("a3", 10, "a", 1, 4, 4),
            unit("a4", 10, "a", 1, 5, 5),
            unit("a5", 10, "a", 2, 6, 6),
            unit("a6", 10, "a", 2, 7, 7),
            unit("big", 100, "a", 2, 8, 8),
            unit("a7", 10, "a", 2, 9, 9),
        ];
        let groups = group_runs(&units, 100);
        let got: Vec<Vec<&str>> = groups.iter().map(paths).collect();
        assert_eq!(got, [vec!["a1", "a2"], vec!["a3", "a4"], vec!["a5", "a6"]]);
        assert_eq!(groups[2].info.generation, 2);
    }

    #[test]
    fn foreign_or_unplaced_files_are_never_merged_and_end_runs() {
        let mut foreign = unit("x", 10, "a", 1, 3, 3);
        foreign.origin = Origin::Foreign { version: 3 };
        let mut unplaced = unit("u", 10, "a", 1, 6, 6);
        unplaced.position_known = false;
        let units = [
            unit("a1", 10, "a", 1, 1, 1),
            unit("a2", 10, "a", 1, 2, 2),
            foreign,
            unit("a3", 10, "a", 1, 4, 4),
            unplaced,
            unit("a4", 10, "a", 1, 7, 7),
        ];
        let groups = group_runs(&units, 100);
        let got: Vec<Vec<&str>> = groups.iter().map(paths).collect();
        assert_eq!(got, [vec!["a1", "a2"]]);
    }

    #[test]
    fn runs_split_at_the_target_size() {
        let units = [
            unit("a", 40, "s", 1, 1, 1),
            unit("b", 40, "s", 1, 2, 2),
            unit("c", 40, "s", 1, 3, 3),
            unit("d", 40, "s", 1, 4, 4),
            unit("e", 40, "s", 1, 5, 5),
        ];
        let groups = group_runs(&units, 100);
        let got: Vec<Vec<&str>> = groups.iter().map(paths).collect();
        assert_eq!(got, [vec!["a", "b"], vec!["c", "d"]]);
    }

    #[test]
    fn compacted_files_merge_with_their_neighbours_by_range() {
        let mut units = vec![
            unit("new", 10, "s", 1, 11, 11),
            unit("compacted", 30, "s", 1, 1, 10),
            unit("newer", 10, "s", 1, 12, 12),
        ];
        arrival_order(&mut units);
        let groups = group_runs(&units, 100);
        assert_eq!(paths(&groups[0]), ["compacted", "new", "newer"]);
        assert_eq!(
            (groups[0].info.first_version, groups[0].info.last_version),
            (1, 12)
        );
    }
}
