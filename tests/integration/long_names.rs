//! Names that fit every store: two views of one model with the same 255-character
//! externalId (CDF's longest) get space-qualified folders longer than a file name may be.
//! They are stored under their documented short form, sync and publish on a local lake, and
//! the manifest, the snapshot summary and `status` still show the full names.

use std::path::Path;
use std::time::Duration;

use cdf_emulator::Emulator;
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs::{self, PublishOptions};
use cdf_s3_replicator::status::StatusOptions;
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use cdf_s3_replicator::sync::summary::StreamStatus;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake};

const SPACE_A: &str = "long_a";
const SPACE_B: &str = "long_b";
const MODEL: &str = "LongModel";

/// 255 characters, the longest view externalId CDF accepts.
fn long_xid() -> String {
    format!("V{}1", "x".repeat(253))
}

fn view_ref(space: &str, xid: &str) -> Value {
    json!({"type": "view", "space": space, "externalId": xid, "version": "1"})
}

/// Two spaces with a view each of the same long externalId, a model holding both, and a few
/// nodes in each.
fn seed(emulator: &Emulator) {
    let xid = long_xid();
    let container = |space: &str| {
        json!({"space": space, "externalId": "LongC", "usedFor": "node",
               "properties": {"name": {"type": {"type": "text"}}}})
    };
    let view = |space: &str| {
        json!({"space": space, "externalId": xid, "version": "1", "properties": {
            "name": {"container": {"type": "container", "space": space, "externalId": "LongC"},
                     "containerPropertyIdentifier": "name"}}})
    };
    let control = emulator.control();
    control
        .apply_schema(json!({
            "spaces": [{"space": SPACE_A}, {"space": SPACE_B}],
            "containers": [container(SPACE_A), container(SPACE_B)],
            "views": [view(SPACE_A), view(SPACE_B)],
            "dataModels": [{"space": SPACE_A, "externalId": MODEL, "version": "1",
                            "views": [view_ref(SPACE_A, &xid), view_ref(SPACE_B, &xid)]}],
        }))
        .expect("the schema with two long views");
    let mut items = Vec::new();
    for (space, count) in [(SPACE_A, 3), (SPACE_B, 2)] {
        for i in 0..count {
            items.push(json!({"instanceType": "node", "space": SPACE_A,
                "externalId": format!("{space}-node-{i}"),
                "sources": [{"source": view_ref(space, &xid), "properties": {"name": format!("n{i}")}}]}));
        }
    }
    control
        .apply_instances(json!({"items": items}))
        .expect("nodes of both views");
}

async fn context(lab: &Lab) -> Context {
    let emulator = &lab.emulator;
    let yaml = format!(
        "cognite:\n  host: {base}\n  project: {project}\n  idp-authentication:\n    token-url: {token}\n    client-id: emulator-client\n    secret: emulator-secret\nextractor:\n  state-store:\n    raw:\n      database: state\n      table: streams\ndata_modeling:\n  - space: {SPACE_A}\n    data_models:\n      - external_id: {MODEL}\ndestination:\n{destination}",
        base = emulator.base_url(),
        project = emulator.project(),
        token = emulator.token_url(),
        destination = lab.lake.destination_yaml(),
    );
    let config = load_config_text(&yaml, "test configuration", &MapEnv::new())
        .await
        .unwrap_or_else(|e| panic!("test configuration loads: {e}\n{yaml}"));
    Context::new(config).expect("context")
}

