//! Schema rules CDF enforces, each accepted up to its limit and refused beyond it with the
//! CDF error envelope: compatible property changes (enum values may be added), container
//! constraints and indexes with their `state`, and the size limits of Cognite's "Limits and
//! restrictions" page.

mod common;

use common::*;
use serde_json::{Map, Value, json};

fn msg(r: &Resp) -> String {
    r.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A 400 with the CDF envelope whose message contains `needle`.
fn refused(r: &Resp, needle: &str) {
    assert_eq!(r.status, 400, "expected a refusal: {}", r.body);
    assert_eq!(r.body["error"]["code"], 400, "{}", r.body);
    assert!(msg(r).contains(needle), "`{needle}` not in: {}", msg(r));
}

fn container(xid: &str, properties: Value) -> Value {
    json!({"items": [{"space": "schema", "externalId": xid, "usedFor": "node", "properties": properties}]})
}

fn status_type(values: &[&str]) -> Value {
    let values: Map<String, Value> = values.iter().map(|v| (v.to_string(), json!({}))).collect();
    json!({"type": {"type": "enum", "values": values}})
}

#[tokio::test]
async fn enum_properties_may_gain_values_but_not_lose_them_or_change_type() {
    let h = start().await;
    h.ok(
        "/models/containers",
        container("E", json!({"status": status_type(&["running", "stopped"])})),
    )
    .await;
    h.ok(
        "/models/views",
        json!({"items": [{"space": "schema", "externalId": "E", "version": "1", "properties": {
            "status": {"container": {"space": "schema", "externalId": "E"}, "containerPropertyIdentifier": "status"}}}]}),
    )
    .await;
    let view = json!({"type": "view", "space": "schema", "externalId": "E", "version": "1"});
    let write = |v: &str| {
        json!({"items": [{"instanceType": "node", "space": "data", "externalId": "n",
            "sources": [{"source": view, "properties": {"status": v}}]}]})
    };
    h.ok("/models/instances", write("running")).await;
    refused(
        &h.post("/models/instances", write("broken")).await,
        "broken",
    );

    // Adding a value is a compatible change: accepted, answered, and writable at once.
    let r = h
        .ok(
            "/models/containers",
            container(
                "E",
                json!({"status": status_type(&["running", "stopped", "broken"])}),
            ),
        )
        .await;
    assert!(r["items"][0]["properties"]["status"]["type"]["values"]["broken"].is_object());
    h.ok("/models/instances", write("broken")).await;

    // Removing one, or changing the type, is refused and leaves the container as it was.
    refused(
        &h.post(
            "/models/containers",
            container("E", json!({"status": status_type(&["running", "broken"])})),
        )
        .await,
        "stopped",
    );
    refused(
        &h.post(
            "/models/containers",
            container("E", json!({"status": {"type": {"type": "text"}}})),
        )
        .await,
        "Cannot change the type",
    );
    let got = h
        .ok(
            "/models/containers/byids",
            json!({"items": [{"space": "schema", "externalId": "E"}]}),
        )
        .await;
    assert_eq!(
        got["items"][0]["properties"]["status"]["type"]["values"]
            .as_object()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn list_flag_and_max_list_size_changes() {
    let h = start().await;
    h.ok(
        "/models/containers",
        container(
            "L",
            json!({"tags": {"type": {"type": "text", "list": true, "maxListSize": 10}}}),
        ),
    )
    .await;
    refused(
        &h.post(
            "/models/containers",
            container("L", json!({"tags": {"type": {"type": "text"}}})),
        )
        .await,
        "list of text to text",
    );
    refused(
        &h.post(
            "/models/containers",
            container(
                "L",
                json!({"tags": {"type": {"type": "text", "list": true, "maxListSize": 5}}}),
            ),
        )
        .await,
        "may only be increased",
    );
    h.ok(
        "/models/containers",
        container(
            "L",
            json!({"tags": {"type": {"type": "text", "list": true, "maxListSize": 20}}}),
        ),
    )
    .await;
}

/// cognite-sdk 8 reads `state` of every constraint and index (`KeyError: 'state'` without it)
/// and `constraintState` of every property.
#[tokio::test]
async fn constraints_and_indexes_are_answered_with_their_state() {
    let h = start().await;
    h.ok(
        "/models/containers",
        json!({"items": [{"space": "schema", "externalId": "Base", "properties": {"x": {"type": {"type": "text"}}}}]}),
    )
    .await;
    let body = json!({"items": [{"space": "schema", "externalId": "C", "usedFor": "node",
        "properties": {
            "tag": {"type": {"type": "text", "maxTextSize": 100}, "nullable": false},
            "levels": {"type": {"type": "int32", "list": true, "maxListSize": 600}},
            "free": {"type": {"type": "text"}}},
        "constraints": {
            "needsBase": {"constraintType": "requires", "require": {"type": "container", "space": "schema", "externalId": "Base"}},
            "uniqueTag": {"constraintType": "uniqueness", "properties": ["tag"]}},
        "indexes": {
            "byTag": {"indexType": "btree", "properties": ["tag"], "cursorable": true},
            "byLevels": {"indexType": "btree", "properties": ["levels"]},
            "inv": {"indexType": "inverted", "properties": ["free"]}}}]});
    let r = h.ok("/models/containers", body).await;
    let c = &r["items"][0];
    assert_eq!(
        c["constraints"],
        json!({
            "needsBase": {"constraintType": "requires", "require": {"type": "container", "space": "schema", "externalId": "Base"}, "state": "current"},
            "uniqueTag": {"constraintType": "uniqueness", "properties": ["tag"], "state": "current"}})
    );
    assert_eq!(
        c["indexes"],
        json!({
            "byTag": {"indexType": "btree", "properties": ["tag"], "cursorable": true, "state": "current"},
            "byLevels": {"indexType": "btree", "properties": ["levels"], "cursorable": false, "state": "current"},
            "inv": {"indexType": "inverted", "properties": ["free"], "state": "current"}})
    );
    assert_eq!(
        c["properties"]["tag"]["constraintState"],
        json!({"nullability": "current", "maxTextSize": "current"})
    );
    assert_eq!(
        c["properties"]["levels"]["constraintState"],
        json!({"maxListSize": "current"})
    );
    assert_eq!(c["properties"]["free"]["constraintState"], json!({}));

    // An apply that leaves them out keeps them; listing answers the same.
    h.ok(
        "/models/containers",
        json!({"items": [{"space": "schema", "externalId": "C", "usedFor": "node",
            "properties": {"more": {"type": {"type": "text"}}}}]}),
    )
    .await;
    let listed = h.get("/models/containers?space=schema&limit=10").await.body;
    let c = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["externalId"] == "C")
        .unwrap();
    assert_eq!(c["indexes"]["byTag"]["state"], "current");
    assert_eq!(c["constraints"]["uniqueTag"]["state"], "current");

    for (bad, needle) in [
        (
            json!({"constraints": {"u": {"constraintType": "uniqueness", "properties": ["nope"]}}}),
            "nope",
        ),
        (
            json!({"indexes": {"i": {"indexType": "btree", "properties": ["nope"]}}}),
            "nope",
        ),
        (
            json!({"constraints": {"u": {"constraintType": "exclusion", "properties": ["tag"]}}}),
            "exclusion",
        ),
        (
            json!({"indexes": {"i": {"indexType": "hash", "properties": ["tag"]}}}),
            "hash",
        ),
    ] {
        let mut item = json!({"space": "schema", "externalId": "C", "properties": {}});
        for (k, v) in bad.as_object().unwrap() {
            item[k] = v.clone();
        }
        refused(
            &h.post("/models/containers", json!({"items": [item]})).await,
            needle,
        );
    }
}

fn text_props(n: usize) -> Value {
    Value::Object(
        (0..n)
            .map(|i| (format!("p{i}"), json!({"type": {"type": "text"}})))
            .collect(),
    )
}

/// "Container properties (per container): 100", counted after merging with the stored ones.
#[tokio::test]
async fn a_container_holds_at_most_100_properties() {
    let h = start().await;
    h.ok("/models/containers", container("C100", text_props(100)))
        .await;
    refused(
        &h.post("/models/containers", container("C101", text_props(101)))
            .await,
        "at most 100",
    );
    refused(
        &h.post(
            "/models/containers",
            container("C100", json!({"extra": {"type": {"type": "text"}}})),
        )
        .await,
        "would have 101 properties",
    );
    // Re-applying existing properties does not count them twice.
    h.ok("/models/containers", container("C100", text_props(100)))
        .await;
}

/// "View properties (per view): 300", own and inherited; "Views (per data model): 100".
#[tokio::test]
async fn views_hold_at_most_300_properties_and_models_100_views() {
    let h = start().await;
    for c in 0..4 {
        h.ok(
            "/models/containers",
            container(&format!("C{c}"), text_props(100)),
        )
        .await;
    }
    let mapped = |containers: std::ops::Range<usize>, n: usize| -> Value {
        let mut m = Map::new();
        for c in containers {
            for i in 0..100 {
                if m.len() == n {
                    break;
                }
                m.insert(
                    format!("c{c}p{i}"),
                    json!({"container": {"space": "schema", "externalId": format!("C{c}")}, "containerPropertyIdentifier": format!("p{i}")}),
                );
            }
        }
        Value::Object(m)
    };
    h.ok(
        "/models/views",
        json!({"items": [{"space": "schema", "externalId": "V300", "version": "1", "properties": mapped(0..3, 300)}]}),
    )
    .await;
    refused(
        &h.post(
            "/models/views",
            json!({"items": [{"space": "schema", "externalId": "V301", "version": "1", "properties": mapped(0..4, 301)}]}),
        )
        .await,
        "at most 300",
    );
    // Inherited properties count too.
    refused(
        &h.post(
            "/models/views",
            json!({"items": [{"space": "schema", "externalId": "Child", "version": "1",
                "implements": [{"type": "view", "space": "schema", "externalId": "V300", "version": "1"}],
                "properties": mapped(3..4, 1)}]}),
        )
        .await,
        "301 properties",
    );

    let views: Vec<Value> = (0..101)
        .map(|i| json!({"space": "schema", "externalId": format!("M{i}"), "version": "1", "properties": {}}))
        .collect();
    h.ok("/models/views", json!({"items": views[..100].to_vec()}))
        .await;
    h.ok("/models/views", json!({"items": [views[100].clone()]}))
        .await;
    let refs: Vec<Value> = (0..101)
        .map(|i| json!({"type": "view", "space": "schema", "externalId": format!("M{i}"), "version": "1"}))
        .collect();
    h.ok(
        "/models/datamodels",
        json!({"items": [{"space": "schema", "externalId": "Model", "version": "1", "views": refs[..100].to_vec()}]}),
    )
    .await;
    refused(
        &h.post(
            "/models/datamodels",
            json!({"items": [{"space": "schema", "externalId": "Model", "version": "2", "views": refs}]}),
        )
        .await,
        "at most 100",
    );
}

/// List sizes: 1000 items by default, 100 for direct relations; `maxListSize` up to 2000,
/// 600 for b-tree indexed int32 lists and 300 for b-tree indexed int64 lists.
#[tokio::test]
async fn list_sizes_follow_cdf_caps() {
    let h = start().await;
    let list = |t: &str| json!({"type": {"type": t, "list": true}});
    let sized = |t: &str, n: usize| json!({"type": {"type": t, "list": true, "maxListSize": n}});
    h.ok(
        "/models/containers",
        container(
            "Lists",
            json!({"ints": list("int32"), "longs": list("int64"), "floats": list("float64"),
                "flags": list("boolean"), "times": list("timestamp"), "days": list("date"),
                "texts": list("text"), "refs": list("direct"), "big": sized("text", 2000)}),
        ),
    )
    .await;
    let mut props = Map::new();
    for p in [
        "ints", "longs", "floats", "flags", "times", "days", "texts", "refs", "big",
    ] {
        props.insert(
            p.into(),
            json!({"container": {"space": "schema", "externalId": "Lists"}, "containerPropertyIdentifier": p}),
        );
    }
    h.ok(
        "/models/views",
        json!({"items": [{"space": "schema", "externalId": "Lists", "version": "1", "properties": props}]}),
    )
    .await;
    let view = json!({"type": "view", "space": "schema", "externalId": "Lists", "version": "1"});
    let write = |prop: &str, value: Value| {
        json!({"items": [{"instanceType": "node", "space": "data", "externalId": "n",
            "sources": [{"source": view, "properties": {prop: value}}]}]})
    };
    let item = |p: &str, i: usize| -> Value {
        match p {
            "ints" | "longs" => json!(i),
            "floats" => json!(i as f64 + 0.5),
            "flags" => json!(i.is_multiple_of(2)),
            "times" => json!(format!("2024-01-01T00:00:{:02}.000+00:00", i % 60)),
            "days" => json!("2024-01-01"),
            "refs" => json!({"space": "data", "externalId": format!("t{i}")}),
            _ => json!(format!("v{i}")),
        }
    };
    for (p, cap) in [
        ("ints", 1000),
        ("longs", 1000),
        ("floats", 1000),
        ("flags", 1000),
        ("times", 1000),
        ("days", 1000),
        ("texts", 1000),
        ("refs", 100),
        ("big", 2000),
    ] {
        let values = |n: usize| Value::Array((0..n).map(|i| item(p, i)).collect());
        let r = h.post("/models/instances", write(p, values(cap))).await;
        assert_eq!(r.status, 200, "{cap} items of {p} fit: {}", r.body);
        refused(
            &h.post("/models/instances", write(p, values(cap + 1))).await,
            p,
        );
    }

    for (ty, n, index, ok) in [
        ("text", 2000, false, true),
        ("text", 2001, false, false),
        ("direct", 2000, false, true),
        ("int32", 600, true, true),
        ("int32", 601, true, false),
        ("int32", 2000, false, true),
        ("int64", 300, true, true),
        ("int64", 301, true, false),
        ("float64", 0, false, false),
    ] {
        let mut item = json!({"space": "schema", "externalId": format!("S{ty}{n}{index}"),
            "properties": {"p": sized(ty, n)}});
        if index {
            item["indexes"] = json!({"i": {"indexType": "btree", "properties": ["p"]}});
        }
        let r = h.post("/models/containers", json!({"items": [item]})).await;
        if ok {
            assert_eq!(r.status, 200, "maxListSize {n} on {ty}: {}", r.body);
        } else {
            refused(&r, "maxListSize must be between 1 and");
        }
    }
}
