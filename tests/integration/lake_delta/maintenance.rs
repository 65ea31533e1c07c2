//! Checkpoints and vacuum of files no version references.

use cdf_s3_replicator::lake::{ModelRef, VacuumScope, ViewFolder};
use deltalake::logstore::object_store::{ObjectStoreExt, PutPayload};

use super::{NODES_APP, batch, commit, local_lake, open, table_rows};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_maintenance_checkpoints_and_vacuums_unreferenced_files() {
    let lake = local_lake();
    let mut table = open(&lake.destination, &lake.url).await;
    for txn in 1..=3 {
        table
            .append(
                &[batch(txn * 10..txn * 10 + 10)],
                commit(NODES_APP, txn, "c"),
            )
            .await
            .unwrap();
    }
    table.create_checkpoint().await.unwrap();
    let root = lake.url.to_file_path().unwrap();
    assert!(
        root.join("_delta_log/00000000000000000003.checkpoint.parquet")
            .exists()
    );
    assert!(root.join("_delta_log/_last_checkpoint").exists());

    // A file no commit references (a crash between writing data and committing).
    let stray = root.join("part-00000-stray-c000.zstd.parquet");
    std::fs::write(&stray, b"not referenced").unwrap();
    let dry = table
        .vacuum(
            std::time::Duration::ZERO,
            VacuumScope::AllUnreferenced,
            true,
        )
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.files.len(), 1, "{:?}", dry.files);
    assert!(stray.exists());
    let done = table
        .vacuum(
            std::time::Duration::ZERO,
            VacuumScope::AllUnreferenced,
            false,
        )
        .await
        .unwrap();
    assert_eq!(done.files.len(), 1);
    assert!(!stray.exists());

    // The destination-level store writes under the destination root (publish layer).
    let model = ModelRef::new("sp", "Model", "1").unwrap();
    let view = ViewFolder::plain("Pump").unwrap();
    let manifest = lake.destination.publish_paths(&model, &view).manifest;
    lake.destination
        .object_store()
        .unwrap()
        .put(
            &deltalake::Path::from(manifest.as_str()),
            PutPayload::from_static(b"{}"),
        )
        .await
        .unwrap();
    assert!(
        lake._dir
            .path()
            .join("publish/sp/Model/1/Pump/_manifest.json")
            .exists()
    );

    let reopened = open(&lake.destination, &lake.url).await;
    assert_eq!(table_rows(&reopened), 30);
    assert_eq!(reopened.txn_version(NODES_APP).await.unwrap(), Some(3));
    assert_eq!(
        reopened
            .last_stream_commit(NODES_APP, 10)
            .await
            .unwrap()
            .unwrap()
            .txn_version,
        3
    );
}
