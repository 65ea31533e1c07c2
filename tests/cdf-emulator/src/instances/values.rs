//! Validation and normalization of property values against container types (contract §2.4).
//! Stored values are normalized: timestamps in the canonical `.fff+00:00` UTC form and
//! direct relations as exactly `{space, externalId}`.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::schema::types::{PropertyType, TypeKind};
use crate::timefmt::{normalize_timestamp, parse_date};

const MAX_TEXT_BYTES: usize = 128_000;
const MAX_JSON_BYTES: usize = 40_960;

/// Short, bounded rendering of a JSON value for error messages.
pub fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut text = crate::deep::to_text(v);
    if text.len() > 80 {
        let mut cut = 77;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{kind} {text}")
}

/// Validates `value` against `ty`. `null` gives `Ok(None)`; nullability is the caller's check.
pub fn normalize_value(
    value: Value,
    ty: &PropertyType,
    ctx: &dyn Fn() -> String,
) -> ApiResult<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    if !ty.list {
        return scalar(value, ty, ctx).map(Some);
    }
    let Value::Array(items) = value else {
        return Err(mismatch(ctx, ty, &value));
    };
    if items.len() > ty.list_cap() {
        return Err(ApiError::bad_request(format!(
            "{}: list has {} items, more than the maximum of {}",
            ctx(),
            items.len(),
            ty.list_cap()
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        if item.is_null() {
            return Err(ApiError::bad_request(format!(
                "{}[{i}]: list elements cannot be null; expected {}",
                ctx(),
                ty.name()
            )));
        }
        out.push(scalar(item, ty, &|| format!("{}[{i}]", ctx()))?);
    }
    Ok(Some(Value::Array(out)))
}

fn mismatch(ctx: &dyn Fn() -> String, ty: &PropertyType, v: &Value) -> ApiError {
    ApiError::bad_request(format!(
        "{}: expected {}, got {}",
        ctx(),
        ty.describe(),
        describe(v)
    ))
}

fn scalar(v: Value, ty: &PropertyType, ctx: &dyn Fn() -> String) -> ApiResult<Value> {
    let bad = |v: &Value| {
        ApiError::bad_request(format!(
            "{}: expected {}, got {}",
            ctx(),
            ty.name(),
            describe(v)
        ))
    };
    match &ty.kind {
        TypeKind::Text => {
            let Value::String(s) = &v else {
                return Err(bad(&v));
            };
            let cap = ty
                .max_text_size
                .unwrap_or(MAX_TEXT_BYTES)
                .min(MAX_TEXT_BYTES);
            if s.len() > cap {
                return Err(ApiError::bad_request(format!(
                    "{}: text of {} bytes is longer than the maximum of {cap}",
                    ctx(),
                    s.len()
                )));
            }
            if s.contains('\0') {
                return Err(ApiError::bad_request(format!(
                    "{}: text must not contain NUL",
                    ctx()
                )));
            }
            Ok(v)
        }
        TypeKind::TimeSeries | TypeKind::File | TypeKind::Sequence => match &v {
            Value::String(s) if !s.is_empty() => Ok(v),
            _ => Err(bad(&v)),
        },
        TypeKind::Boolean => match v {
            Value::Bool(_) => Ok(v),
            _ => Err(bad(&v)),
        },
        TypeKind::Int32 => match &v {
            Value::Number(n) if n.as_i64().is_some_and(|x| i32::try_from(x).is_ok()) => Ok(v),
            Value::Number(n) if is_integral(n) => Err(out_of_range(ctx, "int32", &v)),
            _ => Err(bad(&v)),
        },
        TypeKind::Int64 => match &v {
            Value::Number(n) if n.is_i64() || (n.is_u64() && n.as_i64().is_some()) => Ok(v),
            Value::Number(n) if is_integral(n) => Err(out_of_range(ctx, "int64", &v)),
            _ => Err(bad(&v)),
        },
        TypeKind::Float32 => match &v {
            Value::Number(n) => match n.as_f64().and_then(to_float32) {
                Some(stored) => Ok(stored.unwrap_or(v)),
                None => Err(out_of_range(ctx, "float32", &v)),
            },
            _ => Err(bad(&v)),
        },
        TypeKind::Float64 => match &v {
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(v),
            _ => Err(bad(&v)),
        },
        TypeKind::Timestamp => match &v {
            Value::String(s) => normalize_timestamp(s).map(Value::String).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{}: invalid timestamp {}; expected YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]",
                    ctx(),
                    describe(&v)
                ))
            }),
            _ => Err(bad(&v)),
        },
        TypeKind::Date => match &v {
            Value::String(s) if parse_date(s).is_some() => Ok(v),
            Value::String(_) => Err(ApiError::bad_request(format!(
                "{}: invalid date {}; expected YYYY-MM-DD",
                ctx(),
                describe(&v)
            ))),
            _ => Err(bad(&v)),
        },
        TypeKind::Json => match &v {
            Value::Object(m) => {
                let size = crate::deep::to_text(&v).len();
                if size > MAX_JSON_BYTES || m.len() > 256 {
                    return Err(ApiError::bad_request(format!(
                        "{}: json object too large ({size} bytes, {} keys); limits are {MAX_JSON_BYTES} bytes and 256 keys",
                        ctx(),
                        m.len()
                    )));
                }
                Ok(v)
            }
            _ => Err(ApiError::bad_request(format!(
                "{}: expected json (an object; wrap arrays and scalars in an object), got {}",
                ctx(),
                describe(&v)
            ))),
        },
        TypeKind::Direct => direct(&v).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{}: expected direct relation {{\"space\":..,\"externalId\":..}}, got {}",
                ctx(),
                describe(&v)
            ))
        }),
        TypeKind::Enum { values, .. } => match &v {
            Value::String(s) if values.iter().any(|x| x == s) => Ok(v),
            _ => Err(ApiError::bad_request(format!(
                "{}: expected one of the enum values [{}], got {}",
                ctx(),
                values.join(", "),
                describe(&v)
            ))),
        },
    }
}

