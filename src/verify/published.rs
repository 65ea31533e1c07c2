//! The published side of a file: its manifest entry, each object's footer stamp and row
//! count, and one pass over its rows that picks the sampled ones.
//!
//! A file in parts is read as the concatenation of its parts in part order, so a row's
//! position is its place in that sequence and a uniform sample of positions is a uniform
//! sample of the file's rows.

use std::collections::{BTreeSet, HashMap, HashSet};

use deltalake::arrow::array::{Array, AsArray as _, RecordBatch, UInt32Array};
use deltalake::arrow::compute::take_record_batch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use futures::TryStreamExt as _;

use super::cdf_side::Key;
use crate::failure::Failure;
use crate::snapshot::error::SnapshotError;
use crate::snapshot::manifest::FileEntry;
use crate::snapshot::reader::{self, ObjectVersion};
use crate::snapshot::stamp::{FileStamp, Stamped};

/// One object of a published file, as its footer describes it.
#[derive(Debug, Clone)]
pub struct PublishedObject {
    /// Relative to the destination prefix.
    pub path: String,
    /// The manifest's table version for this object (the part's own, for a part).
    pub entry_version: Option<u64>,
    /// The manifest's row count for this object.
    pub entry_rows: u64,
    /// The footer's stamp.
    pub stamp: Stamped,
    /// Rows the footer counts.
    pub rows: u64,
    /// Object size, saving a HEAD when it is read.
    pub size: u64,
}

/// Reads the footer of every object the manifest entry names.
pub async fn objects(
    store: &ObjectStoreRef,
    dir: &str,
    entry: &FileEntry,
) -> Result<Vec<PublishedObject>, Failure> {
    let mut out = Vec::new();
    for (path, part) in entry.objects(dir) {
        let meta = store
            .head(&reader::object_path(&path))
            .await
            .map_err(|e| SnapshotError::store("checking", &path, e).to_failure())?;
        let footer = reader::footer(
            store,
            &path,
            ObjectVersion {
                size: meta.size,
                e_tag: None,
            },
        )
        .await
        .map_err(|e| e.to_failure())?;
        let rows = u64::try_from(footer.file_metadata().num_rows()).unwrap_or(0);
        out.push(PublishedObject {
            entry_version: part.table_version,
            entry_rows: part.rows,
            stamp: FileStamp::of(&footer),
            rows,
            size: meta.size,
            path,
        });
    }
    Ok(out)
}

/// The rows a scan picked: each as a one-row batch of the file's schema, by key.
#[derive(Debug, Default)]
pub struct PickedRows {
    /// Row of the file by instance key.
    pub rows: HashMap<Key, RecordBatch>,
    /// The keys picked because they were at a sampled position.
    pub sampled: Vec<Key>,
    /// The file's schema (of its first object).
    pub schema: Option<SchemaRef>,
}

/// Reads the file once and keeps the rows at `positions` (the file's sample) and the rows
/// of `wanted` keys (CDF's sample), whichever of them the file has.
pub async fn pick_rows(
    store: &ObjectStoreRef,
    objects: &[PublishedObject],
    positions: &BTreeSet<u64>,
    wanted: &HashSet<Key>,
) -> Result<PickedRows, Failure> {
    let mut picked = PickedRows::default();
    let mut offset = 0u64;
    for object in objects {
        let opened = reader::open(store, &object.path, Some(object.size))
            .await
            .map_err(|e| e.to_failure())?;
        if picked.schema.is_none() {
            picked.schema = Some(opened.schema().clone());
        }
        let mut batches = reader::batches(opened, &object.path);
        while let Some(batch) = batches.try_next().await.map_err(|e| e.to_failure())? {
            let rows = batch.num_rows() as u64;
            pick_from_batch(&batch, offset, positions, wanted, &mut picked).map_err(|message| {
                Failure::new(
                    crate::failure::Cause::LakeInconsistent,
                    format!("{}: {message}", object.path),
                )
            })?;
            offset += rows;
        }
    }
    Ok(picked)
}

fn pick_from_batch(
    batch: &RecordBatch,
    offset: u64,
    positions: &BTreeSet<u64>,
    wanted: &HashSet<Key>,
    picked: &mut PickedRows,
) -> Result<(), String> {
    let text = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>().cloned())
            .ok_or_else(|| format!("the published file has no text column `{name}`"))
    };
    let (space, external_id) = (text("space")?, text("externalId")?);
    let end = offset + batch.num_rows() as u64;
    // Batches hold far fewer than u32::MAX rows.
    let mut take: Vec<(u32, bool)> = positions
        .range(offset..end)
        .map(|p| ((p - offset) as u32, true))
        .collect();
    if !wanted.is_empty() {
        let at_positions: HashSet<u32> = take.iter().map(|(row, _)| *row).collect();
        for row in 0..batch.num_rows() {
            if space.is_null(row)
                || external_id.is_null(row)
                || at_positions.contains(&(row as u32))
            {
                continue;
            }
            let key = (
                space.value(row).to_owned(),
                external_id.value(row).to_owned(),
            );
            if wanted.contains(&key) {
                take.push((row as u32, false));
            }
        }
    }
    if take.is_empty() {
        return Ok(());
    }
    let indices = UInt32Array::from(take.iter().map(|(r, _)| *r).collect::<Vec<_>>());
    let taken = take_record_batch(batch, &indices).map_err(|e| e.to_string())?;
    for (i, (row, sampled)) in take.iter().enumerate() {
        let row = *row as usize;
        let key = (
            space.value(row).to_owned(),
            external_id.value(row).to_owned(),
        );
        if *sampled {
            picked.sampled.push(key.clone());
        }
        picked.rows.insert(key, taken.slice(i, 1));
    }
    Ok(())
}
