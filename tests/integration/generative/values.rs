//! Random property values that CDF accepts, weighted towards the edges of every type:
//! extremes, empty and huge strings, unicode, explicit nulls, deep JSON.

use serde_json::{Value, json};

use super::model::{DATA_SPACE, PropType};
use super::rng::Gen;

/// How deep the deepest generated JSON value nests: well past serde_json's default
/// recursion limit of 128, and within CDF's 10,240 bytes per JSON value.
pub const DEEP_JSON_LEVELS: usize = 2_000;

fn text(g: &mut Gen) -> Value {
    let choices: [&dyn Fn(&mut Gen) -> String; 8] = [
        &|_| String::new(),
        &|_| "plain".to_owned(),
        &|_| "æøå ✓ 😀 \u{10FFFF} 中文".to_owned(),
        &|_| "quote \" backslash \\ newline \n tab \t nul-free \u{1} end".to_owned(),
        &|g| "x".repeat(g.range(1_000, 20_000)),
        &|g| format!("v{}", g.u32()),
        &|_| "   leading and trailing spaces   ".to_owned(),
        &|_| "null".to_owned(),
    ];
    let f = g.pick(&choices);
    json!(f(g))
}

fn int32(g: &mut Gen) -> Value {
    let edges = [i32::MIN as i64, i32::MAX as i64, 0, -1, 1];
    if g.chance(0.5) {
        json!(*g.pick(&edges))
    } else {
        json!(g.i64() as i32)
    }
}

fn int64(g: &mut Gen) -> Value {
    let edges = [i64::MIN, i64::MAX, 0, -1, (1 << 53) + 1, -(1 << 53) - 1];
    if g.chance(0.5) {
        json!(*g.pick(&edges))
    } else {
        json!(g.i64())
    }
}

fn float32(g: &mut Gen) -> Value {
    let edges = [
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1e-45,
        -0.0,
        0.1,
        1.5,
        16_777_217.0,
    ];
    let value = if g.chance(0.5) {
        *g.pick(&edges)
    } else {
        (g.f64_unit() * 2e6 - 1e6) as f32
    };
    json!(value as f64)
}

fn float64(g: &mut Gen) -> Value {
    let edges = [
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        -0.0,
        0.1,
        1e308,
        9_007_199_254_740_993.0,
    ];
    if g.chance(0.5) {
        json!(*g.pick(&edges))
    } else {
        json!(g.f64_unit() * 1e12 - 5e11)
    }
}

fn timestamp(g: &mut Gen) -> Value {
    let edges = [
        "0001-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
        "1970-01-01T00:00:00.000Z",
        "1969-12-31T23:59:59.999Z",
        "2024-02-29T12:30:45.123+05:30",
        "2000-01-01T00:00:00.000-08:00",
    ];
    if g.chance(0.6) {
        json!(*g.pick(&edges))
    } else {
        let year = g.range(1, 10_000);
        let month = g.range(1, 13);
        let day = g.range(1, 29);
        json!(format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            g.range(0, 24),
            g.range(0, 60),
            g.range(0, 60),
            g.range(0, 1000)
        ))
    }
}

fn date(g: &mut Gen) -> Value {
    let edges = ["0001-01-01", "9999-12-31", "2024-02-29", "1970-01-01"];
    if g.chance(0.5) {
        json!(*g.pick(&edges))
    } else {
        json!(format!(
            "{:04}-{:02}-{:02}",
            g.range(1, 10_000),
            g.range(1, 13),
            g.range(1, 29)
        ))
    }
}

/// Nested arrays inside an object, `levels` deep: about 2 bytes per level.
pub fn deep_json(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = Value::Array(vec![value]);
    }
    json!({ "deep": value })
}

fn json_value(g: &mut Gen) -> Value {
    match g.range(0, 7) {
        0 => json!({}),
        1 => json!({"k": {"n": 1, "list": [1, 2.5, "three", null, true]}}),
        2 => json!({"big": i64::MAX, "small": i64::MIN, "u": u64::MAX, "f": 0.1}),
        3 => json!({"unicode ✓": "æøå 😀", "empty": "", "quote\"key": "\\"}),
        4 => deep_json(g.range(DEEP_JSON_LEVELS / 2, DEEP_JSON_LEVELS)),
        5 => json!({"nested": {"a": {"b": {"c": {"d": [[], {}, [{}]]}}}}}),
        _ => json!({"n": g.i64(), "s": format!("{}", g.u32())}),
    }
}

fn direct(g: &mut Gen, nodes: &[String]) -> Value {
    let external_id = if nodes.is_empty() || g.chance(0.3) {
        format!("target-{}", g.range(0, 5))
    } else {
        g.pick(nodes).clone()
    };
    json!({"space": DATA_SPACE, "externalId": external_id})
}

fn scalar(g: &mut Gen, kind: &str, nodes: &[String]) -> Value {
    match kind {
        "text" => text(g),
        "int32" => int32(g),
        "int64" => int64(g),
        "float32" => float32(g),
        "float64" => float64(g),
        "boolean" => json!(g.chance(0.5)),
        "timestamp" => timestamp(g),
        "date" => date(g),
        "json" => json_value(g),
        "direct" => direct(g, nodes),
        "enum" => json!(*g.pick(&["alpha", "Beta", "gamma_3"])),
        _ => json!(format!("{kind}-{}", g.u32())),
    }
}

/// A value for a property: an explicit null now and then, else a scalar or a list of them.
pub fn value(g: &mut Gen, ptype: &PropType, nodes: &[String]) -> Value {
    if g.chance(0.12) {
        return Value::Null;
    }
    if ptype.list {
        let len = g.range(0, 5);
        // Deep JSON in a list would blow the 40,960-byte budget of a json property.
        let items = (0..len)
            .map(|_| match ptype.kind {
                "json" => json!({"i": g.range(0, 100)}),
                "text" if g.chance(0.8) => json!(format!("t{}", g.u32())),
                kind => scalar(g, kind, nodes),
            })
            .collect();
        Value::Array(items)
    } else {
        scalar(g, ptype.kind, nodes)
    }
}
