//! The lake's side of a file's checks: the raw table opened read-only, its retained log,
//! the manifest entry against the objects' footers, and the publish layer's store.

use deltalake::logstore::ObjectStoreRef;
use futures::{StreamExt as _, stream};
use url::Url;

use super::published::PublishedObject;
use super::report::{DivergenceClass, Example, FileVerification};
use crate::failure::Failure;
use crate::lake::{Destination, InstanceKind, LakeTable, VersionChanges};
use crate::snapshot::ViewTarget;
use crate::snapshot::stamp::Stamped;

/// Newest commits of a raw table read for foreign commits and the watermark.
const LOG_SCAN: u64 = 1000;

/// Commit files read at once.
const COMMIT_READS: usize = 16;

/// Opens the raw table for reading, never creating anything; `None` when it does not
/// exist.
pub(super) async fn open_table(
    destination: &Destination,
    target: &ViewTarget,
    kind: InstanceKind,
) -> Result<Option<LakeTable>, Failure> {
    let url: Url = destination
        .raw_table_url(&target.model, &target.folder, kind)
        .map_err(|e| Failure::lake("locating the raw table", &e))?;
    LakeTable::open_existing(destination, url)
        .await
        .map_err(|e| Failure::lake("opening the raw table", &e))
}

/// Manifest entry against each object's footer.
pub(super) fn check_objects(objects: &[PublishedObject], file: &mut FileVerification) {
    for object in objects {
        let column = |figure: &str| format!("{figure} of {}", object.path);
        match &object.stamp {
            Stamped::Stamp(stamp) => match (stamp.table_version, object.entry_version) {
                (Some(footer), Some(manifest)) if footer < manifest => file.diverges(
                    DivergenceClass::StaleFile,
                    Example::of_figure(&column("tableVersion"), footer, manifest),
                ),
                (footer, manifest) if footer != manifest => file.diverges(
                    DivergenceClass::ManifestMismatch,
                    Example::of_figure(
                        &column("tableVersion"),
                        optional(footer),
                        optional(manifest),
                    ),
                ),
                _ => {}
            },
            Stamped::Unstamped => file.diverges(
                DivergenceClass::ManifestMismatch,
                Example::of_figure(&column("stamp"), "(none)", "a stamped file"),
            ),
            Stamped::Invalid(reason) => file.diverges(
                DivergenceClass::ManifestMismatch,
                Example::of_figure(&column("stamp"), reason, "a stamped file"),
            ),
        }
        if object.rows != object.entry_rows {
            file.diverges(
                DivergenceClass::ManifestMismatch,
                Example::of_figure(&column("rows"), object.rows, object.entry_rows),
            );
        }
    }
}

/// The retained commits of `table`, newest [`LOG_SCAN`] at most, oldest first.
pub(super) async fn retained_log(table: &LakeTable) -> Result<Vec<VersionChanges>, Failure> {
    let Some(newest) = table.version() else {
        return Ok(Vec::new());
    };
    let oldest = newest.saturating_sub(LOG_SCAN - 1);
    let read: Vec<Option<VersionChanges>> = stream::iter((oldest..=newest).rev())
        .map(|version| table.read_commit(version))
        .buffered(COMMIT_READS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::lake("reading the raw table's log", &e))?;
    // Log retention removes the oldest commits first: stop at the first gap.
    let mut commits: Vec<VersionChanges> = read.into_iter().map_while(|c| c).collect();
    commits.reverse();
    Ok(commits)
}

/// The publish layer's object store, or `None` for a local lake whose directory does not
/// exist (opening it would create it).
pub(super) fn read_store(destination: &Destination) -> Option<ObjectStoreRef> {
    if let Destination::Local(local) = destination
        && !local.root().is_dir()
    {
        return None;
    }
    destination.object_store().ok()
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}
