//! The independent readers (Python `deltalake`, DuckDB, pyarrow, in `tests/readers/`) that
//! read the lake and compare it with the emulator's truth.

use std::path::Path;
use std::process::Command;

use cdf_emulator::sample_model::{MODEL, MODEL_VERSION, SCHEMA_SPACE};
use serde_json::{Value, json};

use super::{Lab, publish_dir_uri, python, sample_property_types};

impl Lab {
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
