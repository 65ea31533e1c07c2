//! Schema changes never lose data and never wedge a view: a property added to a view is
//! merged into its table; a new model version gets new tables and a full backfill.

use std::time::Duration;

use cdf_emulator::sample_model::{DATA_SPACE, SCHEMA_SPACE};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, python};

fn slice() -> JobInputs {
    JobInputs::until(Instant::now() + Duration::from_secs(120))
}

fn pump_view(version: &str, extra: Value) -> Value {
    let schema = cdf_emulator::sample_model::schema();
    let mut view = schema["views"]
        .as_array()
        .and_then(|views| views.iter().find(|v| v["externalId"] == "Pump").cloned())
        .expect("sample Pump view");
    view["version"] = json!(version);
    for (name, definition) in extra.as_object().into_iter().flatten() {
        view["properties"][name] = definition.clone();
    }
    view
}

fn mapped(property: &str) -> Value {
    json!({"container": {"type": "container", "space": SCHEMA_SPACE, "externalId": "PumpC"}, "containerPropertyIdentifier": property})
}

fn pump_update(xid: &str, properties: Value, view_version: &str) -> Value {
    json!({"items": [{"instanceType": "node", "space": DATA_SPACE, "externalId": xid,
        "sources": [{"source": {"type": "view", "space": SCHEMA_SPACE, "externalId": "Pump", "version": view_version}, "properties": properties}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_property_is_merged_and_a_new_model_version_backfills_new_tables() {
    if python().is_none() {
        return;
    }
    let lab = Lab::start(12, None).await;
    let context = lab.context("").await;
    let job = SyncJob::from_context(&context);
    assert!(
        jobs::sync(&job, &slice(), &SyncOptions::default())
            .await
            .is_success()
    );
    let control = lab.emulator.control();

    // A property added to the container and to the view (recreated at the same version).
    control
        .apply_schema(
            json!({"containers": [{"space": SCHEMA_SPACE, "externalId": "PumpC", "usedFor": "node",
            "properties": {"maxBar": {"type": {"type": "float64"}}}}]}),
        )
        .expect("container gains a property");
    lab.api_post(
        "/models/views/delete",
        json!({"items": [{"space": SCHEMA_SPACE, "externalId": "Pump", "version": "1"}]}),
    )
    .await;
    control
        .apply_schema(json!({"views": [pump_view("1", json!({"maxBar": mapped("maxBar")}))]}))
        .expect("view recreated with the new property");
    control
        .apply_instances(pump_update("pump-0001", json!({"maxBar": 16.5}), "1"))
        .expect("update");
    let merged = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(merged.is_success(), "{merged:#?}");
    let rows = lab
        .raw_rows_of_model_version("1", "Pump", "nodes")
        .expect("python");
    let latest = rows
        .iter()
        .filter(|r| r["externalId"] == "pump-0001")
        .max_by_key(|r| r["version"].as_i64())
        .expect("pump-0001");
    assert_eq!(latest["maxBar"], json!(16.5), "{latest}");
    assert_eq!(
        latest["tag"],
        json!("P-0001 æøå ✓"),
        "the other properties are still there"
    );
    let older = rows.iter().filter(|r| r["maxBar"].is_null()).count();
    assert_eq!(
        older, 12,
        "rows written before the property existed read as null"
    );

    // A new model version: Pump/2 drops `stages` and adds `rpm`; the model resolves to 2.
    control
        .apply_schema(
            json!({"containers": [{"space": SCHEMA_SPACE, "externalId": "PumpC", "usedFor": "node",
            "properties": {"rpm": {"type": {"type": "int32"}}}}]}),
        )
        .expect("container gains rpm");
    let mut pump_v2 = pump_view(
        "2",
        json!({"rpm": mapped("rpm"), "maxBar": mapped("maxBar")}),
    );
    pump_v2["properties"]
        .as_object_mut()
        .map(|p| p.remove("stages"));
    let view = |xid: &str, version: &str| json!({"type": "view", "space": SCHEMA_SPACE, "externalId": xid, "version": version});
    control
        .apply_schema(json!({
            "views": [pump_v2],
            "dataModels": [{"space": SCHEMA_SPACE, "externalId": "PlantModel", "version": "2",
                "views": [view("Site", "1"), view("Pump", "2"), view("WorkOrder", "1"), view("PumpWorkOrder", "1")]}],
        }))
        .expect("model version 2");
    control
        .apply_instances(pump_update("pump-0002", json!({"rpm": 1450}), "2"))
        .expect("rpm");
    let v2 = jobs::sync(&job, &slice(), &SyncOptions::default()).await;
    assert!(v2.is_success(), "{v2:#?}");
    assert!(
        v2.streams
            .iter()
            .all(|s| s.stream.starts_with("plant_schema/PlantModel/2/")),
        "{v2:#?}"
    );
    let pumps_v2 = lab
        .raw_rows_of_model_version("2", "Pump", "nodes")
        .expect("python");
    assert_eq!(pumps_v2.len(), 12, "full backfill of the new version");
    let rpm: Vec<&Value> = pumps_v2
        .iter()
        .filter(|r| !r["rpm"].is_null())
        .map(|r| &r["rpm"])
        .collect();
    assert_eq!(rpm, [&json!(1450)]);
    assert!(
        pumps_v2.iter().all(|r| r.get("stages").is_none()),
        "Pump/2 has no stages column"
    );
    // The old version's tables are left as they were.
    assert_eq!(
        lab.raw_rows_of_model_version("1", "Pump", "nodes")
            .expect("python")
            .len(),
        rows.len()
    );
}
