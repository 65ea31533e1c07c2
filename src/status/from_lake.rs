//! `status` when CDF cannot be reached: everything the lake alone tells.
//!
//! Without CDF there are neither the RAW state rows nor the model definitions, so the
//! streams and views are not the configured ones but those the lake holds: every raw Delta
//! table under `raw/` (each stream's figures from the checkpoint in its newest commit, the
//! copy a sync continues from when RAW says less) and every `_manifest.json` under
//! `publish/` (its files, their ages and whether they lag their table). The report says
//! what it could not read, and why.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::path::Path as ObjectPath;
use futures::{StreamExt, TryStreamExt as _, stream};

use super::report::{
    Agreement, CheckpointSource, ManifestPresence, Progress, StatusReport, StreamStatus, ViewStatus,
};
use super::{
    CONCURRENT_READS, StatusOptions, TableSlot, file_status, membership_status, now_ms, open_table,
    progress, read_store, redact, rfc3339,
};
use crate::context::Context;
use crate::failure::{Cause, Failure};
use crate::lake::{InstanceKind, LakeTable, ModelRef, Phase, StreamCheckpoint};
use crate::snapshot::manifest::{self, ManifestState};

/// Commits read back from a table's newest to find its streams' last checkpoints.
const COMMITS_SCANNED: u64 = 64;

/// A raw table found under `raw/`: `raw/<space>/<model>/<version>/views/<view>/<kind>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FoundTable {
    path: String,
    model: (String, String, String),
    view: String,
    kind: InstanceKind,
}

impl FoundTable {
    fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.split('/').collect();
        let ["raw", space, model, version, "views", view, kind] = parts.as_slice() else {
            return None;
        };
        let kind = match *kind {
            "nodes" => InstanceKind::Nodes,
            "edges" => InstanceKind::Edges,
            _ => return None,
        };
        Some(Self {
            path: path.to_owned(),
            model: (
                (*space).to_owned(),
                (*model).to_owned(),
                (*version).to_owned(),
            ),
            view: (*view).to_owned(),
            kind,
        })
    }

    fn model_label(&self) -> String {
        let (space, model, version) = &self.model;
        format!("{space}:{model}/{version}")
    }

    fn selected(&self, options: &StatusOptions) -> bool {
        let (space, model, version) = &self.model;
        ModelRef::new(space, model, version)
            .is_ok_and(|model| options.selection.selects(&model, &self.view))
    }
}

/// The report of the lake alone; `why` says why CDF was not read.
pub(super) async fn gather(context: &Context, options: &StatusOptions, why: &str) -> StatusReport {
    let now = now_ms();
    let extractor = &context.config.extractor;
    let database = &extractor.state_store.database;
    let state_table = &extractor.state_store.table;
    let destination = &context.destination;
    let store = read_store(destination);
    let mut plan_errors = vec![Failure::new(
        Cause::CdfUnavailable,
        format!(
            "the model definitions were not read ({why}): the streams and views below are those the lake holds"
        ),
    )];
    let (tables, manifests) = match &store {
        Ok(Some(store)) => match list_lake(store).await {
            Ok(found) => found,
            Err(error) => {
                plan_errors.push(Failure::new(
                    Cause::LakeUnavailable,
                    format!("listing the lake: {error}"),
                ));
                Default::default()
            }
        },
        Ok(None) => Default::default(),
        Err(error) => {
            plan_errors.push(Failure::new(Cause::LakeUnavailable, error.clone()));
            Default::default()
        }
    };
    let tables: Vec<FoundTable> = tables
        .into_values()
        .filter(|t| t.selected(options))
        .collect();
    let opened: HashMap<String, TableSlot> = stream::iter(tables.iter())
        .map(|found| async move {
            let slot = match destination.directory_url(&found.path) {
                Ok(url) => open_table(destination, url).await,
                Err(error) => Err(error.to_string()),
            };
            (found.path.clone(), slot)
        })
        .buffer_unordered(CONCURRENT_READS)
        .collect()
        .await;
    let mut streams = Vec::new();
    for found in &tables {
        streams.extend(streams_of(found, opened.get(&found.path), now).await);
    }
    let mut views = Vec::new();
    for manifest_path in manifests {
        if let Some(view) = view_of(&manifest_path, &store, &opened, options, now).await {
            views.push(view);
        }
    }
    let mut report = StatusReport {
        generated_at: rfc3339(now).unwrap_or_default(),
        generated_at_ms: now,
        state_table: format!("{database}/{state_table}"),
        state_error: Some(format!(
            "not read ({why}): the figures below are the checkpoints of the streams' newest Delta commits"
        )),
        plan_errors,
        streams,
        views,
        verification: None,
    };
    redact(&mut report);
    report
}

