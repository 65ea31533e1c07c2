//! Glue Data Catalog registration against moto's Glue API on loopback: after a snapshot,
//! every published file and raw Delta table of the sample model has a table with the right
//! location, format and Athena-safe columns; an independent reader (pyarrow through the
//! symlink manifest, Python `deltalake` for raw tables) reads each location with exactly the
//! declared columns and types. A new property updates the definitions, a new model version
//! gets new tables, and tables the user made are never touched.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cdf_emulator::sample_model::{DATA_SPACE, SCHEMA_SPACE};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::snapshot::catalog::TableAction;
use cdf_s3_replicator::snapshot::{SnapshotOptions, SnapshotSummary};
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake, python};

/// A table of the user's with the name the replicator wants for WorkOrder's published nodes.
const USER_CLASH: &str = "plant_schema_plantmodel_1_workorder_nodes";
const USER_UNRELATED: &str = "my_own_table";

fn catalog_script(lab: &Lab, command: &str, request: &Value) -> Value {
    let python = python().expect("python");
    let file = lab.dir.path().join(format!(
        "glue-{command}-{:016x}.json",
        rand::random::<u64>()
    ));
    std::fs::write(&file, request.to_string()).expect("request");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/glue_catalog.py");
    let output = Command::new(python)
        .arg(script)
        .arg(command)
        .arg(&file)
        .output()
        .expect("running the Glue checker");
    assert!(
        output.status.success(),
        "glue_catalog.py {command} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("checker prints JSON")
}

async fn context(lab: &Lab, endpoint: &str, database: &str) -> Context {
    context_with(lab, endpoint, database, "").await
}

/// [`context`] with extra `extractor` keys.
async fn context_with(lab: &Lab, endpoint: &str, database: &str, extractor: &str) -> Context {
    let yaml = format!(
        "{}  catalog:\n    glue:\n      database: {database}\n      endpoint-url: {endpoint}\n",
        lab.config_yaml(extractor, None)
    );
    let config = load_config_text(&yaml, "test configuration", &MapEnv::new())
        .await
        .unwrap_or_else(|e| panic!("configuration loads: {e}\n{yaml}"));
    Context::new(config).expect("context")
}

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(120))
}

/// Syncs and publishes; every view must publish, and the only catalog failure is the
/// user's clashing table.
async fn sync_and_publish(context: &Context) -> SnapshotSummary {
    let synced = jobs::sync(
        &SyncJob::from_context(context),
        &slice(),
        &SyncOptions::default(),
    )
    .await;
    assert!(synced.is_success(), "{synced:#?}");
    let summary = jobs::snapshot(
        context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert_eq!(summary.views_failed, 0, "{summary:#?}");
    assert!(summary.plan_errors.is_empty(), "{summary:#?}");
    summary
}

fn action(summary: &SnapshotSummary, table: &str) -> TableAction {
    let catalog = summary.catalog.as_ref().expect("catalog report");
    catalog
        .table(table)
        .unwrap_or_else(|| panic!("{table} in {catalog:#?}"))
        .action
}

fn column<'a>(table: &'a Value, name: &str) -> &'a Value {
    table["columns"]
        .as_array()
        .and_then(|columns| columns.iter().find(|c| c[0] == name))
        .unwrap_or_else(|| panic!("column {name} in {table}"))
}

fn names(model_version: &str, view: &str, kind: &str) -> (String, String) {
    let publish = format!("plant_schema_plantmodel_{model_version}_{view}_{kind}");
    (publish.clone(), format!("raw_{publish}"))
}

fn pump_view(version: &str, extra: Value, drop: Option<&str>) -> Value {
    let schema = cdf_emulator::sample_model::schema();
    let mut view = schema["views"]
        .as_array()
        .and_then(|views| views.iter().find(|v| v["externalId"] == "Pump").cloned())
        .expect("sample Pump view");
    view["version"] = json!(version);
    for (name, definition) in extra.as_object().into_iter().flatten() {
        view["properties"][name] = definition.clone();
    }
    if let Some(drop) = drop {
        view["properties"].as_object_mut().map(|p| p.remove(drop));
    }
    view
}

