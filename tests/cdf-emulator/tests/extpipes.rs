//! Extraction pipeline remote config and run reports.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn config_revisions() {
    let mut h = start().await;
    let missing = h.get("/extpipes/config?externalId=pl").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], 404);
    let r1 = h
        .ok(
            "/extpipes/config",
            json!({"externalId": "pl", "config": "a: 1\n", "description": "first"}),
        )
        .await;
    assert_eq!(r1["revision"], 1);
    let t1 = r1["createdTime"].as_i64().unwrap();
    h.advance(std::time::Duration::from_secs(10));
    h.ok(
        "/extpipes/config",
        json!({"externalId": "pl", "config": "a: 2\n"}),
    )
    .await;
    let latest = h.get("/extpipes/config?externalId=pl").await.body;
    assert_eq!(latest["revision"], 2);
    assert_eq!(latest["config"], "a: 2\n");
    let first = h
        .get("/extpipes/config?externalId=pl&revision=1")
        .await
        .body;
    assert_eq!(first["config"], "a: 1\n");
    let at = h
        .get(&format!(
            "/extpipes/config?externalId=pl&activeAtTime={}",
            t1 + 1
        ))
        .await
        .body;
    assert_eq!(at["revision"], 1);
    let revs = h.get("/extpipes/config/revisions?externalId=pl").await.body;
    assert_eq!(revs["items"].as_array().unwrap().len(), 2);
    assert!(revs["items"][0].get("config").is_none());
    assert_eq!(
        h.get("/extpipes/config").await.status,
        400,
        "externalId is required"
    );
    assert_eq!(
        h.get("/extpipes/config?externalId=pl&revision=9")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn runs_are_stored_and_listed() {
    let h = start().await;
    let r = h.ok("/extpipes/runs", json!({"items": [{"externalId": "pl", "status": "failure", "message": "cursor expired"}]})).await;
    assert!(r["items"][0]["id"].is_i64());
    h.ok(
        "/extpipes/runs",
        json!({"items": [{"externalId": "pl", "status": "seen"}]}),
    )
    .await;
    h.ok(
        "/extpipes/runs",
        json!({"items": [{"externalId": "pl", "status": "success"}]}),
    )
    .await;
    let too_long = h.post("/extpipes/runs", json!({"items": [{"externalId": "pl", "status": "success", "message": "x".repeat(1001)}]})).await;
    assert_eq!(too_long.status, 400);
    assert_eq!(
        h.post(
            "/extpipes/runs",
            json!({"items": [{"externalId": "pl", "status": "weird"}]})
        )
        .await
        .status,
        400
    );
    let ok_len = h.post("/extpipes/runs", json!({"items": [{"externalId": "pl", "status": "success", "message": "é".repeat(1000)}]})).await;
    assert_eq!(ok_len.status, 200);
    let runs = h.ctl().extpipe_runs("pl");
    assert_eq!(runs.len(), 4);
    assert_eq!(runs[0]["status"], "failure");
    assert_eq!(runs[0]["message"], "cursor expired");
    let listed = h.get("/extpipes/runs?externalId=pl&limit=2").await.body;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    assert!(listed["nextCursor"].is_string());
    let failures = h
        .ok(
            "/extpipes/runs/list",
            json!({"filter": {"externalId": "pl", "statuses": ["failure"]}, "limit": 10}),
        )
        .await;
    assert_eq!(failures["items"].as_array().unwrap().len(), 1);
    let pipes = h
        .ok("/extpipes/byids", json!({"items": [{"externalId": "pl"}]}))
        .await;
    assert_eq!(pipes["items"][0]["externalId"], "pl");
}

#[tokio::test]
async fn run_listing_pages_with_its_cursor_and_rejects_forged_ones() {
    let h = start().await;
    for i in 0..5 {
        h.ok(
            "/extpipes/runs",
            json!({"items": [{"externalId": "pl", "status": "success", "message": format!("run {i}")}]}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/extpipes/runs?externalId=pl&limit=2&cursor={c}"),
            None => "/extpipes/runs?externalId=pl&limit=2".to_owned(),
        };
        let page = h.get(&path).await.body;
        for run in page["items"].as_array().unwrap() {
            seen.push(run["message"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, (0..5).map(|i| format!("run {i}")).collect::<Vec<_>>());

    // An offset at the end of the integer range is past the last run, not an overflow.
    use base64::Engine as _;
    let far =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{}", usize::MAX));
    let past_end = h
        .get(&format!(
            "/extpipes/runs?externalId=pl&limit=1000&cursor={far}"
        ))
        .await;
    assert_eq!(past_end.status, 200);
    assert_eq!(past_end.body["items"], json!([]));
    assert!(past_end.body.get("nextCursor").is_none());
    let listed = h
        .post(
            "/extpipes/runs/list",
            json!({"filter": {"externalId": "pl"}, "limit": 1000, "cursor": far}),
        )
        .await;
    assert_eq!(listed.status, 200);
    let forged = h
        .get("/extpipes/runs?externalId=pl&cursor=bm90LWEtY3Vyc29y")
        .await;
    assert_eq!(forged.status, 400);
    assert_eq!(forged.body["error"]["message"], "Invalid cursor provided.");
}

#[tokio::test]
async fn pipelines_can_be_created_explicitly() {
    let h = start().await;
    let r = h
        .ok(
            "/extpipes",
            json!({"items": [{"externalId": "p2", "name": "P2", "dataSetId": 1}]}),
        )
        .await;
    assert_eq!(r["items"][0]["name"], "P2");
    assert_eq!(
        h.post(
            "/extpipes",
            json!({"items": [{"externalId": "p2", "name": "P2", "dataSetId": 1}]})
        )
        .await
        .status,
        409
    );
    assert_eq!(
        h.get("/extpipes").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
