//! Symlink manifests: one small text file per published file, in a folder of its own.
//!
//! Athena reads every object under a table's location, and a view's publish folder holds
//! both data files and `_manifest.json`, so a table cannot point there. Instead each
//! published file gets `catalog/athena/<space>/<model>/<version>/<view>/<nodes|edges>/
//! symlink.txt` holding the file's `s3://` URI (one line), and the table's location is that
//! folder (`SymlinkTextInputFormat`). A file published in parts has one line per part, so
//! the table reads exactly the parts the view's `_manifest.json` names, never a part of an
//! old part count still in the folder. The published files are rewritten at the same keys,
//! so the manifest only changes when the destination moves or the file changes form (one
//! file, or another part count); it is written (when it differs) before the table is
//! created or updated, so a table never points at a missing manifest, and the old form's
//! objects are removed only after it ([`crate::snapshot::retire`]).

use deltalake::Path;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;

use super::error::CatalogError;
use crate::lake::{InstanceKind, ModelRef, ViewFolder};

/// The manifest's file name inside its folder.
pub(crate) const MANIFEST_FILE: &str = "symlink.txt";

/// The manifest folder of one published file, relative to the destination prefix.
pub(crate) fn manifest_dir(model: &ModelRef, view: &ViewFolder, kind: InstanceKind) -> String {
    format!(
        "catalog/athena/{}/{}/{}/{}/{}",
        model.space(),
        model.external_id(),
        model.version(),
        view.as_str(),
        kind
    )
}

/// The manifest text: each file URI on a line of its own.
pub(crate) fn manifest_body(file_urls: &[String]) -> String {
    file_urls.iter().map(|url| format!("{url}\n")).collect()
}

/// Writes the manifest naming `file_urls` into `dir` unless it already says exactly that.
/// Returns whether it was written.
pub(crate) async fn ensure(
    store: &ObjectStoreRef,
    dir: &str,
    file_urls: &[String],
) -> Result<bool, CatalogError> {
    let path = format!("{dir}/{MANIFEST_FILE}");
    let location = Path::from(path.as_str());
    let body = manifest_body(file_urls);
    match store.get(&location).await {
        Ok(found) => {
            let bytes = found
                .bytes()
                .await
                .map_err(|e| store_error("reading", &path, e))?;
            if bytes.as_ref() == body.as_bytes() {
                return Ok(false);
            }
        }
        Err(deltalake::ObjectStoreError::NotFound { .. }) => {}
        Err(e) => return Err(store_error("reading", &path, e)),
    }
    store
        .put(&location, body.into_bytes().into())
        .await
        .map_err(|e| store_error("writing", &path, e))?;
    Ok(true)
}

fn store_error(what: &'static str, path: &str, error: impl std::fmt::Display) -> CatalogError {
    CatalogError::Store {
        what,
        path: path.to_owned(),
        message: crate::secret::redact(&error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_live_in_a_folder_per_file() {
        let model = ModelRef::new("sp", "Model", "v1").unwrap();
        let view = ViewFolder::plain("Pump").unwrap();
        assert_eq!(
            manifest_dir(&model, &view, InstanceKind::Edges),
            "catalog/athena/sp/Model/v1/Pump/edges"
        );
        assert_eq!(
            manifest_body(&["s3://b/p/publish/sp/Model/v1/Pump/edges.parquet".into()]),
            "s3://b/p/publish/sp/Model/v1/Pump/edges.parquet\n"
        );
        assert_eq!(
            manifest_body(&[
                "s3://b/Pump/edges/part-00000-of-00002.parquet".into(),
                "s3://b/Pump/edges/part-00001-of-00002.parquet".into()
            ]),
            "s3://b/Pump/edges/part-00000-of-00002.parquet\ns3://b/Pump/edges/part-00001-of-00002.parquet\n"
        );
    }

    #[tokio::test]
    async fn a_manifest_is_written_once_and_rewritten_when_the_file_moves() {
        let dir = std::env::temp_dir().join(format!("catalog-symlink-{}", std::process::id()));
        let destination =
            crate::lake::Destination::Local(crate::lake::LocalDestination::new(&dir).unwrap());
        let store = destination.object_store().unwrap();
        assert!(
            ensure(&store, "catalog/x", &["s3://b/a.parquet".to_owned()])
                .await
                .unwrap()
        );
        assert!(
            !ensure(&store, "catalog/x", &["s3://b/a.parquet".to_owned()])
                .await
                .unwrap()
        );
        assert!(
            ensure(&store, "catalog/x", &["s3://c/a.parquet".to_owned()])
                .await
                .unwrap()
        );
        let text = std::fs::read_to_string(dir.join("catalog/x/symlink.txt")).unwrap();
        assert_eq!(text, "s3://c/a.parquet\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
