//! A small but realistic plant model for the demo and the end-to-end tests: node views with
//! every property type (lists, direct relations, timestamps, dates, JSON, enums), an edge
//! connection with an edge source view, an edge view, and a history of updates and deletes.

use serde_json::{Value, json};

pub const SCHEMA_SPACE: &str = "plant_schema";
pub const DATA_SPACE: &str = "plant_data";
pub const MODEL: &str = "PlantModel";
pub const MODEL_VERSION: &str = "1";

fn container_ref(xid: &str) -> Value {
    json!({"type": "container", "space": SCHEMA_SPACE, "externalId": xid})
}

fn view_ref(xid: &str) -> Value {
    json!({"type": "view", "space": SCHEMA_SPACE, "externalId": xid, "version": "1"})
}

fn mapped(container: &str, property: &str) -> Value {
    json!({"container": container_ref(container), "containerPropertyIdentifier": property})
}

/// Spaces, containers, views and the data model, in the shape of the API's create calls.
pub fn schema() -> Value {
    let site_props = json!({
        "name": {"type": {"type": "text"}, "nullable": false},
        "country": {"type": {"type": "text"}},
        "openedOn": {"type": {"type": "date"}},
    });
    let pump_props = json!({
        "tag": {"type": {"type": "text"}, "nullable": false},
        "ratedKw": {"type": {"type": "float64"}},
        "efficiency": {"type": {"type": "float32"}},
        "serialNumber": {"type": {"type": "int64"}},
        "stages": {"type": {"type": "int32"}},
        "running": {"type": {"type": "boolean"}},
        "status": {"type": {"type": "enum", "values": {"running": {}, "stopped": {}, "unknown": {}}, "unknownValue": "unknown"}},
        "site": {"type": {"type": "direct"}},
        "commissionedAt": {"type": {"type": "timestamp"}},
        "serviceDate": {"type": {"type": "date"}},
        "specs": {"type": {"type": "json"}},
        "aliases": {"type": {"type": "text", "list": true}},
        "readings": {"type": {"type": "float64", "list": true}},
        "sensor": {"type": {"type": "timeseries"}},
        "version": {"type": {"type": "text"}},
    });
    let work_order_props = json!({
        "title": {"type": {"type": "text"}, "nullable": false},
        "priority": {"type": {"type": "int32"}},
        "dueDate": {"type": {"type": "date"}},
        "done": {"type": {"type": "boolean"}},
    });
    let link_props = json!({
        "linkedBy": {"type": {"type": "text"}},
        "linkedAt": {"type": {"type": "timestamp"}},
    });
    let view_props = |container: &str, props: &Value| -> Value {
        let mut out = serde_json::Map::new();
        for name in props.as_object().into_iter().flat_map(|o| o.keys()) {
            out.insert(name.clone(), mapped(container, name));
        }
        Value::Object(out)
    };
    let mut pump_view_props = view_props("PumpC", &pump_props);
    pump_view_props["workOrders"] = json!({
        "connectionType": "multi_edge_connection",
        "type": {"space": SCHEMA_SPACE, "externalId": "Pump.workOrders"},
        "source": view_ref("WorkOrder"),
        "edgeSource": view_ref("PumpWorkOrder"),
        "direction": "outwards",
    });
    json!({
        "spaces": [{"space": SCHEMA_SPACE}, {"space": DATA_SPACE}],
        "containers": [
            {"space": SCHEMA_SPACE, "externalId": "SiteC", "properties": site_props, "usedFor": "node"},
            {"space": SCHEMA_SPACE, "externalId": "PumpC", "properties": pump_props, "usedFor": "node"},
            {"space": SCHEMA_SPACE, "externalId": "WorkOrderC", "properties": work_order_props, "usedFor": "node"},
            {"space": SCHEMA_SPACE, "externalId": "PumpWorkOrderC", "properties": link_props, "usedFor": "edge"},
        ],
        "views": [
            {"space": SCHEMA_SPACE, "externalId": "Site", "version": "1", "properties": view_props("SiteC", &site_props)},
            {"space": SCHEMA_SPACE, "externalId": "Pump", "version": "1", "properties": pump_view_props},
            {"space": SCHEMA_SPACE, "externalId": "WorkOrder", "version": "1", "properties": view_props("WorkOrderC", &work_order_props)},
            {"space": SCHEMA_SPACE, "externalId": "PumpWorkOrder", "version": "1", "usedFor": "edge", "properties": view_props("PumpWorkOrderC", &link_props)},
        ],
        "dataModels": [{
            "space": SCHEMA_SPACE, "externalId": MODEL, "version": MODEL_VERSION,
            "views": [view_ref("Site"), view_ref("Pump"), view_ref("WorkOrder"), view_ref("PumpWorkOrder")],
        }],
    })
}

