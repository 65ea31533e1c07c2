//! The order a run publishes views in: most stale first.
//!
//! A view's staleness is what its manifest says: never published (no usable manifest)
//! comes first; then the oldest `pendingSince` (a view the deadline left in part, see
//! [`super::manifest::Manifest::pending_since`]) or, without one, the oldest `writtenAt`.
//! Ties keep the plan's order.
//!
//! Why this bounds the wait: a run writes a view's manifest (with a `writtenAt` after the
//! run started) only when it published every changed file of the view; a view whose work
//! the deadline left keeps its older time. The next run therefore reaches every view that
//! was left behind before any view that the previous run brought up to date, so no view
//! waits more than one run behind the views that do get done. A view whose raw tables did
//! not change keeps its old time too and is visited early, but it costs only a check.

use chrono::{DateTime, Utc};
use deltalake::logstore::ObjectStoreRef;
use futures::StreamExt as _;

use super::manifest::{self, ManifestState};
use super::plan::ViewTarget;
use crate::lake::Destination;

/// Manifests read at once while ordering.
const MANIFESTS_READ_AHEAD: usize = 8;

/// How long a view has been waiting, as its manifest tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Staleness {
    /// No usable manifest: never published (or unreadable, which a run repairs first).
    Never,
    /// Current as of this time (or waiting since it).
    Since(DateTime<Utc>),
}

impl Staleness {
    /// The staleness a manifest gives its view.
    pub(crate) fn of(state: &ManifestState) -> Self {
        match state {
            ManifestState::Found(manifest) => {
                let time = manifest
                    .pending_since
                    .as_deref()
                    .unwrap_or(&manifest.written_at);
                match DateTime::parse_from_rfc3339(time) {
                    Ok(time) => Staleness::Since(time.with_timezone(&Utc)),
                    // A time nobody can read is no reason to let the view wait.
                    Err(_) => Staleness::Never,
                }
            }
            ManifestState::Missing | ManifestState::Unusable(_) => Staleness::Never,
        }
    }
}

/// The targets, most stale first (a stable sort: ties keep their order).
pub(crate) async fn most_stale_first<'a>(
    destination: &Destination,
    store: &ObjectStoreRef,
    targets: &'a [ViewTarget],
) -> Vec<&'a ViewTarget> {
    let staleness: Vec<Staleness> = futures::stream::iter(targets)
        .map(|target| async move {
            let paths = destination.publish_paths(&target.model, &target.folder);
            Staleness::of(&manifest::read(store, &paths.manifest).await)
        })
        .buffered(MANIFESTS_READ_AHEAD)
        .collect()
        .await;
    sorted(targets.iter().zip(staleness))
}

fn sorted<T>(items: impl Iterator<Item = (T, Staleness)>) -> Vec<T> {
    let mut items: Vec<(T, Staleness)> = items.collect();
    items.sort_by_key(|item| item.1);
    items.into_iter().map(|(item, _)| item).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::snapshot::manifest::{FORMAT_VERSION, Manifest};

    fn found(written_at: &str, pending_since: Option<&str>) -> ManifestState {
        ManifestState::Found(Box::new(Manifest {
            format_version: FORMAT_VERSION,
            model: "s:M/1".into(),
            view: "V".into(),
            written_at: written_at.into(),
            tool_version: "t".into(),
            files: BTreeMap::new(),
            pending_since: pending_since.map(str::to_owned),
        }))
    }

    #[test]
    fn never_published_then_oldest_then_plan_order() {
        let views = [
            (
                "fresh",
                Staleness::of(&found("2025-05-02T10:00:00.000Z", None)),
            ),
            (
                "old",
                Staleness::of(&found("2025-05-01T10:00:00.000Z", None)),
            ),
            ("new", Staleness::of(&ManifestState::Missing)),
            (
                "tie",
                Staleness::of(&found("2025-05-02T10:00:00.000Z", None)),
            ),
            (
                "broken",
                Staleness::of(&ManifestState::Unusable("bad".into())),
            ),
        ];
        let order = sorted(views.into_iter());
        assert_eq!(order, ["new", "broken", "old", "fresh", "tie"]);
    }

    /// A view published in part wrote a new manifest, but keeps its place in line: the time
    /// it has been waiting since, not the time of its last write.
    #[test]
    fn a_view_published_in_part_keeps_its_place() {
        let partial = found("2025-05-03T10:00:00.000Z", Some("2025-05-01T09:00:00.000Z"));
        let done_meanwhile = found("2025-05-02T10:00:00.000Z", None);
        let order = sorted(
            [
                ("done", Staleness::of(&done_meanwhile)),
                ("partial", Staleness::of(&partial)),
            ]
            .into_iter(),
        );
        assert_eq!(order, ["partial", "done"]);
    }
}
