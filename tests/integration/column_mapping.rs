//! Which column each property value lands in, end to end against the emulator, real Delta
//! tables and independent readers (Python `deltalake`, pyarrow, DuckDB): properties whose
//! names differ from each other or from a system column only by case, edge connections of one
//! edge type with different edge sources, edge sources sharing a property name with different
//! types, and a property whose type changes under the same view version. None of them may
//! fail a stream, lose a value or hide one column behind another in a case-insensitive reader.

use std::process::Command;
use std::time::Duration;

use cdf_emulator::sample_model::{DATA_SPACE, MODEL, SCHEMA_SPACE};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::InstanceKind;
use cdf_s3_replicator::snapshot::{self, SnapshotOptions};
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake, python};

/// The data-model version holding the views of these tests (the sample model is version 1).
const MODEL_VERSION: &str = "2";

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(120))
}

fn view_ref(xid: &str) -> Value {
    json!({"type": "view", "space": SCHEMA_SPACE, "externalId": xid, "version": "1"})
}

fn mapped(container: &str, property: &str) -> Value {
    json!({"container": {"type": "container", "space": SCHEMA_SPACE, "externalId": container},
           "containerPropertyIdentifier": property})
}

fn container(xid: &str, used_for: &str, properties: Value) -> Value {
    json!({"space": SCHEMA_SPACE, "externalId": xid, "usedFor": used_for, "properties": properties})
}

fn connection(edge_type: &str, edge_source: &str) -> Value {
    json!({"connectionType": "multi_edge_connection",
           "type": {"space": SCHEMA_SPACE, "externalId": edge_type},
           "source": view_ref("Hub"), "edgeSource": view_ref(edge_source), "direction": "outwards"})
}

fn gauge_view(reading: &str, level: &str) -> Value {
    json!({"space": SCHEMA_SPACE, "externalId": "Gauge", "version": "1",
           "properties": {"reading": mapped("GaugeC", reading), "level": mapped("GaugeC", level)}})
}

/// Views whose property names are awkward but valid in CDF, in data-model version 2.
fn awkward_schema() -> Value {
    let text = json!({"type": {"type": "text"}});
    json!({
        "containers": [
            container("TwinC", "node", json!({
                "Name": text, "name": text, "Space": text, "ExternalId": text,
                "Version": {"type": {"type": "int64"}}, "Type": {"type": {"type": "direct"}},
            })),
            container("HubC", "node", json!({"label": text})),
            container("LinkAC", "edge", json!({"weight": {"type": {"type": "float64"}}, "note": text})),
            container("LinkBC", "edge", json!({"weight": text, "rank": {"type": {"type": "int32"}}})),
            container("GaugeC", "node", json!({
                "readingInt": {"type": {"type": "int64"}}, "readingText": text,
                "levelLong": {"type": {"type": "int64"}}, "levelInt": {"type": {"type": "int32"}},
            })),
        ],
        "views": [
            {"space": SCHEMA_SPACE, "externalId": "Twin", "version": "1", "properties": {
                "Name": mapped("TwinC", "Name"), "name": mapped("TwinC", "name"),
                "Space": mapped("TwinC", "Space"), "ExternalId": mapped("TwinC", "ExternalId"),
                "Version": mapped("TwinC", "Version"), "Type": mapped("TwinC", "Type"),
            }},
            {"space": SCHEMA_SPACE, "externalId": "Hub", "version": "1", "properties": {
                "label": mapped("HubC", "label"),
                "a": connection("Hub.link", "LinkA"),
                "b": connection("Hub.link", "LinkB"),
                "c": connection("Hub.other", "LinkB"),
            }},
            {"space": SCHEMA_SPACE, "externalId": "LinkA", "version": "1", "usedFor": "edge", "properties": {
                "weight": mapped("LinkAC", "weight"), "note": mapped("LinkAC", "note"),
            }},
            {"space": SCHEMA_SPACE, "externalId": "LinkB", "version": "1", "usedFor": "edge", "properties": {
                "weight": mapped("LinkBC", "weight"), "rank": mapped("LinkBC", "rank"),
            }},
            gauge_view("readingInt", "levelLong"),
        ],
        "dataModels": [{"space": SCHEMA_SPACE, "externalId": MODEL, "version": MODEL_VERSION,
            "views": [view_ref("Twin"), view_ref("Hub"), view_ref("Gauge")]}],
    })
}

