//! Removing the objects of a form a view's file no longer has: the single file after the
//! switch to parts, the parts after the switch back, the parts of an old part count.
//!
//! A switch writes the new form under new keys and leaves the old one in place, so readers
//! of the old form keep reading it until the manifest (and the catalog) name the new one.
//! After the run has written the manifests and registered the catalog, it removes, per
//! view and kind, every data object that the *current* manifest does not name: re-reading
//! the manifest right before deleting means that an object another run's newer manifest
//! names is never removed. Objects of a kind the manifest has no entry for are left alone
//! (nothing else describes what is there). A view whose catalog tables failed keeps its old
//! objects: Athena may still read them.
//!
//! Removal is best effort: a failure is logged, and the next run that writes the view's
//! manifest (or any run, for a view in parts) tries again.

use deltalake::Path;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use futures::TryStreamExt as _;

use super::catalog::CatalogReport;
use super::manifest::{self, ManifestState};
use super::summary::ViewReport;
use crate::lake::{Destination, InstanceKind, layout};

/// Removes replaced objects of every view in `views` that asks for it, unless the catalog
/// registration left the view (or everything) on the old objects.
pub(crate) async fn after_publish(
    destination: &Destination,
    views: &[ViewReport],
    catalog: Option<&CatalogReport>,
) {
    if catalog.is_some_and(|c| c.error.is_some()) {
        return;
    }
    let store = match destination.object_store() {
        Ok(store) => store,
        Err(error) => {
            tracing::warn!(%error, "replaced publish objects are kept: the store is unavailable");
            return;
        }
    };
    for view in views {
        let Some(dir) = &view.retire else { continue };
        let catalog_failed = catalog.is_some_and(|c| {
            c.tables
                .iter()
                .any(|t| t.model == view.model && t.view == view.view && t.error.is_some())
        });
        if catalog_failed {
            tracing::info!(view = %view.view, "keeping the view's replaced objects until its catalog tables are registered");
            continue;
        }
        retire_replaced(&store, dir).await;
    }
}

/// Removes the data objects in the view folder `dir` that its manifest does not name.
/// Returns how many were removed.
pub(crate) async fn retire_replaced(store: &ObjectStoreRef, dir: &str) -> usize {
    let manifest_path = format!("{dir}/_manifest.json");
    let ManifestState::Found(manifest) = manifest::read(store, &manifest_path).await else {
        return 0;
    };
    let objects: Vec<String> = match store
        .list(Some(&Path::from(dir)))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
    {
        Ok(objects) => objects,
        Err(error) => {
            tracing::warn!(dir, %error, "could not list the view folder; replaced objects are kept");
            return 0;
        }
    };
    let mut removed = 0;
    for object in objects {
        let Some(relative) = object.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        let Some(kind) = data_object_kind(relative) else {
            continue;
        };
        let Some(entry) = manifest.files.get(kind.as_str()) else {
            continue;
        };
        if entry.objects(dir).iter().any(|(named, _)| *named == object) {
            continue;
        }
        match store.delete(&Path::from(object.as_str())).await {
            Ok(()) | Err(deltalake::ObjectStoreError::NotFound { .. }) => {
                tracing::info!(object = %object, "removed an object of a replaced form");
                removed += 1;
            }
            Err(error) => {
                tracing::warn!(object = %object, %error, "could not remove an object of a replaced form");
            }
        }
    }
    removed
}

/// The kind of a data object of a view folder (`nodes.parquet`, `edges/part-…`), if the
/// relative path is one.
fn data_object_kind(relative: &str) -> Option<InstanceKind> {
    if let Some((kind, _, _)) = layout::parse_part_name(relative) {
        return Some(kind);
    }
    [InstanceKind::Nodes, InstanceKind::Edges]
        .into_iter()
        .find(|kind| relative == format!("{kind}.parquet"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::snapshot::arrival::StreamStates;
    use crate::snapshot::manifest::{FORMAT_VERSION, FileEntry, Manifest, PartsEntry};

    const DIR: &str = "publish/s/M/1/Pump";

    fn entry(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            source_table: "t".into(),
            table_version: Some(1),
            rows: 1,
            bytes: 1,
            streams: StreamStates::new(),
            raw_schema_fingerprint: "f".into(),
            publish_schema: Vec::new(),
            sorted_by: Vec::new(),
            written_at: "w".into(),
            tool_version: "v".into(),
            e_tag: None,
            write_id: None,
            parts: None,
        }
    }

    async fn put(store: &ObjectStoreRef, relative: &str) {
        store
            .put(
                &Path::from(format!("{DIR}/{relative}")),
                b"x".to_vec().into(),
            )
            .await
            .unwrap();
    }

    async fn listing(store: &ObjectStoreRef) -> Vec<String> {
        let mut names: Vec<String> = store
            .list(Some(&Path::from(DIR)))
            .map_ok(|m| m.location.to_string()[DIR.len() + 1..].to_owned())
            .try_collect()
            .await
            .unwrap();
        names.sort();
        names
    }

    #[tokio::test]
    async fn only_objects_the_manifest_does_not_name_are_removed() {
        let store: ObjectStoreRef =
            Arc::new(deltalake::logstore::object_store::memory::InMemory::new());
        for object in [
            "nodes.parquet",
            "nodes/part-00000-of-00002.parquet",
            "nodes/part-00001-of-00002.parquet",
            "nodes/part-00000-of-00004.parquet",
            "nodes/notes.txt",
            "edges.parquet",
            "edges/part-00000-of-00002.parquet",
        ] {
            put(&store, object).await;
        }
        // Without a manifest nothing is known, and nothing is removed.
        assert_eq!(retire_replaced(&store, DIR).await, 0);

        let mut nodes = entry("nodes/");
        nodes.parts = Some(PartsEntry {
            count: 2,
            hash: "h".into(),
            files: vec![
                entry("nodes/part-00000-of-00002.parquet"),
                entry("nodes/part-00001-of-00002.parquet"),
            ],
        });
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            model: "s:M/1".into(),
            view: "Pump".into(),
            written_at: "w".into(),
            tool_version: "v".into(),
            pending_since: None,
            files: BTreeMap::from([
                ("nodes".to_owned(), nodes),
                ("edges".to_owned(), entry("edges.parquet")),
            ]),
        };
        store
            .put(
                &Path::from(format!("{DIR}/_manifest.json")),
                serde_json::to_vec(&manifest).unwrap().into(),
            )
            .await
            .unwrap();
        assert_eq!(retire_replaced(&store, DIR).await, 3);
        assert_eq!(
            listing(&store).await,
            [
                "_manifest.json",
                "edges.parquet",
                "nodes/notes.txt",
                "nodes/part-00000-of-00002.parquet",
                "nodes/part-00001-of-00002.parquet",
            ]
        );

        // A kind the manifest does not describe keeps its objects.
        let mut only_edges = manifest.clone();
        only_edges.files.remove("nodes");
        store
            .put(
                &Path::from(format!("{DIR}/_manifest.json")),
                serde_json::to_vec(&only_edges).unwrap().into(),
            )
            .await
            .unwrap();
        put(&store, "nodes.parquet").await;
        assert_eq!(retire_replaced(&store, DIR).await, 0);
    }
}
