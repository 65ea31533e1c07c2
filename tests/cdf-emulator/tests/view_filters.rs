//! Views with a `filter`: `hasData(view)` is the view's filter wherever it is evaluated
//! (list, sync, select, aggregate and the control truth), and instances that leave or enter a
//! filtered view produce no sync event of their own (contract §2.5, §2.6 "Deletions").

mod common;

use cdf_emulator::{InstanceKind, ViewId, ViewMember};
use common::*;
use serde_json::{Value, json};

fn view_ref(xid: &str) -> Value {
    json!({"type": "view", "space": "schema", "externalId": xid, "version": "1"})
}

/// A view over the Pump container whose membership is `filter`.
fn filtered_view(xid: &str, filter: Value) -> Value {
    json!({"space": "schema", "externalId": xid, "version": "1", "filter": filter,
    "properties": {
        "tag": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "tag"},
        "status": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "status"},
        "site": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "site"}
    }})
}

fn status() -> Value {
    json!(["schema", "Pump/1", "status"])
}

fn node_ref(xid: &str) -> Value {
    json!({"space": "data", "externalId": xid})
}

/// Pumps a..d plus two sites; `a`, `c` run, `b` is stopped, `d` has no status.
async fn seeded() -> Harness {
    let h = start().await;
    seed_schema(&h.ctl());
    h.ok(
        "/models/instances",
        json!({"items": [
            pump("oslo", json!({"tag": "site-oslo", "status": "running"})),
            pump("bergen", json!({"tag": "site-bergen", "status": "stopped"})),
            {"instanceType": "node", "space": "data", "externalId": "a", "type": {"space": "schema", "externalId": "PumpType"},
             "sources": [{"source": pump_view(), "properties": {"tag": "pump-a", "status": "running", "count64": 5,
                 "aliases": ["A", "alpha"], "site": node_ref("oslo")}}]},
            pump("b", json!({"tag": "pump-b", "status": "stopped", "count64": 50, "aliases": ["B"], "site": node_ref("bergen")})),
            pump("c", json!({"tag": "other-c", "status": "running", "count64": 7, "site": node_ref("bergen")})),
            pump("d", json!({"tag": "pump-d"})),
        ]}),
    )
    .await;
    h
}

async fn apply_view(h: &Harness, view: Value) -> Value {
    h.ok("/models/views", json!({"items": [view]})).await
}

/// The members of a view through `instances/list` (keys only, no sources), all pages.
async fn listed(h: &Harness, xid: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let r = h
            .ok(
                "/models/instances/list",
                json!({"instanceType": "node", "filter": {"hasData": [view_ref(xid)]}, "limit": 2, "cursor": cursor}),
            )
            .await;
        out.extend(xids(&r["items"]));
        match r.get("nextCursor") {
            Some(c) if c.is_string() => cursor = c.clone(),
            _ => return out,
        }
    }
}

/// One onePhase sync page of a view's members (or changes after `cursor`), sorted by key.
async fn synced(h: &Harness, xid: &str, cursor: Option<&str>) -> (Vec<String>, String) {
    let r = h
        .sync(json!({
            "with": {"s": {"nodes": {"filter": {"hasData": [view_ref(xid)]}}, "limit": 100, "mode": "onePhase"}},
            "select": {"s": {"sources": [{"source": view_ref(xid), "properties": ["*"]}]}},
            "cursors": {"s": cursor},
        }))
        .await;
    // onePhase pages in change order; compare sets.
    let mut got = xids(&r["items"]["s"]);
    got.sort();
    (got, r["nextCursor"]["s"].as_str().unwrap().to_string())
}

fn members(h: &Harness, xid: &str) -> Vec<String> {
    h.ctl()
        .view_members(&ViewId::new("schema", xid, "1"))
        .unwrap()
        .into_iter()
        .map(|m| m.external_id)
        .collect()
}