fn node(xid: &str, view: &str, properties: Value) -> Value {
    json!({"instanceType": "node", "space": DATA_SPACE, "externalId": xid,
           "sources": [{"source": view_ref(view), "properties": properties}]})
}

fn edge(xid: &str, edge_type: &str, sources: Value) -> Value {
    json!({"instanceType": "edge", "space": DATA_SPACE, "externalId": xid,
           "type": {"space": SCHEMA_SPACE, "externalId": edge_type},
           "startNode": {"space": DATA_SPACE, "externalId": "hub-1"},
           "endNode": {"space": DATA_SPACE, "externalId": "hub-2"},
           "sources": sources})
}

async fn awkward_lab() -> Lab {
    let lab = Lab::start(0, None).await;
    let control = lab.emulator.control();
    control
        .apply_schema(awkward_schema())
        .expect("awkward but valid schema");
    control
        .apply_instances(json!({"items": [
            node("twin-1", "Twin", json!({
                "Name": "upper", "name": "lower", "Space": "a space", "ExternalId": "an id",
                "Version": 7, "Type": {"space": DATA_SPACE, "externalId": "hub-1"},
            })),
            node("hub-1", "Hub", json!({"label": "one"})),
            node("hub-2", "Hub", json!({"label": "two"})),
            node("g-1", "Gauge", json!({"reading": 5, "level": 10})),
            node("g-2", "Gauge", json!({"reading": 7, "level": 20})),
        ], "autoCreateDirectRelations": true}))
        .expect("nodes");
    control
        .apply_instances(json!({"items": [
            edge("e-ab", "Hub.link", json!([
                {"source": view_ref("LinkA"), "properties": {"weight": 0.5, "note": "a"}},
                {"source": view_ref("LinkB"), "properties": {"weight": "heavy", "rank": 3}},
            ])),
            edge("e-c", "Hub.other", json!([
                {"source": view_ref("LinkB"), "properties": {"weight": "light", "rank": 1}},
            ])),
        ]}))
        .expect("edges");
    lab
}

