//! A json property nested thousands of levels deep (valid in CDF: ≤ 40,960 bytes per
//! object, ≤ 10,240 bytes per value) replicates like any other value: the sync of its view
//! carries on, later changes of the view's other instances arrive, and the raw table and
//! the publish file hold the exact JSON text.

use std::process::Command;
use std::time::Duration;

use cdf_emulator::sample_model::{DATA_SPACE, SCHEMA_SPACE};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::snapshot::SnapshotOptions;
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use cdf_s3_replicator::sync::summary::StreamStatus;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake, publish_dir_uri, python};

const PUMPS: usize = 6;
const DEPTH: usize = 5_000;

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(300))
}

/// `{"d": [[[…]]]}` with `DEPTH` levels of arrays, built without recursion, and its text.
fn deep_specs() -> (Value, String) {
    let mut value = Value::Array(Vec::new());
    for _ in 1..DEPTH {
        value = Value::Array(vec![value]);
    }
    let mut object = serde_json::Map::new();
    object.insert("d".to_owned(), value);
    let text = format!(r#"{{"d":{}{}}}"#, "[".repeat(DEPTH), "]".repeat(DEPTH));
    (Value::Object(object), text)
}

fn pump_write(external_id: &str, properties: Value) -> Value {
    json!({"items": [{"instanceType": "node", "space": DATA_SPACE, "externalId": external_id,
        "sources": [{"source": {"type": "view", "space": SCHEMA_SPACE, "externalId": "Pump", "version": "1"},
                     "properties": properties}]}]})
}

/// `externalId → (tag, specs)` of the rows of the publish file `nodes.parquet` of Pump, as
/// pyarrow and as DuckDB read them.
fn published_specs(lab: &Lab, python: &str) -> Value {
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[3])
import publish_files as p
uri, options = sys.argv[1], json.loads(sys.argv[2])
out = {}
for name, reader in (("pyarrow", p.read_pyarrow), ("duckdb", p.read_duckdb)):
    rows, _ = reader(uri, options)
    out[name] = {r["externalId"]: [r["tag"], r["specs"]] for r in rows}
print(json.dumps(out))
sys.stdout.flush()
import os
os._exit(0)
"#;
    let uri = format!("{}/nodes.parquet", publish_dir_uri(&lab.lake, "Pump"));
    let readers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers");
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&uri)
        .arg(lab.lake.storage_options().to_string())
        .arg(&readers)
        .output()
        .expect("running pyarrow and DuckDB");
    assert!(
        output.status.success(),
        "publish readers failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("readers print JSON")
}

async fn deep_json_round_trips(lab: Lab) {
    let Some(python) = python() else { return };
    let control = lab.emulator.control();
    let (deep, deep_text) = deep_specs();
    assert!(deep_text.len() <= 10_240, "within CDF's per-value limit");
    let mut write = pump_write("pump-deep", json!({"tag": "deep"}));
    write["items"][0]["sources"][0]["properties"]["specs"] = deep;
    control
        .apply_instances(write)
        .expect("CDF accepts the deep value");

    let context = lab
        .context("  subscription-batch-size: 4\n  ingest-batch-size: 5\n")
        .await;
    let job = SyncJob::from_context(&context);
    let first = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(first.is_success(), "{first:#?}");
    assert!(
        first
            .streams
            .iter()
            .all(|s| s.status == StreamStatus::CaughtUp),
        "{first:#?}"
    );

    // A later change of another instance of the same view arrives.
    control
        .apply_instances(pump_write("pump-0001", json!({"tag": "changed later"})))
        .expect("update");
    let second = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(second.is_success(), "{second:#?}");
    assert!(second.rows >= 1, "{second:#?}");

    let rows = lab.raw_rows("Pump", "nodes").expect("python");
    let deep_rows: Vec<&Value> = rows
        .iter()
        .filter(|r| r["externalId"] == "pump-deep")
        .collect();
    assert_eq!(deep_rows.len(), 1, "one raw row of the deep pump");
    assert_eq!(
        deep_rows[0]["specs"].as_str(),
        Some(deep_text.as_str()),
        "the raw table holds the exact JSON text"
    );
    assert!(
        rows.iter()
            .any(|r| r["externalId"] == "pump-0001" && r["tag"] == "changed later"),
        "the later change of the other pump is in the raw table"
    );

    let summary = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{summary:#?}");
    let published = published_specs(&lab, &python);
    for reader in ["pyarrow", "duckdb"] {
        let files = &published[reader];
        assert_eq!(
            files["pump-deep"][1].as_str(),
            Some(deep_text.as_str()),
            "{reader}: the publish file holds the exact JSON text"
        );
        assert_eq!(files["pump-0001"][0], "changed later", "{reader}");
        assert_eq!(
            files.as_object().map(serde_json::Map::len),
            Some(PUMPS + 1),
            "{reader}: every pump is published"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_json_round_trips_local() {
    deep_json_round_trips(Lab::start(PUMPS, None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_json_round_trips_s3() {
    let Some(lake) = Lake::s3().await else { return };
    deep_json_round_trips(Lab::start(PUMPS, Some(lake)).await).await;
}
