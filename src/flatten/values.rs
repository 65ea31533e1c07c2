//! Reading one JSON property value as the type its column declares.
//!
//! Every function checks the JSON shape against the declared type and never guesses: a
//! number in a text column is an error, not a string. Failures carry static text only, so
//! the successful path allocates nothing.

use serde_json::{Number, Value};

use crate::schema::temporal::{parse_date_days, parse_timestamp_micros};

/// Why a value does not fit its column; the caller adds the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mismatch {
    pub(crate) reason: Option<&'static str>,
}

const WRONG_TYPE: Mismatch = Mismatch { reason: None };

const fn because(reason: &'static str) -> Mismatch {
    Mismatch {
        reason: Some(reason),
    }
}

pub(crate) fn text(value: &Value) -> Result<&str, Mismatch> {
    value.as_str().ok_or(WRONG_TYPE)
}

pub(crate) fn boolean(value: &Value) -> Result<bool, Mismatch> {
    value.as_bool().ok_or(WRONG_TYPE)
}

pub(crate) fn int64(value: &Value) -> Result<i64, Mismatch> {
    let Value::Number(number) = value else {
        return Err(WRONG_TYPE);
    };
    exact_integer(number)
}

pub(crate) fn int32(value: &Value) -> Result<i32, Mismatch> {
    let Value::Number(number) = value else {
        return Err(WRONG_TYPE);
    };
    i32::try_from(exact_integer(number)?).map_err(|_| because("outside the int32 range"))
}

/// JSON integers are read as i64 directly (serde_json keeps them exact); a float, even a
/// whole one, is refused because it may already have lost digits.
fn exact_integer(number: &Number) -> Result<i64, Mismatch> {
    if let Some(integer) = number.as_i64() {
        Ok(integer)
    } else if number.is_u64() {
        Err(because("above the int64 maximum 9223372036854775807"))
    } else {
        Err(because("not an integer"))
    }
}

pub(crate) fn float64(value: &Value) -> Result<f64, Mismatch> {
    match value {
        Value::Number(number) => number.as_f64().ok_or(WRONG_TYPE),
        Value::String(text) => non_finite(text),
        _ => Err(WRONG_TYPE),
    }
}

pub(crate) fn float32(value: &Value) -> Result<f32, Mismatch> {
    let wide = float64(value)?;
    let narrow = wide as f32;
    if wide.is_finite() && narrow.is_infinite() {
        return Err(because("outside the float32 range"));
    }
    Ok(narrow)
}

/// JSON has no NaN or infinities; CDF spells them as these strings.
fn non_finite(text: &str) -> Result<f64, Mismatch> {
    match text {
        "NaN" => Ok(f64::NAN),
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => Err(because(
            "a string is only accepted as \"NaN\", \"Infinity\" or \"-Infinity\"",
        )),
    }
}

pub(crate) fn timestamp_micros(value: &Value) -> Result<i64, Mismatch> {
    parse_timestamp_micros(text(value)?).map_err(|e| because(e.reason))
}

pub(crate) fn date_days(value: &Value) -> Result<i32, Mismatch> {
    parse_date_days(text(value)?).map_err(|e| because(e.reason))
}

/// `{"space": …, "externalId": …}`; other keys are ignored.
pub(crate) fn direct(value: &Value) -> Result<(&str, &str), Mismatch> {
    let Value::Object(object) = value else {
        return Err(WRONG_TYPE);
    };
    let space = object
        .get("space")
        .and_then(Value::as_str)
        .ok_or(because("`space` is missing or not a string"))?;
    let external_id = object
        .get("externalId")
        .and_then(Value::as_str)
        .ok_or(because("`externalId` is missing or not a string"))?;
    Ok((space, external_id))
}

/// Compact JSON text of `value`, written into the reused `scratch` buffer.
pub(crate) fn json_text<'a>(value: &Value, scratch: &'a mut Vec<u8>) -> &'a str {
    scratch.clear();
    write_json(value, scratch);
    std::str::from_utf8(scratch).unwrap_or_default()
}

