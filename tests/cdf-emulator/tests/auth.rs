//! Token endpoint, Bearer validation, project access, request ids and the request log.

mod common;

use std::time::Duration;

use cdf_emulator::{Emulator, EmulatorConfig};
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn token_flow_with_form_and_basic_credentials() {
    let emu = Emulator::start(EmulatorConfig {
        token_ttl: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "emulator-client"),
        ("client_secret", "emulator-secret"),
        ("audience", "x"),
        ("resource", "y"),
    ];
    let r = http.post(emu.token_url()).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 120);
    let token = body["access_token"].as_str().unwrap().to_string();

    let basic = http
        .post(emu.token_url())
        .basic_auth("emulator-client", Some("emulator-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "a b")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);

    let bad = http
        .post(emu.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "emulator-client"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].is_string());

    let api = format!(
        "{}/api/v1/projects/{}/models/spaces",
        emu.base_url(),
        emu.project()
    );
    assert_eq!(
        http.get(&api)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    emu.control().advance_clock(Duration::from_secs(121));
    let expired = http.get(&api).bearer_auth(&token).send().await.unwrap();
    assert_eq!(expired.status(), 401);
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["error"]["code"], 401);
}

#[tokio::test]
async fn bearer_is_required_and_projects_are_checked() {
    let h = start().await;
    let http = &h.http;
    let url = h.url("/models/views");
    let none = http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("x-request-id"));
    assert_eq!(none.json::<Value>().await.unwrap()["error"]["code"], 401);
    assert_eq!(
        http.get(&url)
            .bearer_auth("made-up")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let other = format!(
        "{}/api/v1/projects/other-project/models/views",
        h.emu.base_url()
    );
    let r = http.get(&other).bearer_auth(&h.token).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], 403);
    h.ctl().expire_all_tokens();
    assert_eq!(h.get("/models/views").await.status, 401);
}

#[tokio::test]
async fn every_response_has_a_request_id_and_errors_use_the_envelope() {
    let h = start().await;
    let ok = h.get("/models/spaces").await;
    let bad_json = h
        .http
        .post(h.url("/models/instances"))
        .bearer_auth(&h.token)
        .header("content-type", "application/json")
        .body("{\"items\": [ {\"instanceType\": NaN } ]}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    let id1 = ok.headers["x-request-id"].to_str().unwrap().to_string();
    let id2 = bad_json.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(id1, id2);
    let body: Value = bad_json.json().await.unwrap();
    assert_eq!(body["error"]["code"], 400);
    let unknown = h.get("/no/such/endpoint").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"]["code"], 404);
    assert!(unknown.headers.contains_key("x-request-id"));
    let wrong_method = h.get("/models/instances/sync").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.body["error"]["code"], 405);
}

#[tokio::test]
async fn request_log_records_sdk_headers_and_redacts_tokens() {
    let h = start().await;
    h.http
        .get(h.url("/models/spaces"))
        .bearer_auth(&h.token)
        .header("x-cdp-app", "my-app")
        .header("x-cdp-sdk", "our-service/1.0")
        .header("cdf-version", "20230101")
        .send()
        .await
        .unwrap();
    let log = h.ctl().request_log();
    let rec = log
        .iter()
        .find(|r| r.path.ends_with("/models/spaces"))
        .unwrap();
    assert_eq!(rec.method, "GET");
    assert_eq!(rec.header("x-cdp-app"), Some("my-app"));
    assert_eq!(rec.header("x-cdp-sdk"), Some("our-service/1.0"));
    assert_eq!(rec.header("cdf-version"), Some("20230101"));
    assert_eq!(rec.header("authorization"), Some("Bearer <redacted>"));
    assert_eq!(rec.status, Some(200));
    let all = serde_json::to_string(&log).unwrap();
    assert!(!all.contains(&h.token), "tokens never appear in the log");
    assert!(
        !all.contains("emulator-secret"),
        "secrets never appear in the log"
    );
    let via_http: Value = h
        .http
        .get(format!("{}/__emulator/requests", h.emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(via_http["items"].as_array().unwrap().len() >= 2);
}

#[tokio::test]
async fn gzip_request_bodies_are_accepted() {
    use std::io::Write;
    let h = start().await;
    let body = serde_json::to_vec(&json!({"items": [{"space": "gz"}]})).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&body).unwrap();
    let r = h
        .http
        .post(h.url("/models/spaces"))
        .bearer_auth(&h.token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(enc.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["items"][0]["space"], "gz");
}

#[tokio::test]
async fn token_inspect() {
    let h = start().await;
    let r: Value = h
        .http
        .get(format!("{}/api/v1/token/inspect", h.emu.base_url()))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["projects"][0]["projectUrlName"], "emulated-project");
}
