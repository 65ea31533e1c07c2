//! Shared set-up for the replication tests: the CDF emulator seeded with the sample plant
//! model, a lake (local directory or the S3 server on loopback), the configuration a user
//! would write, and the independent Python readers that compare the lake with the
//! emulator's truth.

use std::path::{Path, PathBuf};
use std::process::Command;

use cdf_emulator::sample_model::{self, MODEL, MODEL_VERSION, SCHEMA_SPACE};
use cdf_emulator::{Emulator, EmulatorConfig, InstanceKind, ViewId};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use s3_fault_proxy::S3FaultProxy;
use serde_json::{Value, json};

/// Returns the variable, or `None` after printing why the test is skipped. Under
/// `tests/run-all.sh` (`CDF_S3_TEST_REQUIRE_ALL=1`) a missing variable fails the test.
pub fn required_env(var: &str, why: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("CDF_S3_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
                "{var} is not set ({why}) but CDF_S3_TEST_REQUIRE_ALL=1"
            );
            eprintln!("SKIPPED ({var} not set: {why}): run tests/run-all.sh");
            None
        }
    }
}

pub fn python() -> Option<String> {
    required_env(
        "CDF_S3_TEST_PYTHON",
        "the Python deltalake and DuckDB readers",
    )
}

/// Where a test writes its lake.
#[derive(Debug, Clone)]
pub enum Lake {
    Local(PathBuf),
    S3 { endpoint: String, bucket: String },
}

impl Lake {
    pub fn local(dir: &Path) -> Self {
        Lake::Local(dir.join("lake"))
    }

    /// A fresh bucket on the S3 server, or `None` (skip) when none runs.
    pub async fn s3() -> Option<Self> {
        let endpoint = required_env("CDF_S3_TEST_S3_ENDPOINT", "the S3 protocol server")?;
        let bucket = format!("lake-{:016x}", rand::random::<u64>());
        let response = reqwest::Client::new()
            .put(format!("{endpoint}/{bucket}"))
            .send()
            .await
            .expect("creating a bucket on the S3 server");
        assert!(
            response.status().is_success(),
            "creating bucket {bucket}: {}",
            response.status()
        );
        Some(Lake::S3 { endpoint, bucket })
    }

    pub fn destination_yaml(&self) -> String {
        match self {
            Lake::Local(path) => format!("  local:\n    path: \"{}\"\n", path.display()),
            Lake::S3 { endpoint, bucket } => format!(
                "  s3:\n    bucket: {bucket}\n    prefix: cdf-data\n    region: us-east-1\n    endpoint-url: {endpoint}\n    allow-http: true\n"
            ),
        }
    }

    /// URI of a raw table under the sample model, as the Python readers open it.
    pub fn raw_table_uri(&self, view_folder: &str, kind: &str) -> String {
        let relative =
            format!("raw/{SCHEMA_SPACE}/{MODEL}/{MODEL_VERSION}/views/{view_folder}/{kind}");
        match self {
            Lake::Local(path) => path.join(relative).display().to_string(),
            Lake::S3 { bucket, .. } => format!("s3://{bucket}/cdf-data/{relative}"),
        }
    }

