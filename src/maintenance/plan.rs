//! The tables a maintenance run visits: one per model, view folder and instance kind, plus
//! each view's quarantine table, derived from the same stream plan the sync uses, so both
//! always agree on the tables.

use std::collections::BTreeMap;

use crate::lake::{InstanceKind, ModelRef, ViewFolder, layout};
use crate::plan::StreamSpec;

/// One raw table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MaintenanceTarget {
    pub(crate) model: ModelRef,
    pub(crate) view_folder: ViewFolder,
    /// The kind of instances the table holds; `None` for the view's quarantine table, which
    /// most views never get, so a missing one is not reported.
    pub(crate) kind: Option<InstanceKind>,
    /// The table path relative to the destination prefix; names the table in reports.
    pub(crate) path: String,
}

/// The distinct tables of `streams` (several edge streams share a view's edge table, every
/// stream of a view its quarantine table), in path order.
pub(crate) fn tables_of(streams: &[StreamSpec]) -> Vec<MaintenanceTarget> {
    let mut tables = BTreeMap::new();
    for spec in streams {
        let kind = spec.instance_kind();
        let changes = layout::raw_table_path(&spec.model, &spec.view_folder, kind);
        let quarantine = layout::rejected_table_path(&spec.model, &spec.view_folder);
        for (path, kind) in [(changes, Some(kind)), (quarantine, None)] {
            tables
                .entry(path.clone())
                .or_insert_with(|| MaintenanceTarget {
                    model: spec.model.clone(),
                    view_folder: spec.view_folder.clone(),
                    kind,
                    path,
                });
        }
    }
    tables.into_values().collect()
}
