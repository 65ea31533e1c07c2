//! Which columns of a published file get a dictionary, predicted from the file's first rows.
//!
//! Parquet's writer starts every column chunk with a dictionary and gives it up only once the
//! dictionary outgrows its page limit. On columns whose values rarely repeat (measurements,
//! timestamps, names, ids of other instances) it hashes every value of the row group before
//! it gives up, or keeps a dictionary as large as the values themselves: in a full rebuild of
//! the bench's 20 properties that was a quarter of all CPU, for no smaller file. So a file
//! decides per column, on its first batch, whether a dictionary can pay: it counts the
//! distinct values of the sample, estimates from them how many distinct values a row group
//! holds, and keeps the dictionary only where it stays under the writer's limit and is
//! smaller than the plain values. Columns that repeat (`space`, status codes, units, dates,
//! relations to a few hundred sites) keep it.
//!
//! The decision depends on the file's first rows only, so a file's bytes still depend on its
//! rows only, however it was produced (a rebuild, a merge, a unit).

use std::collections::HashSet;
use std::hash::Hash;

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::DataType;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;

/// Values sampled per column: enough to tell a repeating column from a distinct one.
const SAMPLE_ROWS: usize = 8192;

/// Fewer sampled values than this tell too little; the writer's own rule decides then.
const MIN_SAMPLE: usize = 1024;

/// `properties` with the dictionary turned off for every top-level column of `batch` (the
/// file's first rows) where it cannot pay in row groups of `row_group_rows` rows. Columns
/// that are nested, of a type without a dictionary, or with too few values in the sample
/// keep what `properties` says.
pub(crate) fn fitted(
    properties: WriterProperties,
    batch: &RecordBatch,
    row_group_rows: usize,
) -> WriterProperties {
    let schema = batch.schema();
    let costly: Vec<ColumnPath> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter_map(|(field, column)| {
            let path = ColumnPath::from(field.name().as_str());
            if !properties.dictionary_enabled(&path) {
                return None;
            }
            let sample = Sample::of(column.as_ref())?;
            let pays = sample.dictionary_pays(
                row_group_rows,
                properties.column_dictionary_page_size_limit(&path),
            );
            (!pays).then_some(path)
        })
        .collect();
    if costly.is_empty() {
        return properties;
    }
    costly
        .into_iter()
        .fold(properties.into_builder(), |builder, path| {
            builder.set_column_dictionary_enabled(path, false)
        })
        .build()
}

/// What the first values of a column say about its repetition.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    /// Non-null values sampled.
    values: usize,
    /// Distinct among them.
    distinct: usize,
    /// Mean bytes of a value in the plain encoding (length prefix included).
    width: f64,
}

impl Sample {
    /// The sample of a flat column whose type Parquet can dictionary-encode; `None` for other
    /// columns, or when too few values are not null.
    fn of(column: &dyn Array) -> Option<Self> {
        let rows = column.len().min(SAMPLE_ROWS);
        let column = column.slice(0, rows);
        let valid = (0..rows).filter(|&i| column.is_valid(i));
        let (values, distinct, bytes) = match column.data_type() {
            DataType::Utf8 => count(
                valid.map(|i| column.as_string::<i32>().value(i).as_bytes()),
                4,
            ),
            DataType::LargeUtf8 => count(
                valid.map(|i| column.as_string::<i64>().value(i).as_bytes()),
                4,
            ),
            DataType::Binary => count(valid.map(|i| column.as_binary::<i32>().value(i)), 4),
            DataType::LargeBinary => count(valid.map(|i| column.as_binary::<i64>().value(i)), 4),
            kind if kind.is_primitive() => {
                let width = kind.primitive_width()?;
                let data = column.to_data();
                let buffer = data.buffers().first()?;
                let start = data.offset() * width;
                let bytes = buffer.as_slice().get(start..start + rows * width)?;
                count(valid.map(|i| &bytes[i * width..(i + 1) * width]), 0)
            }
            _ => return None,
        };
        (values >= MIN_SAMPLE).then(|| Sample {
            values,
            distinct,
            width: bytes as f64 / values as f64,
        })
    }

    /// Whether a dictionary over `rows` rows stays under `limit` bytes (or the writer would
    /// give it up) and is smaller than the plain values: the dictionary's values plus one
    /// index of ⌈log2 distinct⌉ bits per row.
    fn dictionary_pays(&self, rows: usize, limit: usize) -> bool {
        let rows = rows.max(self.values) as f64;
        let distinct = self.distinct_in(rows);
        let dictionary = distinct * self.width;
        let index_bits = distinct.max(2.0).log2().ceil();
        dictionary < limit as f64 && dictionary + rows * index_bits / 8.0 < rows * self.width
    }

