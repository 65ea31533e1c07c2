//! The steps of a unit for a caller that already holds the view's [`ViewTarget`] and needs
//! no CDF: the `snapshot` benchmark drives a sharded first build of a view in parts with
//! them, step by step in separate processes, exactly as the units of a fanned-out run do.

use super::{Forms, Scope};
use crate::lake::{Destination, InstanceKind};
use crate::snapshot::budget::Budget;
use crate::snapshot::error::SnapshotResult;
use crate::snapshot::scope::{PartOf, Piece};
use crate::snapshot::{PublishSettings, SliceSettings, ViewReport, ViewTarget, shards};

/// Starts (or continues) a sharded full rebuild of `kind` of `target` in `parts` parts, as
/// a plan step does: the build's id and the shards still to run. `None` when the raw
/// table has no files.
pub async fn plan_shards(
    destination: &Destination,
    target: &ViewTarget,
    settings: &PublishSettings,
    kind: InstanceKind,
    parts: u32,
) -> SnapshotResult<Option<(String, Vec<u32>)>> {
    let ctx = context(destination, settings, Scope::Whole)?;
    Ok(shards::plan(&ctx, target, target.table(kind), parts)
        .await?
        .map(|(build, left)| (build.build_id, left)))
}

/// Sorts shard `shard` of build `build_id` into one run per part, as a shard unit does;
/// the rows it read and the rows of the runs it wrote.
pub async fn sort_shard(
    destination: &Destination,
    target: &ViewTarget,
    settings: &PublishSettings,
    kind: InstanceKind,
    build_id: &str,
    shard: u32,
) -> SnapshotResult<(u64, u64)> {
    let ctx = context(destination, settings, Scope::Whole)?;
    let report = shards::run_shard(&ctx, target, target.table(kind), build_id, shard).await?;
    Ok((report.stats.rows_read, report.rows))
}

/// Publishes part `index` of `count` of `kind` of `target`, as a part unit does (from a
/// complete shard build when there is one), without the manifest.
pub async fn publish_part(
    destination: &Destination,
    target: &ViewTarget,
    settings: &PublishSettings,
    kind: InstanceKind,
    index: u32,
    count: u32,
) -> SnapshotResult<ViewReport> {
    let piece = Piece {
        kind,
        part: Some(PartOf { index, count }),
    };
    publish_one(destination, target, settings, Scope::Piece(piece)).await
}

/// Publishes the single file of `kind` of `target`, as the unit of a view's other file
/// does when one kind is in parts, without the manifest.
pub async fn publish_file(
    destination: &Destination,
    target: &ViewTarget,
    settings: &PublishSettings,
    kind: InstanceKind,
) -> SnapshotResult<ViewReport> {
    let piece = Piece { kind, part: None };
    publish_one(destination, target, settings, Scope::Piece(piece)).await
}

/// Writes the manifest of `target` from what its units left, as the finalize step does:
/// `nodes` and `edges` are the kinds' part counts (1 for one file).
pub async fn assemble(
    destination: &Destination,
    target: &ViewTarget,
    settings: &PublishSettings,
    nodes: u32,
    edges: u32,
) -> SnapshotResult<ViewReport> {
    let forms = Forms { nodes, edges };
    publish_one(destination, target, settings, Scope::Assemble(forms)).await
}

async fn publish_one(
    destination: &Destination,
    target: &ViewTarget,
    settings: &PublishSettings,
    scope: Scope,
) -> SnapshotResult<ViewReport> {
    let reports = crate::snapshot::publish_observed(
        destination,
        std::slice::from_ref(target),
        settings,
        &SliceSettings::of(settings),
        Budget::default(),
        &crate::progress::Progress::none(),
        scope,
    )
    .await?;
    Ok(reports
        .into_iter()
        .next()
        .unwrap_or_else(|| ViewReport::behind(target)))
}

fn context<'a>(
    destination: &'a Destination,
    settings: &PublishSettings,
    scope: Scope,
) -> SnapshotResult<crate::snapshot::file::PublishContext<'a>> {
    crate::snapshot::unit_context(destination, settings, Budget::default(), scope)
}
