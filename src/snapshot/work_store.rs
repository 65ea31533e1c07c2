//! The snapshot's small documents in the lake's work area (`_work/`): build progress, shard
//! builds and their records, kept entries. Each is one JSON object, read whole; a missing
//! or unreadable one is `None`, so that the caller starts over rather than fails.

use deltalake::ObjectStoreError;
use deltalake::Path;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};

use super::error::{SnapshotError, SnapshotResult};

/// Every object under `dir`.
pub(crate) async fn list(store: &ObjectStoreRef, dir: &str) -> SnapshotResult<Vec<String>> {
    let prefix = Path::from(dir);
    store
        .list(Some(&prefix))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .map_err(|e| SnapshotError::store("listing", dir, e))
}

/// The document at `path`: `None` when there is none or it does not parse as a `T`.
pub(crate) async fn get_json<T: for<'de> Deserialize<'de>>(
    store: &ObjectStoreRef,
    path: &str,
) -> SnapshotResult<Option<T>> {
    let bytes = match store.get(&Path::from(path)).await {
        Ok(result) => result
            .bytes()
            .await
            .map_err(|e| SnapshotError::store("reading", path, e))?,
        Err(ObjectStoreError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(SnapshotError::store("reading", path, error)),
    };
    Ok(serde_json::from_slice(&bytes).ok())
}

/// Writes `value` to `path` (unconditionally: each document has one writer at a time, or
/// is checked by whoever reads it).
pub(crate) async fn put_json<T: Serialize>(
    store: &ObjectStoreRef,
    path: &str,
    value: &T,
) -> SnapshotResult<()> {
    let body = serde_json::to_vec_pretty(value).map_err(|e| SnapshotError::Manifest {
        path: path.to_owned(),
        reason: format!("serializing: {e}"),
    })?;
    store
        .put(&Path::from(path), body.into())
        .await
        .map_err(|e| SnapshotError::store("writing", path, e))?;
    Ok(())
}

/// Deletes the object at `path`; one already gone is fine.
pub(crate) async fn delete(store: &ObjectStoreRef, path: &str) -> SnapshotResult<()> {
    match store.delete(&Path::from(path)).await {
        Ok(()) | Err(ObjectStoreError::NotFound { .. }) => Ok(()),
        Err(error) => Err(SnapshotError::store("deleting", path, error)),
    }
}
