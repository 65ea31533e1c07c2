//! Huge views published in parts (`extractor.snapshot.part-rows`, tiny here so that the
//! sample views split): the folder of parts equals the single file, row for row, read by
//! DuckDB (`read_parquet` on the folder's glob) and pyarrow (a dataset of the folder), and
//! cross-checked with the raw table's latest rows (Python `deltalake`); every part is
//! sorted, deduplicated and holds exactly the keys its documented hash names. Incremental
//! merges route each change to its part and leave the other parts' objects untouched, and
//! equal a rebuild; a replaced or missing part is rebuilt on its own. Switching from one
//! file to parts, back, and to another part count replaces the form at the manifest and
//! removes the old form's objects. Overlapping snapshots end with every listed part being
//! the object at its key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cdf_emulator::sample_model::{self, DATA_SPACE, MODEL, MODEL_VERSION, SCHEMA_SPACE};
use cdf_s3_replicator::context::Context;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::InstanceKind;
use cdf_s3_replicator::snapshot::{
    FileAction, FileReport, PartsReport, SnapshotOptions, SnapshotSummary,
};
use cdf_s3_replicator::status::report::{Freshness, PublishedFileStatus};
use cdf_s3_replicator::status::{self, StatusOptions};
use cdf_s3_replicator::sync::{SyncJob, SyncOptions};
use deltalake::Path as ObjectPath;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use futures::TryStreamExt as _;
use s3_fault_proxy::{FaultKind, FaultRule, S3Op};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake, lab_behind_proxy, publish_dir_uri, python};

const PUMPS: usize = 40;
const SMALL_BATCHES: &str = "  subscription-batch-size: 25\n  ingest-batch-size: 40\n";

fn config(part_rows: Option<u64>) -> String {
    match part_rows {
        Some(rows) => format!("{SMALL_BATCHES}  snapshot:\n    part-rows: {rows}\n"),
        None => SMALL_BATCHES.to_owned(),
    }
}