    pub fn storage_options(&self) -> Value {
        match self {
            Lake::Local(_) => json!({}),
            Lake::S3 { endpoint, .. } => json!({
                "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            }),
        }
    }
}

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

    /// Compares a raw table with the truth using both Python readers; returns the report.
    pub fn compare(
        &self,
        view_folder: &str,
        kind: &str,
        properties_of: &str,
        truth: Vec<Value>,
    ) -> Option<Value> {
        let python = python()?;
        let request = json!({
            "uri": self.lake.raw_table_uri(view_folder, kind),
            "storage_options": self.lake.storage_options(),
            "kind": kind,
            "view_space": SCHEMA_SPACE,
            "view_key": format!("{properties_of}/1"),
            "properties": sample_property_types(properties_of),
            "truth": truth,
        });
        Some(run_reader(&python, "compare", &request, self.dir.path()))
    }

    /// Every raw row of a table (read with the Python `deltalake` package).
    pub fn raw_rows(&self, view_folder: &str, kind: &str) -> Option<Vec<Value>> {
        let python = python()?;
        let request = json!({
            "uri": self.lake.raw_table_uri(view_folder, kind),
            "storage_options": self.lake.storage_options(),
        });
        let rows = run_reader(&python, "rows", &request, self.dir.path());
        Some(rows.as_array().cloned().unwrap_or_default())
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

fn run_reader(python: &str, command: &str, request: &Value, dir: &Path) -> Value {
    let request_file = dir.join(format!("reader-{:016x}.json", rand::random::<u64>()));
    std::fs::write(&request_file, request.to_string()).expect("reader request");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/raw_tables.py");
    let output = Command::new(python)
        .arg(script)
        .arg(command)
        .arg(&request_file)
        .output()
        .expect("running the Python reader");
    assert!(
        output.status.success(),
        "Python reader failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("reader prints JSON")
}

/// Asserts that both readers saw exactly the truth: no mismatch, no duplicated change.
pub fn assert_matches_truth(report: &Value, expected_rows: usize, label: &str) {
    for reader in ["deltalake", "duckdb"] {
        let r = &report[reader];
        assert_eq!(
            r["mismatch_count"], 0,
            "{label} ({reader}): {}",
            r["mismatches"]
        );
        assert_eq!(
            r["duplicate_count"], 0,
            "{label} ({reader}): {}",
            r["duplicates"]
        );
        assert_eq!(r["rows_compared"], expected_rows, "{label} ({reader})");
        assert_eq!(r["live_rows"], expected_rows, "{label} ({reader})");
    }
}

impl Lab {
    /// Every raw row of a table of another version of the sample model.
    pub fn raw_rows_of_model_version(
        &self,
        model_version: &str,
        view_folder: &str,
        kind: &str,
    ) -> Option<Vec<Value>> {
        let python = python()?;
        let uri = self.lake.raw_table_uri(view_folder, kind).replace(
            &format!("/{MODEL}/{MODEL_VERSION}/"),
            &format!("/{MODEL}/{model_version}/"),
        );
        let request = json!({"uri": uri, "storage_options": self.lake.storage_options()});
        let rows = run_reader(&python, "rows", &request, self.dir.path());
        Some(rows.as_array().cloned().unwrap_or_default())
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
}

impl Lab {
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
}

/// Every log line written while it is installed, for asserting on what the product logs.
/// Install with `tracing::subscriber::set_default(capture.subscriber())` on a current-thread
/// runtime, so that every task of the test logs through it.
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// JSON lines as the Lambda functions write them, every level, every crate except the
    /// emulator (which is not part of the product).
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        use tracing_subscriber::layer::SubscriberExt;
        // While a single dispatcher exists, tracing decides whether a log statement is
        // enabled (once, for good) by asking the *current thread's* dispatcher: a statement
        // first reached by another test's thread would stay disabled for this capture too.
        // A second, idle dispatcher that lives as long as the test binary makes tracing ask
        // every dispatcher instead.
        static SECOND_DISPATCHER: std::sync::OnceLock<tracing::Dispatch> =
            std::sync::OnceLock::new();
        SECOND_DISPATCHER
            .get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let filter = tracing_subscriber::filter::Targets::new()
            .with_default(tracing::Level::TRACE)
            .with_target("cdf_emulator", tracing::level_filters::LevelFilter::OFF);
        tracing_subscriber::registry().with(filter).with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_writer(self.clone()),
        )
    }

    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Lab {
    /// Every raw table of the sample model equals the truth, read by both Python readers:
    /// the nodes of each node view, and the work-order edges both in the Pump connection's
    /// table and in the edge view's table.
    pub fn assert_all_tables_match(&self, label: &str) {
        for view in ["Site", "Pump", "WorkOrder"] {
            let truth = self.truth_nodes(view);
            let expected = truth.len();
            assert!(expected > 0, "{label}: {view} has live nodes");
            let report = self.compare(view, "nodes", view, truth).expect("python");
            assert_matches_truth(&report, expected, &format!("{label}: {view} nodes"));
        }
        let edges = self.truth_work_order_edges();
        let expected = edges.len();
        for folder in ["Pump", "PumpWorkOrder"] {
            let report = self
                .compare(folder, "edges", "PumpWorkOrder", edges.clone())
                .expect("python");
            assert_matches_truth(&report, expected, &format!("{label}: {folder} edges"));
        }
    }
}

/// URI of a view's publish folder under the sample model, as the Python readers open it.
pub fn publish_dir_uri(lake: &Lake, view_folder: &str) -> String {
    let relative = format!("publish/{SCHEMA_SPACE}/{MODEL}/{MODEL_VERSION}/{view_folder}");
    match lake {
        Lake::Local(path) => path.join(relative).display().to_string(),
        Lake::S3 { bucket, .. } => format!("s3://{bucket}/cdf-data/{relative}"),
    }
}

impl Lab {
    /// Reads a view's published files with pyarrow and DuckDB and compares them with the
    /// truth; `files` maps `nodes`/`edges` to `{kind, view_space, view_key, properties,
    /// truth}`. Returns the report of `tests/readers/publish_files.py`.
    pub fn check_published(&self, view_folder: &str, files: Value) -> Option<Value> {
        let python = python()?;
        let request = json!({
            "dir": publish_dir_uri(&self.lake, view_folder),
            "storage_options": self.lake.storage_options(),
            "files": files,
        });
        let request_file = self
            .dir
            .path()
            .join(format!("publish-{:016x}.json", rand::random::<u64>()));
        std::fs::write(&request_file, request.to_string()).expect("checker request");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/publish_files.py");
        let output = Command::new(python)
            .arg(script)
            .arg("check")
            .arg(&request_file)
            .output()
            .expect("running the publish checker");
        assert!(
            output.status.success(),
            "publish checker failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        Some(serde_json::from_slice(&output.stdout).expect("checker prints JSON"))
    }
}

/// The sample views with the views their node and edge files take properties from.
pub const VIEWS: [(&str, Option<&str>, Option<&str>); 4] = [
    ("Site", Some("Site"), None),
    ("Pump", Some("Pump"), Some("PumpWorkOrder")),
    ("WorkOrder", Some("WorkOrder"), None),
    ("PumpWorkOrder", None, Some("PumpWorkOrder")),
];

/// The checker's description of one published file of a sample view: its properties and
/// the truth it must equal.
pub fn published_file_spec(
    lab: &Lab,
    kind: &str,
    properties_of: Option<&str>,
    view: &str,
    extra: &Value,
) -> Value {
    let (properties, truth) = match (kind, properties_of) {
        (_, None) => (json!({}), Vec::new()),
        ("nodes", Some(of)) => {
            let mut properties = sample_property_types(of);
            if let (Some(props), Some(extra)) = (properties.as_object_mut(), extra.as_object()) {
                props.extend(extra.clone());
            }
            (properties, lab.truth_nodes(view))
        }
        (_, Some(of)) => (sample_property_types(of), lab.truth_work_order_edges()),
    };
    json!({
        "kind": kind,
        "view_space": SCHEMA_SPACE,
        "view_key": format!("{}/1", properties_of.unwrap_or(view)),
        "properties": properties,
        "truth": truth,
    })
}

/// The sample lab on S3 behind the fault-injecting proxy, or `None` (skip) without an S3
/// server. The proxy's counters and rules belong to the caller.
pub async fn lab_behind_proxy(pumps: usize, seed: u64) -> Option<(Lab, S3FaultProxy)> {
    let Lake::S3 { endpoint, bucket } = Lake::s3().await? else {
        unreachable!("Lake::s3 gives an S3 lake");
    };
    let proxy = S3FaultProxy::start(&endpoint, seed)
        .await
        .expect("S3 fault proxy starts");
    let lake = Lake::S3 {
        endpoint: proxy.url(),
        bucket,
    };
    Some((Lab::start(pumps, Some(lake)).await, proxy))
}

/// Every batch of a Parquet object, read whole with the arrow-rs reader (which fails on a
/// truncated or otherwise incomplete file).
pub async fn parquet_object_batches(
    store: &deltalake::logstore::ObjectStoreRef,
    path: &deltalake::Path,
) -> Vec<deltalake::arrow::array::RecordBatch> {
    use deltalake::logstore::object_store::ObjectStoreExt as _;
    let bytes = store
        .get(path)
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"));
    deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap_or_else(|e| panic!("{path} is a complete Parquet file: {e}"))
        .build()
        .expect("Parquet reader")
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{path}: row groups: {e}"))
}

/// Appends `count` commits of another stream (empty appends: only a txn and metadata) to a
/// raw table, as a busy neighbour sharing the table would.
pub async fn neighbour_commits(lab: &Lab, folder: &str, kind: &str, first: i64, count: i64) {
    let uri = lab.lake.raw_table_uri(folder, kind);
    let url = url::Url::from_directory_path(&uri).expect("local table URL");
    let mut table = cdf_s3_replicator::lake::LakeTable::open_with_storage_options(
        url,
        Default::default(),
        Default::default(),
    )
    .await
    .expect("raw table");
    for txn_version in first..first + count {
        let outcome = table
            .append(
                &[],
                cdf_s3_replicator::lake::StreamCommit {
                    app_id: "neighbour".into(),
                    txn_version,
                    metadata: Default::default(),
                },
            )
            .await
            .expect("neighbour commit");
        assert!(matches!(
            outcome,
            cdf_s3_replicator::lake::CommitOutcome::Committed(_)
        ));
    }
}

impl Lab {
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

/// Runs `tests/readers/read_delta.py` (the raw Delta layer's reader: Python `deltalake`, and
/// DuckDB for local tables) with `request` and returns what it printed.
pub fn python_read(python: &str, request: Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/read_delta.py");
    let output = Command::new(python)
        .arg(script)
        .arg(request.to_string())
        .output()
        .expect("run the Python reader");
    assert!(
        output.status.success(),
        "Python reader failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("reader prints JSON")
}