#[tokio::test]
async fn every_filter_kind_cdf_allows_in_a_view_selects_its_members() {
    let h = seeded().await;
    let tag = json!(["schema", "Pump/1", "tag"]);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"equals": {"property": status(), "value": "running"}}),
            vec!["a", "c", "oslo"],
        ),
        (
            json!({"in": {"property": status(), "values": ["stopped"]}}),
            vec!["b", "bergen"],
        ),
        (
            json!({"range": {"property": ["schema", "Pump/1", "count64"], "gt": 5, "lte": 50}}),
            vec!["b", "c"],
        ),
        (
            json!({"prefix": {"property": tag, "value": "pump-"}}),
            vec!["a", "b", "d"],
        ),
        (
            json!({"exists": {"property": ["schema", "Pump/1", "site"]}}),
            vec!["a", "b", "c"],
        ),
        (
            json!({"containsAny": {"property": ["schema", "Pump/1", "aliases"], "values": ["alpha", "B"]}}),
            vec!["a", "b"],
        ),
        (
            json!({"containsAll": {"property": ["schema", "Pump/1", "aliases"], "values": ["A", "alpha"]}}),
            vec!["a"],
        ),
        (
            json!({"matchAll": {}}),
            vec!["a", "b", "bergen", "c", "d", "oslo"],
        ),
        (
            json!({"and": [{"hasData": [pump_view()]}, {"not": {"prefix": {"property": tag, "value": "site-"}}}]}),
            vec!["a", "b", "c", "d"],
        ),
        (
            json!({"or": [{"equals": {"property": ["node", "externalId"], "value": "d"}},
                          {"instanceReferences": [node_ref("b")]}]}),
            vec!["b", "d"],
        ),
        (
            json!({"equals": {"property": ["node", "type"], "value": {"space": "schema", "externalId": "PumpType"}}}),
            vec!["a"],
        ),
        (
            json!({"nested": {"scope": ["schema", "Pump/1", "site"],
                              "filter": {"equals": {"property": status(), "value": "running"}}}}),
            vec!["a"],
        ),
        // A filter on the view's own property refers to the view being created.
        (
            json!({"equals": {"property": ["schema", "Own/1", "status"], "value": "stopped"}}),
            vec!["b", "bergen"],
        ),
    ];
    for (i, (filter, want)) in cases.into_iter().enumerate() {
        let xid = if filter.to_string().contains("Own/1") {
            "Own".to_string()
        } else {
            format!("V{i}")
        };
        let created = apply_view(&h, filtered_view(&xid, filter.clone())).await;
        assert_eq!(
            created["items"][0]["filter"], filter,
            "the view answers its filter"
        );
        assert_eq!(listed(&h, &xid).await, want, "list of {filter}");
        assert_eq!(members(&h, &xid), want, "control truth of {filter}");
        let (sync, _) = synced(&h, &xid, None).await;
        assert_eq!(sync, want, "sync of {filter}");
        let truth: Vec<String> = h
            .ctl()
            .live_instances(&ViewId::new("schema", &xid, "1"))
            .unwrap()
            .iter()
            .map(|i| i["externalId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(truth, want, "live_instances of {filter}");
    }
}

/// A member that stops matching leaves list and truth at once and produces no sync event;
/// one that starts matching through a `nested` filter (its referenced node changed) enters
/// list and truth, also without an event of its own; a later delete of an instance that
/// already left produces no tombstone either.
#[tokio::test]
async fn leaving_and_entering_a_filtered_view_emit_no_sync_event() {
    let h = seeded().await;
    apply_view(
        &h,
        filtered_view(
            "ActivePump",
            json!({"equals": {"property": status(), "value": "running"}}),
        ),
    )
    .await;
    apply_view(
        &h,
        filtered_view(
            "AtRunningSite",
            json!({"nested": {"scope": ["schema", "Pump/1", "site"],
                              "filter": {"equals": {"property": status(), "value": "running"}}}}),
        ),
    )
    .await;
    let (first, active) = synced(&h, "ActivePump", None).await;
    assert_eq!(first, ["a", "c", "oslo"]);
    let (first, at_site) = synced(&h, "AtRunningSite", None).await;
    assert_eq!(first, ["a"]);

    // `c` stops; `bergen` starts running, which moves `b` and `c` into AtRunningSite.
    h.ok(
        "/models/instances",
        json!({"items": [pump("c", json!({"status": "stopped"})), pump("bergen", json!({"status": "running"}))]}),
    )
    .await;
    assert_eq!(listed(&h, "ActivePump").await, ["a", "bergen", "oslo"]);
    assert_eq!(members(&h, "ActivePump"), ["a", "bergen", "oslo"]);
    let (changes, active) = synced(&h, "ActivePump", Some(&active)).await;
    assert_eq!(
        changes,
        ["bergen"],
        "only the instance that entered by its own change"
    );
    assert_eq!(listed(&h, "AtRunningSite").await, ["a", "b", "c"]);
    assert_eq!(members(&h, "AtRunningSite"), ["a", "b", "c"]);
    let (changes, at_site) = synced(&h, "AtRunningSite", Some(&at_site)).await;
    assert_eq!(
        changes,
        ["c"],
        "`b` entered through its site and has no change of its own; `c` changed itself"
    );

    // Deleting `c` (no longer running) emits nothing for ActivePump; deleting `a` does.
    h.ok(
        "/models/instances/delete",
        json!({"items": [{"instanceType": "node", "space": "data", "externalId": "c"},
                         {"instanceType": "node", "space": "data", "externalId": "a"}]}),
    )
    .await;
    let (changes, _) = synced(&h, "ActivePump", Some(&active)).await;
    assert_eq!(changes, ["a"]);
    let (changes, at_site) = synced(&h, "AtRunningSite", Some(&at_site)).await;
    assert_eq!(changes, ["a", "c"], "both deleted members");
    // The site's change alone moves `b` out of AtRunningSite again, silently.
    h.ok(
        "/models/instances",
        json!({"items": [pump("bergen", json!({"status": "stopped"}))]}),
    )
    .await;
    assert_eq!(listed(&h, "AtRunningSite").await, Vec::<String>::new());
    assert_eq!(members(&h, "AtRunningSite"), Vec::<String>::new());
    let (changes, _) = synced(&h, "AtRunningSite", Some(&at_site)).await;
    assert_eq!(changes, Vec::<String>::new(), "nothing for `b`");
}

/// Select on a filtered view returns its properties only for members; an edge view's filter
/// on its own property (`range`) works the same way for edges.
#[tokio::test]
async fn edge_views_filter_on_their_properties() {
    let h = seeded().await;
    h.ok(
        "/models/instances",
        json!({"items": [flow("f1", "a", "b", 1.0), flow("f2", "b", "c", 20.0)]}),
    )
    .await;
    let fast = json!({"space": "schema", "externalId": "FastFlow", "version": "1",
        "filter": {"range": {"property": ["schema", "Flow/1", "rate"], "gte": 10}},
        "properties": {"rate": {"container": {"space": "schema", "externalId": "FlowC"}, "containerPropertyIdentifier": "rate"}}});
    apply_view(&h, fast).await;
    let r = h
        .ok(
            "/models/instances/list",
            json!({"instanceType": "edge", "filter": {"hasData": [view_ref("FastFlow")]},
                   "sources": [{"source": view_ref("FastFlow")}]}),
        )
        .await;
    assert_eq!(xids(&r["items"]), ["f2"]);
    assert_eq!(
        r["items"][0]["properties"]["schema"]["FastFlow/1"]["rate"],
        20.0
    );
    let m = h
        .ctl()
        .view_members(&ViewId::new("schema", "FastFlow", "1"))
        .unwrap();
    assert_eq!(
        m,
        [ViewMember {
            kind: InstanceKind::Edge,
            space: "data".into(),
            external_id: "f2".into(),
            version: 1
        }]
    );
    h.ok(
        "/models/instances",
        json!({"items": [flow("f2", "b", "c", 2.0)]}),
    )
    .await;
    let edges = h
        .ctl()
        .live_instances_matching(
            InstanceKind::Edge,
            Some(json!({"hasData": [view_ref("FastFlow")]})),
            &[],
        )
        .unwrap();
    assert!(edges.is_empty(), "f2 left FastFlow: {edges:?}");
}

#[tokio::test]
async fn a_view_filter_no_read_could_use_is_refused_at_creation() {
    let h = seeded().await;
    for (filter, needle) in [
        (
            json!({"equals": {"property": ["schema", "Pump/1", "nope"], "value": 1}}),
            "nope",
        ),
        (json!({"bogus": {}}), "bogus"),
        (
            json!({"hasData": [view_ref("Loop")]}),
            "refers to the view itself",
        ),
        (
            json!({"nested": {"scope": ["schema", "Pump/1", "tag"], "filter": {"matchAll": {}}}}),
            "direct relation",
        ),
    ] {
        let r = h
            .post(
                "/models/views",
                json!({"items": [filtered_view("Loop", filter.clone())]}),
            )
            .await;
        assert_eq!(r.status, 400, "{filter} must be refused: {}", r.body);
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("invalid filter") && msg.contains(needle),
            "{msg}"
        );
        let got = h
            .ok(
                "/models/views/byids",
                json!({"items": [{"space": "schema", "externalId": "Loop", "version": "1"}]}),
            )
            .await;
        assert_eq!(got["items"], json!([]), "a refused view leaves no trace");
    }
}

