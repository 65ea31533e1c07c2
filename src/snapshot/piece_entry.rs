//! What a unit of one object leaves for the assembling step, beside the object itself.
//!
//! The object's footer stamp ([`super::stamp`]) says what the object reflects when it was
//! written. A part that none of the new commits touches is not rewritten, though: it
//! already holds the rows of the newer table version, which only the manifest could record,
//! and a unit of one part writes no manifest. So the unit writes the entry it would have put
//! in the manifest to `_work/pieces/<space>/<model>/<version>/<view>/<object>.json`; the
//! assembling step takes it exactly when it names the object now at the key (same ETag),
//! as a run takes a manifest's entry, and the object's stamp otherwise. The entries are
//! overwritten by the next unit of the same object; losing one costs only a re-merge.

use deltalake::logstore::ObjectStoreRef;

use super::manifest::FileEntry;
use super::work_store;
use crate::lake::ModelRef;
use crate::lake::layout::ViewFolder;

/// Where the entry of `object` (`nodes.parquet`, `nodes/part-00003-of-00016.parquet`) of a
/// view is kept, relative to the destination prefix.
pub(crate) fn entry_path(model: &ModelRef, folder: &ViewFolder, object: &str) -> String {
    format!(
        "_work/pieces/{}/{}/{}/{}/{object}.json",
        model.space(),
        model.external_id(),
        model.version(),
        folder.as_str()
    )
}

/// Keeps `entry` for the assembling step. A failure is logged, not returned: without the
/// entry the assembling step reads the object's stamp, which is correct, only older.
pub(crate) async fn save(store: &ObjectStoreRef, path: &str, entry: &FileEntry) {
    if let Err(error) = work_store::put_json(store, path, entry).await {
        tracing::warn!(path, %error, "could not keep the entry of a published object; the assembling step reads its stamp instead");
    }
}

/// The entry a unit kept at `path`, if there is a readable one.
pub(crate) async fn load(store: &ObjectStoreRef, path: &str) -> Option<FileEntry> {
    work_store::get_json(store, path).await.ok().flatten()
}
