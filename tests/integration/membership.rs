//! Membership convergence: the lake holds exactly the instances that match each stream's
//! query now, also when CDF's sync never reports the change (an instance that leaves a
//! view, or is re-created outside it), once the membership scan has run.
//!
//! The truth is the emulator's current membership of each view; the lake is read by
//! independent readers: the raw table's latest row per key in arrival order (the Delta log
//! replayed in Python, files read by pyarrow, cross-checked with the Python `deltalake`
//! package) and the published file (pyarrow).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cdf_emulator::{Emulator, EmulatorConfig, InstanceKind, ViewId};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::snapshot::SnapshotOptions;
use cdf_s3_replicator::status::{self, StatusOptions};
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lake, python};

const SCHEMA: &str = "mem_schema";
const DATA: &str = "mem_data";
const MODEL: &str = "MembershipModel";

fn view_ref(xid: &str) -> Value {
    json!({"type": "view", "space": SCHEMA, "externalId": xid, "version": "1"})
}

fn view_id(xid: &str) -> ViewId {
    ViewId {
        space: SCHEMA.into(),
        external_id: xid.into(),
        version: "1".into(),
    }
}

/// Items (with a status, a rank and an owner), a second container that an item can be
/// re-created with and an edge container of links; `extra_views` adds (filtered) views to
/// the model.
fn schema(extra_views: &[Value]) -> Value {
    let item_props = json!({
        "status": {"type": {"type": "text"}},
        "rank": {"type": {"type": "int64"}},
        "owner": {"type": {"type": "direct"}},
    });
    let mapped = |container: &str, names: &[&str]| -> Value {
        let mut out = serde_json::Map::new();
        for name in names {
            out.insert(
                (*name).to_owned(),
                json!({"container": {"type": "container", "space": SCHEMA, "externalId": container},
                       "containerPropertyIdentifier": name}),
            );
        }
        Value::Object(out)
    };
    let mut views = vec![
        json!({"space": SCHEMA, "externalId": "Item", "version": "1",
               "properties": mapped("ItemC", &["status", "rank", "owner"])}),
        json!({"space": SCHEMA, "externalId": "Other", "version": "1",
               "properties": mapped("OtherC", &["note"])}),
    ];
    views.extend(extra_views.iter().cloned());
    let model_views: Vec<Value> = views
        .iter()
        .map(|v| view_ref(v["externalId"].as_str().unwrap_or_default()))
        .collect();
    json!({
        "spaces": [{"space": SCHEMA}, {"space": DATA}],
        "containers": [
            {"space": SCHEMA, "externalId": "ItemC", "properties": item_props, "usedFor": "node"},
            {"space": SCHEMA, "externalId": "OtherC", "properties": {"note": {"type": {"type": "text"}}}, "usedFor": "node"},
            {"space": SCHEMA, "externalId": "LinkC", "properties": {"weight": {"type": {"type": "int64"}}}, "usedFor": "edge"},
        ],
        "views": views,
        "dataModels": [{"space": SCHEMA, "externalId": MODEL, "version": "1", "views": model_views}],
    })
}

fn item(xid: &str, status: &str, rank: i64, owner: Option<&str>) -> Value {
    let mut properties = json!({"status": status, "rank": rank});
    if let Some(owner) = owner {
        properties["owner"] = json!({"space": DATA, "externalId": owner});
    }
    json!({"instanceType": "node", "space": DATA, "externalId": xid,
           "sources": [{"source": view_ref("Item"), "properties": properties}]})
}

fn other(xid: &str, note: &str) -> Value {
    json!({"instanceType": "node", "space": DATA, "externalId": xid,
           "sources": [{"source": view_ref("Other"), "properties": {"note": note}}]})
}

/// `(externalId, version)` of each member, sorted.
type Members = Vec<(String, i64)>;

struct MembershipLab {
    emulator: Emulator,
    lake: Lake,
    dir: tempfile::TempDir,
}

impl MembershipLab {
    async fn start(extra_views: &[Value], lake: Option<Lake>) -> Self {
        let emulator = Emulator::start(EmulatorConfig::default())
            .await
            .expect("emulator starts");
        emulator
            .control()
            .apply_schema(schema(extra_views))
            .expect("membership schema");
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = lake.unwrap_or_else(|| Lake::local(dir.path()));
        Self {
            emulator,
            lake,
            dir,
        }
    }

    fn write(&self, items: Vec<Value>, auto_create: bool) {
        self.emulator
            .control()
            .apply_instances(json!({"items": items, "autoCreateDirectRelations": auto_create}))
            .expect("instances written");
    }

