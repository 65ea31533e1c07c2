//! Table maintenance on synced tables: compaction keeps every version's rows and the arrival
//! order, vacuum deletes only what compaction replaced, and compaction next to a running
//! sync (local directory and S3 server) loses and duplicates nothing.

mod compaction;
mod races;
mod vacuum;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use cdf_emulator::sample_model::{MODEL, MODEL_VERSION, SCHEMA_SPACE};
use cdf_s3_replicator::context::Context;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::{
    CompactionInfo, InstanceKind, LakeTable, ModelRef, VersionChanges, ViewFolder,
};
use cdf_s3_replicator::maintenance::{MaintenanceOptions, MaintenanceSummary};
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use cdf_s3_replicator::sync::summary::RunSummary;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, python};

/// Every table of the sample model: (view folder, kind, view whose properties it holds).
const TABLES: [(&str, &str, &str); 5] = [
    ("Site", "nodes", "Site"),
    ("Pump", "nodes", "Pump"),
    ("WorkOrder", "nodes", "WorkOrder"),
    ("Pump", "edges", "PumpWorkOrder"),
    ("PumpWorkOrder", "edges", "PumpWorkOrder"),
];

/// One commit per page of ten: many small files.
const TINY_BATCHES: &str = "  subscription-batch-size: 10\n  ingest-batch-size: 10\n  parallelism: 2\n  maintenance:\n    compact-min-files: 2\n    checkpoint-interval: 5\n";

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(300))
}

fn only(compact: bool, checkpoint: bool, vacuum: bool) -> MaintenanceOptions {
    MaintenanceOptions {
        compact,
        checkpoint,
        vacuum,
        ..MaintenanceOptions::default()
    }
}

async fn sync_ok(context: &Context) -> RunSummary {
    let summary = jobs::sync(
        &SyncJob::from_context(context),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{summary:#?}");
    summary
}

async fn open_table(context: &Context, folder: &str, kind: &str) -> LakeTable {
    let model = ModelRef::new(SCHEMA_SPACE, MODEL, MODEL_VERSION).unwrap();
    let kind = if kind == "nodes" {
        InstanceKind::Nodes
    } else {
        InstanceKind::Edges
    };
    let url = context
        .destination
        .raw_table_url(&model, &ViewFolder::plain(folder).unwrap(), kind)
        .unwrap();
    let write_options = SyncJob::from_context(context).streams.write_options;
    LakeTable::open(&context.destination, url, write_options)
        .await
        .unwrap()
}

fn compaction_commits(log: &[VersionChanges]) -> Vec<(&VersionChanges, CompactionInfo)> {
    log.iter()
        .filter_map(|c| CompactionInfo::of_commit(c).map(|info| (c, info)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Independent readers (Python `deltalake`, DuckDB, pyarrow)
// ---------------------------------------------------------------------------------------

/// Reads versions, the latest version with DuckDB, or single Parquet files. Rows are
/// compared as canonical JSON (keys sorted, null values left out, so that a column a file
/// lacks and a null compare equal); a version is reduced to its row count and the digest
/// of its sorted rows, i.e. a row multiset.
const READER: &str = r#"
import hashlib, json, os, sys

def canon(row):
    return json.dumps({k: v for k, v in row.items() if v is not None}, sort_keys=True, default=str)

def multiset(rows):
    lines = sorted(canon(r) for r in rows)
    return {"rows": len(lines), "digest": hashlib.sha256("\n".join(lines).encode()).hexdigest()}

def versions(req):
    from deltalake import DeltaTable
    table = DeltaTable(req["uri"], storage_options=req["storage_options"] or None)
    out = {}
    for version in req["versions"]:
        table.load_as_version(version)
        out[str(version)] = multiset(table.to_pyarrow_table().to_pylist())
    return out

def duckdb_latest(req):
    import duckdb
    con = duckdb.connect()
    ext_dir = os.environ.get("CDF_S3_TEST_DUCKDB_EXTENSION_DIR")
    if ext_dir:
        con.execute(f"SET extension_directory = '{ext_dir}'")
    con.execute("LOAD delta")
    uri = req["uri"]
    if uri.startswith("s3://"):
        con.execute("LOAD httpfs")
        con.execute("LOAD aws")
        endpoint = req["storage_options"]["AWS_ENDPOINT_URL"].split("://", 1)[1]
        con.execute(
            "CREATE SECRET s3 (TYPE s3, KEY_ID 'testing', SECRET 'testing', "
            f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')")
    return multiset(con.execute(f"SELECT * FROM delta_scan('{uri}')").fetch_arrow_table().to_pylist())

def files(req):
    import pyarrow.parquet as pq
    return [[canon(r) for r in pq.read_table(path).to_pylist()] for path in req["paths"]]

command, path = sys.argv[1], sys.argv[2]
with open(path, encoding="utf-8") as f:
    request = json.load(f)
print(json.dumps({"versions": versions, "duckdb_latest": duckdb_latest, "files": files}[command](request)))
sys.stdout.flush()
# Skip interpreter teardown: native thread pools (pyarrow, the deltalake runtime) sometimes
# abort while shutting down, after the answer is complete.
os._exit(0)
"#;

fn read(lab: &Lab, command: &str, request: Value) -> Value {
    let python = python().expect("python reader");
    let dir = lab.dir.path();
    let script = dir.join("maintenance_reader.py");
    std::fs::write(&script, READER).unwrap();
    let request_file = dir.join(format!("maintenance-{:016x}.json", rand::random::<u64>()));
    std::fs::write(&request_file, request.to_string()).unwrap();
    let output = Command::new(python)
        .arg(&script)
        .arg(command)
        .arg(&request_file)
        .output()
        .expect("running the Python reader");
    assert!(
        output.status.success(),
        "Python reader {command} failed ({}, {} bytes of output): {}\nrequest: {request}",
        output.status,
        output.stdout.len(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("reader prints JSON")
}

/// `{version: {rows, digest}}` of the given versions, read with the Python `deltalake`.
fn version_multisets(
    lab: &Lab,
    folder: &str,
    kind: &str,
    versions: &[u64],
) -> BTreeMap<u64, Value> {
    let request = json!({
        "uri": lab.lake.raw_table_uri(folder, kind),
        "storage_options": lab.lake.storage_options(),
        "versions": versions,
    });
    let out = read(lab, "versions", request);
    versions
        .iter()
        .map(|v| (*v, out[v.to_string()].clone()))
        .collect()
}

fn duckdb_latest(lab: &Lab, folder: &str, kind: &str) -> Value {
    let request = json!({
        "uri": lab.lake.raw_table_uri(folder, kind),
        "storage_options": lab.lake.storage_options(),
    });
    read(lab, "duckdb_latest", request)
}

fn local_table_dir(lab: &Lab, folder: &str, kind: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(lab.lake.raw_table_uri(folder, kind))
}

fn assert_success(summary: &MaintenanceSummary) {
    assert!(summary.is_success(), "{summary:#?}");
    assert_eq!(summary.tables_total, TABLES.len(), "{summary:#?}");
}