fn mapped(property: &str) -> Value {
    json!({"container": {"type": "container", "space": SCHEMA_SPACE, "externalId": "PumpC"}, "containerPropertyIdentifier": property})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_registers_every_table_in_glue_and_follows_schema_changes() {
    let Some(lake) = Lake::s3().await else { return };
    if python().is_none() {
        return;
    }
    let Lake::S3 { endpoint, bucket } = lake.clone() else {
        unreachable!("an S3 lake")
    };
    let lab = Lab::start(10, Some(lake)).await;
    let database = format!("cdf_lake_{:08x}", rand::random::<u32>());
    let glue = json!({"endpoint": endpoint, "database": database, "bucket": bucket, "prefix": "cdf-data/"});
    let mut prepare = glue.clone();
    prepare["user_tables"] = json!([USER_CLASH, USER_UNRELATED]);
    catalog_script(&lab, "prepare", &prepare);
    let user_tables_before = catalog_script(&lab, "describe", &glue);

    let context = context(&lab, &endpoint, &database).await;
    let first = sync_and_publish(&context).await;
    let catalog = first.catalog.as_ref().expect("catalog report");
    assert_eq!(catalog.database, database);
    // 4 views x 2 published files, plus 5 raw tables (Site, Pump x2, WorkOrder,
    // PumpWorkOrder); one published file's name is the user's table.
    assert_eq!(catalog.tables_created, 12, "{catalog:#?}");
    assert_eq!(catalog.tables_failed, 1, "{catalog:#?}");
    let clash = catalog.table(USER_CLASH).expect("clash reported");
    assert_eq!(clash.action, TableAction::Failed);
    let why = clash.error.as_ref().map_or("", |e| e.message.as_str());
    assert!(
        why.contains(USER_CLASH) && why.contains("not created by cdf-s3-replicator"),
        "{why}"
    );
    assert!(!first.is_success(), "a catalog failure fails the run");
    assert!(
        first.one_line().contains(USER_CLASH),
        "{}",
        first.one_line()
    );

    let tables = catalog_script(&lab, "describe", &glue);
    for (view, kinds) in [
        ("site", &["nodes", "edges"][..]),
        ("pump", &["nodes", "edges"][..]),
        ("workorder", &["edges"][..]),
        ("pumpworkorder", &["nodes", "edges"][..]),
    ] {
        for kind in kinds {
            let (publish, _) = names("1", view, kind);
            assert!(tables.get(&publish).is_some(), "{publish} in {tables:#}");
        }
    }
    let (pump_nodes, raw_pump_nodes) = names("1", "pump", "nodes");
    let publish = &tables[&pump_nodes];
    assert_eq!(publish["table_type"], "EXTERNAL_TABLE");
    assert_eq!(
        publish["location"],
        format!("s3://{bucket}/cdf-data/catalog/athena/plant_schema/PlantModel/1/Pump/nodes/")
    );
    assert_eq!(
        publish["input_format"],
        "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
    );
    assert_eq!(
        publish["serde"],
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    );
    assert_eq!(
        publish["serde_parameters"]["parquet.column.index.access"],
        "true"
    );
    assert_eq!(publish["parameters"]["cdf_s3_replicator_managed"], "true");
    assert_eq!(
        publish["parameters"]["cdf_s3_replicator_source"],
        "publish/plant_schema/PlantModel/1/Pump/nodes.parquet"
    );
    for (name, athena_type, file_column) in [
        ("externalid", "string", "externalId"),
        ("createdtime", "bigint", "createdTime"),
        ("site_space", "string", "site.space"),
        ("site_externalid", "string", "site.externalId"),
        ("commissionedat", "timestamp", "commissionedAt"),
        ("servicedate", "date", "serviceDate"),
        ("stages", "int", "stages"),
        ("serialnumber", "bigint", "serialNumber"),
        ("efficiency", "float", "efficiency"),
        ("ratedkw", "double", "ratedKw"),
        ("running", "boolean", "running"),
        ("aliases", "string", "aliases"),
        ("specs", "string", "specs"),
    ] {
        assert_eq!(
            column(publish, name),
            &json!([name, athena_type, file_column]),
            "{pump_nodes}.{name}"
        );
    }
    let edges = &tables[&names("1", "pumpworkorder", "edges").0];
    assert_eq!(
        column(edges, "startnode_externalid")[2],
        "startNode.externalId"
    );
    assert_eq!(column(edges, "type_space")[1], "string");
    assert_eq!(column(edges, "linkedat")[1], "timestamp");
    let raw = &tables[&raw_pump_nodes];
    assert_eq!(raw["parameters"]["table_type"], "DELTA");
    assert_eq!(
        raw["location"],
        format!("s3://{bucket}/cdf-data/raw/plant_schema/PlantModel/1/views/Pump/nodes/")
    );
    assert_eq!(column(raw, "site.space")[1], "string");
    assert_eq!(column(raw, "aliases")[1], "array<string>");
    assert_eq!(column(raw, "readings")[1], "array<double>");
    for raw_table in [
        "site_nodes",
        "pump_edges",
        "workorder_nodes",
        "pumpworkorder_edges",
    ] {
        let name = format!("raw_plant_schema_plantmodel_1_{raw_table}");
        assert_eq!(tables[&name]["parameters"]["table_type"], "DELTA", "{name}");
    }
    let checked = catalog_script(&lab, "check", &glue);
    assert_eq!(checked["errors"], json!([]), "{checked:#}");
    assert_eq!(checked["tables"][&pump_nodes]["rows"], 10, "{checked:#}");
    assert!(checked["tables"][&raw_pump_nodes]["rows"].as_u64() >= Some(10));

    // Nothing changed: nothing is rewritten.
    let again = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    let catalog = again.catalog.as_ref().expect("catalog report");
    assert_eq!(catalog.tables_unchanged, 12, "{catalog:#?}");
    assert_eq!((catalog.tables_created, catalog.tables_updated), (0, 0));

    // A new property and a case twin of `tag` on Pump/1: its tables follow.
    let control = lab.emulator.control();
    control
        .apply_schema(json!({"containers": [{"space": SCHEMA_SPACE, "externalId": "PumpC", "usedFor": "node",
            "properties": {"maxBar": {"type": {"type": "float64"}}, "Tag": {"type": {"type": "text"}}}}]}))
        .expect("container gains properties");
    lab.api_post(
        "/models/views/delete",
        json!({"items": [{"space": SCHEMA_SPACE, "externalId": "Pump", "version": "1"}]}),
    )
    .await;
    control
        .apply_schema(json!({"views": [pump_view("1", json!({"maxBar": mapped("maxBar"), "Tag": mapped("Tag")}), None)]}))
        .expect("view recreated with the new properties");
    control
        .apply_instances(json!({"items": [{"instanceType": "node", "space": DATA_SPACE, "externalId": "pump-0001",
            "sources": [{"source": {"type": "view", "space": SCHEMA_SPACE, "externalId": "Pump", "version": "1"},
                "properties": {"maxBar": 16.5, "Tag": "twin"}}]}]}))
        .expect("update");
    let evolved = sync_and_publish(&context).await;
    assert_eq!(action(&evolved, &pump_nodes), TableAction::Updated);
    assert_eq!(action(&evolved, &raw_pump_nodes), TableAction::Updated);
    assert_eq!(
        action(&evolved, &names("1", "site", "nodes").0),
        TableAction::Unchanged
    );
    let tables = catalog_script(&lab, "describe", &glue);
    let publish = &tables[&pump_nodes];
    assert_eq!(column(publish, "maxbar")[1], "double");
    // The lake itself names the case twin `prop_Tag` (src/schema/naming.rs); the catalog
    // keeps both as distinct lower-case names, each reading its own file column.
    assert_eq!(column(publish, "tag"), &json!(["tag", "string", "tag"]));
    assert_eq!(
        column(publish, "prop_tag"),
        &json!(["prop_tag", "string", "prop_Tag"])
    );
    assert_eq!(column(&tables[&raw_pump_nodes], "maxBar")[1], "double");
    let checked = catalog_script(&lab, "check", &glue);
    assert_eq!(checked["errors"], json!([]), "{checked:#}");

    // A new model version: new tables; version 1's stay as they were.
    control
        .apply_schema(
            json!({"containers": [{"space": SCHEMA_SPACE, "externalId": "PumpC", "usedFor": "node",
            "properties": {"rpm": {"type": {"type": "int32"}}}}]}),
        )
        .expect("container gains rpm");
    let view = |xid: &str, version: &str| json!({"type": "view", "space": SCHEMA_SPACE, "externalId": xid, "version": version});
    control
        .apply_schema(json!({
            "views": [pump_view("2", json!({"rpm": mapped("rpm")}), Some("stages"))],
            "dataModels": [{"space": SCHEMA_SPACE, "externalId": "PlantModel", "version": "2",
                "views": [view("Site", "1"), view("Pump", "2"), view("WorkOrder", "1"), view("PumpWorkOrder", "1")]}],
        }))
        .expect("model version 2");
    let v2 = sync_and_publish(&context).await;
    let (pump_nodes_v2, raw_pump_nodes_v2) = names("2", "pump", "nodes");
    assert_eq!(action(&v2, &pump_nodes_v2), TableAction::Created);
    assert_eq!(action(&v2, &raw_pump_nodes_v2), TableAction::Created);
    let catalog = v2.catalog.as_ref().expect("catalog report");
    assert_eq!(catalog.tables_failed, 0, "{catalog:#?}");
    let after = catalog_script(&lab, "describe", &glue);
    assert_eq!(
        after[&pump_nodes], tables[&pump_nodes],
        "version 1's table is kept"
    );
    assert_eq!(column(&after[&pump_nodes_v2], "rpm")[1], "int");
    assert!(
        after[&pump_nodes_v2]["columns"]
            .as_array()
            .is_some_and(|c| c.iter().all(|c| c[0] != "stages")),
        "Pump/2 has no stages"
    );
    let checked = catalog_script(&lab, "check", &glue);
    assert_eq!(checked["errors"], json!([]), "{checked:#}");

    // The user's tables were never touched.
    for name in [USER_CLASH, USER_UNRELATED] {
        assert_eq!(after[name], user_tables_before[name], "{name} untouched");
    }
}

/// The lines of a publish table's symlink manifest.
async fn symlink_lines(context: &Context, view: &str, kind: &str) -> Vec<String> {
    use deltalake::logstore::object_store::ObjectStoreExt as _;
    let store = context.destination.object_store().expect("store");
    let path = format!("catalog/athena/{SCHEMA_SPACE}/PlantModel/1/{view}/{kind}/symlink.txt");
    let bytes = store
        .get(&deltalake::Path::from(path.as_str()))
        .await
        .expect("symlink manifest")
        .bytes()
        .await
        .expect("symlink bytes");
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn published_exists(context: &Context, view: &str, file: &str) -> bool {
    use deltalake::logstore::object_store::ObjectStoreExt as _;
    let store = context.destination.object_store().expect("store");
    let path = format!("publish/{SCHEMA_SPACE}/PlantModel/1/{view}/{file}");
    store
        .head(&deltalake::Path::from(path.as_str()))
        .await
        .is_ok()
}

/// A file published in parts keeps its one table: the symlink manifest names every part the
/// view's manifest lists, Athena's reader sees exactly the rows of the parts, and the old
/// single file is removed only once the catalog points at the parts (never while the
/// view's table could not be registered). Back to one file, the manifest names it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_in_parts_is_one_table_over_exactly_its_parts() {
    let Some(lake) = Lake::s3().await else { return };
    if python().is_none() {
        return;
    }
    let Lake::S3 { endpoint, bucket } = lake.clone() else {
        unreachable!("an S3 lake")
    };
    let lab = Lab::start(10, Some(lake)).await;
    let database = format!("cdf_lake_{:08x}", rand::random::<u32>());
    let glue = json!({"endpoint": endpoint, "database": database, "bucket": bucket, "prefix": "cdf-data/"});
    let mut prepare = glue.clone();
    // WorkOrder's published nodes cannot get their table.
    prepare["user_tables"] = json!([USER_CLASH]);
    catalog_script(&lab, "prepare", &prepare);
    let single = context(&lab, &endpoint, &database).await;
    let parted = context_with(
        &lab,
        &endpoint,
        &database,
        "  snapshot:\n    part-rows: 4\n",
    )
    .await;
    let (pump_nodes, _) = names("1", "pump", "nodes");

    sync_and_publish(&single).await;
    let one_file = symlink_lines(&single, "Pump", "nodes").await;
    assert_eq!(
        one_file,
        [format!(
            "s3://{bucket}/cdf-data/publish/{SCHEMA_SPACE}/PlantModel/1/Pump/nodes.parquet"
        )]
    );

    // 10 pumps of at most 4 rows a part: 4 parts, the same table.
    let in_parts = jobs::snapshot(
        &parted,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert_eq!(in_parts.views_failed, 0, "{in_parts:#?}");
    assert_eq!(action(&in_parts, &pump_nodes), TableAction::Unchanged);
    let lines = symlink_lines(&parted, "Pump", "nodes").await;
    let expected: Vec<String> = (0..4)
        .map(|i| {
            format!(
                "s3://{bucket}/cdf-data/publish/{SCHEMA_SPACE}/PlantModel/1/Pump/nodes/part-{i:05}-of-00004.parquet"
            )
        })
        .collect();
    assert_eq!(lines, expected);
    let checked = catalog_script(&lab, "check", &glue);
    assert_eq!(checked["errors"], json!([]), "{checked:#}");
    assert_eq!(checked["tables"][&pump_nodes]["rows"], 10, "{checked:#}");
    assert_eq!(checked["tables"][&pump_nodes]["files"], 4, "{checked:#}");
    assert!(!published_exists(&parted, "Pump", "nodes.parquet").await);
    // WorkOrder's table failed: its single file stays for Athena's sake, beside its parts.
    let work_orders = in_parts.view("WorkOrder").expect("WorkOrder");
    assert!(
        work_orders
            .file(cdf_s3_replicator::lake::InstanceKind::Nodes)
            .and_then(|f| f.parts)
            .is_some()
    );
    assert!(published_exists(&parted, "WorkOrder", "nodes.parquet").await);

    // Back to one file: the manifest names it again, and the parts are removed.
    let back = jobs::snapshot(
        &single,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert_eq!(back.views_failed, 0, "{back:#?}");
    assert_eq!(symlink_lines(&single, "Pump", "nodes").await, one_file);
    assert!(!published_exists(&single, "Pump", "nodes/part-00000-of-00004.parquet").await);
    let checked = catalog_script(&lab, "check", &glue);
    assert_eq!(checked["errors"], json!([]), "{checked:#}");
    assert_eq!(checked["tables"][&pump_nodes]["files"], 1, "{checked:#}");
}