/// An integer literal, including one too large for i64/u64 (serde_json reads those as f64).
fn is_integral(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|x| x.fract() == 0.0)
}

fn out_of_range(ctx: &dyn Fn() -> String, ty: &str, v: &Value) -> ApiError {
    let range = match ty {
        "int32" => format!("{}..={}", i32::MIN, i32::MAX),
        "int64" => format!("{}..={}", i64::MIN, i64::MAX),
        _ => format!("-{m:e}..={m:e}", m = f32::MAX),
    };
    ApiError::bad_request(format!(
        "{}: {} is out of range for {ty} ({range})",
        ctx(),
        describe(v)
    ))
}

/// CDF stores float32 values as 32-bit floats and serves them as such: `x` rounded to the
/// nearest f32, written in its shortest form (`0.123456789` is served as `0.12345679`).
/// `None` when `x` is beyond the f32 range; `Some(None)` when `x` is already an f32 value
/// (kept as written, so `5` stays `5`).
fn to_float32(x: f64) -> Option<Option<Value>> {
    let stored = x as f32;
    if !stored.is_finite() {
        return None;
    }
    // The shortest decimal that reads back as `stored`, as an f64 for serde_json.
    let shortest: f64 = stored.to_string().parse().ok()?;
    if shortest == x {
        return Some(None);
    }
    Some(Some(
        serde_json::Number::from_f64(shortest).map(Value::Number)?,
    ))
}

/// Accepts exactly `{space, externalId}` with string values.
fn direct(v: &Value) -> Option<Value> {
    let o = v.as_object()?;
    if o.len() != 2 {
        return None;
    }
    let space = o.get("space")?.as_str()?;
    let xid = o.get("externalId")?.as_str()?;
    let mut m = Map::new();
    m.insert("space".into(), Value::String(space.to_string()));
    m.insert("externalId".into(), Value::String(xid.to_string()));
    Some(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(t: Value) -> PropertyType {
        PropertyType::parse(&t, "test").unwrap()
    }

    #[test]
    fn int64_beyond_2_pow_53_round_trips() {
        let big: Value = serde_json::from_str("9007199254740993").unwrap();
        let out = normalize_value(big, &ty(json!({"type":"int64"})), &|| "p".into()).unwrap();
        assert_eq!(serde_json::to_string(&out).unwrap(), "9007199254740993");
        let too_big: Value = serde_json::from_str("9223372036854775808").unwrap();
        assert!(normalize_value(too_big, &ty(json!({"type":"int64"})), &|| "p".into()).is_err());
    }

    #[test]
    fn type_mismatches_are_named() {
        let err = normalize_value(json!("x"), &ty(json!({"type":"float64"})), &|| {
            "sp:V/1.ratedKw".into()
        })
        .unwrap_err();
        assert!(err.message.contains("sp:V/1.ratedKw"), "{}", err.message);
        assert!(err.message.contains("float64"), "{}", err.message);
        assert!(normalize_value(json!(1.5), &ty(json!({"type":"int32"})), &|| "p".into()).is_err());
        assert!(
            normalize_value(
                json!(4_000_000_000i64),
                &ty(json!({"type":"int32"})),
                &|| "p".into()
            )
            .is_err()
        );
        assert!(
            normalize_value(json!([1, 2]), &ty(json!({"type":"json"})), &|| "p".into()).is_err()
        );
        assert!(
            normalize_value(json!({"space":"s"}), &ty(json!({"type":"direct"})), &|| "p"
                .into())
            .is_err()
        );
    }

    #[test]
    fn normalizes_timestamps_and_lists() {
        let out = normalize_value(
            json!(["2020-01-01T01:00:00+01:00"]),
            &ty(json!({"type":"timestamp","list":true})),
            &|| "p".into(),
        )
        .unwrap();
        assert_eq!(out, Some(json!(["2020-01-01T00:00:00.000+00:00"])));
        assert_eq!(
            normalize_value(Value::Null, &ty(json!({"type":"text"})), &|| "p".into()).unwrap(),
            None
        );
    }
}