/// The raw tables (their `_delta_log` folders) and the manifests of the publish layer.
async fn list_lake(
    store: &ObjectStoreRef,
) -> Result<(BTreeMap<String, FoundTable>, BTreeSet<String>), String> {
    let mut tables = BTreeMap::new();
    let raw = ObjectPath::from("raw");
    let mut listing = store.list(Some(&raw));
    while let Some(meta) = listing.try_next().await.map_err(|e| e.to_string())? {
        let path = meta.location.to_string();
        if let Some((table, _)) = path.split_once("/_delta_log/")
            && let Some(found) = FoundTable::parse(table)
        {
            tables.insert(found.path.clone(), found);
        }
    }
    let mut manifests = BTreeSet::new();
    let publish = ObjectPath::from("publish");
    let mut listing = store.list(Some(&publish));
    while let Some(meta) = listing.try_next().await.map_err(|e| e.to_string())? {
        let path = meta.location.to_string();
        if path.ends_with("/_manifest.json") {
            manifests.insert(path);
        }
    }
    Ok((tables, manifests))
}

/// The streams that committed to the table among its newest commits, each with the
/// checkpoint of its newest commit.
async fn streams_of(found: &FoundTable, slot: Option<&TableSlot>, now: i64) -> Vec<StreamStatus> {
    let status = |key: String, checkpoint: Option<(StreamCheckpoint, i64)>, error| {
        let c = checkpoint.as_ref().map(|(c, _)| c);
        StreamStatus {
            key,
            model: found.model_label(),
            view: found.view.clone(),
            table: found.kind.as_str().to_owned(),
            table_path: found.path.clone(),
            phase: c.map(|c| c.phase),
            progress: c.map_or(Progress::NotStarted, progress_from_delta),
            generation: c.map(|c| c.generation),
            rows: c.map(|c| c.rows_total),
            last_success_ms: c.and_then(|c| c.last_success),
            last_success: c.and_then(|c| c.last_success).and_then(rfc3339),
            last_success_age_ms: c.and_then(|c| c.last_success).map(|t| (now - t).max(0)),
            lag_ms: c.and_then(|c| c.newest_change).map(|t| (now - t).max(0)),
            last_error: c.and_then(|c| c.last_error.clone()),
            checkpoint_source: c.map(|_| CheckpointSource::Delta),
            agreement: Agreement::Unknown,
            raw_seq: None,
            delta_seq: checkpoint.as_ref().map(|(_, seq)| *seq),
            query_changed: false,
            repair: None,
            error,
            membership: c.map(|c| membership_status(&c.membership, now)),
        }
    };
    let table = match slot {
        Some(Ok(Some(table))) => table,
        Some(Ok(None)) | None => return Vec::new(),
        Some(Err(error)) => return vec![status(found.path.clone(), None, Some(error.clone()))],
    };
    match newest_checkpoints(table).await {
        Ok(found_streams) => found_streams
            .into_iter()
            .map(|(key, checkpoint)| status(key, Some(checkpoint), None))
            .collect(),
        Err(error) => vec![status(
            found.path.clone(),
            None,
            Some(format!("reading the table's commits: {error}")),
        )],
    }
}