/// Every name under `dir`, recursively.
fn names_under(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("lake directory") {
        let entry = entry.expect("entry");
        out.push(entry.file_name().to_string_lossy().into_owned());
        if entry.file_type().expect("file type").is_dir() {
            names_under(&entry.path(), out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_sharing_a_255_character_external_id_sync_and_publish() {
    let lab = Lab::start(1, None).await;
    seed(&lab.emulator);
    let context = context(&lab).await;
    let full_a = format!("{SPACE_A}.{}", long_xid());
    let full_b = format!("{SPACE_B}.{}", long_xid());

    let inputs = JobInputs::until(Instant::now() + Duration::from_secs(120));
    let synced = jobs::sync(
        &SyncJob::from_context(&context),
        &inputs,
        &SyncOptions::default(),
    )
    .await;
    assert!(synced.is_success(), "{synced:#?}");
    assert_eq!(synced.streams_total, 2, "{synced:#?}");
    let mut rows: Vec<u64> = synced.streams.iter().map(|s| s.rows).collect();
    rows.sort();
    assert_eq!(rows, [2, 3], "{synced:#?}");
    assert!(
        synced
            .streams
            .iter()
            .all(|s| s.status == StreamStatus::CaughtUp),
        "{synced:#?}"
    );

    let published = jobs::publish(
        &context,
        &jobs::plan(&context).await,
        &JobInputs::everything(),
        &PublishOptions::everything(),
    )
    .await;
    assert!(published.is_success(), "{published:#?}");
    let mut views: Vec<&str> = published
        .snapshot
        .views
        .iter()
        .map(|v| v.view.as_str())
        .collect();
    views.sort();
    assert_eq!(
        views,
        [full_a.as_str(), full_b.as_str()],
        "full names in the summary"
    );

    // Every name in the lake fits a file system; the two views have folders of their own.
    let Lake::Local(root) = &lab.lake else {
        unreachable!("the lab's default lake is local")
    };
    let mut names = Vec::new();
    names_under(root, &mut names);
    assert!(
        names.iter().all(|n| n.len() <= 255),
        "a name longer than 255 bytes: {:?}",
        names.iter().find(|n| n.len() > 255)
    );
    let publish = root.join(format!("publish/{SPACE_A}/{MODEL}/1"));
    let mut folders: Vec<String> = std::fs::read_dir(&publish)
        .expect("publish folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(folders.len(), 2, "{folders:?}");
    let mut manifest_views = Vec::new();
    for ((folder, full), nodes) in folders.iter().zip([&full_a, &full_b]).zip([3, 2]) {
        // The documented short form: the first 238 bytes, `-`, 16 hex digits.
        assert_eq!(folder.len(), 255, "{folder}");
        assert_eq!(&folder[..238], &full[..238]);
        assert_eq!(folder.as_bytes()[238], b'-');
        assert!(
            folder[239..].bytes().all(|b| b.is_ascii_hexdigit()),
            "{folder}"
        );
        let text =
            std::fs::read_to_string(publish.join(folder).join("_manifest.json")).expect("manifest");
        let manifest: Value = serde_json::from_str(&text).expect("manifest JSON");
        manifest_views.push(manifest["view"].as_str().unwrap_or_default().to_owned());
        assert_eq!(manifest["files"]["nodes"]["rows"], nodes, "{manifest:#}");
    }
    manifest_views.sort();
    assert_eq!(
        manifest_views,
        [full_a.clone(), full_b.clone()],
        "full names in manifests"
    );

    let status = cdf_s3_replicator::status::gather(&context, &StatusOptions::default()).await;
    let status_json = serde_json::to_value(&status).expect("status JSON");
    let mut status_views: Vec<String> = status_json["views"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v["view"].as_str().unwrap_or_default().to_owned())
        .collect();
    status_views.sort();
    assert_eq!(status_views, [full_a, full_b], "full names in status");
    for stream in status_json["streams"].as_array().into_iter().flatten() {
        assert_eq!(stream["view"], long_xid(), "{stream:#}");
        assert!(stream["error"].is_null(), "{stream:#}");
    }

    // A second run finds its state under the same keys and folders.
    let again = jobs::sync(
        &SyncJob::from_context(&context),
        &inputs,
        &SyncOptions::default(),
    )
    .await;
    assert!(again.is_success(), "{again:#?}");
    assert_eq!((again.rows, again.cursor_resets), (0, 0), "{again:#?}");
}
