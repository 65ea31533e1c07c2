//! Fault injection and the HTTP control API.

mod common;

use std::time::{Duration, Instant};

use cdf_emulator::FaultSpec;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn status_faults_fire_count_times_with_headers() {
    let h = start().await;
    seed_schema(&h.ctl());
    h.ctl().add_fault(
        FaultSpec::status("/models/instances/sync", 429, 2)
            .with_retry_after(3)
            .with_header("cdf-is-auto-retryable", "true"),
    );
    for remaining in [1, 0] {
        let r = h
            .post("/models/instances/sync", pump_sync("onePhase", 10, None))
            .await;
        assert_eq!(r.status, 429);
        assert_eq!(r.headers["retry-after"], "3");
        assert_eq!(r.headers["cdf-is-auto-retryable"], "true");
        assert!(r.headers.contains_key("x-request-id"));
        assert_eq!(r.body["error"]["code"], 429);
        assert_eq!(
            h.ctl().faults().first().and_then(|f| f.count).unwrap_or(0),
            remaining
        );
    }
    assert_eq!(
        h.post("/models/instances/sync", pump_sync("onePhase", 10, None))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn faults_match_path_suffix_and_method() {
    let h = start().await;
    h.ctl()
        .add_fault(FaultSpec::status("/models/spaces", 503, 1).with_method("POST"));
    assert_eq!(
        h.get("/models/spaces").await.status,
        200,
        "GET does not match a POST fault"
    );
    assert_eq!(
        h.post("/models/spaces/byids", json!({"items": [{"space": "x"}]}))
            .await
            .status,
        200,
        "suffix must match"
    );
    assert_eq!(
        h.post("/models/spaces", json!({"items": [{"space": "x"}]}))
            .await
            .status,
        503
    );
    assert!(h.ctl().faults().is_empty());
}

#[tokio::test]
async fn dropped_connections_and_truncated_bodies() {
    let h = start().await;
    h.ctl()
        .add_fault(FaultSpec::drop_connection("/models/spaces", 1));
    let err = h
        .http
        .get(h.url("/models/spaces"))
        .bearer_auth(&h.token)
        .send()
        .await;
    assert!(err.is_err(), "the connection is closed without an answer");
    assert_eq!(h.get("/models/spaces").await.status, 200);

    h.ctl()
        .add_fault(FaultSpec::truncate_body("/models/spaces", 1));
    let r = h
        .http
        .get(h.url("/models/spaces"))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "body is not valid JSON: {text}"
    );
}

#[tokio::test]
async fn raw_body_faults_answer_a_proxy_page_verbatim() {
    let h = start().await;
    let page = "<html><body>502 Bad Gateway</body></html>";
    h.ctl()
        .add_fault(FaultSpec::raw("/models/spaces", 502, page, 1).with_retry_after(2));
    let r = h.get("/models/spaces").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.headers["content-type"], "text/html");
    assert_eq!(r.headers["retry-after"], "2");
    assert!(r.headers.contains_key("x-request-id"));
    assert_eq!(r.body, Value::String(page.to_owned()), "served verbatim");
    assert_eq!(h.get("/models/spaces").await.status, 200);
}

#[tokio::test]
async fn delay_faults_pass_through_after_waiting() {
    let h = start().await;
    h.ctl()
        .add_fault(FaultSpec::delay("/models/spaces", 300, 1));
    let t = Instant::now();
    assert_eq!(h.get("/models/spaces").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn http_control_api() {
    let mut h = start().await;
    seed_schema(&h.ctl());
    let r = h
        .control_post(
            "/faults",
            json!({"path": "/models/views", "status": 500, "count": 1, "headers": {"x-test": "1"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(h.get("/models/views").await.status, 500);
    h.control_post(
        "/faults",
        json!([{"path": "/models/views", "status": 502, "count": 5}]),
    )
    .await;
    let cleared = h
        .http
        .delete(format!("{}/__emulator/faults", h.emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(h.get("/models/views").await.status, 200);

    let before = h.ctl().now_ms();
    h.control_post("/clock/advance", json!({"ms": 60_000}))
        .await;
    assert!(h.ctl().now_ms() >= before + 60_000);

    let s = h
        .control_post("/settings", json!({"cursor_expiry_ms": 1000, "tombstone_retention_ms": 2000, "token_ttl_ms": 5000, "explicit_nulls": true}))
        .await;
    assert_eq!(s.body["cursor_expiry_ms"], 1000);
    assert_eq!(s.body["explicit_nulls"], true);

    h.control_post("/tokens/expire", json!({})).await;
    assert_eq!(h.get("/models/views").await.status, 401);
    h.token = h.ctl().issue_token();

    let seeded = h
        .control_post(
            "/instances",
            json!({"items": [pump("p1", json!({"tag": "x"}))]}),
        )
        .await;
    assert_eq!(seeded.status, 200, "{}", seeded.body);
    let live = h
        .control_post("/instances/live", json!({"view": pump_view()}))
        .await;
    assert_eq!(
        live.body["items"][0]["properties"]["schema"]["Pump/1"]["tag"],
        "x"
    );
    h.control_post("/reset", json!({})).await;
    assert_eq!(h.ctl().instance_counts(), (0, 0));
}
