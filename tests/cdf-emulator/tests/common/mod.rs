//! Shared helpers for the emulator's integration tests.
#![allow(dead_code)]

use cdf_emulator::{Control, Emulator, EmulatorConfig};
use serde_json::{Value, json};

pub struct Harness {
    pub emu: Emulator,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn start() -> Harness {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> Harness {
    let emu = Emulator::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "emulator-client"),
        ("client_secret", "emulator-secret"),
        ("scope", "https://api.cognitedata.com/.default"),
    ];
    let resp = http.post(emu.token_url()).form(&form).send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    Harness { emu, http, token }
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Harness {
    pub fn ctl(&self) -> Control {
        self.emu.control()
    }

    /// Advances the emulator clock and takes a fresh token (advancing may expire the old one).
    pub fn advance(&mut self, by: std::time::Duration) {
        self.ctl().advance_clock(by);
        self.token = self.ctl().issue_token();
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "{}/api/v1/projects/{}{}",
            self.emu.base_url(),
            self.emu.project(),
            path
        )
    }

    async fn finish(resp: reqwest::Response) -> Resp {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::finish(resp).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        Self::finish(resp).await
    }

    /// POST that must succeed with 200.
    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let r = self.post(path, body).await;
        assert_eq!(r.status, 200, "POST {path} failed: {}", r.body);
        r.body
    }

    pub async fn sync(&self, body: Value) -> Value {
        self.ok("/models/instances/sync", body).await
    }

    pub async fn control_post(&self, path: &str, body: Value) -> Resp {
        let resp = self
            .http
            .post(format!("{}/__emulator{}", self.emu.base_url(), path))
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::finish(resp).await
    }
}

pub fn pump_view() -> Value {
    json!({"type": "view", "space": "schema", "externalId": "Pump", "version": "1"})
}

pub fn edge_view() -> Value {
    json!({"type": "view", "space": "schema", "externalId": "Flow", "version": "1"})
}

/// A schema with a node view mapping every property type and an edge view.
pub fn seed_schema(ctl: &Control) {
    ctl.apply_schema(json!({
        "spaces": [{"space": "schema"}, {"space": "data"}],
        "containers": [
            {"space": "schema", "externalId": "PumpC", "usedFor": "node", "properties": {
                "tag": {"type": {"type": "text"}, "nullable": false},
                "ok": {"type": {"type": "boolean"}},
                "count32": {"type": {"type": "int32"}},
                "count64": {"type": {"type": "int64"}},
                "f32": {"type": {"type": "float32"}},
                "ratedKw": {"type": {"type": "float64"}},
                "at": {"type": {"type": "timestamp"}},
                "day": {"type": {"type": "date"}},
                "extra": {"type": {"type": "json"}},
                "site": {"type": {"type": "direct"}},
                "status": {"type": {"type": "enum", "values": {"running": {}, "stopped": {}, "unknown": {}}, "unknownValue": "unknown"}},
                "ts": {"type": {"type": "timeseries"}},
                "aliases": {"type": {"type": "text", "list": true}},
                "levels": {"type": {"type": "int64", "list": true}},
                "kind": {"type": {"type": "text"}, "defaultValue": "pump"}
            }},
            {"space": "schema", "externalId": "FlowC", "usedFor": "edge", "properties": {
                "rate": {"type": {"type": "float64"}}
            }}
        ],
        "views": [
            {"space": "schema", "externalId": "Pump", "version": "1", "properties": {
                "tag": {"container": {"type": "container", "space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "tag"},
                "ok": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "ok"},
                "count32": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "count32"},
                "count64": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "count64"},
                "f32": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "f32"},
                "ratedKw": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "ratedKw"},
                "at": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "at"},
                "day": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "day"},
                "extra": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "extra"},
                "site": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "site"},
                "status": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "status"},
                "ts": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "ts"},
                "aliases": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "aliases"},
                "levels": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "levels"},
                "kind": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "kind"},
                "flows": {"connectionType": "multi_edge_connection", "type": {"space": "schema", "externalId": "Pump.flows"},
                          "source": {"type": "view", "space": "schema", "externalId": "Pump", "version": "1"},
                          "edgeSource": {"type": "view", "space": "schema", "externalId": "Flow", "version": "1"}}
            }},
            {"space": "schema", "externalId": "Flow", "version": "1", "properties": {
                "rate": {"container": {"space": "schema", "externalId": "FlowC"}, "containerPropertyIdentifier": "rate"}
            }}
        ]
    }))
    .unwrap();
}

pub fn pump(xid: &str, props: Value) -> Value {
    json!({"instanceType": "node", "space": "data", "externalId": xid,
           "sources": [{"source": pump_view(), "properties": props}]})
}

pub fn flow(xid: &str, start: &str, end: &str, rate: f64) -> Value {
    json!({"instanceType": "edge", "space": "data", "externalId": xid,
           "type": {"space": "schema", "externalId": "Pump.flows"},
           "startNode": {"space": "data", "externalId": start},
           "endNode": {"space": "data", "externalId": end},
           "sources": [{"source": edge_view(), "properties": {"rate": rate}}]})
}

/// A one-result-set sync body over Pump nodes.
pub fn pump_sync(mode: &str, limit: u64, cursor: Option<&str>) -> Value {
    json!({
        "with": {"pumps": {"nodes": {"filter": {"hasData": [pump_view()]}}, "limit": limit, "mode": mode}},
        "select": {"pumps": {"sources": [{"source": pump_view(), "properties": ["*"]}]}},
        "cursors": {"pumps": cursor},
    })
}

pub fn xids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["externalId"].as_str().unwrap().to_string())
        .collect()
}