    /// The distinct values expected among `rows` rows of the same column: the `d` that
    /// solves `distinct = d · (1 − e^(−values/d))` (the distinct count of `values` draws from
    /// `d` equally likely values), at most `rows`.
    fn distinct_in(&self, rows: f64) -> f64 {
        let (n, seen) = (self.values as f64, self.distinct as f64);
        if self.distinct >= self.values {
            return rows;
        }
        let expected = |d: f64| d * (1.0 - (-n / d).exp());
        // `expected` grows with d from `seen`'s side towards n: bisect on d.
        let (mut low, mut high) = (seen, rows.max(seen));
        if expected(high) <= seen {
            return high;
        }
        for _ in 0..64 {
            let mid = (low + high) / 2.0;
            if expected(mid) < seen {
                low = mid;
            } else {
                high = mid;
            }
        }
        high
    }
}

/// Values, distinct values and plain-encoded bytes (each value plus `prefix`) of `values`.
fn count<'a, T: Hash + Eq + AsRef<[u8]> + 'a>(
    values: impl Iterator<Item = T>,
    prefix: usize,
) -> (usize, usize, usize) {
    let mut seen = HashSet::with_capacity(SAMPLE_ROWS);
    let (mut n, mut bytes) = (0, 0);
    for value in values {
        n += 1;
        bytes += value.as_ref().len() + prefix;
        seen.insert(value);
    }
    (n, seen.len(), bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, StringArray};
    use deltalake::arrow::datatypes::{Field, Schema};

    use super::*;

    const GROUP: usize = 128 * 1024;
    const LIMIT: usize = 1024 * 1024;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, array)| array).collect(),
        )
        .unwrap()
    }

    fn enabled(properties: &WriterProperties, column: &str) -> bool {
        properties.dictionary_enabled(&ColumnPath::from(column))
    }

    /// Distinct values lose the dictionary, repeating ones keep it: what the writer's own
    /// fallback would have ended with, decided before any value is hashed.
    #[test]
    fn keeps_dictionaries_only_where_values_repeat() {
        let n = 8192;
        let scattered = |i: u64| i.wrapping_mul(2_654_435_761) % 1_000_000_007;
        let batch = batch(vec![
            (
                "space",
                Arc::new(StringArray::from(vec!["plant"; n])) as ArrayRef,
            ),
            (
                "name",
                Arc::new(StringArray::from_iter_values(
                    (0..n as u64).map(|i| format!("pump {}", scattered(i))),
                )),
            ),
            (
                "status",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| ["running", "stopped", "maintenance"][i % 3]),
                )),
            ),
            (
                "pressure",
                Arc::new(Float64Array::from_iter_values(
                    (0..n as u64).map(|i| scattered(i) as f64 * 0.01),
                )),
            ),
            (
                "counter",
                Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i % 500))),
            ),
            (
                "installed",
                Arc::new(Date32Array::from_iter_values(
                    (0..n as i32).map(|i| i % 3000),
                )),
            ),
            ("unset", Arc::new(Int64Array::from(vec![None::<i64>; n]))),
        ]);
        let properties = fitted(WriterProperties::builder().build(), &batch, GROUP);
        for column in ["space", "status", "counter", "installed", "unset"] {
            assert!(enabled(&properties, column), "{column}");
        }
        for column in ["name", "pressure"] {
            assert!(!enabled(&properties, column), "{column}");
        }
    }

    #[test]
    fn a_column_turned_off_stays_off_and_small_samples_change_nothing() {
        let off = WriterProperties::builder()
            .set_column_dictionary_enabled(ColumnPath::from("space"), false)
            .build();
        let few = batch(vec![(
            "space",
            Arc::new(StringArray::from(vec!["plant"; 100])) as ArrayRef,
        )]);
        assert!(!enabled(&fitted(off, &few, GROUP), "space"));
        let distinct = batch(vec![(
            "id",
            Arc::new(Int64Array::from_iter_values(0..100)) as ArrayRef,
        )]);
        let properties = fitted(WriterProperties::builder().build(), &distinct, GROUP);
        assert!(enabled(&properties, "id"));
    }

    /// The estimate follows the number of distinct values of the whole row group, not of the
    /// sample: 20,000 values repeated over a row group fill a sample of 8,192 rows with about
    /// 6,700 distinct ones, yet a dictionary pays there.
    #[test]
    fn estimates_the_distinct_values_of_a_row_group() {
        for truth in [10.0, 3_000.0, 20_000.0, 60_000.0] {
            let n = 8192.0_f64;
            let seen = (truth * (1.0 - (-n / truth).exp())).round() as usize;
            let sample = Sample {
                values: 8192,
                distinct: seen,
                width: 8.0,
            };
            let estimate = sample.distinct_in(GROUP as f64);
            assert!(
                (estimate - truth).abs() / truth < 0.05,
                "{truth}: {estimate}"
            );
        }
        let repeating = Sample {
            values: 8192,
            distinct: 6_700,
            width: 8.0,
        };
        assert!(repeating.dictionary_pays(GROUP, LIMIT));
        let unique = Sample {
            values: 8192,
            distinct: 8192,
            width: 8.0,
        };
        assert!(!unique.dictionary_pays(GROUP, LIMIT));
        // Long repeating strings whose dictionary outgrows the writer's limit: it would give
        // the dictionary up anyway.
        let long = Sample {
            values: 8192,
            distinct: 6_700,
            width: 80.0,
        };
        assert!(!long.dictionary_pays(GROUP, LIMIT));
    }
}
