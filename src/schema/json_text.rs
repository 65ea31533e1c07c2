//! Renders Arrow values as text: JSON text for lists and structs (the publish layer, whose BI
//! readers cannot read nested types) and plain text for scalars (widening a column to
//! string).
//!
//! Values are rendered exactly: integers digit for digit (int64 extremes included), floats
//! in their shortest round-trip form for their own width (a float32 `0.1` stays `0.1`),
//! non-finite floats as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (CDF's own
//! spelling, since JSON has no such numbers), timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ`
//! and dates as `YYYY-MM-DD`.

use std::io::Write as _;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, GenericListArray, OffsetSizeTrait, StringArray, StringBuilder,
};
use deltalake::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};

use super::temporal::{format_date_days, format_timestamp_micros};

/// An Arrow type this renderer does not handle (none of the raw-table types).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot render Arrow type {data_type} as text")]
pub struct UnsupportedType {
    pub(crate) data_type: DataType,
}

/// The JSON text of every list in `array` (a `List` or `LargeList` column); null lists stay
/// null. With `elements_are_json`, string elements already hold JSON text (a list of the
/// CDF `json` type) and are embedded as is instead of being quoted again.
pub(crate) fn list_to_json_text(
    array: &dyn Array,
    elements_are_json: bool,
) -> Result<StringArray, UnsupportedType> {
    match array.data_type() {
        DataType::List(_) | DataType::LargeList(_) => render_rows(array, |index, out| {
            write_json(array, index, elements_are_json, out)
        }),
        other => Err(UnsupportedType {
            data_type: other.clone(),
        }),
    }
}

/// Every value of `array` as text: strings unchanged, other scalars in their plain text form
/// (`42`, `true`, `NaN`, `2024-03-15`, `2024-03-15T08:30:00.000000Z`), lists and structs as
/// JSON text. Nulls stay null.
pub(crate) fn to_text_array(
    array: &dyn Array,
    elements_are_json: bool,
) -> Result<StringArray, UnsupportedType> {
    match array.data_type() {
        DataType::Utf8 => Ok(array.as_string::<i32>().clone()),
        DataType::List(_) | DataType::LargeList(_) | DataType::Struct(_) => {
            render_rows(array, |index, out| {
                write_json(array, index, elements_are_json, out)
            })
        }
        _ => render_rows(array, |index, out| write_plain(array, index, out)),
    }
}

fn render_rows(
    array: &dyn Array,
    mut render: impl FnMut(usize, &mut Vec<u8>) -> Result<(), UnsupportedType>,
) -> Result<StringArray, UnsupportedType> {
    let mut builder = StringBuilder::with_capacity(array.len(), array.len() * 16);
    let mut scratch = Vec::new();
    for index in 0..array.len() {
        if array.is_null(index) {
            builder.append_null();
            continue;
        }
        scratch.clear();
        render(index, &mut scratch)?;
        builder.append_value(utf8(&scratch));
    }
    Ok(builder.finish())
}

