//! Comparing a published row with the row CDF's instance gives today: value by value and
//! type by type, column by column of the published file.
//!
//! CDF's side is built by the same code path as the lake's: the sync's flattener with the
//! stream's schema, aligned to the raw table's schema, then put into the publish form
//! ([`crate::schema::publish_batch`]: lists and `json` as JSON text). Two cells are equal
//! when their Arrow types are equal and their values are equal as Arrow compares them:
//! floats bit for bit (so a NaN equals the same NaN, and `-0.0` differs from `0.0`),
//! timestamps and dates by their stored integers, text (JSON text included) byte for byte.

use deltalake::arrow::array::{Array, ArrayRef, RecordBatch};
use deltalake::arrow::util::display::array_value_to_string;

/// How one column of a published row differs from CDF's.
#[derive(Debug, Clone, PartialEq)]
pub struct CellDifference {
    /// The column.
    pub column: String,
    /// The lake's cell (its value, or its type when the types differ).
    pub lake: String,
    /// CDF's cell, likewise.
    pub cdf: String,
}

/// The columns in which row `lake_row` of `lake` differs from row `cdf_row` of `cdf`,
/// in the order of `lake`'s columns. A column of the file that CDF's row lacks differs.
pub fn differences(
    lake: &RecordBatch,
    lake_row: usize,
    cdf: &RecordBatch,
    cdf_row: usize,
) -> Vec<CellDifference> {
    let mut out = Vec::new();
    for (field, lake_column) in lake.schema().fields().iter().zip(lake.columns()) {
        let name = field.name();
        let Some(cdf_column) = cdf.column_by_name(name) else {
            out.push(CellDifference {
                column: name.clone(),
                lake: cell(lake_column, lake_row),
                cdf: "(no such column)".to_owned(),
            });
            continue;
        };
        if let Some(difference) = cell_difference(name, lake_column, lake_row, cdf_column, cdf_row)
        {
            out.push(difference);
        }
    }
    out
}

/// How one cell differs, if it does.
pub fn cell_difference(
    column: &str,
    lake: &ArrayRef,
    lake_row: usize,
    cdf: &ArrayRef,
    cdf_row: usize,
) -> Option<CellDifference> {
    if lake.data_type() != cdf.data_type() {
        return Some(CellDifference {
            column: column.to_owned(),
            lake: format!("type {}", lake.data_type()),
            cdf: format!("type {}", cdf.data_type()),
        });
    }
    let a = lake.slice(lake_row, 1).to_data();
    let b = cdf.slice(cdf_row, 1).to_data();
    (a != b).then(|| CellDifference {
        column: column.to_owned(),
        lake: cell(lake, lake_row),
        cdf: cell(cdf, cdf_row),
    })
}

/// A cell as text for the report; `null` for a null.
fn cell(array: &ArrayRef, row: usize) -> String {
    if array.is_null(row) {
        return "null".to_owned();
    }
    array_value_to_string(array, row).unwrap_or_else(|e| format!("(unprintable: {e})"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{
        BooleanArray, Date32Array, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn one(a: ArrayRef, b: ArrayRef) -> Option<CellDifference> {
        cell_difference("c", &a, 0, &b, 0)
    }

    #[test]
    fn equal_cells_of_every_type_are_equal_and_changed_ones_differ() {
        let ts = |v: i64| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(vec![v]).with_timezone("UTC"))
        };
        let cases: Vec<(ArrayRef, ArrayRef, ArrayRef)> = vec![
            (
                Arc::new(StringArray::from(vec!["a"])),
                Arc::new(StringArray::from(vec!["a"])),
                Arc::new(StringArray::from(vec!["b"])),
            ),
            (
                Arc::new(Int32Array::from(vec![1])),
                Arc::new(Int32Array::from(vec![1])),
                Arc::new(Int32Array::from(vec![2])),
            ),
            (
                Arc::new(Int64Array::from(vec![i64::MAX])),
                Arc::new(Int64Array::from(vec![i64::MAX])),
                Arc::new(Int64Array::from(vec![i64::MAX - 1])),
            ),
            (
                Arc::new(Float32Array::from(vec![1.5f32])),
                Arc::new(Float32Array::from(vec![1.5f32])),
                Arc::new(Float32Array::from(vec![1.25f32])),
            ),
            (
                Arc::new(BooleanArray::from(vec![true])),
                Arc::new(BooleanArray::from(vec![true])),
                Arc::new(BooleanArray::from(vec![false])),
            ),
            (ts(1_000_000), ts(1_000_000), ts(1_000_001)),
            (
                Arc::new(Date32Array::from(vec![19_000])),
                Arc::new(Date32Array::from(vec![19_000])),
                Arc::new(Date32Array::from(vec![19_001])),
            ),
            // JSON text (json, lists and direct relations in the publish form).
            (
                Arc::new(StringArray::from(vec![
                    r#"[{"space":"s","externalId":"x"}]"#,
                ])),
                Arc::new(StringArray::from(vec![
                    r#"[{"space":"s","externalId":"x"}]"#,
                ])),
                Arc::new(StringArray::from(vec![
                    r#"[{"space":"s","externalId":"y"}]"#,
                ])),
            ),
        ];
        for (lake, same, other) in cases {
            assert_eq!(one(lake.clone(), same), None, "{:?}", lake.data_type());
            let difference = one(lake.clone(), other).expect("differs");
            assert_eq!(difference.column, "c");
            assert_ne!(difference.lake, difference.cdf);
        }
    }

    #[test]
    fn floats_compare_bit_for_bit_and_nulls_only_equal_nulls() {
        let f = |v: Option<f64>| -> ArrayRef { Arc::new(Float64Array::from(vec![v])) };
        assert_eq!(one(f(Some(f64::NAN)), f(Some(f64::NAN))), None);
        assert!(one(f(Some(f64::NAN)), f(Some(1.0))).is_some());
        assert!(one(f(Some(0.0)), f(Some(-0.0))).is_some());
        assert_eq!(one(f(None), f(None)), None);
        let d = one(f(None), f(Some(2.5))).expect("null differs from a value");
        assert_eq!((d.lake.as_str(), d.cdf.as_str()), ("null", "2.5"));
    }

    #[test]
    fn another_type_differs_even_with_the_same_value() {
        let d = one(
            Arc::new(Int32Array::from(vec![1])),
            Arc::new(Int64Array::from(vec![1])),
        )
        .expect("types differ");
        assert_eq!(d.lake, "type Int32");
        assert_eq!(d.cdf, "type Int64");
        let micros: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![1]).with_timezone("UTC"));
        let naive: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1]));
        assert!(one(micros, naive).is_some());
    }

    #[test]
    fn rows_compare_by_the_file_s_columns() {
        let schema = |names: &[&str]| {
            Arc::new(Schema::new(
                names
                    .iter()
                    .map(|n| Field::new(*n, DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            ))
        };
        let lake = RecordBatch::try_new(
            schema(&["a", "b"]),
            vec![
                Arc::new(StringArray::from(vec!["x", "y"])),
                Arc::new(StringArray::from(vec!["1", "2"])),
            ],
        )
        .unwrap();
        let cdf = RecordBatch::try_new(
            schema(&["b", "extra"]),
            vec![
                Arc::new(StringArray::from(vec!["2"])),
                Arc::new(StringArray::from(vec!["z"])),
            ],
        )
        .unwrap();
        let found = differences(&lake, 1, &cdf, 0);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].column, "a");
        assert_eq!(found[0].cdf, "(no such column)");
    }
}