async fn sync_all(context: &Context) {
    let slice = JobInputs::until(Instant::now() + Duration::from_secs(300));
    let summary = jobs::sync(
        &SyncJob::from_context(context),
        &slice,
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{summary:#?}");
}

async fn publish(context: &Context) -> SnapshotSummary {
    let summary = jobs::snapshot(
        context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{summary:#?}");
    summary
}

fn file<'a>(summary: &'a SnapshotSummary, view: &str, kind: InstanceKind) -> &'a FileReport {
    summary
        .view(view)
        .and_then(|v| v.file(kind))
        .unwrap_or_else(|| panic!("{view}/{kind} in {summary:#?}"))
}

fn parts_of(report: &FileReport) -> PartsReport {
    report
        .parts
        .unwrap_or_else(|| panic!("a file in parts: {report:#?}"))
}

/// The view folder, relative to the destination prefix.
fn view_dir(view: &str) -> String {
    format!("publish/{SCHEMA_SPACE}/{MODEL}/{MODEL_VERSION}/{view}")
}

fn store(context: &Context) -> ObjectStoreRef {
    context.destination.object_store().expect("object store")
}

/// The objects of a view folder, relative to it, sorted.
async fn objects(context: &Context, view: &str) -> Vec<String> {
    let dir = view_dir(view);
    let mut names: Vec<String> = store(context)
        .list(Some(&ObjectPath::from(dir.as_str())))
        .map_ok(|meta| meta.location.to_string()[dir.len() + 1..].to_owned())
        .try_collect()
        .await
        .expect("listing the view folder");
    names.sort();
    names
}

/// The objects of one kind: `nodes.parquet` and anything under `nodes/`.
async fn kind_objects(context: &Context, view: &str, kind: &str) -> Vec<String> {
    objects(context, view)
        .await
        .into_iter()
        .filter(|o| o == &format!("{kind}.parquet") || o.starts_with(&format!("{kind}/")))
        .collect()
}

fn part_names(kind: &str, count: u32) -> Vec<String> {
    (0..count)
        .map(|i| format!("{kind}/part-{i:05}-of-{count:05}.parquet"))
        .collect()
}

async fn manifest(context: &Context, view: &str) -> Value {
    let path = ObjectPath::from(format!("{}/_manifest.json", view_dir(view)).as_str());
    let bytes = store(context)
        .get(&path)
        .await
        .expect("manifest")
        .bytes()
        .await
        .expect("manifest bytes");
    serde_json::from_slice(&bytes).expect("manifest JSON")
}

/// Copies the objects under `relative` (a file or a folder of the view) to a local folder of
/// the lab, as a reference that later runs do not touch; returns its path.
async fn save(lab: &Lab, context: &Context, view: &str, relative: &str, label: &str) -> PathBuf {
    let store = store(context);
    let dir = view_dir(view);
    let target = lab.dir.path().join(format!("reference-{label}"));
    let prefix = format!("{dir}/{relative}");
    // A listing finds what is under a folder; a file is itself.
    let listed: Vec<String> = if relative.ends_with('/') {
        store
            .list(Some(&ObjectPath::from(prefix.trim_end_matches('/'))))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .expect("listing")
    } else {
        vec![prefix.clone()]
    };
    assert!(!listed.is_empty(), "nothing at {prefix}");
    for object in listed {
        let bytes = store
            .get(&ObjectPath::from(object.as_str()))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        let local = target.join(&object[dir.len() + 1..]);
        std::fs::create_dir_all(local.parent().expect("parent")).expect("reference dir");
        std::fs::write(&local, &bytes).expect("reference copy");
    }
    target.join(relative.trim_end_matches('/'))
}

/// One folder-against-reference comparison for `tests/readers/parts.py`.
fn comparison(lab: &Lab, name: &str, view: &str, folder: &str, reference: &Path) -> Value {
    let mut request = folder_check(lab, name, view, folder);
    request["reference"] = json!(reference.display().to_string());
    request
}

/// A check of a folder alone: its parts, and its rows against the raw table's live ones.
fn folder_check(lab: &Lab, name: &str, view: &str, folder: &str) -> Value {
    let kind = folder.trim_end_matches(".parquet");
    json!({
        "name": name,
        "folder": format!("{}/{folder}", publish_dir_uri(&lab.lake, view)),
        "raw_table": lab.lake.raw_table_uri(view, kind),
    })
}

fn compare(lab: &Lab, comparisons: Vec<Value>) -> Value {
    let python = python().expect("python");
    let request = json!({
        "storage_options": lab.lake.storage_options(),
        "comparisons": comparisons,
    });
    let file = lab
        .dir
        .path()
        .join(format!("parts-{:016x}.json", rand::random::<u64>()));
    std::fs::write(&file, request.to_string()).expect("request");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/parts.py");
    let output = Command::new(python)
        .arg(script)
        .arg("compare")
        .arg(&file)
        .output()
        .expect("running the parts reader");
    assert!(
        output.status.success(),
        "parts reader failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("reader prints JSON")
}

/// Every comparison found the two forms equal, row for row, in both readers, and equal to
/// the raw table's live keys and versions; a folder's parts are each sorted, unique and
/// hashed to their part, all of `count`.
fn assert_equal(label: &str, report: &Value, count: Option<u64>) {
    let entries = report.as_object().expect("report");
    assert!(!entries.is_empty());
    for (name, r) in entries {
        let what = format!("{label}: {name}");
        for reader in ["duckdb", "pyarrow"] {
            let got = &r[reader];
            assert_eq!(got["difference"], Value::Null, "{what} ({reader}): {got}");
            assert_eq!(got["same_schema"], true, "{what} ({reader}): {got}");
            assert_eq!(got["rows"], got["reference_rows"], "{what} ({reader})");
            assert!(got["rows"].as_u64() > Some(0), "{what} ({reader}) has rows");
        }
        assert_eq!(
            r["deltalake"]["differences"],
            json!([]),
            "{what}: the raw table's live instances"
        );
        assert_eq!(r["deltalake"]["live"], r["duckdb"]["rows"], "{what}");
        if let Some(count) = count {
            let parts = &r["parts"];
            assert_eq!(parts["counts"], json!([count]), "{what}: {parts}");
            assert_eq!(parts["unsorted"], json!([]), "{what}: {parts}");
            assert_eq!(parts["misrouted"], 0, "{what}: {parts}");
            assert_eq!(
                parts["names"].as_array().map(Vec::len),
                Some(count as usize),
                "{what}: {parts}"
            );
        }
    }
}

/// What `status` says about a published file.
async fn file_status(context: &Context, view: &str, kind: &str) -> PublishedFileStatus {
    let report = status::gather(context, &StatusOptions::default()).await;
    report
        .views
        .iter()
        .find(|v| v.view == view)
        .and_then(|v| v.files.iter().find(|f| f.kind == kind))
        .cloned()
        .unwrap_or_else(|| panic!("{view}/{kind} in {report:#?}"))
}

/// The ETag of every part of a kind.
async fn part_tags(
    context: &Context,
    view: &str,
    kind: &str,
    count: u32,
) -> BTreeMap<String, String> {
    let store = store(context);
    let mut tags = BTreeMap::new();
    for name in part_names(kind, count) {
        let path = ObjectPath::from(format!("{}/{name}", view_dir(view)).as_str());
        let meta = store.head(&path).await.expect("part");
        tags.insert(name, meta.e_tag.unwrap_or_default());
    }
    tags
}

async fn parts_lifecycle(lab: Lab) {
    let single = lab.context(&config(None)).await;
    let in_8 = lab.context(&config(Some(8))).await;
    let in_4 = lab.context(&config(Some(4))).await;

    // One file per kind while the views are small.
    sync_all(&single).await;
    let first = publish(&single).await;
    assert!(
        first
            .views
            .iter()
            .flat_map(|v| &v.files)
            .all(|f| f.parts.is_none()),
        "{first:#?}"
    );
    let single_nodes = save(&lab, &single, "Pump", "nodes.parquet", "single-1").await;
    let single_edges = save(&lab, &single, "Pump", "edges.parquet", "single-1").await;

    // 40 pumps with at most 8 rows a part: 8 parts, rebuilt in the new form.
    let parted = publish(&in_8).await;
    let nodes = file(&parted, "Pump", InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Rebuilt, "{nodes:#?}");
    assert_eq!(
        parts_of(nodes),
        PartsReport {
            count: 8,
            rebuilt: 8,
            merged: 0,
            unchanged: 0
        }
    );
    assert!(
        nodes
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("8 parts instead of one file") && r.contains("part-rows")),
        "{nodes:#?}"
    );
    assert_eq!(nodes.rows, PUMPS as u64);
    let edges_count = parts_of(file(&parted, "Pump", InstanceKind::Edges)).count;
    assert!(edges_count > 1);
    // The manifest lists the parts; the single file is gone once the manifest names them.
    let listed = manifest(&in_8, "Pump").await;
    let entry = &listed["files"]["nodes"];
    assert_eq!(entry["path"], "nodes/");
    assert_eq!(entry["rows"], PUMPS);
    assert_eq!(entry["parts"]["count"], 8);
    assert_eq!(
        entry["parts"]["hash"],
        "xxhash64(space 0x00 externalId, seed 0) mod count"
    );
    let listed_parts: Vec<&str> = entry["parts"]["files"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|p| p["path"].as_str().expect("path"))
        .collect();
    assert_eq!(listed_parts, part_names("nodes", 8));
    assert!(
        entry["parts"]["files"]
            .as_array()
            .expect("parts")
            .iter()
            .all(|p| p["eTag"].is_string() && p["writeId"].is_string())
    );
    assert_eq!(
        kind_objects(&in_8, "Pump", "nodes").await,
        part_names("nodes", 8)
    );
    // Small views keep their single file.
    assert_eq!(
        manifest(&in_8, "Site").await["files"]["nodes"]["path"],
        "nodes.parquet"
    );
    assert_equal(
        "one file to parts",
        &compare(
            &lab,
            vec![
                comparison(&lab, "nodes", "Pump", "nodes", &single_nodes),
                comparison(&lab, "edges", "Pump", "edges", &single_edges),
            ],
        ),
        None,
    );
    let checked = compare(
        &lab,
        vec![comparison(&lab, "nodes", "Pump", "nodes", &single_nodes)],
    );
    assert_equal("the parts of 8", &checked, Some(8));

    // Status reads the parts as one file.
    let shown = file_status(&in_8, "Pump", "nodes").await;
    assert_eq!(shown.freshness, Freshness::Current, "{shown:#?}");
    assert_eq!(shown.rows, Some(PUMPS as u64));
    assert!(shown.last_modified.is_some(), "{shown:#?}");

    // Nothing changed: every part is skipped, the manifest is not rewritten.
    let idle = publish(&in_8).await;
    let nodes = file(&idle, "Pump", InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Skipped, "{nodes:#?}");
    assert_eq!(parts_of(nodes).unchanged, 8);
    assert!(idle.views.iter().all(|v| !v.manifest_written), "{idle:#?}");

    // A part that is not what its name says (another part copied over it) and a missing
    // part are rebuilt on their own; the other parts stay as they are.
    let store_8 = store(&in_8);
    let part = |i: u32| {
        ObjectPath::from(
            format!("{}/nodes/part-{i:05}-of-00008.parquet", view_dir("Pump")).as_str(),
        )
    };
    let copied = store_8
        .get(&part(5))
        .await
        .expect("part 5")
        .bytes()
        .await
        .expect("bytes");
    store_8
        .put(&part(3), copied.into())
        .await
        .expect("copy over part 3");
    store_8.delete(&part(6)).await.expect("delete part 6");
    let shown = file_status(&in_8, "Pump", "nodes").await;
    assert_eq!(shown.freshness, Freshness::Missing, "{shown:#?}");
    let repaired = publish(&in_8).await;
    let nodes = file(&repaired, "Pump", InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Rebuilt, "{nodes:#?}");
    assert_eq!(
        parts_of(nodes),
        PartsReport {
            count: 8,
            rebuilt: 2,
            merged: 0,
            unchanged: 6
        }
    );
    let reason = nodes.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("2 of 8 parts rebuilt") && reason.contains("built as part 5 of 8"),
        "{reason}"
    );
    assert_equal(
        "two parts repaired",
        &compare(
            &lab,
            vec![comparison(&lab, "nodes", "Pump", "nodes", &single_nodes)],
        ),
        Some(8),
    );

    // Updates and deletes: merged into the parts that hold them.
    lab.update_and_delete_pumps(PUMPS);
    sync_all(&in_8).await;
    let changed = publish(&in_8).await;
    let nodes = file(&changed, "Pump", InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Incremental, "{nodes:#?}");
    let report = parts_of(nodes);
    assert_eq!(report.rebuilt, 0, "{nodes:#?}");
    assert!(report.merged > 0, "{nodes:#?}");

    // One change: one part is rewritten, the other seven objects stay as they were.
    let before = part_tags(&in_8, "Pump", "nodes", 8).await;
    lab.emulator
        .control()
        .apply_instances(
            json!({"items": [{"instanceType": "node", "space": DATA_SPACE,
            "externalId": "pump-0002", "sources": [{"source": {"type": "view",
            "space": SCHEMA_SPACE, "externalId": "Pump", "version": "1"},
            "properties": {"ratedKw": 1234.5}}]}]}),
        )
        .expect("one update");
    sync_all(&in_8).await;
    let one = publish(&in_8).await;
    let nodes = file(&one, "Pump", InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Incremental, "{nodes:#?}");
    assert_eq!(
        parts_of(nodes),
        PartsReport {
            count: 8,
            rebuilt: 0,
            merged: 1,
            unchanged: 7
        }
    );
    assert_eq!((nodes.files_read, nodes.rows_read), (1, 1), "{nodes:#?}");
    let after = part_tags(&in_8, "Pump", "nodes", 8).await;
    let rewritten: Vec<&String> = before
        .keys()
        .filter(|name| before[*name] != after[*name])
        .collect();
    let part = cdf_s3_replicator::snapshot::parts::part_of(DATA_SPACE, "pump-0002", 8);
    assert_eq!(
        rewritten,
        [&format!("nodes/part-{part:05}-of-00008.parquet")]
    );
    // Every part's entry now says the new version (the untouched ones included).
    let listed = manifest(&in_8, "Pump").await;
    let version = listed["files"]["nodes"]["tableVersion"].clone();
    assert_eq!(version, json!(nodes.source_version));
    assert!(
        listed["files"]["nodes"]["parts"]["files"]
            .as_array()
            .expect("parts")
            .iter()
            .all(|p| p["tableVersion"] == version)
    );
    let merged_nodes = save(&lab, &in_8, "Pump", "nodes/", "merged").await;
    let merged_edges = save(&lab, &in_8, "Pump", "edges/", "merged").await;

    // Back to one file: a rebuild, which equals the incrementally merged parts.
    let back = publish(&single).await;
    let nodes = file(&back, "Pump", InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Rebuilt, "{nodes:#?}");
    assert!(nodes.parts.is_none());
    assert!(
        nodes
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("one file instead of 8 parts")),
        "{nodes:#?}"
    );
    assert_eq!(
        kind_objects(&single, "Pump", "nodes").await,
        ["nodes.parquet"]
    );
    assert_eq!(
        kind_objects(&single, "Pump", "edges").await,
        ["edges.parquet"]
    );
    assert_eq!(
        manifest(&single, "Pump").await["files"]["nodes"]["path"],
        "nodes.parquet"
    );
    assert_equal(
        "merged parts against a rebuilt file",
        &compare(
            &lab,
            vec![
                comparison(&lab, "nodes", "Pump", "nodes.parquet", &merged_nodes),
                comparison(&lab, "edges", "Pump", "edges.parquet", &merged_edges),
            ],
        ),
        None,
    );
    let single_nodes = save(&lab, &single, "Pump", "nodes.parquet", "single-2").await;

    // 8 parts, then a smaller part-rows: 36 rows need 16 parts of at most 4.
    publish(&in_8).await;
    assert_eq!(
        kind_objects(&in_8, "Pump", "nodes").await,
        part_names("nodes", 8)
    );
    let regrown = publish(&in_4).await;
    let nodes = file(&regrown, "Pump", InstanceKind::Nodes);
    assert_eq!(nodes.action, FileAction::Rebuilt, "{nodes:#?}");
    assert_eq!(parts_of(nodes).count, 16);
    assert!(
        nodes
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("16 parts instead of 8 parts")),
        "{nodes:#?}"
    );
    assert_eq!(
        kind_objects(&in_4, "Pump", "nodes").await,
        part_names("nodes", 16)
    );
    assert_equal(
        "16 parts against one file",
        &compare(
            &lab,
            vec![comparison(&lab, "nodes", "Pump", "nodes", &single_nodes)],
        ),
        Some(16),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_equal_the_single_file_through_every_switch_local() {
    if python().is_none() {
        return;
    }
    parts_lifecycle(Lab::start(PUMPS, None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_equal_the_single_file_through_every_switch_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    if python().is_none() {
        return;
    }
    parts_lifecycle(Lab::start(PUMPS, Some(lake)).await).await;
}

/// The write id in the footer stamp of the object at `path`.
async fn footer_write_id(store: &ObjectStoreRef, path: &str) -> Option<String> {
    let bytes = store
        .get(&ObjectPath::from(path))
        .await
        .ok()?
        .bytes()
        .await
        .ok()?;
    let builder =
        deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .ok()?;
    let stamp = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == "cdf_s3_replicator.built_from")?
        .value
        .clone()?;
    let stamp: Value = serde_json::from_str(&stamp).ok()?;
    stamp["writeId"].as_str().map(str::to_owned)
}

/// Two snapshots of views in parts run at once, again and again, with changes committed in
/// between and S3 requests delayed at random. Afterwards every part the manifest lists is
/// the object at its key (same ETag, and the write id in its footer is the entry's), the
/// folders hold exactly the raw tables' live instances, and the next snapshot has nothing
/// to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_snapshots_of_parts_converge() {
    const OVERLAP_PUMPS: usize = 30;
    let Some((lab, proxy)) = lab_behind_proxy(OVERLAP_PUMPS, 47).await else {
        return;
    };
    if python().is_none() {
        return;
    }
    let syncer = lab.context(&config(None)).await;
    let (first, second) = (
        lab.context(&config(Some(8))).await,
        lab.context(&config(Some(8))).await,
    );
    sync_all(&syncer).await;
    proxy.inject(FaultRule::random(
        &[S3Op::Put, S3Op::ConditionalPut, S3Op::Head],
        FaultKind::Delay(Duration::from_millis(120)),
        0.4,
    ));
    let (every, all) = (JobInputs::everything(), SnapshotOptions::default());
    for round in 1..=4 {
        let (a, b) = tokio::join!(
            jobs::snapshot(&first, &every, &all),
            jobs::snapshot(&second, &every, &all)
        );
        for summary in [&a, &b] {
            assert!(summary.is_success(), "round {round}: {summary:#?}");
        }
        if round == 4 {
            break;
        }
        let control = lab.emulator.control();
        control
            .apply_instances(sample_model::updates(OVERLAP_PUMPS, round))
            .expect("updates");
        if round == 2 {
            control
                .delete_instances(sample_model::deletions(OVERLAP_PUMPS))
                .expect("deletes");
        }
        sync_all(&syncer).await;
    }
    proxy.clear();

    let store = store(&first);
    let folders = [
        ("Pump", "nodes"),
        ("Pump", "edges"),
        ("WorkOrder", "nodes"),
        ("PumpWorkOrder", "edges"),
    ];
    for (view, kind) in folders {
        let listed = manifest(&first, view).await;
        let entry = &listed["files"][kind];
        let parts = entry["parts"]["files"]
            .as_array()
            .unwrap_or_else(|| panic!("{view}/{kind} in parts: {entry}"));
        let count = entry["parts"]["count"].as_u64().expect("count");
        assert_eq!(parts.len() as u64, count);
        for part in parts {
            let path = format!(
                "{}/{}",
                view_dir(view),
                part["path"].as_str().expect("path")
            );
            let meta = store
                .head(&ObjectPath::from(path.as_str()))
                .await
                .expect("every listed part exists");
            assert_eq!(json!(meta.e_tag), part["eTag"], "{path}");
            assert_eq!(
                json!(footer_write_id(&store, &path).await),
                part["writeId"],
                "{path}: the manifest names the upload at the key"
            );
        }
        // Nothing but the listed parts is left in the folder.
        let expected: Vec<String> = parts
            .iter()
            .map(|p| p["path"].as_str().expect("path").to_owned())
            .collect();
        assert_eq!(
            kind_objects(&first, view, kind).await,
            expected,
            "{view}/{kind}"
        );
    }
    let checks = folders
        .iter()
        .map(|(view, kind)| folder_check(&lab, &format!("{view}/{kind}"), view, kind))
        .collect();
    let report = compare(&lab, checks);
    for (name, r) in report.as_object().expect("report") {
        assert_eq!(r["deltalake"]["differences"], json!([]), "{name}: {r}");
        assert_eq!(r["deltalake"]["live"], r["duckdb"]["rows"], "{name}: {r}");
        assert_eq!(r["pyarrow"]["rows"], r["duckdb"]["rows"], "{name}: {r}");
        assert_eq!(r["parts"]["unsorted"], json!([]), "{name}: {r}");
        assert_eq!(r["parts"]["misrouted"], 0, "{name}: {r}");
    }

    // Settled: a third run finds every file current and its manifest naming it.
    let settled = publish(&lab.context(&config(Some(8))).await).await;
    for view in &settled.views {
        assert!(!view.manifest_written, "{view:#?}");
        assert!(
            view.files.iter().all(|f| f.action == FileAction::Skipped),
            "{view:#?}"
        );
    }
}
