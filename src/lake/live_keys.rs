//! The instances a stream's table holds live right now: the last row of each key among the
//! rows of the stream's current generation, in arrival order.
//!
//! The membership scan compares this with what CDF says matches the stream's query now. The
//! completion of a new generation's backfill uses the same reading to find the instances
//! the backfill no longer listed ([`LakeTable::superseded_keys`]).
//! Only the system columns are read (Parquet column projection), so a pass costs a small
//! part of reading the table. Arrival order is the one the snapshot uses: commit version,
//! position of the file in its commit, row in the file; a compacted file arrives at the
//! newest commit it was made from.
//!
//! A file whose commit is no longer in the retained log has no known stream or generation.
//! It is counted only when it can belong to nothing else: the table has no other stream and
//! the current generation's first commit is gone too (so the file may be part of it).

use std::collections::{BTreeMap, HashMap};

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Int64Type};
use deltalake::logstore::object_store::ObjectStoreExt as _;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::commit_metadata::CompactionInfo;
use super::error::{LakeError, LakeResult};
use super::table::{LakeTable, object_path};
use crate::schema::system;

pub(crate) use crate::schema::system::EXITED_TIME;

/// An instance key: (`space`, `externalId`).
pub(crate) type InstanceKey = (String, String);

/// The last row of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyState {
    /// `version` of the last row.
    pub(crate) version: i64,
    /// Whether the last row is a live row (neither a deletion nor an exit).
    pub(crate) live: bool,
    /// `createdTime` of the last row, kept on an exit row.
    pub(crate) created_time: i64,
    /// Node type or edge type of the last row.
    pub(crate) type_ref: Option<(String, String)>,
    /// Edge endpoints of the last row.
    pub(crate) ends: Option<Box<[(String, String); 2]>>,
}

/// Every key of one stream's current generation with its last row.
pub(crate) type LiveKeys = BTreeMap<InstanceKey, KeyState>;

/// Where the rows of one file sit in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Arrival {
    version: u64,
    position: u32,
}

/// The files of one stream, from the retained log.
struct StreamFiles {
    /// The stream's active files, each with its arrival and generation, and the active files
    /// no retained commit names (arrival and generation `None`).
    files: Vec<StreamFile>,
    /// Whether other streams (or compactions of them) committed to the table.
    other_streams: bool,
    /// Whether the commit that opened the generation asked for is in the retained log.
    generation_opened_in_log: bool,
}

struct StreamFile {
    arrival: Option<Arrival>,
    path: String,
    generation: Option<u64>,
}

impl LakeTable {
    /// The keys of `stream`'s rows of `generation`, each with its last row. Reads the
    /// retained log once and the system columns of the stream's active files.
    pub(crate) async fn live_keys(&self, stream: &str, generation: u64) -> LakeResult<LiveKeys> {
        let mut keys = LiveKeys::new();
        let Some(found) = self.stream_files(stream, generation).await? else {
            return Ok(keys);
        };
        let keep_unattributed = !found.other_streams && !found.generation_opened_in_log;
        let files = found
            .files
            .into_iter()
            .filter(|file| match file.generation {
                Some(file_generation) => file_generation == generation,
                None => file.arrival.is_none() && keep_unattributed,
            });
        for file in files {
            self.read_key_rows(&file.path, |key, state, _| {
                keys.insert(key, state);
            })
            .await?;
        }
        Ok(keys)
    }

    /// The keys that the completion of `stream`'s `generation` leaves behind: those whose
    /// last row (among all the stream's rows, in arrival order) is of an older generation
    /// and is live or has no `_arrival` value. The snapshot drops them once the generation is
    /// complete (a completed backfill lists every member); the sync writes an exit row for
    /// each with the completing commit, so that the raw rows alone say so too.
    ///
    /// `opening` says that the commit about to complete the generation is also its first
    /// (a backfill of one commit). Otherwise the result is empty when the generation's first
    /// commit is no longer in the retained log: files older than the log could then hold
    /// rows of this generation, and a key must never be marked as left while one of its rows
    /// of this generation may exist.
    pub(crate) async fn superseded_keys(
        &self,
        stream: &str,
        generation: u64,
        opening: bool,
    ) -> LakeResult<LiveKeys> {
        let mut latest: BTreeMap<InstanceKey, (KeyState, bool, bool)> = BTreeMap::new();
        let Some(found) = self.stream_files(stream, generation).await? else {
            return Ok(LiveKeys::new());
        };
        if !opening && !found.generation_opened_in_log {
            return Ok(LiveKeys::new());
        }
        // Unattributed files are older than the log, so older than this generation; they
        // are the stream's only when no other stream writes the table.
        let files = found
            .files
            .into_iter()
            .filter(|file| file.generation.is_some() || !found.other_streams);
        for file in files {
            let current = file.generation == Some(generation);
            self.read_key_rows(&file.path, |key, state, has_arrival| {
                latest.insert(key, (state, current, has_arrival));
            })
            .await?;
        }
        Ok(latest
            .into_iter()
            .filter(|(_, (state, current, has_arrival))| !current && (state.live || !has_arrival))
            .map(|(key, (state, _, _))| (key, state))
            .collect())
    }

