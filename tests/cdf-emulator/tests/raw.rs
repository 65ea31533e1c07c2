//! RAW databases, tables and rows, including awkward keys and paging.

mod common;

use common::*;
use serde_json::{Value, json};

/// Percent-encodes every byte outside the unreserved set, as the Python SDK does.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn rows_with_awkward_keys_round_trip() {
    let h = start().await;
    let (db, table) = ("state db", "t/1");
    let keys = [
        "a/b",
        "with space",
        "ünïcødé ✓",
        "plus+sign",
        "percent%2F",
        "delete",
        "?&#",
    ];
    let items: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"key": k, "columns": {"n": i, "nested": {"a": [1, 2]}}}))
        .collect();
    let path = format!(
        "/raw/dbs/{}/tables/{}/rows?ensureParent=true",
        enc(db),
        enc(table)
    );
    let r = h.post(&path, json!({"items": items})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (i, k) in keys.iter().enumerate() {
        let r = h
            .get(&format!(
                "/raw/dbs/{}/tables/{}/rows/{}",
                enc(db),
                enc(table),
                enc(k)
            ))
            .await;
        assert_eq!(r.status, 200, "key {k}: {}", r.body);
        assert_eq!(r.body["key"], *k);
        assert_eq!(r.body["columns"]["n"], i);
    }
    let missing = h
        .get(&format!(
            "/raw/dbs/{}/tables/{}/rows/nope",
            enc(db),
            enc(table)
        ))
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], 404);
    assert_eq!(h.get("/raw/dbs/nodb/tables/t/rows/x").await.status, 404);
    assert_eq!(h.ctl().raw_rows(db, table).unwrap().len(), keys.len());
}

#[tokio::test]
async fn insert_replaces_and_only_moves_time_on_change() {
    let mut h = start().await;
    h.ok(
        "/raw/dbs/d/tables/t/rows?ensureParent=true",
        json!({"items": [{"key": "k", "columns": {"a": 1, "b": 2}}]}),
    )
    .await;
    let t1 = h.get("/raw/dbs/d/tables/t/rows/k").await.body["lastUpdatedTime"]
        .as_i64()
        .unwrap();
    h.advance(std::time::Duration::from_secs(5));
    h.ok(
        "/raw/dbs/d/tables/t/rows",
        json!({"items": [{"key": "k", "columns": {"a": 1, "b": 2}}]}),
    )
    .await;
    assert_eq!(
        h.get("/raw/dbs/d/tables/t/rows/k").await.body["lastUpdatedTime"],
        t1
    );
    h.ok(
        "/raw/dbs/d/tables/t/rows",
        json!({"items": [{"key": "k", "columns": {"c": 3}}]}),
    )
    .await;
    let row = h.get("/raw/dbs/d/tables/t/rows/k").await.body;
    assert_eq!(row["columns"], json!({"c": 3}), "whole-object replacement");
    assert!(row["lastUpdatedTime"].as_i64().unwrap() > t1);
    // Without ensureParent a missing table is a 404.
    assert_eq!(
        h.post(
            "/raw/dbs/d/tables/other/rows",
            json!({"items": [{"key": "k", "columns": {}}]})
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn listing_pages_columns_and_time_filters() {
    let mut h = start().await;
    let items: Vec<Value> = (0..7)
        .map(|i| json!({"key": format!("k{i}"), "columns": {"a": i, "b": "x"}}))
        .collect();
    h.ok(
        "/raw/dbs/d/tables/t/rows?ensureParent=true",
        json!({"items": items}),
    )
    .await;
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/raw/dbs/d/tables/t/rows?limit=3&columns=a&cursor={c}"),
            None => "/raw/dbs/d/tables/t/rows?limit=3&columns=a".to_string(),
        };
        let page = h.get(&q).await.body;
        for r in page["items"].as_array().unwrap() {
            assert!(r["columns"].get("b").is_none());
            keys.push(r["key"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(keys, (0..7).map(|i| format!("k{i}")).collect::<Vec<_>>());
    let keys_only = h
        .get("/raw/dbs/d/tables/t/rows?columns=,&limit=1")
        .await
        .body;
    assert_eq!(keys_only["items"][0]["columns"], json!({}));

    let before = h.ctl().now_ms();
    h.advance(std::time::Duration::from_secs(2));
    h.ok(
        "/raw/dbs/d/tables/t/rows",
        json!({"items": [{"key": "k3", "columns": {"a": 33}}]}),
    )
    .await;
    let newer = h
        .get(&format!(
            "/raw/dbs/d/tables/t/rows?minLastUpdatedTime={before}"
        ))
        .await
        .body;
    assert_eq!(newer["items"].as_array().unwrap().len(), 1);
    let older = h
        .get(&format!(
            "/raw/dbs/d/tables/t/rows?maxLastUpdatedTime={before}"
        ))
        .await
        .body;
    assert_eq!(older["items"].as_array().unwrap().len(), 6);

    let parts = h
        .get("/raw/dbs/d/tables/t/cursors?numberOfCursors=3")
        .await
        .body;
    let mut seen = Vec::new();
    for c in parts["items"].as_array().unwrap() {
        let page = h
            .get(&format!(
                "/raw/dbs/d/tables/t/rows?limit=100&cursor={}",
                c.as_str().unwrap()
            ))
            .await
            .body;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["key"].as_str().unwrap().to_string()),
        );
    }
    seen.sort();
    assert_eq!(
        seen.len(),
        7,
        "partitions cover every row exactly once: {seen:?}"
    );
}

#[tokio::test]
async fn databases_and_tables() {
    let h = start().await;
    let r = h
        .post("/raw/dbs", json!({"items": [{"name": "db1"}]}))
        .await;
    assert_eq!(r.status, 201);
    let dup = h
        .post("/raw/dbs", json!({"items": [{"name": "db1"}]}))
        .await;
    assert_eq!(dup.status, 400);
    assert_eq!(dup.body["error"]["duplicated"][0]["name"], "db1");
    assert_eq!(
        h.post("/raw/dbs/db1/tables", json!({"items": [{"name": "t1"}]}))
            .await
            .status,
        201
    );
    assert_eq!(
        h.post("/raw/dbs/db2/tables", json!({"items": [{"name": "t1"}]}))
            .await
            .status,
        404
    );
    assert_eq!(
        h.post(
            "/raw/dbs/db2/tables?ensureParent=true",
            json!({"items": [{"name": "t1"}]})
        )
        .await
        .status,
        201
    );
    let tables = h.get("/raw/dbs/db1/tables").await.body;
    assert_eq!(tables["items"][0]["name"], "t1");
    let dbs = h.get("/raw/dbs?limit=1").await.body;
    assert_eq!(dbs["items"].as_array().unwrap().len(), 1);
    assert!(dbs["nextCursor"].is_string());
    assert_eq!(
        h.post("/raw/dbs/delete", json!({"items": [{"name": "db1"}]}))
            .await
            .status,
        400,
        "has tables"
    );
    assert_eq!(
        h.post(
            "/raw/dbs/delete",
            json!({"items": [{"name": "db1"}], "recursive": true})
        )
        .await
        .status,
        200
    );
    h.ok(
        "/raw/dbs/db2/tables/t1/rows",
        json!({"items": [{"key": "a", "columns": {}}, {"key": "b", "columns": {}}]}),
    )
    .await;
    h.ok(
        "/raw/dbs/db2/tables/t1/rows/delete",
        json!({"items": [{"key": "a"}, {"key": "zz"}]}),
    )
    .await;
    assert_eq!(h.ctl().raw_rows("db2", "t1").unwrap().len(), 1);
}