/// How far a stream is by its newest Delta commit alone. A backfill's end is always
/// committed, so a backfill checkpoint means behind; but a streaming stream learns that it
/// is caught up after its last commit and records that in RAW only, so without RAW it is
/// unknown.
fn progress_from_delta(checkpoint: &StreamCheckpoint) -> Progress {
    match checkpoint.phase {
        Phase::Backfill => progress(checkpoint),
        Phase::Streaming => Progress::Unknown,
    }
}

/// Each stream's newest checkpoint (with its txn version) among the table's newest commits.
async fn newest_checkpoints(
    table: &LakeTable,
) -> Result<BTreeMap<String, (StreamCheckpoint, i64)>, crate::lake::LakeError> {
    let mut found = BTreeMap::new();
    let Some(newest) = table.version() else {
        return Ok(found);
    };
    let oldest = newest.saturating_sub(COMMITS_SCANNED - 1);
    let commits: Vec<_> = stream::iter((oldest..=newest).rev())
        .map(|version| table.read_commit(version))
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await?;
    for commit in commits.into_iter().flatten() {
        let Some(info) = commit.stream_commit else {
            continue;
        };
        if found.contains_key(&info.app_id) {
            continue;
        }
        let mut checkpoint = info.metadata.checkpoint.clone().unwrap_or_default();
        checkpoint.seq = info.txn_version;
        found.insert(info.app_id.clone(), (checkpoint, info.txn_version));
    }
    Ok(found)
}

/// The view of a manifest at `publish/<space>/<model>/<version>/<view>/_manifest.json`.
async fn view_of(
    manifest_path: &str,
    store: &Result<Option<ObjectStoreRef>, String>,
    tables: &HashMap<String, TableSlot>,
    options: &StatusOptions,
    now: i64,
) -> Option<ViewStatus> {
    let dir = manifest_path.strip_suffix("/_manifest.json")?;
    let parts: Vec<&str> = dir.split('/').collect();
    let ["publish", space, model, version, view] = parts.as_slice() else {
        return None;
    };
    let model_ref = ModelRef::new(*space, *model, *version).ok()?;
    if !options.selection.selects(&model_ref, view) {
        return None;
    }
    let Ok(Some(store)) = store else {
        return None;
    };
    let state = manifest::read(store, manifest_path).await;
    let (presence, error) = match &state {
        ManifestState::Found(_) => (ManifestPresence::Found, None),
        ManifestState::Missing => (ManifestPresence::Missing, None),
        ManifestState::Unusable(reason) => (ManifestPresence::Unusable, Some(reason.clone())),
    };
    let mut files = Vec::with_capacity(2);
    for kind in [InstanceKind::Nodes, InstanceKind::Edges] {
        let Some(entry) = state.entry(kind) else {
            continue;
        };
        let table_path = format!(
            "raw/{space}/{model}/{version}/views/{view}/{}",
            kind.as_str()
        );
        let file = match entry.parts.as_ref() {
            Some(_) => format!("{dir}/{}", kind.as_str()),
            None => format!("{dir}/{}.parquet", kind.as_str()),
        };
        files.push(
            file_status(
                kind,
                &file,
                dir,
                Some(entry),
                Some(store),
                tables.get(&table_path),
                now,
            )
            .await,
        );
    }
    Some(ViewStatus {
        model: format!("{space}:{model}/{version}"),
        view: (*view).to_owned(),
        publish_path: dir.to_owned(),
        manifest: presence,
        files,
        error,
        pending_since: match &state {
            ManifestState::Found(manifest) => manifest.pending_since.clone(),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_raw_table_path_and_nothing_else() {
        let found = FoundTable::parse("raw/plant/PlantModel/1/views/Pump/nodes").unwrap();
        assert_eq!(found.model_label(), "plant:PlantModel/1");
        assert_eq!(found.view, "Pump");
        assert_eq!(found.kind, InstanceKind::Nodes);
        assert!(FoundTable::parse("raw/plant/PlantModel/1/views/Pump/rejected").is_none());
        assert!(FoundTable::parse("raw/_lake.json").is_none());
        assert!(FoundTable::parse("publish/plant/PlantModel/1/Pump/nodes").is_none());
    }
}
