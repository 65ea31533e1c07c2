//! How a huge view's file is split into parts: the documented hash that assigns every
//! instance to one part, the routing of rows to their parts, and how many parts a view has.
//!
//! # The hash
//!
//! An instance (`space`, `externalId`) belongs to part
//!
//! ```text
//! XXH64(utf8(space) ++ 0x00 ++ utf8(externalId), seed 0) mod count
//! ```
//!
//! where `count` is a power of two, so `mod count` is the hash's lowest bits (the same
//! whether a reader's engine treats the 64-bit hash as signed or unsigned). XXH64 with seed 0
//! is the canonical XXH64 that every language has (Python `xxhash.xxh64_intdigest`, Athena
//! and Trino `xxhash64`); a 0 byte cannot occur in a CDF identifier, so the concatenation
//! is unambiguous. In Athena:
//! `bitwise_and(from_big_endian_64(xxhash64(to_utf8(space || chr(0) || externalId))), count - 1)`.
//!
//! # The count
//!
//! A view's file is one `nodes.parquet` until its rows exceed `part_rows`
//! (`extractor.snapshot.part-rows`); then it becomes the smallest power of two of parts
//! that holds the rows with at most `part_rows` per part ([`choose_count`]). The count is
//! decided from the rows already published (or, before the first publish, the rows of the
//! raw table's active files), and has hysteresis: it grows as soon as a part would exceed
//! `part_rows` on average, and shrinks only when the parts average under a quarter of it,
//! to a count that leaves them at most half full. A count change rebuilds the file in the
//! new form.

use std::hash::Hasher as _;

use deltalake::arrow::array::{RecordBatch, UInt32Array};
use deltalake::arrow::compute::take_record_batch;
use twox_hash::XxHash64;

use super::error::{SnapshotError, SnapshotResult};
use super::keys::KeyColumns;

/// The name of the hash in the manifest and the files' stamps.
pub(crate) const HASH_NAME: &str = "xxhash64(space 0x00 externalId, seed 0) mod count";

/// The largest part count: beyond it, parts grow past `part-rows` instead.
pub(crate) const MAX_PARTS: u32 = 1024;

/// The hash of an instance key (see the module documentation).
pub fn key_hash(space: &str, external_id: &str) -> u64 {
    let mut hasher = XxHash64::with_seed(0);
    hasher.write(space.as_bytes());
    hasher.write(&[0]);
    hasher.write(external_id.as_bytes());
    hasher.finish()
}

/// The part (0-based) of an instance key among `count` parts, a power of two.
pub fn part_of(space: &str, external_id: &str, count: u32) -> u32 {
    debug_assert!(count.is_power_of_two());
    // The mask keeps the lowest bits, which fit in a u32 because count does.
    (key_hash(space, external_id) & u64::from(count.max(1) - 1)) as u32
}

/// The smallest power of two of parts that holds `rows` with at most `part_rows` each
/// (at most [`MAX_PARTS`]); 1 is the single-file form.
fn needed(rows: u64, part_rows: u64) -> u32 {
    let parts = rows.div_ceil(part_rows.max(1)).max(1);
    let parts = parts.checked_next_power_of_two().unwrap_or(u64::MAX);
    u32::try_from(parts.min(u64::from(MAX_PARTS))).unwrap_or(MAX_PARTS)
}

/// The part count for a view that has `rows` rows and is published in `current` parts
/// (1: one file). Grows when the parts hold more than `part_rows` on average; shrinks when
/// they hold less than a quarter of it, to the count that leaves them at most half full.
/// Either change needs the rows to double or halve again before the next one.
pub(crate) fn choose_count(current: u32, rows: u64, part_rows: u64) -> u32 {
    let current = current.clamp(1, MAX_PARTS);
    let part_rows = part_rows.max(1);
    let capacity = u64::from(current).saturating_mul(part_rows);
    if rows > capacity {
        needed(rows, part_rows).max(current)
    } else if current > 1 && rows.saturating_mul(4) < capacity {
        needed(rows.saturating_mul(2), part_rows).min(current)
    } else {
        current
    }
}

