//! Publishing one view: `nodes.parquet`, then `edges.parquet`, then `_manifest.json`.
//!
//! The manifest goes last, so it never names a file state that is not (yet) there. A crash
//! after a data file but before the manifest leaves a file newer than its manifest entry,
//! which the next run handles (see [`super::incremental`]).

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::file::{PublishContext, publish_file};
use super::manifest::{self, FORMAT_VERSION, Manifest, ManifestState};
use super::plan::ViewTarget;
use super::summary::{FileAction, ViewReport};
use crate::lake::InstanceKind;

/// Publishes one view's files and manifest. Never fails as a whole: problems are in the
/// report, and files that could not be written keep their previous state.
pub(crate) async fn publish_view(ctx: &PublishContext<'_>, target: &ViewTarget) -> ViewReport {
    let started = Instant::now();
    let paths = ctx.destination.publish_paths(&target.model, &target.folder);
    let state = manifest::read(&ctx.store, &paths.manifest).await;
    if let ManifestState::Unusable(reason) = &state {
        tracing::warn!(view = %target.folder, %reason, "the manifest is unusable; rebuilding the view's files");
    }

    let mut files = Vec::with_capacity(2);
    let mut entries = BTreeMap::new();
    for kind in [InstanceKind::Nodes, InstanceKind::Edges] {
        let (report, entry) = publish_file(
            ctx,
            target,
            target.table(kind),
            state.entry(kind),
            paths.data_file(kind),
        )
        .await;
        tracing::info!(view = %target.folder, %kind, action = ?report.action, rows = report.rows, "published file");
        files.push(report);
        if let Some(entry) = entry {
            entries.insert(kind.as_str().to_owned(), entry);
        }
        crate::failpoint::hit(match kind {
            InstanceKind::Nodes => "snapshot-after-nodes-file",
            InstanceKind::Edges => "snapshot-after-edges-file",
        });
    }

    let written = files
        .iter()
        .any(|f| matches!(f.action, FileAction::Incremental | FileAction::Rebuilt));
    let mut report = ViewReport {
        model: target.model_label(),
        view: target.folder.to_string(),
        files,
        manifest_written: false,
        duration_ms: 0,
        error: None,
    };
    if written {
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            model: target.model_label(),
            view: target.folder.to_string(),
            written_at: manifest::now_rfc3339(),
            tool_version: manifest::tool_version(),
            files: entries,
        };
        match manifest::write(&ctx.store, &paths.manifest, &manifest).await {
            Ok(()) => {
                report.manifest_written = true;
                crate::failpoint::hit("snapshot-after-manifest");
            }
            Err(error) => report.error = Some(error.to_failure()),
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}
