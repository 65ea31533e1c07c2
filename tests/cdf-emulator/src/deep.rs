//! Deeply nested JSON without stack overflow.
//!
//! A CDF `json` property may nest thousands of levels deep within its 40,960 bytes (each
//! `[` costs one byte), and serde_json parses, writes, compares, clones and drops a `Value`
//! by recursion, a few hundred bytes of stack per level in a debug build: far more than a
//! 2 MiB tokio worker stack at CDF's limits. Request bodies are parsed with the recursion
//! limit lifted on a growing stack (`serde_stacker`, see `error::from_slice`), stored values
//! are written and dropped here without recursion, and the write path, which compares and
//! clones stored values, runs on a stack large enough for any value CDF accepts
//! ([`on_big_stack`]).

use serde_json::Value;

/// Stack for the write path: ≥ 40,960 levels at well under 1 KiB a level. The memory is
/// reserved, not committed: only the pages a deep value touches are ever used.
const BIG_STACK: usize = 64 << 20;

/// Runs `f` on a fresh stack of [`BIG_STACK`] bytes.
pub fn on_big_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::grow(BIG_STACK, f)
}

/// Parses JSON of any depth on a growing stack.
pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = serde::Deserialize::deserialize(serde_stacker::Deserializer::new(&mut de))?;
    de.end()?;
    Ok(value)
}

/// Appends the compact JSON text of `value` to `out`: byte for byte what
/// `serde_json::to_writer` writes, with an explicit stack instead of recursion.
pub fn write_json(value: &Value, out: &mut Vec<u8>) {
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
            // Writing a scalar into a Vec cannot fail.
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

/// The compact JSON text of `value` (see [`write_json`]).
pub fn to_text(value: &Value) -> String {
    let mut out = Vec::new();
    write_json(value, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn is_container(value: &Value) -> bool {
    matches!(value, Value::Array(_) | Value::Object(_))
}

/// An array or object holding another array or object (the only values whose ordinary
/// drop recurses more than once).
pub fn is_nested(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(is_container),
        Value::Object(map) => map.values().any(is_container),
        _ => false,
    }
}

/// Drops `value` level by level from a heap stack instead of by recursion.
pub fn drop_without_recursion(value: Value) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.into_iter().filter(is_container)),
            Value::Object(map) => {
                stack.extend(map.into_iter().map(|(_, v)| v).filter(is_container));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_what_serde_json_writes() {
        for value in [
            json!({"a": [1, [2, {"ü": "😀\n\"x\""}]], "b": null, "c": {}, "d": []}),
            json!([
                1.5,
                -0.0,
                1e300,
                9_223_372_036_854_775_807_i64,
                u64::MAX,
                true
            ]),
            json!("plain"),
        ] {
            assert_eq!(to_text(&value), serde_json::to_string(&value).unwrap());
        }
    }

    #[test]
    fn deep_values_parse_write_and_drop_on_a_small_stack() {
        let text = format!(r#"{{"d":{}{}}}"#, "[".repeat(20_000), "]".repeat(20_000));
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let value = parse(text.as_bytes()).expect("parses");
                assert_eq!(to_text(&value), text);
                assert!(is_nested(&value["d"]));
                drop_without_recursion(value);
            })
            .expect("thread")
            .join()
            .expect("no stack overflow");
    }
}
