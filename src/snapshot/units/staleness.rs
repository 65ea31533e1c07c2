//! How far behind a view's published files are, and how much raw data publishing it reads.
//!
//! The plan orders its units by this, most stale first, so that the views that waited
//! longest are the first to get a worker, and among equally stale views the largest start
//! first (a long unit started last would stretch the whole run). Reading it costs one
//! manifest read and one Delta log load per raw table: nothing is read from the data files.

use deltalake::logstore::ObjectStoreRef;
use serde::Serialize;

use crate::lake::{Destination, InstanceKind, LakeTable, WriteOptions};
use crate::snapshot::ViewTarget;
use crate::snapshot::manifest::{self, FileEntry, ManifestState};
use crate::snapshot::parts::choose_count;
use crate::snapshot::scope::Forms;

/// How the published files of a view compare with its raw tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Staleness {
    /// No usable manifest: the view was never published (or its manifest cannot be used).
    Unpublished,
    /// A raw table has commits the published files do not reflect yet (or could not be
    /// read, which publishing will report).
    Behind,
    /// Every raw table is at the version the manifest records: publishing skips the files.
    Current,
}

/// What the plan knows of one view before publishing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViewState {
    pub(crate) staleness: Staleness,
    /// When the manifest was written (RFC 3339), if there is a usable one.
    pub(crate) published_at: Option<String>,
    /// Bytes of the active data files of the view's raw tables.
    pub(crate) raw_bytes: u64,
    /// Rows of those files (changes, tombstones included), as their statistics record.
    pub(crate) raw_rows: u64,
    /// The form each kind gets when it is published: what a publish of the whole view
    /// decides ([`crate::snapshot::parts::choose_count`] of the published rows, or of the
    /// raw table's rows before the first publish).
    pub(crate) forms: Forms,
    /// Bytes of the active data files of each kind's raw table (nodes, edges).
    pub(crate) kind_bytes: [u64; 2],
    /// Whether every part of the kind needs a full rebuild (nodes, edges): the kind goes
    /// into parts for the first time, or changes its part count. Such a kind is rebuilt
    /// with shards ([`crate::snapshot::shards`]).
    pub(crate) rebuilds_all_parts: [bool; 2],
}

/// The state of `target`'s files. Never fails: what cannot be read makes the view count as
/// behind with the figures that could be read, and its unit reports the problem.
pub(crate) async fn view_state(
    destination: &Destination,
    store: &ObjectStoreRef,
    target: &ViewTarget,
    part_rows: u64,
) -> ViewState {
    let paths = destination.publish_paths(&target.model, &target.folder);
    let manifest = manifest::read(store, &paths.manifest).await;
    let published_at = match &manifest {
        ManifestState::Found(manifest) => Some(manifest.written_at.clone()),
        _ => None,
    };
    let mut state = ViewState {
        staleness: Staleness::Current,
        published_at,
        raw_bytes: 0,
        raw_rows: 0,
        forms: Forms { nodes: 1, edges: 1 },
        kind_bytes: [0, 0],
        rebuilds_all_parts: [false, false],
    };
    for (slot, kind) in [InstanceKind::Nodes, InstanceKind::Edges]
        .into_iter()
        .enumerate()
    {
        if !target.table(kind).has_streams() {
            continue;
        }
        let listed = manifest.entry(kind);
        let published = listed.and_then(|entry| entry.table_version);
        let current = listed.map_or(1, FileEntry::part_count);
        let mut count = current;
        match raw_table(destination, target, kind).await {
            Some((version, bytes, rows)) => {
                state.raw_bytes += bytes;
                state.raw_rows += rows;
                state.kind_bytes[slot] = bytes;
                let rows = listed.map_or(rows, |entry| entry.rows);
                count = choose_count(current, rows, part_rows);
                if version != published {
                    state.staleness = Staleness::Behind;
                }
            }
            None => state.staleness = Staleness::Behind,
        }
        match kind {
            InstanceKind::Nodes => state.forms.nodes = count,
            InstanceKind::Edges => state.forms.edges = count,
        }
        state.rebuilds_all_parts[slot] = count > 1 && current != count;
    }
    if !matches!(manifest, ManifestState::Found(_)) {
        state.staleness = Staleness::Unpublished;
    }
    state
}

/// The raw table's version and the bytes and rows of its active files; `None` when it
/// cannot be opened.
async fn raw_table(
    destination: &Destination,
    target: &ViewTarget,
    kind: InstanceKind,
) -> Option<(Option<u64>, u64, u64)> {
    let url = destination
        .raw_table_url(&target.model, &target.folder, kind)
        .ok()?;
    let table = match LakeTable::open(destination, url, WriteOptions::default()).await {
        Ok(table) => table,
        Err(error) => {
            tracing::warn!(view = %target.folder, %kind, %error, "the raw table could not be opened to plan its view; its unit will report it");
            return None;
        }
    };
    let files = table.active_files().ok()?;
    let bytes = files
        .iter()
        .map(|f| u64::try_from(f.size).unwrap_or(0))
        .sum();
    let rows = files.iter().filter_map(|f| f.num_records).sum();
    Some((table.version(), bytes, rows))
}
