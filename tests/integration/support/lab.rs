//! The lab: the CDF emulator seeded with the sample plant model, a lake to replicate into, the
//! configuration a user would write, and the emulator's truth to compare the lake with.

use std::path::PathBuf;

use cdf_emulator::sample_model::{self, MODEL, SCHEMA_SPACE};
use cdf_emulator::{Emulator, EmulatorConfig, InstanceKind, ViewId};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use serde_json::{Value, json};

use super::Lake;

/// The emulator with the sample model, and a lake to replicate into.
pub struct Lab {
    pub emulator: Emulator,
    pub lake: Lake,
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// Emulator seeded with `pumps` sample pumps; `lake` picks the destination (`None`:
    /// a local directory).
    pub async fn start(pumps: usize, lake: Option<Lake>) -> Self {
        Self::start_with(EmulatorConfig::default(), pumps, lake).await
    }

    /// The configuration a user would write, with extra `extractor` keys (YAML lines
    /// indented by two spaces) and an optional `views` list.
    pub fn config_yaml(&self, extractor: &str, views: Option<&[&str]>) -> String {
        let views = views
            .map(|v| format!("        views: [{}]\n", v.join(", ")))
            .unwrap_or_default();
        format!(
            "cognite:\n  host: {base}\n  project: {project}\n  idp-authentication:\n    token-url: {token}\n    client-id: emulator-client\n    secret: emulator-secret\n  extraction-pipeline:\n    external-id: replicator\nextractor:\n  state-store:\n    raw:\n      database: state\n      table: streams\n{extractor}data_modeling:\n  - space: {SCHEMA_SPACE}\n    data_models:\n      - external_id: {MODEL}\n{views}destination:\n{destination}",
            base = self.emulator.base_url(),
            project = self.emulator.project(),
            token = self.emulator.token_url(),
            destination = self.lake.destination_yaml(),
        )
    }

    pub async fn context(&self, extractor: &str) -> Context {
        self.context_with(extractor, None).await
    }

    pub async fn context_with(&self, extractor: &str, views: Option<&[&str]>) -> Context {
        let yaml = self.config_yaml(extractor, views);
        let config = load_config_text(&yaml, "test configuration", &MapEnv::new())
            .await
            .unwrap_or_else(|e| panic!("test configuration loads: {e}\n{yaml}"));
        Context::new(config).expect("context")
    }

    /// Writes the configuration to a file for the CLI binary.
    pub fn config_file(&self, extractor: &str) -> PathBuf {
        let path = self.dir.path().join("config.yaml");
        std::fs::write(&path, self.config_yaml(extractor, None)).expect("config file");
        path
    }

    /// The live nodes of a sample view, as CDF renders them.
    pub fn truth_nodes(&self, view: &str) -> Vec<Value> {
        let view = ViewId {
            space: SCHEMA_SPACE.into(),
            external_id: view.into(),
            version: "1".into(),
        };
        self.emulator
            .control()
            .live_instances_matching(
                InstanceKind::Node,
                Some(json!({"hasData": [view.to_json()]})),
                &[view],
            )
            .expect("truth")
    }

    /// The live edges of the `Pump.workOrders` type with their `PumpWorkOrder` properties.
    pub fn truth_work_order_edges(&self) -> Vec<Value> {
        let source = ViewId {
            space: SCHEMA_SPACE.into(),
            external_id: "PumpWorkOrder".into(),
            version: "1".into(),
        };
        let filter = json!({"equals": {"property": ["edge", "type"], "value": {"space": SCHEMA_SPACE, "externalId": "Pump.workOrders"}}});
        self.emulator
            .control()
            .live_instances_matching(InstanceKind::Edge, Some(filter), &[source])
            .expect("truth")
    }

    /// Like [`Lab::start`], with an emulator of the given settings (e.g. its own client
    /// secret).
    pub async fn start_with(config: EmulatorConfig, pumps: usize, lake: Option<Lake>) -> Self {
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let control = emulator.control();
        control
            .apply_schema(sample_model::schema())
            .expect("sample schema");
        control
            .apply_instances(sample_model::initial_instances(pumps))
            .expect("sample instances");
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = lake.unwrap_or_else(|| Lake::local(dir.path()));
        Self {
            emulator,
            lake,
            dir,
        }
    }

    /// The usual second round of changes in CDF: every one of `pumps` sample pumps updated
    /// once, and the sample deletions applied.
    pub fn update_and_delete_pumps(&self, pumps: usize) {
        let control = self.emulator.control();
        control
            .apply_instances(sample_model::updates(pumps, 1))
            .expect("updates");
        control
            .delete_instances(sample_model::deletions(pumps))
            .expect("deletes");
    }

    /// Requests the emulator's token endpoint received so far.
    pub fn token_requests(&self) -> usize {
        let token_path = url::Url::parse(&self.emulator.token_url())
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        self.emulator
            .control()
            .request_log()
            .iter()
            .filter(|r| r.path == token_path)
            .count()
    }

    /// Calls the emulator's public API (for operations the in-process control lacks).
    pub async fn api_post(&self, path: &str, body: Value) -> Value {
        let control = self.emulator.control();
        let url = format!(
            "{}/api/v1/projects/{}{path}",
            self.emulator.base_url(),
            self.emulator.project()
        );
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(control.issue_token())
            .json(&body)
            .send()
            .await
            .expect("emulator answers");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    /// The RAW state row of a stream (`{key, columns, lastUpdatedTime}`), as the tests'
    /// configuration stores it (`state`/`streams`).
    pub fn state_row(&self, stream_key: &str) -> Value {
        self.emulator
            .control()
            .raw_rows("state", "streams")
            .expect("state rows")
            .into_iter()
            .find(|row| row["key"] == stream_key)
            .unwrap_or_else(|| panic!("no state row for {stream_key}"))
    }

    /// Writes a state row back, as an operator (or a lost RAW write) would leave it.
    pub async fn put_state_row(&self, row: &Value) {
        self.api_post(
            "/raw/dbs/state/tables/streams/rows",
            json!({"items": [{"key": row["key"], "columns": row["columns"]}]}),
        )
        .await;
    }
}

/// `{property: {type, list}}` of a sample view, from the sample schema's containers.
pub fn sample_property_types(view: &str) -> Value {
    let schema = sample_model::schema();
    let container = format!("{view}C");
    let containers = schema["containers"].as_array().cloned().unwrap_or_default();
    let props = containers
        .iter()
        .find(|c| c["externalId"] == container.as_str())
        .map(|c| c["properties"].clone())
        .unwrap_or_else(|| panic!("sample container {container}"));
    let mut out = serde_json::Map::new();
    for (name, prop) in props.as_object().into_iter().flatten() {
        out.insert(
            name.clone(),
            json!({"type": prop["type"]["type"], "list": prop["type"]["list"].as_bool().unwrap_or(false)}),
        );
    }
    Value::Object(out)
}