/// Appends the compact JSON text of `value` to `out`: byte for byte what
/// `serde_json::to_writer` writes, but with an explicit stack instead of recursion.
///
/// A CDF `json` property may nest thousands of levels deep within its 40,960 bytes, and
/// serde_json's serializer spends a few hundred bytes of call stack per level, which
/// overflows a 2 MiB tokio worker stack long before CDF's size limit is reached. Here the
/// depth only costs one small heap-allocated frame per level.
pub(crate) fn write_json(value: &Value, out: &mut Vec<u8>) {
    enum Frame<'a> {
        Array(std::slice::Iter<'a, Value>, bool),
        Object(serde_json::map::Iter<'a>, bool),
    }
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut next = Some(value);
    loop {
        match next.take() {
            Some(Value::Array(items)) => {
                out.push(b'[');
                stack.push(Frame::Array(items.iter(), true));
            }
            Some(Value::Object(map)) => {
                out.push(b'{');
                stack.push(Frame::Object(map.iter(), true));
            }
            // Writing a scalar into a Vec cannot fail, and serde_json writes UTF-8.
            Some(scalar) => {
                let _ = serde_json::to_writer(&mut *out, scalar);
            }
            None => {}
        }
        let Some(frame) = stack.last_mut() else {
            return;
        };
        match frame {
            Frame::Array(items, first) => match items.next() {
                Some(item) => {
                    if !std::mem::take(first) {
                        out.push(b',');
                    }
                    next = Some(item);
                }
                None => {
                    out.push(b']');
                    stack.pop();
                }
            },
            Frame::Object(entries, first) => match entries.next() {
                Some((key, item)) => {
                    if !std::mem::take(first) {
                        out.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut *out, key);
                    out.push(b':');
                    next = Some(item);
                }
                None => {
                    out.push(b'}');
                    stack.pop();
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_are_exact_and_range_checked() {
        assert_eq!(int64(&json!(9_223_372_036_854_775_807_i64)), Ok(i64::MAX));
        assert_eq!(int64(&json!(-9_223_372_036_854_775_807_i64)), Ok(-i64::MAX));
        assert_eq!(int64(&json!(i64::MIN)), Ok(i64::MIN));
        let too_big: Value = serde_json::from_str("9223372036854775808").unwrap();
        assert!(
            int64(&too_big)
                .unwrap_err()
                .reason
                .unwrap()
                .contains("int64 maximum")
        );
        assert_eq!(int64(&json!(1.0)), Err(because("not an integer")));
        assert_eq!(int64(&json!("1")), Err(WRONG_TYPE));
        assert_eq!(int32(&json!(i32::MIN)), Ok(i32::MIN));
        assert_eq!(
            int32(&json!(2_147_483_648_i64)),
            Err(because("outside the int32 range"))
        );
    }

    #[test]
    fn floats_accept_cdf_non_finite_spellings() {
        assert!(float64(&json!("NaN")).unwrap().is_nan());
        assert_eq!(float64(&json!("Infinity")), Ok(f64::INFINITY));
        assert_eq!(float64(&json!("-Infinity")), Ok(f64::NEG_INFINITY));
        assert_eq!(float32(&json!("-Infinity")), Ok(f32::NEG_INFINITY));
        assert_eq!(float64(&json!(42)), Ok(42.0));
        assert!(float64(&json!("nan")).is_err());
        assert_eq!(float32(&json!(0.1)), Ok(0.1_f32));
        assert_eq!(
            float32(&json!(1e39)),
            Err(because("outside the float32 range"))
        );
        assert_eq!(float64(&json!(true)), Err(WRONG_TYPE));
    }

    #[test]
    fn direct_relations_need_both_keys() {
        assert_eq!(
            direct(&json!({"space": "s", "externalId": "x"})),
            Ok(("s", "x"))
        );
        assert!(direct(&json!({"space": "s"})).is_err());
        assert!(direct(&json!("s:x")).is_err());
    }

    #[test]
    fn json_text_is_compact_and_keeps_unicode() {
        let mut scratch = Vec::new();
        let value = json!({"a": [1, [2, {"ü": "😀"}]], "b": null});
        assert_eq!(
            json_text(&value, &mut scratch),
            r#"{"a":[1,[2,{"ü":"😀"}]],"b":null}"#
        );
    }

    #[test]
    fn json_text_writes_what_serde_json_writes() {
        for value in [
            json!({"a": [1, [2, {"ü": "😀\n\"q\""}]], "b": null, "c": {}, "d": [], "e": [{}]}),
            json!([1.5, -0.0, 1e300, i64::MIN, u64::MAX, true, "\u{1}"]),
            json!({"k": {"n": {"m": [[], [[]], {"x": 0.1}]}}}),
        ] {
            let mut scratch = Vec::new();
            assert_eq!(
                json_text(&value, &mut scratch),
                serde_json::to_string(&value).unwrap()
            );
        }
    }

    /// The full path of a deep json value on a 2 MiB stack (a tokio worker's): decode the
    /// page, write the value's text, drop the instance. Each step recursed per level before.
    #[test]
    fn deep_json_decodes_writes_and_drops_on_a_small_stack() {
        let arrays = 20_000;
        let objects = 6_000;
        let deep_arrays = format!("{}{}", "[".repeat(arrays), "]".repeat(arrays));
        let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(objects), "}".repeat(objects));
        let page = format!(
            r#"{{"instanceType":"node","space":"s","externalId":"x","version":1,"createdTime":1,"lastUpdatedTime":2,"properties":{{"s":{{"V/1":{{"j":{{"d":{deep_arrays}}},"o":{deep_objects}}}}}}}}}"#
        );
        let expected_j = format!(r#"{{"d":{deep_arrays}}}"#);
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let instance: crate::cdf::dto::Instance =
                    crate::cdf::decode_json(page.as_bytes()).expect("decodes");
                let values = instance.properties_at("s", "V/1").expect("values");
                let mut scratch = Vec::new();
                assert_eq!(json_text(&values["j"], &mut scratch), expected_j);
                assert_eq!(json_text(&values["o"], &mut scratch), deep_objects);
                drop(instance);
            })
            .expect("thread")
            .join()
            .expect("no stack overflow");
    }
}