    /// The stream's active files in arrival order (unattributed ones first); `None` when the
    /// table does not exist yet.
    async fn stream_files(&self, stream: &str, generation: u64) -> LakeResult<Option<StreamFiles>> {
        if !self.exists() {
            return Ok(None);
        }
        let commits = self.retained_changes().await?;
        let mut origins: HashMap<String, (Arrival, Option<String>, Option<u64>)> = HashMap::new();
        let mut other_streams = false;
        let mut generation_opened_in_log = false;
        for commit in &commits {
            let (app, file_generation, version) =
                if let Some(compaction) = CompactionInfo::of_commit(commit) {
                    (
                        Some(compaction.app_id),
                        Some(compaction.generation),
                        compaction.last_version,
                    )
                } else if let Some(info) = &commit.stream_commit {
                    let file_generation = info.metadata.stream_generation();
                    if info.app_id == stream
                        && file_generation == Some(generation)
                        && info.metadata.opens_generation()
                    {
                        generation_opened_in_log = true;
                    }
                    (Some(info.app_id.clone()), file_generation, commit.version)
                } else {
                    (None, None, commit.version)
                };
            other_streams |= app.as_deref().is_some_and(|app| app != stream);
            for (position, add) in commit.adds.iter().enumerate() {
                let arrival = Arrival {
                    version,
                    position: u32::try_from(position).unwrap_or(u32::MAX),
                };
                origins.insert(add.path.clone(), (arrival, app.clone(), file_generation));
            }
        }
        let mut files = Vec::new();
        for file in self.active_files()? {
            match origins.get(&file.path) {
                Some((arrival, Some(app), file_generation)) if app == stream => {
                    files.push(StreamFile {
                        arrival: Some(*arrival),
                        path: file.path,
                        // A commit of the stream that names no generation: its rows count
                        // like any other of the stream's, but belong to none to compare.
                        generation: Some(file_generation.unwrap_or(0)),
                    });
                }
                Some(_) => {}
                None => files.push(StreamFile {
                    arrival: None,
                    path: file.path,
                    generation: None,
                }),
            }
        }
        // Unattributed files (`None`) are older than anything in the log.
        files.sort_by(|a, b| (a.arrival, &a.path).cmp(&(b.arrival, &b.path)));
        Ok(Some(StreamFiles {
            files,
            other_streams,
            generation_opened_in_log,
        }))
    }