/// Each test syncs only its own view, so that it fails for its own reason alone.
async fn sync_succeeds(lab: &Lab, view: &str, label: &str) {
    let context = lab.context_with("", Some(&[view])).await;
    let summary = jobs::sync(
        &SyncJob::from_context(&context),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{label}: {summary:#?}");
}

async fn snapshot_succeeds(lab: &Lab, view: &str, label: &str) -> snapshot::SnapshotSummary {
    let context = lab.context_with("", Some(&[view])).await;
    let summary = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{label}: {summary:#?}");
    summary
}

fn raw_rows(lab: &Lab, folder: &str, kind: &str) -> Vec<Value> {
    lab.raw_rows_of_model_version(MODEL_VERSION, folder, kind)
        .expect("python")
}

/// The newest raw row of each external id.
fn latest(rows: &[Value], external_id: &str) -> Value {
    rows.iter()
        .filter(|r| r["externalId"] == external_id)
        .max_by_key(|r| r["version"].as_i64())
        .cloned()
        .unwrap_or_else(|| panic!("{external_id} in {rows:#?}"))
}

/// A published file read back: pyarrow's field metadata, DuckDB's column names and rows.
struct Published {
    metadata: serde_json::Map<String, Value>,
    duckdb_columns: Vec<String>,
    rows: Vec<Value>,
}

impl Published {
    fn row(&self, external_id: &str) -> &Value {
        self.rows
            .iter()
            .find(|r| r["externalId"] == external_id)
            .unwrap_or_else(|| panic!("{external_id} published: {:#?}", self.rows))
    }

    /// Every column's name is distinct from every other's after lower-casing (as Glue and
    /// DuckDB see them), and DuckDB shows the same columns as pyarrow.
    fn assert_case_insensitively_distinct(&self) {
        let mut lower: Vec<String> = self
            .duckdb_columns
            .iter()
            .map(|c| c.to_lowercase())
            .collect();
        let count = lower.len();
        lower.sort();
        lower.dedup();
        assert_eq!(lower.len(), count, "{:?}", self.duckdb_columns);
        let pyarrow: Vec<&String> = self.metadata.keys().collect();
        let mut duckdb: Vec<&String> = self.duckdb_columns.iter().collect();
        duckdb.sort();
        assert_eq!(pyarrow, duckdb);
    }

    fn field(&self, column: &str) -> &Value {
        self.metadata
            .get(column)
            .unwrap_or_else(|| panic!("column {column} in {:?}", self.duckdb_columns))
    }
}

const READ_PUBLISHED: &str = r#"
import json, sys
import duckdb, pyarrow.parquet as pq
uri = sys.argv[1]
schema = pq.read_schema(uri)
metadata = {f.name: {k.decode(): v.decode() for k, v in (f.metadata or {}).items()} for f in schema}
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{uri}')").fetchall()]
rows = con.execute(f"SELECT * FROM read_parquet('{uri}')").fetch_arrow_table().to_pylist()
print(json.dumps({"metadata": metadata, "duckdb_columns": columns, "rows": rows}, default=str))
"#;

fn published(lab: &Lab, folder: &str, kind: &str) -> Published {
    let Lake::Local(root) = &lab.lake else {
        panic!("these tests publish to a local lake");
    };
    let path = root
        .join("publish")
        .join(SCHEMA_SPACE)
        .join(MODEL)
        .join(MODEL_VERSION)
        .join(folder)
        .join(format!("{kind}.parquet"));
    let python = python().expect("python");
    let output = Command::new(python)
        .arg("-c")
        .arg(READ_PUBLISHED)
        .arg(&path)
        .output()
        .expect("running the publish reader");
    assert!(
        output.status.success(),
        "reading {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("reader prints JSON");
    Published {
        metadata: report["metadata"].as_object().cloned().unwrap_or_default(),
        duckdb_columns: report["duckdb_columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect(),
        rows: report["rows"].as_array().cloned().unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_differ_only_by_case_get_their_own_columns() {
    if python().is_none() {
        return;
    }
    let lab = awkward_lab().await;
    sync_succeeds(&lab, "Twin", "first sync").await;
    let twin = latest(&raw_rows(&lab, "Twin", "nodes"), "twin-1");
    let expected = json!({
        "Name": "upper", "prop_name": "lower", "prop_Space": "a space",
        "prop_ExternalId": "an id", "prop_Version": 7,
        "prop_Type.space": DATA_SPACE, "prop_Type.externalId": "hub-1",
        "space": DATA_SPACE, "externalId": "twin-1", "version": 1,
    });
    for (column, value) in expected.as_object().into_iter().flatten() {
        assert_eq!(&twin[column], value, "raw column {column}: {twin:#}");
    }

    snapshot_succeeds(&lab, "Twin", "snapshot").await;
    let file = published(&lab, "Twin", "nodes");
    file.assert_case_insensitively_distinct();
    let row = file.row("twin-1");
    for (column, value) in expected.as_object().into_iter().flatten() {
        assert_eq!(&row[column], value, "published column {column}: {row:#}");
    }
    let renamed = file.field("prop_name");
    assert_eq!(renamed["cdf.property"], "name");
    assert_eq!(renamed["cdf.source"], format!("{SCHEMA_SPACE}:Twin/1"));
    assert_eq!(file.field("prop_Type.space")["cdf.type"], "direct");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edge_source_of_a_connection_reaches_the_edge_table() {
    if python().is_none() {
        return;
    }
    let lab = awkward_lab().await;
    sync_succeeds(&lab, "Hub", "first sync").await;
    // Nothing is left to fail on the next run either.
    sync_succeeds(&lab, "Hub", "second sync").await;

    let rows = raw_rows(&lab, "Hub", "edges");
    let both = latest(&rows, "e-ab");
    assert_eq!(both["LinkA_weight"], json!(0.5), "{both:#}");
    assert_eq!(both["LinkB_weight"], json!("heavy"), "{both:#}");
    assert_eq!(both["note"], json!("a"), "{both:#}");
    assert_eq!(both["rank"], json!(3), "{both:#}");
    // Another edge type whose edge source has `weight` as text, in the same table.
    let other = latest(&rows, "e-c");
    assert_eq!(other["LinkB_weight"], json!("light"), "{other:#}");
    assert_eq!(other["rank"], json!(1), "{other:#}");
    assert!(other["LinkA_weight"].is_null(), "{other:#}");
    assert!(other["note"].is_null(), "{other:#}");
    assert!(
        rows.iter().all(|r| r.get("weight").is_none()),
        "no unqualified weight column: {rows:#?}"
    );

    snapshot_succeeds(&lab, "Hub", "snapshot").await;
    let file = published(&lab, "Hub", "edges");
    file.assert_case_insensitively_distinct();
    let row = file.row("e-ab");
    assert_eq!(row["LinkA_weight"], json!(0.5));
    assert_eq!(row["LinkB_weight"], json!("heavy"));
    assert_eq!(row["rank"], json!(3));
    for (column, source, cdf_type) in [
        ("LinkA_weight", "LinkA", "float64"),
        ("LinkB_weight", "LinkB", "text"),
        ("rank", "LinkB", "int32"),
        ("note", "LinkA", "text"),
    ] {
        let field = file.field(column);
        assert_eq!(
            field["cdf.property"],
            column.rsplit('_').next().unwrap_or(column)
        );
        assert_eq!(field["cdf.source"], format!("{SCHEMA_SPACE}:{source}/1"));
        assert_eq!(field["cdf.type"], cdf_type);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_change_under_the_same_view_version_keeps_old_and_new_values() {
    if python().is_none() {
        return;
    }
    let lab = awkward_lab().await;
    sync_succeeds(&lab, "Gauge", "first sync").await;
    snapshot_succeeds(&lab, "Gauge", "first snapshot").await;

    // The view is recreated at the same version: `reading` now maps a text property, and
    // `level` an int32 one (whose values fit the int64 column).
    lab.api_post(
        "/models/views/delete",
        json!({"items": [{"space": SCHEMA_SPACE, "externalId": "Gauge", "version": "1"}]}),
    )
    .await;
    let control = lab.emulator.control();
    control
        .apply_schema(json!({"views": [gauge_view("readingText", "levelInt")]}))
        .expect("view recreated with new types");
    control
        .apply_instances(
            json!({"items": [node("g-1", "Gauge", json!({"reading": "high", "level": 11}))]}),
        )
        .expect("update through the new view");
    sync_succeeds(&lab, "Gauge", "sync after the type change").await;
    sync_succeeds(&lab, "Gauge", "the next sync").await;

    let rows = raw_rows(&lab, "Gauge", "nodes");
    let changed = latest(&rows, "g-1");
    assert_eq!(changed["reading__text"], json!("high"), "{changed:#}");
    assert_eq!(changed["level"], json!(11), "{changed:#}");
    assert!(changed["reading"].is_null(), "{changed:#}");
    assert!(
        rows.iter()
            .any(|r| r["externalId"] == "g-1" && r["reading"] == json!(5)),
        "the old value stays in the history: {rows:#?}"
    );
    assert!(
        rows.iter().all(|r| r.get("level__int32").is_none()),
        "int32 values fit the int64 column: {rows:#?}"
    );

    snapshot_succeeds(&lab, "Gauge", "snapshot after the type change").await;
    let file = published(&lab, "Gauge", "nodes");
    file.assert_case_insensitively_distinct();
    assert_eq!(file.row("g-1")["reading__text"], json!("high"));
    assert_eq!(file.row("g-1")["level"], json!(11));
    assert_eq!(file.row("g-2")["reading"], json!(7));
    assert!(file.row("g-2")["reading__text"].is_null());
    assert_eq!(file.field("reading__text")["cdf.property"], "reading");
    assert_eq!(file.field("reading__text")["cdf.type"], "text");
    assert_eq!(file.field("reading")["cdf.type"], "int64");

    // And again, incrementally.
    control
        .apply_instances(json!({"items": [node("g-2", "Gauge", json!({"reading": "low"}))]}))
        .expect("second update");
    sync_succeeds(&lab, "Gauge", "third sync").await;
    let summary = snapshot_succeeds(&lab, "Gauge", "incremental snapshot").await;
    let action = summary
        .view("Gauge")
        .and_then(|v| v.file(InstanceKind::Nodes))
        .map(|f| f.action);
    assert_eq!(
        action,
        Some(snapshot::FileAction::Incremental),
        "{summary:#?}"
    );
    let file = published(&lab, "Gauge", "nodes");
    assert_eq!(file.row("g-2")["reading__text"], json!("low"));
    assert!(file.row("g-2")["reading"].is_null());
    assert_eq!(file.row("g-1")["reading__text"], json!("high"));
}