    fn delete(&self, xids: &[&str]) {
        let items: Vec<Value> = xids
            .iter()
            .map(|x| json!({"instanceType": "node", "space": DATA, "externalId": x}))
            .collect();
        self.emulator
            .control()
            .delete_instances(json!({"items": items}))
            .expect("instances deleted");
    }

    async fn context(&self, scan_interval: &str) -> Context {
        let yaml = format!(
            "cognite:\n  host: {base}\n  project: {project}\n  idp-authentication:\n    token-url: {token}\n    client-id: emulator-client\n    secret: emulator-secret\nextractor:\n  state-store:\n    raw:\n      database: state\n      table: streams\n  membership-scan-interval: {scan_interval}\ndata_modeling:\n  - space: {SCHEMA}\n    data_models:\n      - external_id: {MODEL}\ndestination:\n{destination}",
            base = self.emulator.base_url(),
            project = self.emulator.project(),
            token = self.emulator.token_url(),
            destination = self.lake.destination_yaml(),
        );
        let config = load_config_text(&yaml, "membership test", &MapEnv::new())
            .await
            .unwrap_or_else(|e| panic!("configuration loads: {e}\n{yaml}"));
        Context::new(config).expect("context")
    }

    /// One sync and one snapshot, each with a generous deadline.
    async fn replicate(&self, context: &Context) -> Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        let sync = jobs::sync(
            &SyncJob::from_context(context),
            &JobInputs::until(deadline),
            &SyncOptions::default(),
        )
        .await;
        assert!(sync.is_success(), "{sync:#?}");
        let snapshot = jobs::snapshot(
            context,
            &JobInputs::everything(),
            &SnapshotOptions::default(),
        )
        .await;
        assert!(snapshot.is_success(), "{snapshot:#?}");
        serde_json::to_value(&sync).expect("summary as JSON")
    }

    /// The emulator's current node members of a view: `(externalId, version)`, sorted.
    fn truth(&self, view: &str) -> Members {
        self.truth_of(InstanceKind::Node, view)
    }

    /// The emulator's current members of one kind of a view.
    fn truth_of(&self, kind: InstanceKind, view: &str) -> Members {
        let mut members: Members = self
            .emulator
            .control()
            .live_instances_matching(
                kind,
                Some(json!({"hasData": [view_ref(view)]})),
                &[view_id(view)],
            )
            .expect("truth")
            .iter()
            .map(|i| (text(&i["externalId"]), i["version"].as_i64().unwrap_or(-1)))
            .collect();
        members.sort();
        members
    }

    fn uri(&self, relative: &str) -> String {
        match &self.lake {
            Lake::Local(path) => path.join(relative).display().to_string(),
            Lake::S3 { bucket, .. } => format!("s3://{bucket}/cdf-data/{relative}"),
        }
    }

    /// The live rows of the view's raw nodes table (latest row per key in arrival order,
    /// neither deleted nor exited) and of its published file: `(externalId, version)`.
    fn lake_members(&self, view: &str) -> (Members, Members) {
        self.lake_table_members(view, "nodes")
    }

    fn assert_converged(&self, view: &str, label: &str) {
        let truth = self.truth(view);
        let (raw, published) = self.lake_members(view);
        assert_eq!(
            raw, truth,
            "{label}: raw latest rows of {view} equal CDF's members"
        );
        assert_eq!(
            published, truth,
            "{label}: published {view} equals CDF's members"
        );
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn run(python: &str, command: &str, request: &Value, dir: &Path) -> Value {
    let request_file = dir.join(format!("arrival-{:016x}.json", rand::random::<u64>()));
    std::fs::write(&request_file, request.to_string()).expect("reader request");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/arrival.py");
    let output = Command::new(python)
        .arg(script)
        .arg(command)
        .arg(&request_file)
        .output()
        .expect("running the arrival reader");
    assert!(
        output.status.success(),
        "arrival reader failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("reader prints JSON")
}

/// A node deleted and re-created with other containers between two syncs, and a deleted
/// node re-created empty by a direct relation that points at it: sync reports neither (the
/// re-created nodes have no data in `Item`), so without the scan their old rows stay live.
async fn recreated_instances_leave_the_view(lake: Option<Lake>) {
    if python().is_none() {
        return;
    }
    let lab = MembershipLab::start(&[], lake).await;
    lab.write(
        (0..6)
            .map(|i| item(&format!("item-{i}"), "active", i, None))
            .collect(),
        false,
    );
    let context = lab.context("1ms").await;
    lab.replicate(&context).await;
    lab.assert_converged("Item", "after the backfill");

    // item-1 comes back with other containers; item-2 comes back empty, made by the
    // direct relation of item-3.
    lab.delete(&["item-1", "item-2"]);
    lab.write(vec![other("item-1", "moved")], false);
    lab.write(vec![item("item-3", "active", 30, Some("item-2"))], true);
    let summary = lab.replicate(&context).await;
    assert_eq!(
        summary["membership"]["exited"], 2,
        "both re-created nodes left Item: {summary:#}"
    );
    lab.assert_converged("Item", "after the re-creates");
    let status = status::gather(&context, &StatusOptions::default()).await;
    let stream = status
        .streams
        .iter()
        .find(|s| s.key.ends_with("/Item/nodes"))
        .expect("the Item stream in status");
    let scan = stream
        .membership
        .as_ref()
        .expect("status shows the membership scan");
    assert!(
        scan.last_pass.is_some() && !scan.pass_in_progress,
        "{scan:?}"
    );

    // A later delete of an instance that left changes nothing, and the next pass finds
    // nothing more to do.
    lab.delete(&["item-1"]);
    lab.write(vec![item("item-4", "active", 44, None)], false);
    let summary = lab.replicate(&context).await;
    assert_eq!(summary["membership"]["exited"], 0, "{summary:#}");
    assert_eq!(summary["membership"]["refreshed"], 0, "{summary:#}");
    lab.assert_converged("Item", "after a delete of an exited instance");

    // item-1 comes back into Item: sync reports it (it has data in Item again).
    lab.write(vec![item("item-1", "active", 11, None)], false);
    lab.replicate(&context).await;
    lab.assert_converged("Item", "after item-1 came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreated_instances_leave_the_view_local() {
    recreated_instances_leave_the_view(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreated_instances_leave_the_view_s3() {
    let Some(lake) = Lake::s3().await else { return };
    recreated_instances_leave_the_view(Some(lake)).await;
}

/// With the scan turned off, the same re-creates leave stale rows: the regression the scan
/// fixes, and proof that the test above would catch its absence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_scan_a_recreated_instance_stays_stale() {
    if python().is_none() {
        return;
    }
    let lab = MembershipLab::start(&[], None).await;
    lab.write(
        vec![
            item("item-0", "active", 0, None),
            item("item-1", "active", 1, None),
        ],
        false,
    );
    let context = lab.context("0").await;
    lab.replicate(&context).await;
    lab.delete(&["item-1"]);
    lab.write(vec![other("item-1", "moved")], false);
    lab.replicate(&context).await;
    let (raw, published) = lab.lake_members("Item");
    assert_eq!(lab.truth("Item").len(), 1);
    assert_eq!(raw.len(), 2, "sync alone keeps the stale row: {raw:?}");
    assert_eq!(published.len(), 2, "{published:?}");
}

/// Views whose membership is a filter: on the instance's own property, on its node type,
/// through a `nested` filter on the node its direct relation points at, and on an edge
/// property range.
fn filtered_views() -> Vec<Value> {
    let item = |p: &str| {
        json!({"container": {"type": "container", "space": SCHEMA, "externalId": "ItemC"},
               "containerPropertyIdentifier": p})
    };
    let status = json!([SCHEMA, "ItemC", "status"]);
    let with_filter = |xid: &str, filter: Value| {
        json!({"space": SCHEMA, "externalId": xid, "version": "1", "filter": filter,
               "properties": {"status": item("status"), "rank": item("rank"), "owner": item("owner")}})
    };
    vec![
        with_filter(
            "ActiveItem",
            json!({"equals": {"property": status, "value": "active"}}),
        ),
        with_filter(
            "SpecialItem",
            json!({"equals": {"property": ["node", "type"], "value": {"space": SCHEMA, "externalId": "Special"}}}),
        ),
        with_filter(
            "HqOwned",
            json!({"nested": {"scope": [SCHEMA, "ItemC", "owner"],
                              "filter": {"equals": {"property": status, "value": "hq"}}}}),
        ),
        json!({"space": SCHEMA, "externalId": "StrongLink", "version": "1", "usedFor": "edge",
               "filter": {"range": {"property": [SCHEMA, "LinkC", "weight"], "gte": 10}},
               "properties": {"weight": {"container": {"type": "container", "space": SCHEMA, "externalId": "LinkC"},
                                         "containerPropertyIdentifier": "weight"}}}),
    ]
}

fn typed_item(xid: &str, status: &str, node_type: Option<&str>, owner: Option<&str>) -> Value {
    let mut node = item(xid, status, 1, owner);
    if let Some(node_type) = node_type {
        node["type"] = json!({"space": SCHEMA, "externalId": node_type});
    }
    node
}

fn link(xid: &str, from: &str, to: &str, weight: i64) -> Value {
    json!({"instanceType": "edge", "space": DATA, "externalId": xid,
           "type": {"space": SCHEMA, "externalId": "links"},
           "startNode": {"space": DATA, "externalId": from},
           "endNode": {"space": DATA, "externalId": to},
           "sources": [{"source": view_ref("StrongLink"), "properties": {"weight": weight}}]})
}

impl MembershipLab {
    /// Raw latest live rows and published rows of one table of a view.
    fn lake_table_members(&self, view: &str, kind: &str) -> (Members, Members) {
        let python = python().expect("python");
        let raw = run(
            &python,
            "latest",
            &json!({"uri": self.uri(&format!("raw/{SCHEMA}/{MODEL}/1/views/{view}/{kind}")),
                    "storage_options": self.lake.storage_options()}),
            self.dir.path(),
        );
        let mut raw_live: Members = raw["latest"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["deletedTime"].is_null() && r["_exitedTime"].is_null())
            .map(|r| (text(&r["externalId"]), r["version"].as_i64().unwrap_or(-1)))
            .collect();
        raw_live.sort();
        let published = run(
            &python,
            "published",
            &json!({"uri": self.uri(&format!("publish/{SCHEMA}/{MODEL}/1/{view}/{kind}.parquet")),
                    "storage_options": self.lake.storage_options()}),
            self.dir.path(),
        );
        let rows = published.as_array().cloned().unwrap_or_default();
        assert!(
            rows.iter().all(|r| r.get("_exitedTime").is_none()),
            "the exit column stays out of the publish layer"
        );
        let mut published: Members = rows
            .iter()
            .map(|r| (text(&r["externalId"]), r["version"].as_i64().unwrap_or(-1)))
            .collect();
        published.sort();
        (raw_live, published)
    }

    /// Whether raw and publish of every filtered view equal CDF's members, per view.
    fn filtered_views_converged(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for view in ["ActiveItem", "SpecialItem", "HqOwned"] {
            let truth = self.truth(view);
            let (raw, published) = self.lake_table_members(view, "nodes");
            out.push((format!("{view} raw"), raw == truth));
            out.push((format!("{view} publish"), published == truth));
        }
        let truth = self.truth_of(InstanceKind::Edge, "StrongLink");
        let (raw, published) = self.lake_table_members("StrongLink", "edges");
        out.push(("StrongLink raw".into(), raw == truth));
        out.push(("StrongLink publish".into(), published == truth));
        out
    }
}

/// Instances move in and out of filtered views without a sync event of their own; with
/// the scan, raw and publish of every view converge to CDF's membership. With the scan
/// off, every one of these views keeps stale members: the defect the scan fixes.
async fn filtered_views_converge(lake: Option<Lake>, scan: bool) {
    if python().is_none() {
        return;
    }
    let mut extra = filtered_views();
    extra.insert(
        0,
        json!({"space": SCHEMA, "externalId": "Link", "version": "1", "usedFor": "edge",
               "properties": {"weight": {"container": {"type": "container", "space": SCHEMA, "externalId": "LinkC"},
                                         "containerPropertyIdentifier": "weight"}}}),
    );
    let lab = MembershipLab::start(&extra, lake).await;
    lab.write(
        vec![
            typed_item("hq-1", "hq", None, None),
            typed_item("branch-1", "branch", None, None),
            typed_item("i-0", "active", Some("Special"), Some("hq-1")),
            typed_item("i-1", "active", None, Some("hq-1")),
            typed_item("i-2", "retired", Some("Special"), Some("branch-1")),
            typed_item("i-3", "active", Some("Plain"), Some("branch-1")),
        ],
        true,
    );
    lab.write(
        vec![
            link("l-0", "i-0", "i-1", 5),
            link("l-1", "i-1", "i-2", 15),
            link("l-2", "i-2", "i-3", 20),
        ],
        false,
    );
    let context = lab.context(if scan { "1ms" } else { "0" }).await;
    lab.replicate(&context).await;
    let first = lab.filtered_views_converged();
    assert!(
        first.iter().all(|(_, ok)| *ok),
        "after the backfill: {first:?}"
    );

    // Every change below moves an instance in or out of a view without an event of its own
    // for that view's query (or with one that sync does not send for a leaving instance).
    lab.write(
        vec![
            typed_item("i-1", "retired", None, Some("hq-1")), // leaves ActiveItem
            typed_item("i-0", "active", Some("Plain"), Some("hq-1")), // leaves SpecialItem
            typed_item("hq-1", "closed", None, None),         // i-0, i-1 leave HqOwned
            typed_item("branch-1", "hq", None, None),         // i-2, i-3 enter HqOwned
        ],
        false,
    );
    lab.write(vec![link("l-1", "i-1", "i-2", 3)], false); // leaves StrongLink
    lab.replicate(&context).await;
    let after = lab.filtered_views_converged();
    if scan {
        assert!(
            after.iter().all(|(_, ok)| *ok),
            "after the moves: {after:?}"
        );
        // A later delete of an instance that left ActiveItem changes nothing there.
        lab.delete(&["i-1"]);
        lab.replicate(&context).await;
        let deleted = lab.filtered_views_converged();
        assert!(
            deleted.iter().all(|(_, ok)| *ok),
            "after a delete: {deleted:?}"
        );
    } else {
        let stale: Vec<&String> = after
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| name)
            .collect();
        for view in ["ActiveItem", "SpecialItem", "HqOwned", "StrongLink"] {
            assert!(
                stale.iter().any(|name| name.starts_with(view)),
                "without the scan {view} keeps stale members: {after:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_views_converge_local() {
    filtered_views_converge(None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_views_converge_s3() {
    let Some(lake) = Lake::s3().await else { return };
    filtered_views_converge(Some(lake), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_scan_filtered_views_keep_stale_members() {
    filtered_views_converge(None, false).await;
}

/// CDF throttles the membership scan with a `Retry-After` beyond the run's deadline: the
/// stream ends caught up with its pass pending (not failed), and the next run completes the
/// pass and converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_cut_by_the_deadline_is_pending_and_completes_next_run() {
    if python().is_none() {
        return;
    }
    let lab = MembershipLab::start(&[], None).await;
    lab.write(
        (0..4)
            .map(|i| item(&format!("item-{i}"), "active", i, None))
            .collect(),
        false,
    );
    let context = lab.context("1ms").await;
    // The backfill counts as a pass; the next sync's pass starts at once.
    let deadline = Instant::now() + Duration::from_secs(300);
    let first = jobs::sync(
        &SyncJob::from_context(&context),
        &JobInputs::until(deadline),
        &SyncOptions::default(),
    )
    .await;
    assert!(first.is_success(), "{first:#?}");
    lab.delete(&["item-1"]);
    lab.write(vec![other("item-1", "moved")], false);
    let control = lab.emulator.control();
    control.add_fault(
        cdf_emulator::FaultSpec::status("/models/instances/list", 429, 1).with_retry_after(600),
    );
    // Far shorter than the Retry-After (and longer than the deadline margin): the wait is
    // cut at the deadline.
    let short = Instant::now() + Duration::from_secs(45);
    let cut = jobs::sync(
        &SyncJob::from_context(&context),
        &JobInputs::until(short),
        &SyncOptions::default(),
    )
    .await;
    assert!(
        cut.is_success(),
        "a pass cut by the deadline fails nothing: {cut:#?}"
    );
    assert_eq!(cut.membership.passes_pending, 1, "{cut:#?}");
    control.clear_faults();
    lab.replicate(&context).await;
    lab.assert_converged("Item", "after the pending pass completed");
}

/// A node deleted and purged while its stream's cursor expired, then created again: the new
/// generation's backfill no longer lists it, so the completing commit ends it with an exit
/// row of its last version; the new node starts at version 1 again, the same version as that
/// exit. Both rows are kept, and every reader takes the newer one: the raw table's latest row
/// in arrival order and the publish file hold the new node, live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_purged_during_a_resync_and_created_again_is_live_once() {
    if python().is_none() {
        return;
    }
    let lab = MembershipLab::start(&[], None).await;
    lab.write(
        (0..4)
            .map(|i| item(&format!("item-{i}"), "active", i, None))
            .collect(),
        false,
    );
    let context = lab.context("1d").await;
    lab.replicate(&context).await;
    lab.assert_converged("Item", "after the backfill");

    lab.delete(&["item-1"]);
    lab.emulator.control().expire_all_cursors();
    assert_eq!(
        lab.emulator.control().purge_tombstones(),
        1,
        "item-1's tombstone"
    );
    let summary = lab.replicate(&context).await;
    assert_eq!(
        summary["membership"]["exited"], 1,
        "the new generation no longer lists item-1: {summary:#}"
    );
    lab.assert_converged("Item", "after the resync without item-1");

    lab.write(vec![item("item-1", "back", 10, None)], false);
    assert!(
        lab.truth("Item").contains(&("item-1".to_owned(), 1)),
        "a purged node starts again at version 1"
    );
    lab.replicate(&context).await;
    lab.assert_converged("Item", "after item-1 came back");
}