fn node(xid: &str, view: &str, properties: Value) -> Value {
    json!({"instanceType": "node", "space": DATA_SPACE, "externalId": xid,
           "sources": [{"source": view_ref(view), "properties": properties}]})
}

fn site_xid(i: usize) -> String {
    format!("site-{i}")
}

/// The first batch of instances: `pumps` pumps over a few sites, two work orders per pump
/// and an edge from each pump to each of its work orders.
pub fn initial_instances(pumps: usize) -> Value {
    let sites = ["Oslo", "Bergen", "Trondheim", "Stavanger"];
    let mut items: Vec<Value> = sites
        .iter()
        .enumerate()
        .map(|(i, name)| node(&site_xid(i), "Site", json!({"name": name, "country": "NO", "openedOn": format!("19{}0-0{}-15", 6 + i, i + 1)})))
        .collect();
    for p in 0..pumps {
        let pump = format!("pump-{p:04}");
        items.push(node(&pump, "Pump", json!({
            "tag": format!("P-{p:04} æøå ✓"),
            "ratedKw": 10.0 + p as f64 * 0.25,
            "efficiency": 0.5 + (p % 40) as f64 / 100.0,
            "serialNumber": 9_007_199_254_740_993_i64 + p as i64,
            "stages": (p % 5) as i32 + 1,
            "running": p % 3 != 0,
            "status": if p % 3 == 0 { "stopped" } else { "running" },
            "site": {"space": DATA_SPACE, "externalId": site_xid(p % sites.len())},
            "commissionedAt": format!("20{:02}-0{}-1{}T08:30:00.{:03}+00:00", 10 + p % 14, 1 + p % 9, p % 10, p % 1000),
            "serviceDate": format!("2024-{:02}-{:02}", 1 + p % 12, 1 + p % 28),
            "specs": {"vendor": {"name": "Acme", "model": format!("X{p}")}, "tags": ["a", "b"], "limits": {"maxBar": 16}},
            "aliases": [format!("P{p}"), format!("PUMP-{p}")],
            "readings": [1.5, -2.25, p as f64],
            "sensor": format!("ts-{p}"),
            "version": format!("rev-{}", p % 3),
        })));
        for w in 0..2 {
            let order = format!("wo-{p:04}-{w}");
            items.push(node(
                &order,
                "WorkOrder",
                json!({
                    "title": format!("Service {pump} #{w}"),
                    "priority": (p + w) as i32 % 4,
                    "dueDate": format!("2025-{:02}-{:02}", 1 + (p + w) % 12, 1 + p % 28),
                    "done": w == 0,
                }),
            ));
            items.push(json!({
                "instanceType": "edge", "space": DATA_SPACE, "externalId": format!("{pump}--{order}"),
                "type": {"space": SCHEMA_SPACE, "externalId": "Pump.workOrders"},
                "startNode": {"space": DATA_SPACE, "externalId": pump},
                "endNode": {"space": DATA_SPACE, "externalId": order},
                "sources": [{"source": view_ref("PumpWorkOrder"), "properties": {"linkedBy": if w == 0 { "planner" } else { "operator" }, "linkedAt": "2025-01-02T03:04:05.678+00:00"}}],
            }));
        }
    }
    json!({"items": items, "autoCreateDirectRelations": true})
}

/// Later changes, round `round` (1, 2, ...): every fifth pump that [`deletions`] keeps gets
/// new values, and every seventh work order is marked done (or not done again).
pub fn updates(pumps: usize, round: u32) -> Value {
    let mut items = Vec::new();
    for p in (0..pumps).step_by(5).filter(|p| p % 11 != 0) {
        let values = json!({
            "ratedKw": 99.5 + f64::from(round),
            "status": "running",
            "aliases": ["updated", format!("round {round}")],
        });
        items.push(node(&format!("pump-{p:04}"), "Pump", values));
    }
    for p in (0..pumps).step_by(7) {
        let values = json!({"done": round % 2 == 1});
        items.push(node(&format!("wo-{p:04}-1"), "WorkOrder", values));
    }
    json!({"items": items})
}

/// Deletes every eleventh pump (its edges go with it) and one site.
pub fn deletions(pumps: usize) -> Value {
    let mut items: Vec<Value> = (0..pumps)
        .step_by(11)
        .map(|p| json!({"instanceType": "node", "space": DATA_SPACE, "externalId": format!("pump-{p:04}")}))
        .collect();
    items.push(json!({"instanceType": "node", "space": DATA_SPACE, "externalId": site_xid(3)}));
    json!({"items": items})
}