/// Everything written to the scratch buffers is UTF-8 (serde_json output, formatted
/// numbers, and the contents of Arrow string arrays), so this conversion never fails; it is
/// checked rather than assumed because it costs little next to rendering.
fn utf8(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

fn write_plain(array: &dyn Array, index: usize, out: &mut Vec<u8>) -> Result<(), UnsupportedType> {
    match array.data_type() {
        DataType::LargeUtf8 => {
            out.extend_from_slice(array.as_string::<i64>().value(index).as_bytes())
        }
        DataType::Float32 => {
            let value = array.as_primitive::<Float32Type>().value(index);
            write_float(
                value.is_nan(),
                value.is_infinite(),
                value < 0.0,
                false,
                out,
                |out| serde_json::to_writer(out, &value),
            )
        }
        DataType::Float64 => {
            let value = array.as_primitive::<Float64Type>().value(index);
            write_float(
                value.is_nan(),
                value.is_infinite(),
                value < 0.0,
                false,
                out,
                |out| serde_json::to_writer(out, &value),
            )
        }
        DataType::Timestamp(..) | DataType::Date32 => {
            // The JSON form of these is a quoted string; plain text drops the quotes.
            let mut text = Vec::new();
            write_json(array, index, false, &mut text)?;
            out.extend_from_slice(
                text.get(1..text.len().saturating_sub(1))
                    .unwrap_or_default(),
            );
        }
        _ => write_json(array, index, false, out)?,
    }
    Ok(())
}

/// Writes the JSON form of `array[index]` (which may be null).
fn write_json(
    array: &dyn Array,
    index: usize,
    embed_json_text: bool,
    out: &mut Vec<u8>,
) -> Result<(), UnsupportedType> {
    if array.is_null(index) {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    macro_rules! integer {
        ($t:ty) => {{
            let _ = write!(out, "{}", array.as_primitive::<$t>().value(index));
        }};
    }
    match array.data_type() {
        DataType::Null => out.extend_from_slice(b"null"),
        DataType::Boolean => {
            let text: &[u8] = if array.as_boolean().value(index) {
                b"true"
            } else {
                b"false"
            };
            out.extend_from_slice(text);
        }
        DataType::Int8 => integer!(Int8Type),
        DataType::Int16 => integer!(Int16Type),
        DataType::Int32 => integer!(Int32Type),
        DataType::Int64 => integer!(Int64Type),
        DataType::UInt8 => integer!(UInt8Type),
        DataType::UInt16 => integer!(UInt16Type),
        DataType::UInt32 => integer!(UInt32Type),
        DataType::UInt64 => integer!(UInt64Type),
        DataType::Float32 => {
            let value = array.as_primitive::<Float32Type>().value(index);
            write_float(
                value.is_nan(),
                value.is_infinite(),
                value < 0.0,
                true,
                out,
                |out| serde_json::to_writer(out, &value),
            );
        }
        DataType::Float64 => {
            let value = array.as_primitive::<Float64Type>().value(index);
            write_float(
                value.is_nan(),
                value.is_infinite(),
                value < 0.0,
                true,
                out,
                |out| serde_json::to_writer(out, &value),
            );
        }
        DataType::Utf8 => write_string(array.as_string::<i32>().value(index), embed_json_text, out),
        DataType::LargeUtf8 => {
            write_string(array.as_string::<i64>().value(index), embed_json_text, out)
        }
        DataType::Date32 => {
            let mut text = String::with_capacity(12);
            format_date_days(array.as_primitive::<Date32Type>().value(index), &mut text);
            write_quoted_ascii(&text, out);
        }
        DataType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(index)
                    .saturating_mul(1_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(index)
                    .saturating_mul(1_000),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(index),
                TimeUnit::Nanosecond => array
                    .as_primitive::<TimestampNanosecondType>()
                    .value(index)
                    .div_euclid(1_000),
            };
            let mut text = String::with_capacity(28);
            format_timestamp_micros(micros, &mut text);
            write_quoted_ascii(&text, out);
        }
        DataType::Struct(fields) => {
            let structs = array.as_struct();
            out.push(b'{');
            for (position, (field, column)) in fields.iter().zip(structs.columns()).enumerate() {
                if position > 0 {
                    out.push(b',');
                }
                write_string(field.name(), false, out);
                out.push(b':');
                write_json(column.as_ref(), index, false, out)?;
            }
            out.push(b'}');
        }
        DataType::List(_) => write_list(array.as_list::<i32>(), index, embed_json_text, out)?,
        DataType::LargeList(_) => write_list(array.as_list::<i64>(), index, embed_json_text, out)?,
        other => {
            return Err(UnsupportedType {
                data_type: other.clone(),
            });
        }
    }
    Ok(())
}

fn write_list<O: OffsetSizeTrait>(
    lists: &GenericListArray<O>,
    index: usize,
    embed_json_text: bool,
    out: &mut Vec<u8>,
) -> Result<(), UnsupportedType> {
    let values: ArrayRef = lists.value(index);
    out.push(b'[');
    for element in 0..values.len() {
        if element > 0 {
            out.push(b',');
        }
        write_json(values.as_ref(), element, embed_json_text, out)?;
    }
    out.push(b']');
    Ok(())
}

fn write_string(text: &str, embed_json_text: bool, out: &mut Vec<u8>) {
    if embed_json_text {
        out.extend_from_slice(text.as_bytes());
    } else {
        // Serialising a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

fn write_quoted_ascii(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// Finite floats go through serde_json (shortest round-trip form for the float's own
/// width); non-finite ones use CDF's spelling, quoted in JSON.
fn write_float(
    nan: bool,
    infinite: bool,
    negative: bool,
    quoted: bool,
    out: &mut Vec<u8>,
    finite: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
) {
    let special = match (nan, infinite, negative) {
        (true, _, _) => "NaN",
        (false, true, false) => "Infinity",
        (false, true, true) => "-Infinity",
        (false, false, _) => {
            let _ = finite(out);
            return;
        }
    };
    if quoted {
        write_quoted_ascii(special, out);
    } else {
        out.extend_from_slice(special.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{
        BooleanArray, Date32Array, Float32Array, Float64Array, Int64Array, ListBuilder,
        StructArray, TimestampMicrosecondArray,
    };
    use std::sync::Arc;

    fn texts(array: &StringArray) -> Vec<Option<&str>> {
        array.iter().collect()
    }

    #[test]
    fn plain_text_of_scalars() {
        let ints = Int64Array::from(vec![Some(i64::MIN), None, Some(i64::MAX)]);
        assert_eq!(
            texts(&to_text_array(&ints, false).unwrap()),
            [
                Some("-9223372036854775808"),
                None,
                Some("9223372036854775807")
            ]
        );
        let floats =
            Float64Array::from(vec![0.1, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300]);
        let rendered = to_text_array(&floats, false).unwrap();
        assert_eq!(
            texts(&rendered)[..4],
            [
                Some("0.1"),
                Some("NaN"),
                Some("Infinity"),
                Some("-Infinity"),
            ]
        );
        // Shortest round-trip form, exponent spelled by serde_json.
        assert_eq!(rendered.value(4).parse::<f64>().unwrap(), 1e300);
        assert!(rendered.value(4).len() <= 6, "{}", rendered.value(4));
        let singles = Float32Array::from(vec![0.1_f32, 16_777_216.0]);
        assert_eq!(
            texts(&to_text_array(&singles, false).unwrap()),
            [Some("0.1"), Some("16777216.0")]
        );
        let times =
            TimestampMicrosecondArray::from(vec![1_556_699_400_170_000]).with_timezone("UTC");
        assert_eq!(
            texts(&to_text_array(&times, false).unwrap()),
            [Some("2019-05-01T08:30:00.170000Z")]
        );
        let dates = Date32Array::from(vec![-719_162]);
        assert_eq!(
            texts(&to_text_array(&dates, false).unwrap()),
            [Some("0001-01-01")]
        );
        let flags = BooleanArray::from(vec![true, false]);
        assert_eq!(
            texts(&to_text_array(&flags, false).unwrap()),
            [Some("true"), Some("false")]
        );
    }

    #[test]
    fn structs_render_as_objects() {
        let structs = StructArray::from(vec![
            (
                Arc::new(deltalake::arrow::datatypes::Field::new(
                    "space",
                    DataType::Utf8,
                    true,
                )),
                Arc::new(StringArray::from(vec!["s"])) as ArrayRef,
            ),
            (
                Arc::new(deltalake::arrow::datatypes::Field::new(
                    "externalId",
                    DataType::Utf8,
                    true,
                )),
                Arc::new(StringArray::from(vec!["a\"b"])) as ArrayRef,
            ),
        ]);
        assert_eq!(
            texts(&to_text_array(&structs, false).unwrap()),
            [Some(r#"{"space":"s","externalId":"a\"b"}"#)]
        );
    }

    #[test]
    fn json_elements_are_embedded_not_requoted() {
        let mut builder = ListBuilder::new(StringBuilder::new());
        builder.values().append_value(r#"{"a":[1,2]}"#);
        builder.values().append_value("\"x\"");
        builder.append(true);
        let lists = builder.finish();
        assert_eq!(
            texts(&list_to_json_text(&lists, true).unwrap()),
            [Some(r#"[{"a":[1,2]},"x"]"#)]
        );
        assert_eq!(
            texts(&list_to_json_text(&lists, false).unwrap()),
            [Some(r#"["{\"a\":[1,2]}","\"x\""]"#)]
        );
        let not_a_list = Int64Array::from(vec![1]);
        assert!(list_to_json_text(&not_a_list, false).is_err());
    }
}
