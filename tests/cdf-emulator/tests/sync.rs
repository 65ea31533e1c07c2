//! `instances/sync` semantics: modes, filters, cursors, tombstones.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn seeded(n: usize) -> Harness {
    let h = start().await;
    seed_schema(&h.ctl());
    let items: Vec<Value> = (0..n)
        .map(|i| {
            pump(
                &format!("p{i:03}"),
                json!({"tag": format!("T{i}"), "count64": i, "ratedKw": i as f64 * 1.5}),
            )
        })
        .collect();
    h.ctl().apply_instances(json!({"items": items})).unwrap();
    h
}

fn cursor(resp: &Value) -> String {
    resp["nextCursor"]["pumps"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn one_phase_streams_everything_then_changes() {
    let h = seeded(5).await;
    let r = h.sync(pump_sync("onePhase", 3, None)).await;
    assert_eq!(xids(&r["items"]["pumps"]), ["p000", "p001", "p002"]);
    let r = h.sync(pump_sync("onePhase", 3, Some(&cursor(&r)))).await;
    assert_eq!(xids(&r["items"]["pumps"]), ["p003", "p004"]);
    let c = cursor(&r);
    let r = h.sync(pump_sync("onePhase", 3, Some(&c))).await;
    assert!(r["items"]["pumps"].as_array().unwrap().is_empty());
    assert!(
        r["nextCursor"]["pumps"].is_string(),
        "nextCursor even on empty pages"
    );
    // An update and a delete after catching up are both delivered, in change order.
    h.ctl()
        .apply_instances(json!({"items": [pump("p001", json!({"tag": "changed"}))]}))
        .unwrap();
    h.ctl()
        .delete_instances(
            json!({"items": [{"instanceType": "node", "space": "data", "externalId": "p002"}]}),
        )
        .unwrap();
    let r = h.sync(pump_sync("onePhase", 10, Some(&cursor(&r)))).await;
    let items = r["items"]["pumps"].as_array().unwrap();
    assert_eq!(xids(&r["items"]["pumps"]), ["p001", "p002"]);
    assert_eq!(items[0]["properties"]["schema"]["Pump/1"]["tag"], "changed");
    assert_eq!(items[0]["version"], 2);
    assert!(items[1]["deletedTime"].is_i64());
    assert_eq!(items[1]["properties"], json!({}));
}

#[tokio::test]
async fn two_phase_backfill_is_sorted_and_hands_over_to_streaming() {
    let h = start().await;
    seed_schema(&h.ctl());
    // Insert out of key order so change order and key order differ.
    for x in ["c", "a", "d", "b"] {
        h.ctl()
            .apply_instances(json!({"items": [pump(x, json!({"tag": x}))]}))
            .unwrap();
    }
    let r = h.sync(pump_sync("twoPhase", 2, None)).await;
    assert_eq!(xids(&r["items"]["pumps"]), ["a", "b"]);
    // Changes during backfill: update one already sent, one not yet sent, create and delete.
    h.ctl().apply_instances(json!({"items": [pump("a", json!({"tag": "a2"})), pump("d", json!({"tag": "d2"})), pump("e", json!({"tag": "e"}))]})).unwrap();
    h.ctl()
        .delete_instances(
            json!({"items": [{"instanceType": "node", "space": "data", "externalId": "c"}]}),
        )
        .unwrap();
    let r = h.sync(pump_sync("twoPhase", 2, Some(&cursor(&r)))).await;
    // c was deleted and d changed after the snapshot: both are left to streaming.
    assert_eq!(xids(&r["items"]["pumps"]), Vec::<String>::new());
    let r = h.sync(pump_sync("twoPhase", 2, Some(&cursor(&r)))).await;
    assert_eq!(
        xids(&r["items"]["pumps"]),
        ["a", "d"],
        "streaming delivers changes since the snapshot"
    );
    let r = h.sync(pump_sync("twoPhase", 2, Some(&cursor(&r)))).await;
    let items = r["items"]["pumps"].as_array().unwrap();
    assert_eq!(xids(&r["items"]["pumps"]), ["e", "c"]);
    assert!(items[1]["deletedTime"].is_i64());
    let r = h.sync(pump_sync("twoPhase", 2, Some(&cursor(&r)))).await;
    assert!(r["items"]["pumps"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn two_phase_full_last_page_needs_one_more_short_page() {
    let h = seeded(4).await;
    let r = h.sync(pump_sync("twoPhase", 2, None)).await;
    let r = h.sync(pump_sync("twoPhase", 2, Some(&cursor(&r)))).await;
    assert_eq!(xids(&r["items"]["pumps"]), ["p002", "p003"]);
    let r = h.sync(pump_sync("twoPhase", 2, Some(&cursor(&r)))).await;
    assert!(r["items"]["pumps"].as_array().unwrap().is_empty());
    h.ctl()
        .apply_instances(json!({"items": [pump("p000", json!({"tag": "x"}))]}))
        .unwrap();
    let r = h.sync(pump_sync("twoPhase", 2, Some(&cursor(&r)))).await;
    assert_eq!(xids(&r["items"]["pumps"]), ["p000"]);
}

#[tokio::test]
async fn no_backfill_only_sees_later_changes() {
    let h = seeded(3).await;
    let r = h.sync(pump_sync("noBackfill", 10, None)).await;
    assert!(r["items"]["pumps"].as_array().unwrap().is_empty());
    h.ctl()
        .apply_instances(json!({"items": [pump("new", json!({"tag": "n"}))]}))
        .unwrap();
    let r = h.sync(pump_sync("noBackfill", 10, Some(&cursor(&r)))).await;
    assert_eq!(xids(&r["items"]["pumps"]), ["new"]);
}

#[tokio::test]
async fn no_op_writes_emit_nothing() {
    let h = seeded(2).await;
    let r = h.sync(pump_sync("onePhase", 10, None)).await;
    let seq = h.ctl().change_seq();
    let resp = h
        .ok(
            "/models/instances",
            json!({"items": [pump("p000", json!({"tag": "T0", "count64": 0}))]}),
        )
        .await;
    assert_eq!(resp["items"][0]["wasModified"], false);
    assert_eq!(resp["items"][0]["version"], 1);
    assert_eq!(h.ctl().change_seq(), seq);
    let r = h.sync(pump_sync("onePhase", 10, Some(&cursor(&r)))).await;
    assert!(r["items"]["pumps"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn skip_already_deleted_and_purge() {
    let mut h = seeded(3).await;
    h.ctl()
        .delete_instances(
            json!({"items": [{"instanceType": "node", "space": "data", "externalId": "p001"}]}),
        )
        .unwrap();
    let mut body = pump_sync("onePhase", 10, None);
    let r = h.sync(body.clone()).await;
    assert_eq!(
        xids(&r["items"]["pumps"]),
        ["p000", "p002"],
        "skipAlreadyDeleted defaults to true"
    );
    body["with"]["pumps"]["skipAlreadyDeleted"] = json!(false);
    let r = h.sync(body.clone()).await;
    assert_eq!(xids(&r["items"]["pumps"]), ["p000", "p002", "p001"]);
    body["with"]["pumps"]["mode"] = json!("twoPhase");
    let r = h.sync(body.clone()).await;
    assert_eq!(xids(&r["items"]["pumps"]), ["p000", "p001", "p002"]);
    // After the retention age the tombstone is gone for good.
    h.advance(Duration::from_secs(3 * 24 * 3600 + 1));
    let r = h.sync(body.clone()).await;
    assert_eq!(xids(&r["items"]["pumps"]), ["p000", "p002"]);
    assert_eq!(h.ctl().instance_counts(), (2, 0));
}

#[tokio::test]
async fn purge_endpoint_removes_all_tombstones() {
    let h = seeded(2).await;
    h.ctl()
        .delete_instances(
            json!({"items": [{"instanceType": "node", "space": "data", "externalId": "p000"}]}),
        )
        .unwrap();
    assert_eq!(h.ctl().instance_counts(), (1, 1));
    let r = h.control_post("/tombstones/purge", json!({})).await;
    assert_eq!(r.body["purged"], 1);
    assert_eq!(h.ctl().instance_counts(), (1, 0));
}

#[tokio::test]
async fn cursor_errors_use_the_exact_messages() {
    let mut h = seeded(2).await;
    let r = h.sync(pump_sync("onePhase", 10, None)).await;
    let c = cursor(&r);

    let bad = h
        .post(
            "/models/instances/sync",
            pump_sync("onePhase", 10, Some("garbage")),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["message"], "Invalid cursor provided.");
    assert_eq!(bad.body["error"]["code"], 400);

    // A cursor used with a different expression is invalid too.
    let mut other = pump_sync("onePhase", 10, Some(&c));
    other["with"]["pumps"]["nodes"]["filter"] = json!({"matchAll": {}});
    let bad = h.post("/models/instances/sync", other).await;
    assert_eq!(bad.body["error"]["message"], "Invalid cursor provided.");
    // ...but a different page size is fine.
    assert_eq!(
        h.post("/models/instances/sync", pump_sync("onePhase", 5, Some(&c)))
            .await
            .status,
        200
    );

    h.advance(Duration::from_secs(3 * 24 * 3600 + 1));
    let old = h
        .post(
            "/models/instances/sync",
            pump_sync("onePhase", 10, Some(&c)),
        )
        .await;
    assert_eq!(old.status, 400);
    assert_eq!(
        old.body["error"]["message"],
        "Cursor has expired. Try again with a new cursor."
    );
    let mut allow = pump_sync("onePhase", 10, Some(&c));
    allow["allowExpiredCursorsAndAcceptMissedDeletes"] = json!(true);
    assert_eq!(h.post("/models/instances/sync", allow).await.status, 200);
}

#[tokio::test]
async fn cursor_expiry_is_configurable_and_can_be_forced() {
    let mut h = seeded(1).await;
    h.ctl().set_cursor_expiry(Duration::from_secs(2));
    let r = h.sync(pump_sync("onePhase", 10, None)).await;
    let c = cursor(&r);
    h.advance(Duration::from_secs(1));
    let r = h.sync(pump_sync("onePhase", 10, Some(&c))).await;
    let c2 = cursor(&r);
    h.control_post("/cursors/expire", json!({})).await;
    let old = h
        .post(
            "/models/instances/sync",
            pump_sync("onePhase", 10, Some(&c2)),
        )
        .await;
    assert_eq!(
        old.body["error"]["message"],
        "Cursor has expired. Try again with a new cursor."
    );
}

#[tokio::test]
async fn request_validation() {
    let h = seeded(1).await;
    let mut b = pump_sync("onePhase", 10, None);
    b["with"]["pumps"]["backfillSort"] =
        json!([{"property": ["node", "externalId"], "direction": "ascending"}]);
    let r = h.post("/models/instances/sync", b).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"]["message"],
        "Backfill sort can only be used with two-phase sync."
    );

    for bad in [0, 2001] {
        let r = h
            .post("/models/instances/sync", pump_sync("onePhase", bad, None))
            .await;
        assert_eq!(r.status, 400, "limit {bad}");
    }
    let mut b = pump_sync("onePhase", 10, None);
    b["with"]["other"] = json!({"nodes": {}});
    let r = h.post("/models/instances/sync", b).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("other")
    );

    // Default limit is 100; null cursors and a missing cursors map are accepted.
    let h2 = seeded(150).await;
    let r = h2
        .sync(json!({"with": {"pumps": {"nodes": {}}}, "select": {"pumps": {}}, "cursors": {"pumps": null}}))
        .await;
    assert_eq!(r["items"]["pumps"].as_array().unwrap().len(), 100);
    assert_eq!(r["items"]["pumps"][0]["properties"], json!({}));
}

#[tokio::test]
async fn backfill_sort_orders_the_backfill() {
    let h = start().await;
    seed_schema(&h.ctl());
    let items: Vec<Value> = [("a", 3.0), ("b", 1.0), ("c", 2.0), ("d", 1.0)]
        .iter()
        .map(|(x, kw)| pump(x, json!({"tag": x, "ratedKw": kw})))
        .collect();
    h.ctl().apply_instances(json!({"items": items})).unwrap();
    let mut b = pump_sync("twoPhase", 2, None);
    b["with"]["pumps"]["backfillSort"] =
        json!([{"property": ["schema", "Pump/1", "ratedKw"], "direction": "descending"}]);
    let r = h.sync(b.clone()).await;
    assert_eq!(xids(&r["items"]["pumps"]), ["a", "c"]);
    b["cursors"]["pumps"] = json!(cursor(&r));
    let r = h.sync(b.clone()).await;
    assert_eq!(xids(&r["items"]["pumps"]), ["b", "d"]);
}

async fn filtered(h: &Harness, filter: Value) -> Vec<String> {
    let body = json!({
        "with": {"pumps": {"nodes": {"filter": filter}, "limit": 100}},
        "select": {"pumps": {"sources": [{"source": pump_view(), "properties": ["tag"]}]}},
        "parameters": {"minKw": 3.0}
    });
    let r = h.post("/models/instances/sync", body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut v = xids(&r.body["items"]["pumps"]);
    v.sort();
    v
}

#[tokio::test]
async fn every_filter_kind() {
    let h = start().await;
    seed_schema(&h.ctl());
    h.ctl()
        .apply_instances(json!({"items": [
            pump("a", json!({"tag": "pump-a", "ratedKw": 1.0, "aliases": ["x", "y"], "at": "2024-01-01T00:00:00Z",
                             "site": {"space": "data", "externalId": "oslo"}, "status": "running"})),
            pump("b", json!({"tag": "pump-b", "ratedKw": 3.0, "aliases": ["y"], "at": "2024-06-01T02:00:00+02:00"})),
            pump("c", json!({"tag": "other", "ratedKw": 5.0})),
            {"instanceType": "node", "space": "other", "externalId": "bare"}
        ]}))
        .unwrap();
    let kw = json!(["schema", "Pump/1", "ratedKw"]);
    let tag = json!(["schema", "Pump/1", "tag"]);
    let aliases = json!(["schema", "PumpC", "aliases"]);
    assert_eq!(
        filtered(&h, json!({"equals": {"property": tag, "value": "other"}})).await,
        ["c"]
    );
    assert_eq!(
        filtered(&h, json!({"equals": {"property": kw, "value": 3}})).await,
        ["b"]
    );
    assert_eq!(
        filtered(
            &h,
            json!({"in": {"property": ["node", "externalId"], "values": ["a", "c", "zz"]}})
        )
        .await,
        ["a", "c"]
    );
    assert_eq!(
        filtered(&h, json!({"range": {"property": kw, "gt": 1, "lte": 5}})).await,
        ["b", "c"]
    );
    assert_eq!(
        filtered(
            &h,
            json!({"range": {"property": kw, "gte": {"parameter": "minKw"}}})
        )
        .await,
        ["b", "c"]
    );
    assert_eq!(
        filtered(&h, json!({"range": {"property": ["schema", "Pump/1", "at"], "gte": "2024-06-01T00:00:00Z"}})).await,
        ["b"]
    );
    assert_eq!(
        filtered(&h, json!({"prefix": {"property": tag, "value": "pump-"}})).await,
        ["a", "b"]
    );
    assert_eq!(
        filtered(
            &h,
            json!({"prefix": {"property": ["node", "externalId"], "value": "bar"}})
        )
        .await,
        ["bare"]
    );
    assert_eq!(
        filtered(
            &h,
            json!({"exists": {"property": ["schema", "Pump/1", "site"]}})
        )
        .await,
        ["a"]
    );
    assert_eq!(
        filtered(
            &h,
            json!({"containsAny": {"property": aliases, "values": ["x", "q"]}})
        )
        .await,
        ["a"]
    );
    assert_eq!(
        filtered(
            &h,
            json!({"containsAll": {"property": aliases, "values": ["y"]}})
        )
        .await,
        ["a", "b"]
    );
    assert_eq!(
        filtered(
            &h,
            json!({"containsAll": {"property": aliases, "values": ["x", "y"]}})
        )
        .await,
        ["a"]
    );
    assert_eq!(
        filtered(&h, json!({"matchAll": {}})).await,
        ["a", "b", "bare", "c", "oslo"]
    );
    assert_eq!(
        filtered(&h, json!({"hasData": [pump_view()]})).await,
        ["a", "b", "c"]
    );
    assert_eq!(
        filtered(&h, json!({"hasData": [{"type": "container", "space": "schema", "externalId": "PumpC"}, pump_view()]})).await,
        ["a", "b", "c"]
    );
    assert_eq!(filtered(&h, json!({"instanceReferences": [{"space": "data", "externalId": "c"}, {"space": "x", "externalId": "a"}]})).await, ["c"]);
    assert_eq!(
        filtered(&h, json!({"and": [{"hasData": [pump_view()]}, {"not": {"equals": {"property": tag, "value": "other"}}}]})).await,
        ["a", "b"]
    );
    assert_eq!(
        filtered(&h, json!({"or": [{"equals": {"property": ["node", "space"], "value": "other"}}, {"equals": {"property": tag, "value": "pump-a"}}]})).await,
        ["a", "bare"]
    );
    assert_eq!(
        filtered(&h, json!({"equals": {"property": ["schema", "Pump/1", "site"], "value": {"space": "data", "externalId": "oslo"}}})).await,
        ["a"]
    );
    assert_eq!(
        filtered(&h, json!({"nested": {"scope": ["schema", "Pump/1", "site"], "filter": {"equals": {"property": ["node", "externalId"], "value": "oslo"}}}})).await,
        ["a"]
    );
    // Unknown properties are rejected by name.
    let r = h
        .post("/models/instances/sync", json!({"with": {"p": {"nodes": {"filter": {"equals": {"property": ["schema", "Pump/1", "nope"], "value": 1}}}}}, "select": {"p": {}}}))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nope")
    );
}

#[tokio::test]
async fn edges_and_cascading_delete_tombstones() {
    let h = start().await;
    seed_schema(&h.ctl());
    h.ctl()
        .apply_instances(
            json!({"items": [pump("a", json!({"tag": "a"})), pump("b", json!({"tag": "b"})),
                                          flow("a-b", "a", "b", 2.5), flow("b-a", "b", "a", 1.0)]}),
        )
        .unwrap();
    let edges = |c: Option<String>| {
        json!({
            "with": {"flows": {"edges": {"filter": {"equals": {"property": ["edge", "type"], "value": {"space": "schema", "externalId": "Pump.flows"}}}}, "limit": 10}},
            "select": {"flows": {"sources": [{"source": edge_view(), "properties": ["rate"]}]}},
            "cursors": {"flows": c}
        })
    };
    let r = h.sync(edges(None)).await;
    let items = r["items"]["flows"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]["startNode"],
        json!({"space": "data", "externalId": "a"})
    );
    assert_eq!(items[0]["properties"]["schema"]["Flow/1"]["rate"], 2.5);
    let c = r["nextCursor"]["flows"].as_str().unwrap().to_string();
    h.ok("/models/instances/delete", json!({"items": [{"instanceType": "node", "space": "data", "externalId": "a"}, {"instanceType": "node", "space": "data", "externalId": "missing"}]})).await;
    let r = h.sync(edges(Some(c))).await;
    let items = r["items"]["flows"].as_array().unwrap();
    assert_eq!(
        items.len(),
        2,
        "both edges of the deleted node are tombstoned"
    );
    assert!(
        items
            .iter()
            .all(|i| i["deletedTime"].is_i64() && i["properties"] == json!({}))
    );
    assert_eq!(h.ctl().instance_counts(), (1, 3));
}

#[tokio::test]
async fn typing_timestamps_big_ints_and_explicit_nulls() {
    let h = start().await;
    seed_schema(&h.ctl());
    let body = r#"{"items":[{"instanceType":"node","space":"data","externalId":"big","sources":[{"source":{"type":"view","space":"schema","externalId":"Pump","version":"1"},
        "properties":{"tag":"t","count64":9007199254740993,"levels":[9223372036854775807,-9223372036854775808],"at":"2024-03-01T10:00:00.1234+01:00"}}]}]}"#;
    let resp = h
        .http
        .post(h.url("/models/instances"))
        .bearer_auth(&h.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut sync = pump_sync("onePhase", 10, None);
    sync["includeTyping"] = json!(true);
    let resp = h
        .http
        .post(h.url("/models/instances/sync"))
        .bearer_auth(&h.token)
        .json(&sync)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"count64\":9007199254740993"), "{text}");
    assert!(
        text.contains("[9223372036854775807,-9223372036854775808]"),
        "{text}"
    );
    assert!(
        text.contains("\"at\":\"2024-03-01T09:00:00.123+00:00\""),
        "{text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    let props = &v["items"]["pumps"][0]["properties"]["schema"]["Pump/1"];
    assert_eq!(props["kind"], "pump", "container default applied");
    assert!(
        props.get("ratedKw").is_none(),
        "missing values are omitted by default"
    );
    let typing = &v["typing"]["pumps"]["schema"]["Pump/1"];
    assert_eq!(typing["ratedKw"]["type"]["type"], "float64");
    assert!(typing["ratedKw"].get("container").is_none());

    h.ctl().set_explicit_nulls(true);
    let r = h.sync(pump_sync("onePhase", 10, None)).await;
    assert!(r["items"]["pumps"][0]["properties"]["schema"]["Pump/1"]["ratedKw"].is_null());
    assert!(
        r["items"]["pumps"][0]["properties"]["schema"]["Pump/1"]
            .get("ratedKw")
            .is_some()
    );
}

