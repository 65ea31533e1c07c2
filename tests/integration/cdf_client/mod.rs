//! The CDF client against the project's CDF emulator: auth, headers, retries, sync,
//! RAW and extraction pipelines, with faults injected through the emulator's control API.

mod auth;
mod extpipes;
mod raw;
mod retries;
mod schema;
mod sync;

use std::time::Duration;

use cdf_emulator::{Control, Emulator, EmulatorConfig};
use cdf_s3_replicator::cdf::dto::{
    Filter, Instance, SyncExpression, SyncMode, SyncRequest, SyncSelect, ViewReference,
};
use cdf_s3_replicator::cdf::{CdfClient, ClientCredentials, ClientSettings, RetryPolicy, Secret};
use serde_json::{Value, json};

const SYNC_PATH: &str = "/models/instances/sync";
const APP_NAME: &str = "cdf-client-tests";

struct Setup {
    emu: Emulator,
    client: CdfClient,
}

impl Setup {
    fn ctl(&self) -> Control {
        self.emu.control()
    }

    /// Requests the emulator received on `path` (token endpoint included) so far.
    fn requests_to(&self, path_suffix: &str) -> usize {
        self.ctl()
            .request_log()
            .iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .count()
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(60),
    }
}

fn settings_for(emu: &Emulator, secret: &str) -> ClientSettings {
    let mut settings = ClientSettings::new(
        emu.base_url(),
        emu.project(),
        ClientCredentials {
            token_url: emu.token_url(),
            client_id: "emulator-client".into(),
            client_secret: Secret::new(secret),
            scopes: vec!["https://api.cognitedata.com/.default".into()],
            audience: None,
            resource: None,
        },
    );
    settings.app_name = APP_NAME.into();
    settings.timeout = Duration::from_secs(10);
    settings.retry = fast_retries();
    settings
}

async fn setup() -> Setup {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    seed_schema(&emu.control());
    let client = CdfClient::new(settings_for(&emu, "emulator-secret")).unwrap();
    Setup { emu, client }
}

fn pump_view() -> ViewReference {
    ViewReference::new("schema", "Pump", "1")
}

fn flow_view() -> ViewReference {
    ViewReference::new("schema", "Flow", "1")
}

fn view_json(view: &ViewReference) -> Value {
    serde_json::to_value(view).unwrap()
}

fn seed_schema(ctl: &Control) {
    let mapped = |prop: &str| {
        json!({"container": {"type": "container", "space": "schema", "externalId": "PumpC"},
               "containerPropertyIdentifier": prop})
    };
    ctl.apply_schema(json!({
        "spaces": [{"space": "schema"}, {"space": "data"}],
        "containers": [
            {"space": "schema", "externalId": "PumpC", "usedFor": "node", "properties": {
                "tag": {"type": {"type": "text"}, "nullable": false},
                "count64": {"type": {"type": "int64"}},
                "ratedKw": {"type": {"type": "float64"}},
                "site": {"type": {"type": "direct"}},
                "aliases": {"type": {"type": "text", "list": true}}
            }},
            {"space": "schema", "externalId": "FlowC", "usedFor": "edge", "properties": {
                "rate": {"type": {"type": "float64"}}
            }}
        ],
        "views": [
            {"space": "schema", "externalId": "Equipment", "version": "1", "properties": {
                "tag": mapped("tag")
            }},
            {"space": "schema", "externalId": "Pump", "version": "1",
             "implements": [{"type": "view", "space": "schema", "externalId": "Equipment", "version": "1"}],
             "properties": {
                "count64": mapped("count64"),
                "ratedKw": mapped("ratedKw"),
                "site": mapped("site"),
                "aliases": mapped("aliases"),
                "flows": {"connectionType": "multi_edge_connection",
                          "type": {"space": "schema", "externalId": "Pump.flows"},
                          "source": view_json(&pump_view()),
                          "edgeSource": view_json(&flow_view())}
            }},
            {"space": "schema", "externalId": "Flow", "version": "1", "properties": {
                "rate": {"container": {"type": "container", "space": "schema", "externalId": "FlowC"},
                         "containerPropertyIdentifier": "rate"}
            }}
        ]
    }))
    .unwrap();
}

fn pump(xid: &str, props: Value) -> Value {
    json!({"instanceType": "node", "space": "data", "externalId": xid,
           "sources": [{"source": view_json(&pump_view()), "properties": props}]})
}

fn flow(xid: &str, start: &str, end: &str, rate: f64) -> Value {
    json!({"instanceType": "edge", "space": "data", "externalId": xid,
           "type": {"space": "schema", "externalId": "Pump.flows"},
           "startNode": {"space": "data", "externalId": start},
           "endNode": {"space": "data", "externalId": end},
           "sources": [{"source": view_json(&flow_view()), "properties": {"rate": rate}}]})
}

fn pump_name(i: usize) -> String {
    format!("p{i:03}")
}

fn seed_pumps(ctl: &Control, range: std::ops::Range<usize>) {
    let items: Vec<Value> = range
        .map(|i| pump(&pump_name(i), json!({"tag": format!("T{i}"), "count64": i})))
        .collect();
    ctl.apply_instances(json!({ "items": items })).unwrap();
}

fn delete_pump(ctl: &Control, xid: &str) {
    ctl.delete_instances(
        json!({"items": [{"instanceType": "node", "space": "data", "externalId": xid}]}),
    )
    .unwrap();
}

fn pump_sync(mode: SyncMode, limit: u32) -> SyncRequest {
    SyncRequest::single(
        "pumps",
        SyncExpression::nodes(Some(Filter::has_data_view(pump_view())), limit, mode),
        SyncSelect::all_of(pump_view()),
    )
}

/// Follows the cursor until a short page, as the sync engine does; returns every item in
/// arrival order, the number of calls and the last cursor.
async fn drain(
    client: &CdfClient,
    request: &SyncRequest,
    cursor: Option<String>,
) -> (Vec<Instance>, usize, Option<String>) {
    let limit = request.with["pumps"].limit as usize;
    let mut cursor = cursor;
    let mut items = Vec::new();
    let mut calls = 0;
    loop {
        let req = request.clone().with_cursor("pumps", cursor.clone());
        let mut page = client.sync(&req).await.unwrap();
        calls += 1;
        let got = page.take_items("pumps");
        let short = got.len() < limit;
        items.extend(got);
        cursor = Some(
            page.cursor_of("pumps")
                .expect("a cursor on every page")
                .to_owned(),
        );
        if short {
            return (items, calls, cursor);
        }
    }
}

fn xids(items: &[Instance]) -> Vec<String> {
    items.iter().map(|i| i.external_id.clone()).collect()
}

fn expected_pumps(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(pump_name).collect()
}