    /// Reads the system columns of one data file and hands each row to `on_row` in order:
    /// its key, its state and whether it has an `_arrival` value.
    async fn read_key_rows(
        &self,
        path: &str,
        mut on_row: impl FnMut(InstanceKey, KeyState, bool),
    ) -> LakeResult<()> {
        let url = self.url.to_string();
        let store = self.table.object_store();
        let bytes = store
            .get(&object_path(path))
            .await
            .map_err(|e| LakeError::delta(&url, "reading a data file", e.into()))?
            .bytes()
            .await
            .map_err(|e| LakeError::delta(&url, "reading a data file", e.into()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| parquet_error(&url, path, e))?;
        let wanted: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| KEY_COLUMNS.contains(&f.name().as_str()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(8192)
            .build()
            .map_err(|e| parquet_error(&url, path, e))?;
        for batch in reader {
            let batch = batch
                .map_err(|e| LakeError::arrow(&url, format!("reading data file {path}"), e))?;
            apply_rows(&batch, &mut on_row).map_err(|column| LakeError::UnreadableDataFile {
                url: url.clone(),
                path: path.to_owned(),
                detail: format!("no usable `{column}` column"),
            })?;
        }
        Ok(())
    }
}

impl LakeTable {
    /// What each commit still in the log did, oldest first: log cleanup removes the oldest
    /// commit files, so the readable commits are the versions after the newest missing one.
    async fn retained_changes(&self) -> LakeResult<Vec<super::VersionChanges>> {
        let mut after = None;
        loop {
            match self.changes_since(after).await {
                Err(LakeError::LogUnavailable { version, .. }) if Some(version) != after => {
                    after = Some(version);
                }
                other => return other,
            }
        }
    }
}

const KEY_COLUMNS: [&str; 14] = [
    system::SPACE,
    system::EXTERNAL_ID,
    system::VERSION,
    system::CREATED_TIME,
    system::DELETED_TIME,
    EXITED_TIME,
    system::TYPE_SPACE,
    system::TYPE_EXTERNAL_ID,
    system::START_NODE_SPACE,
    system::START_NODE_EXTERNAL_ID,
    system::END_NODE_SPACE,
    system::END_NODE_EXTERNAL_ID,
    system::LAST_UPDATED_TIME,
    system::ARRIVAL,
];

/// Hands the rows of one batch to `on_row` in order, with whether each has an `_arrival`
/// value. Fails with the name of a missing key column.
fn apply_rows(
    batch: &RecordBatch,
    on_row: &mut impl FnMut(InstanceKey, KeyState, bool),
) -> Result<(), &'static str> {
    let text = |name: &'static str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>().cloned())
    };
    let int = |name: &'static str| {
        batch
            .column_by_name(name)
            .filter(|c| c.data_type() == &DataType::Int64)
            .map(|c| c.as_primitive::<Int64Type>().clone())
    };
    let space = text(system::SPACE).ok_or(system::SPACE)?;
    let external_id = text(system::EXTERNAL_ID).ok_or(system::EXTERNAL_ID)?;
    let version = int(system::VERSION).ok_or(system::VERSION)?;
    let created = int(system::CREATED_TIME);
    let deleted = int(system::DELETED_TIME);
    let exited = int(EXITED_TIME);
    let pair = |a: &'static str, b: &'static str| text(a).zip(text(b));
    let type_ref = pair(system::TYPE_SPACE, system::TYPE_EXTERNAL_ID);
    let start = pair(system::START_NODE_SPACE, system::START_NODE_EXTERNAL_ID);
    let end = pair(system::END_NODE_SPACE, system::END_NODE_EXTERNAL_ID);
    let arrival = text(system::ARRIVAL);
    let reference = |columns: &Option<(_, _)>, row: usize| -> Option<(String, String)> {
        let (s, x): &(
            deltalake::arrow::array::StringArray,
            deltalake::arrow::array::StringArray,
        ) = columns.as_ref()?;
        (s.is_valid(row) && x.is_valid(row))
            .then(|| (s.value(row).to_owned(), x.value(row).to_owned()))
    };
    let valid = |column: &Option<deltalake::arrow::array::Int64Array>, row: usize| {
        column.as_ref().is_some_and(|c| c.is_valid(row))
    };
    for row in 0..batch.num_rows() {
        if !space.is_valid(row) || !external_id.is_valid(row) {
            continue;
        }
        let ends = reference(&start, row)
            .zip(reference(&end, row))
            .map(|(s, e)| Box::new([s, e]));
        let state = KeyState {
            version: if version.is_valid(row) {
                version.value(row)
            } else {
                0
            },
            live: !valid(&deleted, row) && !valid(&exited, row),
            created_time: created
                .as_ref()
                .filter(|c| c.is_valid(row))
                .map_or(0, |c| c.value(row)),
            type_ref: reference(&type_ref, row),
            ends,
        };
        on_row(
            (
                space.value(row).to_owned(),
                external_id.value(row).to_owned(),
            ),
            state,
            arrival.as_ref().is_some_and(|a| a.is_valid(row)),
        );
    }
    Ok(())
}

fn parquet_error(
    url: &str,
    path: &str,
    error: deltalake::parquet::errors::ParquetError,
) -> LakeError {
    LakeError::UnreadableDataFile {
        url: url.to_owned(),
        path: path.to_owned(),
        detail: format!("not readable as Parquet: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{ArrayRef, Int64Array, StringArray};
    use deltalake::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch(rows: &[(&str, i64, Option<i64>, Option<i64>)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("space", DataType::Utf8, false),
            Field::new("externalId", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new("deletedTime", DataType::Int64, true),
            Field::new(EXITED_TIME, DataType::Int64, true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["s"; rows.len()])),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).unwrap()
    }

    fn apply(batch: &RecordBatch, keys: &mut LiveKeys) -> Result<(), &'static str> {
        apply_rows(batch, &mut |key, state, _| {
            keys.insert(key, state);
        })
    }

    #[test]
    fn the_last_row_of_a_key_decides_and_deletions_and_exits_are_not_live() {
        let mut keys = LiveKeys::new();
        apply(
            &batch(&[
                ("a", 1, None, None),
                ("b", 1, None, None),
                ("c", 1, None, None),
            ]),
            &mut keys,
        )
        .unwrap();
        apply(
            &batch(&[
                ("a", 2, None, None),
                ("b", 1, Some(5), None),
                ("c", 1, None, Some(6)),
            ]),
            &mut keys,
        )
        .unwrap();
        let live: Vec<(&str, i64, bool)> = keys
            .iter()
            .map(|((_, x), s)| (x.as_str(), s.version, s.live))
            .collect();
        assert_eq!(live, [("a", 2, true), ("b", 1, false), ("c", 1, false)]);
    }
}