/// Filtered views are created through the control API too, in process and over HTTP, and
/// the HTTP truth endpoint applies their filter.
#[tokio::test]
async fn filtered_views_through_the_control_api() {
    let h = seeded().await;
    h.ctl()
        .apply_schema(json!({"views": [filtered_view(
            "ActivePump",
            json!({"equals": {"property": status(), "value": "running"}}),
        )]}))
        .unwrap();
    let r = h
        .control_post(
            "/schema",
            json!({"views": [filtered_view("Stopped", json!({"equals": {"property": status(), "value": "stopped"}}))]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let live = h
        .control_post("/instances/live", json!({"view": view_ref("ActivePump")}))
        .await;
    assert_eq!(xids(&live.body["items"]), ["a", "c", "oslo"]);
    let live = h
        .control_post(
            "/instances/live",
            json!({"instanceType": "node", "filter": {"hasData": [view_ref("Stopped")]}, "sources": [view_ref("Stopped")]}),
        )
        .await;
    assert_eq!(xids(&live.body["items"]), ["b", "bergen"]);
    assert_eq!(
        live.body["items"][0]["properties"]["schema"]["Stopped/1"]["status"],
        "stopped"
    );
    let bad = h
        .control_post(
            "/schema",
            json!({"views": [filtered_view("Bad", json!({"equals": {"property": ["schema", "Nope/1", "x"], "value": 1}}))]}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}

/// `instances/aggregate` counts the members of a (filtered) view, optionally filtered more.
#[tokio::test]
async fn aggregate_counts_view_members() {
    let h = seeded().await;
    apply_view(
        &h,
        filtered_view(
            "ActivePump",
            json!({"equals": {"property": status(), "value": "running"}}),
        ),
    )
    .await;
    let r = h
        .ok(
            "/models/instances/aggregate",
            json!({"view": view_ref("ActivePump"), "instanceType": "node",
                   "aggregates": [{"count": {"property": "externalId"}}, {"count": {"property": "site"}}]}),
        )
        .await;
    assert_eq!(
        r["items"][0]["aggregates"],
        json!([{"aggregate": "count", "property": "externalId", "value": 3},
               {"aggregate": "count", "property": "site", "value": 2}])
    );
    let r = h
        .ok(
            "/models/instances/aggregate",
            json!({"view": view_ref("ActivePump"), "aggregates": [{"count": {"property": "externalId"}}],
                   "filter": {"prefix": {"property": ["node", "externalId"], "value": "o"}}}),
        )
        .await;
    assert_eq!(r["items"][0]["aggregates"][0]["value"], 1);
    let r = h
        .post(
            "/models/instances/aggregate",
            json!({"view": view_ref("ActivePump"), "aggregates": [{"avg": {"property": "site"}}]}),
        )
        .await;
    assert_eq!(r.status, 400);
}