#[tokio::test]
async fn select_returns_exactly_the_named_properties() {
    let h = start().await;
    seed_schema(&h.ctl());
    h.ctl()
        .apply_instances(json!({"items": [pump("a", json!({"tag": "pump-a", "ratedKw": 1.5, "status": "running"}))]}))
        .unwrap();
    let props = |r: &Value| r["items"]["pumps"][0]["properties"].clone();

    let mut b = pump_sync("onePhase", 10, None);
    b["select"]["pumps"]["sources"][0]["properties"] = json!(["tag", "ratedKw"]);
    let named = props(&h.sync(b.clone()).await);
    assert_eq!(
        named,
        json!({"schema": {"Pump/1": {"tag": "pump-a", "ratedKw": 1.5}}})
    );

    let all = props(&h.sync(pump_sync("onePhase", 10, None)).await);
    assert_eq!(all["schema"]["Pump/1"]["status"], "running");

    b["select"]["pumps"] = json!({});
    let bare = h.sync(b.clone()).await;
    assert_eq!(xids(&bare["items"]["pumps"]), ["a"]);
    assert!(
        bare["items"]["pumps"][0]
            .get("properties")
            .is_none_or(|p| p == &json!({})),
        "{bare}"
    );

    // A unit conversion the emulator cannot do is refused rather than ignored.
    b["select"]["pumps"] = json!({"sources": [{"source": pump_view(), "properties": ["*"],
        "targetUnits": [{"property": "ratedKw", "unit": {"externalId": "power:watt"}}]}]});
    let refused = h.post("/models/instances/sync", b.clone()).await;
    assert_eq!(refused.status, 400);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("targetUnits"), "{message}");
    b["select"]["pumps"]["sources"][0]["targetUnits"] = json!([]);
    assert_eq!(h.post("/models/instances/sync", b).await.status, 200);
}
