//! Instance writes, validation, deletes, list and byids.

mod common;

use common::*;
use serde_json::{Value, json};

fn msg(r: &Resp) -> String {
    r.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn writes_are_validated_against_container_types() {
    let h = start().await;
    seed_schema(&h.ctl());
    let r = h
        .post(
            "/models/instances",
            json!({"items": [pump("a", json!({"tag": "t", "ratedKw": "fast"}))]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        msg(&r).contains("ratedKw") && msg(&r).contains("float64") && msg(&r).contains("fast"),
        "{}",
        msg(&r)
    );
    let r = h
        .post(
            "/models/instances",
            json!({"items": [pump("a", json!({"tag": "t", "nope": 1}))]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        msg(&r).contains("nope") && msg(&r).contains("schema:Pump/1"),
        "{}",
        msg(&r)
    );
    let r = h
        .post(
            "/models/instances",
            json!({"items": [pump("a", json!({"ratedKw": 1.0}))]}),
        )
        .await;
    assert_eq!(r.status, 400, "non-nullable tag is required");
    assert!(msg(&r).contains("tag"));
    for (prop, bad) in [
        ("count32", json!(3_000_000_000i64)),
        ("count64", json!(1.5)),
        ("at", json!("yesterday")),
        ("day", json!("2024-02-30")),
        ("extra", json!([1, 2])),
        ("site", json!({"space": "s"})),
        ("status", json!("exploded")),
        ("aliases", json!("not-a-list")),
        ("ok", json!("true")),
        ("flows", json!([])),
    ] {
        let r = h
            .post(
                "/models/instances",
                json!({"items": [pump("a", json!({"tag": "t", prop: bad}))]}),
            )
            .await;
        assert_eq!(r.status, 400, "{prop} = {bad} must be rejected");
        assert!(msg(&r).contains(prop), "{prop}: {}", msg(&r));
    }
    // Nothing was written by the failed batches.
    assert_eq!(h.ctl().instance_counts(), (0, 0));
    let r = h
        .post(
            "/models/instances",
            json!({"items": [{"instanceType": "edge", "space": "data", "externalId": "e"}]}),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn versions_no_ops_conflicts_and_replace() {
    let h = start().await;
    seed_schema(&h.ctl());
    let r = h
        .ok(
            "/models/instances",
            json!({"items": [pump("a", json!({"tag": "t", "ratedKw": 1.0}))]}),
        )
        .await;
    let first = &r["items"][0];
    assert_eq!(first["version"], 1);
    assert_eq!(first["wasModified"], true);
    assert!(first["createdTime"].is_i64() && first["lastUpdatedTime"].is_i64());
    let again = h
        .ok(
            "/models/instances",
            json!({"items": [pump("a", json!({"tag": "t"}))]}),
        )
        .await;
    assert_eq!(again["items"][0]["wasModified"], false);
    assert_eq!(
        again["items"][0]["lastUpdatedTime"],
        first["lastUpdatedTime"]
    );
    let mut item = pump("a", json!({"tag": "t2"}));
    item["existingVersion"] = json!(0);
    let r = h
        .post("/models/instances", json!({"items": [item.clone()]}))
        .await;
    assert_eq!(r.status, 409);
    let skipped = h
        .ok(
            "/models/instances",
            json!({"items": [item], "skipOnVersionConflict": true}),
        )
        .await;
    assert_eq!(skipped["items"][0]["wasModified"], false);
    let mut item = pump("a", json!({"tag": "t3"}));
    item["existingVersion"] = json!(1);
    let r = h.ok("/models/instances", json!({"items": [item]})).await;
    assert_eq!(r["items"][0]["version"], 2);
    // replace resets properties that the request leaves out.
    h.ok(
        "/models/instances",
        json!({"items": [pump("a", json!({"tag": "t3"}))], "replace": true}),
    )
    .await;
    let live = h
        .ctl()
        .live_instances(&cdf_emulator::ViewId::new("schema", "Pump", "1"))
        .unwrap();
    assert!(
        live[0]["properties"]["schema"]["Pump/1"]
            .get("ratedKw")
            .is_none()
    );
    assert_eq!(live[0]["version"], 3);
}

#[tokio::test]
async fn direct_relations_and_edge_ends() {
    let h = start().await;
    seed_schema(&h.ctl());
    let r = h
        .post("/models/instances", json!({"items": [pump("a", json!({"tag": "t", "site": {"space": "data", "externalId": "oslo"}}))], "autoCreateDirectRelations": false}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["missing"][0]["externalId"], "oslo");
    h.ok("/models/instances", json!({"items": [pump("a", json!({"tag": "t", "site": {"space": "data", "externalId": "oslo"}}))]})).await;
    assert_eq!(
        h.ctl().instance_counts().0,
        2,
        "the target node was auto-created"
    );
    let r = h
        .post(
            "/models/instances",
            json!({"items": [flow("e", "a", "ghost", 1.0)]}),
        )
        .await;
    assert_eq!(r.status, 400);
    h.ok(
        "/models/instances",
        json!({"items": [flow("e", "a", "ghost", 1.0)], "autoCreateEndNodes": true}),
    )
    .await;
    assert_eq!(h.ctl().instance_counts().0, 4);
}

#[tokio::test]
async fn apply_with_delete_and_recreate() {
    let h = start().await;
    seed_schema(&h.ctl());
    h.ok(
        "/models/instances",
        json!({"items": [pump("a", json!({"tag": "t"})), pump("b", json!({"tag": "b"}))]}),
    )
    .await;
    let r = h
        .ok("/models/instances", json!({"items": [pump("c", json!({"tag": "c"}))], "delete": [{"instanceType": "node", "space": "data", "externalId": "b"}]}))
        .await;
    assert_eq!(r["deleted"][0]["externalId"], "b");
    assert_eq!(h.ctl().instance_counts(), (2, 1));
    let r = h
        .ok(
            "/models/instances",
            json!({"items": [pump("b", json!({"tag": "back"}))]}),
        )
        .await;
    assert_eq!(
        r["items"][0]["version"], 3,
        "a recreated instance continues the version count"
    );
    assert_eq!(h.ctl().instance_counts(), (3, 0));
}

#[tokio::test]
async fn list_and_byids() {
    let h = start().await;
    seed_schema(&h.ctl());
    let items: Vec<Value> = (0..5)
        .map(|i| {
            pump(
                &format!("p{i}"),
                json!({"tag": format!("t{i}"), "count64": 10 - i}),
            )
        })
        .collect();
    h.ok("/models/instances", json!({"items": items})).await;
    let r = h
        .ok("/models/instances/list", json!({"instanceType": "node", "sources": [{"source": pump_view()}], "filter": {"hasData": [pump_view()]}, "limit": 2,
            "sort": [{"property": ["schema", "Pump/1", "count64"], "direction": "ascending"}]}))
        .await;
    assert_eq!(xids(&r["items"]), ["p4", "p3"]);
    let r2 = h
        .ok("/models/instances/list", json!({"instanceType": "node", "sources": [{"source": pump_view()}], "filter": {"hasData": [pump_view()]}, "limit": 2,
            "sort": [{"property": ["schema", "Pump/1", "count64"], "direction": "ascending"}], "cursor": r["nextCursor"]}))
        .await;
    assert_eq!(xids(&r2["items"]), ["p2", "p1"]);
    let r = h
        .ok("/models/instances/byids", json!({"items": [{"instanceType": "node", "space": "data", "externalId": "p1"}, {"instanceType": "node", "space": "data", "externalId": "zz"}],
            "sources": [{"source": pump_view()}], "includeTyping": true}))
        .await;
    assert_eq!(xids(&r["items"]), ["p1"]);
    assert_eq!(r["items"][0]["properties"]["schema"]["Pump/1"]["tag"], "t1");
    assert!(r["typing"]["schema"]["Pump/1"]["tag"].is_object());
}

#[tokio::test]
async fn bulk_seeding_validates_and_detects_no_ops() {
    let h = start().await;
    seed_schema(&h.ctl());
    let view = cdf_emulator::ViewId::new("schema", "Pump", "1");
    let node = |x: &str, tag: Value, kw: Value| cdf_emulator::SeedNode {
        space: "data".into(),
        external_id: x.into(),
        values: vec![tag, kw, json!({"space": "data", "externalId": "site-1"})],
    };
    let n = h
        .ctl()
        .seed_nodes(
            &view,
            &["tag", "ratedKw", "site"],
            vec![
                node("a", json!("A"), json!(1.5)),
                node("b", json!("B"), Value::Null),
            ],
        )
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        h.ctl().instance_counts().0,
        3,
        "direct-relation target auto-created"
    );
    let again = h
        .ctl()
        .seed_nodes(
            &view,
            &["tag", "ratedKw", "site"],
            vec![node("a", json!("A"), json!(1.5))],
        )
        .unwrap();
    assert_eq!(again, 0, "identical values are a no-op");
    let err = h
        .ctl()
        .seed_nodes(
            &view,
            &["tag", "ratedKw", "site"],
            vec![node("c", json!("C"), json!("x"))],
        )
        .unwrap_err();
    assert!(err.message.contains("ratedKw"), "{}", err.message);
    let err = h
        .ctl()
        .seed_nodes(
            &view,
            &["ratedKw"],
            vec![cdf_emulator::SeedNode {
                space: "data".into(),
                external_id: "d".into(),
                values: vec![json!(1)],
            }],
        )
        .unwrap_err();
    assert!(
        err.message.contains("tag"),
        "non-nullable tag is required: {}",
        err.message
    );
    assert!(h.ctl().seed_nodes(&view, &["nope"], Vec::new()).is_err());
    let live = h.ctl().live_instances(&view).unwrap();
    assert_eq!(xids(&Value::Array(live.clone())), ["a", "b"]);
    assert_eq!(
        live[0]["properties"]["schema"]["Pump/1"]["kind"], "pump",
        "container defaults apply"
    );
}

/// `instances/list` as a membership listing: without `sources` instances come back with
/// keys, version and times but no properties; unsorted pages resume after the last key, so
/// writes and deletes between pages neither skip nor repeat a member; `and[hasData,
/// instanceReferences]` fetches given members with their properties.
#[tokio::test]
async fn list_pages_by_key_without_sources_and_by_reference() {
    let h = start().await;
    seed_schema(&h.ctl());
    let items: Vec<Value> = (0..7)
        .map(|i| pump(&format!("p{i}"), json!({"tag": format!("t{i}")})))
        .collect();
    h.ok("/models/instances", json!({"items": items})).await;
    let page = |cursor: Value| json!({"instanceType": "node", "filter": {"hasData": [pump_view()]}, "limit": 3, "cursor": cursor});
    let first = h.ok("/models/instances/list", page(Value::Null)).await;
    assert_eq!(xids(&first["items"]), ["p0", "p1", "p2"]);
    let p0 = &first["items"][0];
    assert_eq!(p0["version"], 1);
    assert!(p0["createdTime"].is_i64() && p0["lastUpdatedTime"].is_i64());
    assert!(p0.get("deletedTime").is_none());
    assert!(
        p0.get("properties")
            .is_none_or(|p| p.as_object().is_some_and(|o| o.is_empty())),
        "no sources, no properties: {p0}"
    );
    // Between pages: p1 (already listed) is deleted, p3 (next) stays, pp (after p2) appears.
    h.ok(
        "/models/instances/delete",
        json!({"items": [{"instanceType": "node", "space": "data", "externalId": "p1"}]}),
    )
    .await;
    h.ok(
        "/models/instances",
        json!({"items": [pump("p2b", json!({"tag": "new"}))]}),
    )
    .await;
    let second = h
        .ok("/models/instances/list", page(first["nextCursor"].clone()))
        .await;
    assert_eq!(xids(&second["items"]), ["p2b", "p3", "p4"]);
    let third = h
        .ok("/models/instances/list", page(second["nextCursor"].clone()))
        .await;
    assert_eq!(xids(&third["items"]), ["p5", "p6"]);
    assert!(third.get("nextCursor").is_none_or(Value::is_null));
    // A cursor of another instance type is not accepted.
    let r = h
        .post(
            "/models/instances/list",
            json!({"instanceType": "edge", "cursor": first["nextCursor"]}),
        )
        .await;
    assert_eq!(r.status, 400);

    let r = h
        .ok(
            "/models/instances/list",
            json!({"instanceType": "node", "sources": [{"source": pump_view()}],
                "filter": {"and": [{"hasData": [pump_view()]},
                    {"instanceReferences": [{"space": "data", "externalId": "p6"}, {"space": "data", "externalId": "p1"},
                                            {"space": "data", "externalId": "p4"}, {"space": "other", "externalId": "p4"}]}]}}),
        )
        .await;
    assert_eq!(xids(&r["items"]), ["p4", "p6"], "deleted p1 is not listed");
    assert_eq!(r["items"][0]["properties"]["schema"]["Pump/1"]["tag"], "t4");
    let r = h
        .post("/models/instances/list", json!({"limit": 1001}))
        .await;
    assert_eq!(r.status, 400);
}
