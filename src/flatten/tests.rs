use std::sync::Arc;

use deltalake::arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use serde_json::{Value, json};

use super::{FlattenError, Flattener};
use crate::cdf::dto::{Instance, PropertyType};
use crate::schema::{PropertySource, TableKind, ViewSchema, publish_batch};

fn source() -> PropertySource {
    PropertySource {
        space: "plant_schema".into(),
        key: "Pump/2".into(),
    }
}

fn schema(kind: TableKind, types: Value) -> ViewSchema {
    let types: Vec<(String, PropertyType)> = types
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, t)| (name.clone(), serde_json::from_value(t.clone()).unwrap()))
        .collect();
    ViewSchema::from_property_types(kind, source(), types.iter().map(|(n, t)| (n.as_str(), t)))
}

fn node(external_id: &str, properties: Value) -> Instance {
    serde_json::from_value(json!({
        "instanceType": "node",
        "space": "plant_data", "externalId": external_id, "version": 4,
        "type": {"space": "plant_schema", "externalId": "PumpType"},
        "createdTime": 1_735_689_600_123_i64, "lastUpdatedTime": 1_736_899_200_456_i64,
        "properties": {"plant_schema": {"Pump/2": properties}},
    }))
    .unwrap()
}

fn flatten_one(schema: &ViewSchema, instance: &Instance) -> RecordBatch {
    let mut flattener = Flattener::new(schema);
    flattener.push(instance).unwrap();
    flattener.finish().unwrap()
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a Arc<dyn Array> {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn value_error(result: Result<(), FlattenError>) -> super::ValueMismatch {
    match result {
        Err(FlattenError::Value(mismatch)) => *mismatch,
        other => panic!("expected a value mismatch, got {other:?}"),
    }
}

#[test]
fn system_columns_of_nodes_and_edges() {
    let nodes = schema(TableKind::Nodes, json!({}));
    let batch = flatten_one(&nodes, &node("pump-17", json!({})));
    assert_eq!(batch.num_rows(), 1);
    let text = |name: &str| column(&batch, name).as_string::<i32>().value(0).to_owned();
    assert_eq!(text("space"), "plant_data");
    assert_eq!(text("externalId"), "pump-17");
    assert_eq!(text("instanceType"), "node");
    assert_eq!(text("type.space"), "plant_schema");
    assert_eq!(text("type.externalId"), "PumpType");
    let int = |name: &str| column(&batch, name).as_primitive::<Int64Type>().value(0);
    assert_eq!(int("version"), 4);
    assert_eq!(int("createdTime"), 1_735_689_600_123);
    assert_eq!(int("lastUpdatedTime"), 1_736_899_200_456);
    assert!(column(&batch, "deletedTime").is_null(0));

    let edges = schema(TableKind::Edges, json!({"linkedBy": {"type": "text"}}));
    let edge: Instance = serde_json::from_value(json!({
        "instanceType": "edge",
        "space": "plant_data", "externalId": "pump-17--wo-991", "version": 1,
        "type": {"space": "plant_schema", "externalId": "Pump.workOrders"},
        "startNode": {"space": "plant_data", "externalId": "pump-17"},
        "endNode": {"space": "plant_data", "externalId": "wo-991"},
        "createdTime": 1, "lastUpdatedTime": 2,
        "properties": {"plant_schema": {"Pump/2": {"linkedBy": "planner"}}}
    }))
    .unwrap();
    let batch = flatten_one(&edges, &edge);
    let text = |name: &str| column(&batch, name).as_string::<i32>().value(0).to_owned();
    assert_eq!(text("instanceType"), "edge");
    assert_eq!(text("type.externalId"), "Pump.workOrders");
    assert_eq!(text("startNode.externalId"), "pump-17");
    assert_eq!(text("endNode.space"), "plant_data");
    assert_eq!(text("endNode.externalId"), "wo-991");
    assert_eq!(text("linkedBy"), "planner");

    // A node in an edge table is refused without touching the batch.
    let mut flattener = Flattener::new(&edges);
    let err = flattener.push(&node("pump-17", json!({}))).unwrap_err();
    assert!(
        matches!(err, FlattenError::WrongInstanceType { .. }),
        "{err}"
    );
    assert!(flattener.is_empty());
}

#[test]
fn every_scalar_type_is_stored_exactly() {
    let view = schema(
        TableKind::Nodes,
        json!({
            "tag": {"type": "text"},
            "status": {"type": "enum", "values": {"running": {}}},
            "series": {"type": "timeseries"},
            "doc": {"type": "file"},
            "seq": {"type": "sequence"},
            "small": {"type": "int32"},
            "big": {"type": "int64"},
            "single": {"type": "float32"},
            "double": {"type": "float64"},
            "on": {"type": "boolean"},
            "at": {"type": "timestamp"},
            "day": {"type": "date"},
            "extra": {"type": "json"},
            "site": {"type": "direct"},
            "vec": {"type": "vector"},
        }),
    );
    let huge = "ø".repeat(64 * 1024); // 128 KiB of UTF-8
    let batch = flatten_one(
        &view,
        &node(
            "pump-17",
            json!({
                "tag": "P-17A 🚀 \u{0}ü\"\\",
                "status": "running",
                "series": "21PT0293",
                "doc": "file-1",
                "seq": huge,
                "small": -2_147_483_648_i64,
                "big": 9_223_372_036_854_775_807_i64,
                "single": 0.1,
                "double": 75.5,
                "on": true,
                "at": "2019-05-01T08:30:00.000+00:00",
                "day": "2024-03-15",
                "extra": {"vendor": {"name": "Acme"}, "tags": ["a", "b"], "n": 1.5e300},
                "site": {"space": "plant_data", "externalId": "site-oslo"},
                "vec": [1.0, 2.5, -3],
            }),
        ),
    );
    let text = |name: &str| column(&batch, name).as_string::<i32>().value(0).to_owned();
    assert_eq!(text("tag"), "P-17A 🚀 \u{0}ü\"\\");
    assert_eq!(text("status"), "running");
    assert_eq!(text("series"), "21PT0293");
    assert_eq!(text("doc"), "file-1");
    assert_eq!(text("seq"), huge);
    assert_eq!(text("seq").len(), 128 * 1024);
    assert_eq!(
        column(&batch, "small")
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .value(0),
        i32::MIN
    );
    assert_eq!(
        column(&batch, "big")
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0),
        i64::MAX
    );
    assert_eq!(
        column(&batch, "single")
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap()
            .value(0),
        0.1_f32
    );
    assert_eq!(
        column(&batch, "double")
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .value(0),
        75.5
    );
    assert!(
        column(&batch, "on")
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap()
            .value(0)
    );
    let at = column(&batch, "at")
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(at.value(0), 1_556_699_400_000_000);
    assert_eq!(at.timezone(), Some("UTC"));
    assert_eq!(
        column(&batch, "day")
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap()
            .value(0),
        19_797
    );
    // Compact JSON text; the float's exponent spelling is serde_json's.
    let extra = text("extra");
    assert!(!extra.contains(' '), "{extra}");
    assert!(extra.starts_with(r#"{"n":1.5e"#), "{extra}");
    assert!(
        extra.ends_with(r#"300,"tags":["a","b"],"vendor":{"name":"Acme"}}"#),
        "{extra}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&extra).unwrap(),
        json!({"vendor": {"name": "Acme"}, "tags": ["a", "b"], "n": 1.5e300})
    );
    assert_eq!(text("site.space"), "plant_data");
    assert_eq!(text("site.externalId"), "site-oslo");
    assert_eq!(text("vec"), "[1.0,2.5,-3]");
    assert_eq!(batch.schema(), *view.arrow_schema());
}

#[test]
fn int64_extremes_and_non_finite_floats() {
    let view = schema(
        TableKind::Nodes,
        json!({"big": {"type": "int64"}, "f": {"type": "float64"}, "g": {"type": "float32"}}),
    );
    let mut flattener = Flattener::new(&view);
    for (id, big, f) in [
        ("max", json!(9_223_372_036_854_775_807_i64), json!("NaN")),
        (
            "min",
            json!(-9_223_372_036_854_775_807_i64),
            json!("Infinity"),
        ),
        ("low", json!(i64::MIN), json!("-Infinity")),
    ] {
        flattener
            .push(&node(id, json!({"big": big, "f": f, "g": f})))
            .unwrap();
    }
    let batch = flattener.finish().unwrap();
    let big = column(&batch, "big").as_primitive::<Int64Type>();
    assert_eq!(big.values().to_vec(), [i64::MAX, -i64::MAX, i64::MIN]);
    let f = column(&batch, "f").as_primitive::<Float64Type>();
    assert!(f.value(0).is_nan());
    assert_eq!(f.value(1), f64::INFINITY);
    assert_eq!(f.value(2), f64::NEG_INFINITY);
    let g = column(&batch, "g")
        .as_any()
        .downcast_ref::<Float32Array>()
        .unwrap();
    assert!(g.value(0).is_nan());
    assert_eq!(g.value(2), f32::NEG_INFINITY);

    let beyond: Value = serde_json::from_str("9223372036854775808").unwrap();
    let err = value_error(flattener.push(&node("over", json!({"big": beyond}))));
    assert_eq!(err.property, "big");
    assert!(err.reason.unwrap().contains("int64 maximum"), "{err}");
    assert_eq!(err.value, "9223372036854775808");
}

#[test]
fn missing_and_explicit_null_are_both_null() {
    let view = schema(
        TableKind::Nodes,
        json!({
            "tag": {"type": "text"},
            "site": {"type": "direct"},
            "aliases": {"type": "text", "list": true},
            "n": {"type": "int32"},
        }),
    );
    let mut flattener = Flattener::new(&view);
    flattener.push(&node("missing", json!({}))).unwrap();
    flattener
        .push(&node(
            "explicit",
            json!({"tag": null, "site": null, "aliases": null, "n": null}),
        ))
        .unwrap();
    // No entry for the view at all.
    let mut bare = node("bare", json!({}));
    bare.properties.clear();
    flattener.push(&bare).unwrap();
    let batch = flattener.finish().unwrap();
    assert_eq!(batch.num_rows(), 3);
    for name in ["tag", "site.space", "site.externalId", "aliases", "n"] {
        assert_eq!(column(&batch, name).null_count(), 3, "{name}");
    }
}

#[test]
fn tombstones_keep_system_columns_and_null_every_property() {
    let view = schema(
        TableKind::Nodes,
        json!({"tag": {"type": "text"}, "n": {"type": "int32"}}),
    );
    let mut tombstone = node("pump-03", json!({"tag": "stale", "n": "not even an int"}));
    tombstone.deleted_time = Some(1_737_000_000_000);
    let batch = flatten_one(&view, &tombstone);
    assert_eq!(
        column(&batch, "deletedTime")
            .as_primitive::<Int64Type>()
            .value(0),
        1_737_000_000_000
    );
    assert_eq!(
        column(&batch, "externalId").as_string::<i32>().value(0),
        "pump-03"
    );
    assert!(column(&batch, "tag").is_null(0));
    assert!(column(&batch, "n").is_null(0));
}

#[test]
fn timestamps_with_any_fraction_and_offset() {
    let view = schema(TableKind::Nodes, json!({"at": {"type": "timestamp"}}));
    let base = 1_556_699_400_000_000_i64;
    let cases = [
        ("2019-05-01T08:30:00Z", base),
        ("2019-05-01T08:30:00.123+00:00", base + 123_000),
        ("2019-05-01T14:00:00.123456+05:30", base + 123_456),
        ("2019-05-01T00:30:00.123456789-0800", base + 123_456),
        ("2019-05-01T09:30:00+01", base),
    ];
    let mut flattener = Flattener::new(&view);
    for (index, (text, _)) in cases.iter().enumerate() {
        flattener
            .push(&node(&index.to_string(), json!({"at": text})))
            .unwrap();
    }
    let batch = flattener.finish().unwrap();
    let at = column(&batch, "at").as_primitive::<TimestampMicrosecondType>();
    for (index, (text, micros)) in cases.iter().enumerate() {
        assert_eq!(at.value(index), *micros, "{text}");
    }

    let err = value_error(flattener.push(&node("bad", json!({"at": "2019-05-01T08:30:00"}))));
    assert_eq!(err.expected, "an RFC 3339 timestamp string");
    assert!(err.reason.unwrap().contains("offset"), "{err}");
}

#[test]
fn dates_at_the_edges_of_the_cdf_range() {
    let view = schema(TableKind::Nodes, json!({"day": {"type": "date"}}));
    let mut flattener = Flattener::new(&view);
    flattener
        .push(&node("a", json!({"day": "0001-01-01"})))
        .unwrap();
    flattener
        .push(&node("b", json!({"day": "9999-12-31"})))
        .unwrap();
    let batch = flattener.finish().unwrap();
    let days = column(&batch, "day").as_primitive::<Date32Type>();
    assert_eq!(days.values().to_vec(), [-719_162, 2_932_896]);
}

#[test]
fn lists_are_native_and_keep_order_and_values() {
    let view = schema(
        TableKind::Nodes,
        json!({
            "aliases": {"type": "text", "list": true},
            "counts": {"type": "int64", "list": true},
            "readings": {"type": "float64", "list": true},
            "times": {"type": "timestamp", "list": true},
            "days": {"type": "date", "list": true},
            "docs": {"type": "json", "list": true},
            "sites": {"type": "direct", "list": true},
            "flags": {"type": "boolean", "list": true},
        }),
    );
    let batch = flatten_one(
        &view,
        &node(
            "pump-17",
            json!({
                "aliases": ["P17A", "PUMP-17", "ü😀"],
                "counts": [i64::MAX, 0, i64::MIN],
                "readings": [1.5, "NaN", "-Infinity"],
                "times": ["2019-05-01T08:30:00Z", "2019-05-01T08:30:00.5+00:00"],
                "days": ["0001-01-01", "9999-12-31"],
                "docs": [{"a": [1, {"b": "ß"}]}, [1, 2], "x"],
                "sites": [
                    {"space": "plant_data", "externalId": "site-oslo"},
                    {"space": "plant_data", "externalId": "site-bergen"}
                ],
                "flags": [],
            }),
        ),
    );
    let list = |name: &str| column(&batch, name).as_list::<i32>().value(0);
    let aliases = list("aliases");
    let aliases: Vec<&str> = aliases
        .as_string::<i32>()
        .iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(aliases, ["P17A", "PUMP-17", "ü😀"]);
    assert_eq!(
        list("counts").as_primitive::<Int64Type>().values().to_vec(),
        [i64::MAX, 0, i64::MIN]
    );
    let readings = list("readings");
    let readings = readings.as_primitive::<Float64Type>();
    assert_eq!(readings.value(0), 1.5);
    assert!(readings.value(1).is_nan());
    assert_eq!(readings.value(2), f64::NEG_INFINITY);
    assert_eq!(
        list("times")
            .as_primitive::<TimestampMicrosecondType>()
            .values()
            .to_vec(),
        [1_556_699_400_000_000, 1_556_699_400_500_000]
    );
    assert_eq!(
        list("days").as_primitive::<Date32Type>().values().to_vec(),
        [-719_162, 2_932_896]
    );
    let docs = list("docs");
    let docs: Vec<&str> = docs.as_string::<i32>().iter().map(Option::unwrap).collect();
    assert_eq!(docs, [r#"{"a":[1,{"b":"ß"}]}"#, "[1,2]", "\"x\""]);
    let sites = list("sites");
    let sites = sites.as_struct();
    assert_eq!(sites.len(), 2);
    let ids = sites
        .column_by_name("externalId")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(ids.value(1), "site-bergen");
    assert_eq!(list("flags").len(), 0);
    assert!(!column(&batch, "flags").is_null(0));
    assert_eq!(batch.schema(), *view.arrow_schema());

    // The publish form is JSON text of the same values.
    let published = publish_batch(&batch).unwrap();
    let text = |name: &str| {
        published
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_owned()
    };
    assert_eq!(text("aliases"), r#"["P17A","PUMP-17","ü😀"]"#);
    assert_eq!(
        text("counts"),
        "[9223372036854775807,0,-9223372036854775808]"
    );
    assert_eq!(text("readings"), r#"[1.5,"NaN","-Infinity"]"#);
    assert_eq!(
        text("times"),
        r#"["2019-05-01T08:30:00.000000Z","2019-05-01T08:30:00.500000Z"]"#
    );
    assert_eq!(text("days"), r#"["0001-01-01","9999-12-31"]"#);
    assert_eq!(text("docs"), r#"[{"a":[1,{"b":"ß"}]},[1,2],"x"]"#);
    assert_eq!(
        text("sites"),
        r#"[{"space":"plant_data","externalId":"site-oslo"},{"space":"plant_data","externalId":"site-bergen"}]"#
    );
    assert_eq!(text("flags"), "[]");
}

#[test]
fn renamed_columns_are_filled_from_their_property() {
    let view = schema(
        TableKind::Nodes,
        json!({
            "space": {"type": "text"},
            "version": {"type": "int32"},
            "prop_space": {"type": "text"},
        }),
    );
    let batch = flatten_one(
        &view,
        &node(
            "pump-17",
            json!({"space": "property space", "version": 7, "prop_space": "real"}),
        ),
    );
    let text = |name: &str| column(&batch, name).as_string::<i32>().value(0).to_owned();
    assert_eq!(text("space"), "plant_data");
    assert_eq!(text("prop_space_1"), "property space");
    assert_eq!(text("prop_space"), "real");
    assert_eq!(
        column(&batch, "version")
            .as_primitive::<Int64Type>()
            .value(0),
        4
    );
    assert_eq!(
        column(&batch, "prop_version")
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .value(0),
        7
    );
}

#[test]
fn unexpected_values_name_view_property_instance_value_and_type() {
    let view = schema(
        TableKind::Nodes,
        json!({
            "a": {"type": "text"},
            "n": {"type": "int32"},
            "counts": {"type": "int64", "list": true},
            "site": {"type": "direct"},
            "z": {"type": "text"},
        }),
    );
    let mut flattener = Flattener::new(&view);
    flattener
        .push(&node("good-1", json!({"n": 1, "z": "first"})))
        .unwrap();

    let err =
        value_error(flattener.push(&node("pump-17", json!({"a": "x", "n": "seven", "z": "y"}))));
    assert_eq!(
        err.to_string(),
        "view plant_schema:Pump/2, property `n` of node plant_data/pump-17: expected an int32 \
         integer, got \"seven\""
    );
    let err = value_error(flattener.push(&node("pump-18", json!({"n": 3_000_000_000_i64}))));
    assert_eq!(
        err.to_string(),
        "view plant_schema:Pump/2, property `n` of node plant_data/pump-18: expected an int32 \
         integer (outside the int32 range), got 3000000000"
    );
    let err = value_error(flattener.push(&node("pump-19", json!({"counts": [1, 2, "three"]}))));
    assert_eq!(err.element, Some(2));
    assert_eq!(err.value, "\"three\"");
    assert!(err.to_string().contains("list element 2"), "{err}");
    let err = value_error(flattener.push(&node("pump-20", json!({"counts": 5}))));
    assert_eq!(err.expected, "a list of int64 integers");
    let err = value_error(flattener.push(&node("pump-21", json!({"site": "plant_data:x"}))));
    assert!(err.expected.contains("node reference"), "{err}");
    let long = "é".repeat(1000);
    let err = value_error(flattener.push(&node("pump-22", json!({"a": {"long": long}}))));
    assert!(err.value.chars().count() < 260, "{}", err.value);
    assert!(err.value.contains("bytes in total"));

    // The rejected instances are not in the batch; the good ones before and after are.
    flattener
        .push(&node("good-2", json!({"n": 2, "z": "last"})))
        .unwrap();
    assert_eq!(flattener.len(), 2);
    let batch = flattener.finish().unwrap();
    assert_eq!(batch.num_rows(), 2);
    let ids = column(&batch, "externalId").as_string::<i32>();
    assert_eq!((ids.value(0), ids.value(1)), ("good-1", "good-2"));
    let z = column(&batch, "z").as_string::<i32>();
    assert_eq!((z.value(0), z.value(1)), ("first", "last"));

    // The flattener is reusable after finish.
    flattener.push(&node("good-3", json!({}))).unwrap();
    assert_eq!(flattener.finish().unwrap().num_rows(), 1);
}

#[test]
fn estimated_bytes_grows_with_the_data_and_resets_on_finish() {
    let view = schema(TableKind::Nodes, json!({"tag": {"type": "text"}}));
    let mut flattener = Flattener::new(&view);
    let empty = flattener.estimated_bytes();
    flattener
        .push(&node("a", json!({"tag": "x".repeat(10_000)})))
        .unwrap();
    assert!(flattener.estimated_bytes() >= empty + 10_000);
    flattener.finish().unwrap();
    assert!(flattener.estimated_bytes() < 10_000);
}

#[test]
fn empty_flattener_gives_an_empty_batch_with_the_schema() {
    let view = schema(
        TableKind::Edges,
        json!({"sites": {"type": "direct", "list": true}}),
    );
    let batch = Flattener::new(&view).finish().unwrap();
    assert_eq!(batch.num_rows(), 0);
    assert_eq!(batch.schema(), *view.arrow_schema());
    let _: &StringArray = column(&batch, "endNode.space").as_string();
}