/// Splits `batch` into the rows of each part in `wanted` (by part index), keeping their
/// order; rows of other parts are dropped. Parts without rows are left out.
pub(crate) fn split(
    batch: &RecordBatch,
    keys: &KeyColumns,
    count: u32,
    wanted: impl Fn(u32) -> bool,
) -> SnapshotResult<Vec<(u32, RecordBatch)>> {
    let view = keys.view(batch)?;
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); count as usize];
    for row in 0..batch.num_rows() {
        let (space, external_id) = view.key(row);
        let part = part_of(space, external_id, count);
        if wanted(part) {
            // Batches are far smaller than u32::MAX rows.
            rows[part as usize].push(row as u32);
        }
    }
    let mut out = Vec::new();
    for (part, indices) in rows.into_iter().enumerate() {
        if indices.is_empty() {
            continue;
        }
        let part = part as u32;
        if indices.len() == batch.num_rows() {
            out.push((part, batch.clone()));
            continue;
        }
        let taken = take_record_batch(batch, &UInt32Array::from(indices))
            .map_err(|e| SnapshotError::arrow("routing rows to their parts", e))?;
        out.push((part, taken));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{AsArray, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// XXH64 reference vectors (seed 0), so that readers in other languages can check
    /// their implementation against ours.
    #[test]
    fn the_hash_is_canonical_xxh64() {
        assert_eq!(XxHash64::oneshot(0, b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(XxHash64::oneshot(0, b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(XxHash64::oneshot(0, b"abc"), 0x44BC_2CF5_AD77_0999);
        // The key is space, a 0 byte, externalId.
        assert_eq!(key_hash("", ""), XxHash64::oneshot(0, b"\0"));
        assert_eq!(
            key_hash("sp", "pump-1"),
            XxHash64::oneshot(0, b"sp\0pump-1")
        );
        // Which makes ("a", "bc") and ("ab", "c") different keys.
        assert_ne!(key_hash("a", "bc"), key_hash("ab", "c"));
    }

    /// Fixed vectors of the whole assignment (also in docs/bi-tools.md), computed by an
    /// independent XXH64 (tests/readers/parts.py).
    #[test]
    fn parts_of_documented_keys() {
        assert_eq!(
            XxHash64::oneshot(0, b"Nobody inspects the spammish repetition"),
            0xFBCE_A83C_8A37_8BF1
        );
        let vectors: [(&str, &str, u64, u32, u32); 3] = [
            ("sp", "pump-0001", 0x9843_A610_21BA_4FDC, 12, 988),
            ("plant", "site-3", 0xA53D_075B_1D24_897B, 11, 379),
            (
                "my_space",
                "a-much-longer-external-id-than-32-bytes-0001",
                0x4DFA_BCBC_6631_C940,
                0,
                320,
            ),
        ];
        for (space, external_id, hash, of_16, of_1024) in vectors {
            assert_eq!(key_hash(space, external_id), hash, "{space}/{external_id}");
            assert_eq!(part_of(space, external_id, 16), of_16);
            assert_eq!(part_of(space, external_id, 1024), of_1024);
            assert_eq!(part_of(space, external_id, 1), 0);
        }
        // A count change keeps a key within the parts its old part splits into.
        for i in 0..200 {
            let id = format!("node-{i}");
            assert_eq!(part_of("s", &id, 32) % 16, part_of("s", &id, 16));
        }
    }

    #[test]
    fn keys_spread_evenly() {
        let count = 16u32;
        let mut sizes = vec![0u32; count as usize];
        for i in 0..16_000 {
            sizes[part_of("plant", &format!("pump-{i:06}"), count) as usize] += 1;
        }
        // 1000 expected per part; a fair hash stays well within ±15%.
        assert!(sizes.iter().all(|&n| (850..1150).contains(&n)), "{sizes:?}");
    }

    #[test]
    fn counts_grow_and_shrink_with_hysteresis() {
        let pr = 100;
        // Small views stay one file, up to part-rows.
        assert_eq!(choose_count(1, 0, pr), 1);
        assert_eq!(choose_count(1, 100, pr), 1);
        // Past it: the smallest power of two that holds the rows.
        assert_eq!(choose_count(1, 101, pr), 2);
        assert_eq!(choose_count(1, 1_000, pr), 16);
        assert_eq!(choose_count(4, 401, pr), 8);
        // Unchanged between a quarter and all of the capacity.
        assert_eq!(choose_count(16, 1_600, pr), 16);
        assert_eq!(choose_count(16, 400, pr), 16);
        assert_eq!(choose_count(2, 50, pr), 2);
        // Below a quarter: the count that leaves the parts at most half full.
        assert_eq!(choose_count(16, 399, pr), 8);
        assert_eq!(choose_count(16, 10, pr), 1);
        assert_eq!(choose_count(2, 49, pr), 1);
        // The next change in the same direction needs the rows to double (or halve).
        assert_eq!(choose_count(8, 399, pr), 8);
        assert_eq!(choose_count(8, 800, pr), 8);
        assert_eq!(choose_count(8, 801, pr), 16);
        // Capped.
        assert_eq!(choose_count(1, u64::MAX, pr), MAX_PARTS);
        assert_eq!(choose_count(MAX_PARTS, u64::MAX, 1), MAX_PARTS);
    }

    fn keyed(ids: &[&str]) -> (RecordBatch, KeyColumns) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("space", DataType::Utf8, false),
            Field::new("externalId", DataType::Utf8, false),
            Field::new("n", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["s"; ids.len()])),
                Arc::new(StringArray::from(ids.to_vec())),
                Arc::new(StringArray::from(
                    (0..ids.len()).map(|i| i.to_string()).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        (batch, KeyColumns::of(&schema, "t").unwrap())
    }

    #[test]
    fn rows_are_routed_to_their_parts_in_order() {
        let ids: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (batch, keys) = keyed(&refs);
        let routed = split(&batch, &keys, 8, |_| true).unwrap();
        let mut seen = 0;
        for (part, rows) in &routed {
            let external_ids = rows.column(1).as_string::<i32>();
            let positions = rows.column(2).as_string::<i32>();
            let mut last = -1i64;
            for i in 0..rows.num_rows() {
                assert_eq!(part_of("s", external_ids.value(i), 8), *part);
                let position: i64 = positions.value(i).parse().unwrap();
                assert!(position > last, "arrival order kept within a part");
                last = position;
            }
            seen += rows.num_rows();
        }
        assert_eq!(seen, 64);
        assert!(routed.len() > 1);

        // Only the wanted parts come out.
        let only = split(&batch, &keys, 8, |p| p == 3).unwrap();
        assert!(only.iter().all(|(p, _)| *p == 3));
        let expected = refs.iter().filter(|id| part_of("s", id, 8) == 3).count();
        assert_eq!(
            only.iter().map(|(_, b)| b.num_rows()).sum::<usize>(),
            expected
        );

        // One part: the batch as it is.
        let whole = split(&batch, &keys, 1, |_| true).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].1.num_rows(), 64);
    }
}
