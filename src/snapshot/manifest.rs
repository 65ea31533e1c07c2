//! `_manifest.json`: what the published files of a view reflect.
//!
//! Written after both data files. Per file it records the raw table's Delta version, each
//! stream's generation state, the row count, the publish schema, a fingerprint of the raw
//! schema the file was built from, and which upload it describes (the object's ETag and the
//! write id in the file's footer, see [`super::stamp`]). The next run merges only the
//! commits after that version, as long as the schema fingerprint and the generations still
//! hold, and as long as the entry names the object at the key.
//!
//! A file published in parts ([`super::parts`]) has one entry whose `parts` lists an entry
//! per part (each like a file's entry, its path relative to the view folder); the entry's
//! own figures are the parts' totals, and its version is the oldest part's. Manifests
//! without `parts` (every older one) describe single files.
//!
//! A run replaces the manifest only if it is still the one the run read ([`write()`] is
//! conditional on its ETag), so of two runs that overlap, the one that read an older
//! manifest cannot overwrite the newer one.

use std::collections::BTreeMap;

use deltalake::arrow::datatypes::Schema;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::{ObjectStoreExt as _, PutMode, PutOptions, UpdateVersion};
use deltalake::{ObjectStoreError, Path};
use serde::{Deserialize, Serialize};

use super::arrival::StreamStates;
use super::error::{SnapshotError, SnapshotResult};
use crate::lake::InstanceKind;

/// Version of the manifest layout; a manifest of another version is rebuilt from scratch.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The columns every published file is sorted by.
pub(crate) const SORT_COLUMNS: [&str; 2] = ["space", "externalId"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub(crate) format_version: u32,
    /// `space:model/version` of the data model.
    pub(crate) model: String,
    /// The view folder's full name (the folder itself may be its short form).
    pub(crate) view: String,
    /// RFC 3339, UTC.
    pub(crate) written_at: String,
    pub(crate) tool_version: String,
    /// Per kind (`nodes`, `edges`).
    pub(crate) files: BTreeMap<String, FileEntry>,
    /// Set while a snapshot's deadline has left one of the view's files for a later run:
    /// since when the view has been waiting (RFC 3339; the previous manifest's time). The
    /// next runs order views by it ([`super::order`]), so a view published only in part
    /// keeps its place in line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pending_since: Option<String>,
}

/// One published file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileEntry {
    /// File name, relative to the manifest's folder.
    pub(crate) path: String,
    /// The raw table, relative to the destination prefix.
    pub(crate) source_table: String,
    /// The raw table's Delta version the file reflects; `None` while the table does not exist.
    pub(crate) table_version: Option<u64>,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
    /// Generation state of each stream writing to the raw table.
    pub(crate) streams: StreamStates,
    /// Fingerprint of the raw table schema the file was built from.
    pub(crate) raw_schema_fingerprint: String,
    /// The columns; left out of a part's entry (the file's entry has them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) publish_schema: Vec<ColumnSpec>,
    pub(crate) sorted_by: Vec<String>,
    pub(crate) written_at: String,
    pub(crate) tool_version: String,
    /// The ETag of the object this entry describes, as the store reported it when the
    /// object was written or found; absent in manifests of older releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) e_tag: Option<String>,
    /// The write id in the footer of the file this entry describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) write_id: Option<String>,
    /// The parts, when the file is a folder of parts (`path` is then the folder, `nodes/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parts: Option<PartsEntry>,
}

/// The parts of a file published as a folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartsEntry {
    /// How many parts (a power of two); every part is listed.
    pub(crate) count: u32,
    /// How rows are assigned to parts ([`super::parts::HASH_NAME`]).
    pub(crate) hash: String,
    /// One entry per part, in part order.
    pub(crate) files: Vec<FileEntry>,
}

impl FileEntry {
    /// The data objects this entry names, relative to the destination prefix, each with
    /// the entry that describes it: the file itself, or every part.
    pub(crate) fn objects<'a>(&'a self, dir: &str) -> Vec<(String, &'a FileEntry)> {
        match &self.parts {
            Some(parts) => parts
                .files
                .iter()
                .map(|part| (format!("{dir}/{}", part.path), part))
                .collect(),
            None => vec![(format!("{dir}/{}", self.path), self)],
        }
    }

    /// The number of parts: 1 for a single file.
    pub(crate) fn part_count(&self) -> u32 {
        self.parts.as_ref().map_or(1, |p| p.count)
    }
}

/// One column of a published file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ColumnSpec {
    pub(crate) name: String,
    /// The Arrow type, as Arrow prints it (for example `Timestamp(µs, "UTC")`).
    #[serde(rename = "type")]
    pub(crate) data_type: String,
    pub(crate) nullable: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) metadata: BTreeMap<String, String>,
}

/// The columns of a schema, for the manifest.
pub(crate) fn column_specs(schema: &Schema) -> Vec<ColumnSpec> {
    schema
        .fields()
        .iter()
        .map(|field| ColumnSpec {
            name: field.name().clone(),
            data_type: field.data_type().to_string(),
            nullable: field.is_nullable(),
            metadata: field
                .metadata()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
        .collect()
}

/// A stable fingerprint of a raw schema: names, types, nullability and field metadata.
///
/// It only has to tell "same schema" from "different schema" between two runs; a release
/// that prints types differently costs one rebuild.
pub(crate) fn schema_fingerprint(schema: &Schema) -> String {
    let mut text = String::new();
    for spec in column_specs(schema) {
        text.push_str(&format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1e}",
            spec.name, spec.data_type, spec.nullable, spec.metadata
        ));
    }
    format!("{:016x}", fnv1a64(text.as_bytes()))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The tool and version that wrote a manifest.
pub(crate) fn tool_version() -> String {
    format!("cdf-s3-replicator {}", env!("CARGO_PKG_VERSION"))
}

/// Now, as the manifest records times.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What was found at the manifest path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ManifestState {
    Missing,
    /// Present but unusable; the reason says why. Treated like a missing manifest.
    Unusable(String),
    Found(Box<Manifest>),
}

impl ManifestState {
    /// The entry of one kind, if the manifest is usable and has it.
    pub(crate) fn entry(&self, kind: InstanceKind) -> Option<&FileEntry> {
        match self {
            ManifestState::Found(manifest) => manifest.files.get(kind.as_str()),
            _ => None,
        }
    }
}

/// Reads the manifest at `path`. Only failures that say nothing about the manifest itself
/// (there is none) are `Missing`; everything else that prevents using it is `Unusable`.
pub(crate) async fn read(store: &ObjectStoreRef, path: &str) -> ManifestState {
    match read_versioned(store, path).await {
        Ok(read) => read.state,
        Err(error) => ManifestState::Unusable(error.to_string()),
    }
}

/// The manifest as a run found it, with the version a replacement must be conditional on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ManifestRead {
    pub(crate) state: ManifestState,
    /// The object's ETag; `None` when there is no manifest (or the store gives no ETags).
    pub(crate) e_tag: Option<String>,
}

/// Reads the manifest at `path` and its ETag. Fails only when the store could not be read:
/// then nobody knows which manifest a replacement would overwrite.
pub(crate) async fn read_versioned(
    store: &ObjectStoreRef,
    path: &str,
) -> SnapshotResult<ManifestRead> {
    let location = Path::from(path);
    let (bytes, e_tag) = match store.get(&location).await {
        Ok(result) => {
            let e_tag = result.meta.e_tag.clone();
            let bytes = result
                .bytes()
                .await
                .map_err(|e| SnapshotError::store("reading", path, e))?;
            (bytes, e_tag)
        }
        Err(ObjectStoreError::NotFound { .. }) => {
            return Ok(ManifestRead {
                state: ManifestState::Missing,
                e_tag: None,
            });
        }
        Err(error) => return Err(SnapshotError::store("reading", path, error)),
    };
    Ok(ManifestRead {
        state: parse(path, &bytes),
        e_tag,
    })
}

fn parse(path: &str, bytes: &[u8]) -> ManifestState {
    match serde_json::from_slice::<Manifest>(bytes) {
        Ok(manifest) if manifest.format_version == FORMAT_VERSION => {
            ManifestState::Found(Box::new(manifest))
        }
        Ok(manifest) => ManifestState::Unusable(format!(
            "{path} has format version {}, expected {FORMAT_VERSION}",
            manifest.format_version
        )),
        Err(error) => ManifestState::Unusable(format!("{path} is not a valid manifest: {error}")),
    }
}

/// Writes the manifest with one PUT, which replaces the previous one atomically, and only
/// if the manifest at `path` is still the one `read` found: `If-Match` its ETag, or
/// `If-None-Match: *` when there was none. Another run's manifest written meanwhile makes it
/// fail with [`SnapshotError::Conflict`].
///
/// A store that cannot write conditionally (object_store's local file system replaces by
/// rename) gets a check of the current ETag followed by a plain PUT: the window between
/// them stays open there, and the next run repairs what a race in it leaves (see
/// [`super::view`]).
pub(crate) async fn write(
    store: &ObjectStoreRef,
    path: &str,
    read: &ManifestRead,
    manifest: &Manifest,
) -> SnapshotResult<()> {
    let body = serde_json::to_vec_pretty(manifest).map_err(|e| SnapshotError::Manifest {
        path: path.to_owned(),
        reason: format!("serializing: {e}"),
    })?;
    let location = Path::from(path);
    let mode = match (&read.state, &read.e_tag) {
        (ManifestState::Missing, _) => PutMode::Create,
        (_, Some(e_tag)) => PutMode::Update(UpdateVersion {
            e_tag: Some(e_tag.clone()),
            version: None,
        }),
        // Found but without an ETag: the store gives none, so it cannot condition on one.
        (_, None) => PutMode::Overwrite,
    };
    let options = PutOptions {
        mode: mode.clone(),
        ..PutOptions::default()
    };
    match store
        .put_opts(&location, body.clone().into(), options)
        .await
    {
        Ok(_) => Ok(()),
        Err(ObjectStoreError::Precondition { .. } | ObjectStoreError::AlreadyExists { .. }) => {
            Err(replaced(path))
        }
        Err(ObjectStoreError::NotImplemented { .. }) => {
            let current = match store.head(&location).await {
                Ok(meta) => Some(meta.e_tag),
                Err(ObjectStoreError::NotFound { .. }) => None,
                Err(error) => return Err(SnapshotError::store("checking", path, error)),
            };
            let unchanged = match (&mode, current) {
                (PutMode::Create, None) => true,
                (PutMode::Update(version), Some(current)) => version.e_tag == current,
                _ => false,
            };
            if !unchanged {
                return Err(replaced(path));
            }
            store
                .put(&location, body.into())
                .await
                .map_err(|e| SnapshotError::store("writing", path, e))?;
            Ok(())
        }
        Err(error) => Err(SnapshotError::store("writing", path, error)),
    }
}

fn replaced(path: &str) -> SnapshotError {
    SnapshotError::Conflict {
        path: path.to_owned(),
        reason: "another snapshot run replaced the manifest since this run read it".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::datatypes::{DataType, Field, TimeUnit};

    #[test]
    fn fingerprints_change_with_types_and_columns() {
        let base = Schema::new(vec![
            Field::new("space", DataType::Utf8, false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]);
        let widened = Schema::new(vec![
            Field::new("space", DataType::Utf8, false),
            Field::new("at", DataType::Utf8, true),
        ]);
        let mut fields = base.fields().to_vec();
        fields.push(std::sync::Arc::new(Field::new(
            "new",
            DataType::Int64,
            true,
        )));
        let added = Schema::new(fields);
        let f = schema_fingerprint(&base);
        assert_eq!(f, schema_fingerprint(&base.clone()));
        assert_ne!(f, schema_fingerprint(&widened));
        assert_ne!(f, schema_fingerprint(&added));
    }

    #[test]
    fn manifests_round_trip_as_json() {
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            model: "s:M/1".into(),
            view: "Pump".into(),
            written_at: now_rfc3339(),
            tool_version: tool_version(),
            pending_since: None,
            files: BTreeMap::from([(
                "nodes".to_owned(),
                FileEntry {
                    path: "nodes.parquet".into(),
                    source_table: "raw/s/M/1/views/Pump/nodes".into(),
                    table_version: Some(7),
                    rows: 3,
                    bytes: 100,
                    streams: StreamStates::new(),
                    raw_schema_fingerprint: "00".into(),
                    publish_schema: Vec::new(),
                    sorted_by: SORT_COLUMNS.iter().map(|c| c.to_string()).collect(),
                    written_at: now_rfc3339(),
                    tool_version: tool_version(),
                    e_tag: Some("\"abc\"".into()),
                    write_id: None,
                    parts: None,
                },
            )]),
        };
        let text = serde_json::to_string(&manifest).unwrap();
        assert!(text.contains("\"tableVersion\":7"), "{text}");
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), manifest);
    }

    fn sample(view: &str) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            model: "s:M/1".into(),
            view: view.into(),
            written_at: now_rfc3339(),
            tool_version: tool_version(),
            files: BTreeMap::new(),
            pending_since: None,
        }
    }

    /// A file in parts: one entry whose `parts` lists the parts, each naming its object;
    /// a part's entry leaves the columns to the file's.
    #[test]
    fn entries_of_files_in_parts_name_every_part() {
        let part = |i: u32| FileEntry {
            path: format!("nodes/part-{i:05}-of-00002.parquet"),
            source_table: "t".into(),
            table_version: Some(4),
            rows: 1,
            bytes: 10,
            streams: StreamStates::new(),
            raw_schema_fingerprint: "f".into(),
            publish_schema: Vec::new(),
            sorted_by: SORT_COLUMNS.iter().map(|c| c.to_string()).collect(),
            written_at: "w".into(),
            tool_version: "v".into(),
            e_tag: Some(format!("\"{i}\"")),
            write_id: Some(format!("id{i}")),
            parts: None,
        };
        let entry = FileEntry {
            path: "nodes/".into(),
            rows: 2,
            bytes: 20,
            e_tag: None,
            write_id: None,
            parts: Some(PartsEntry {
                count: 2,
                hash: crate::snapshot::parts::HASH_NAME.into(),
                files: vec![part(0), part(1)],
            }),
            ..part(9)
        };
        assert_eq!(entry.part_count(), 2);
        let objects: Vec<String> = entry
            .objects("publish/s/M/1/Pump")
            .into_iter()
            .map(|(path, described)| format!("{path} {:?}", described.write_id))
            .collect();
        assert_eq!(
            objects,
            [
                "publish/s/M/1/Pump/nodes/part-00000-of-00002.parquet Some(\"id0\")",
                "publish/s/M/1/Pump/nodes/part-00001-of-00002.parquet Some(\"id1\")"
            ]
        );
        let text = serde_json::to_string(&entry).unwrap();
        assert!(text.contains("\"parts\":{\"count\":2"), "{text}");
        assert!(!text.contains("publishSchema"), "{text}");
        assert_eq!(serde_json::from_str::<FileEntry>(&text).unwrap(), entry);
        // A single file names itself.
        let single = part(0);
        assert_eq!(single.part_count(), 1);
        assert_eq!(
            single.objects("d")[0].0,
            "d/nodes/part-00000-of-00002.parquet"
        );
    }

    #[test]
    fn entries_of_older_releases_name_no_object() {
        let text = r#"{"path":"nodes.parquet","sourceTable":"t","tableVersion":3,"rows":1,
            "bytes":2,"streams":{},"rawSchemaFingerprint":"f","publishSchema":[],
            "sortedBy":["space","externalId"],"writtenAt":"w","toolVersion":"v"}"#;
        let entry: FileEntry = serde_json::from_str(text).unwrap();
        assert_eq!((entry.e_tag, entry.write_id), (None, None));
        // ... and describe a single file.
        assert_eq!(entry.parts, None);
    }

    /// Of two runs that read the same manifest, only the first one's write lands; a run
    /// that read the newer manifest replaces it.
    async fn writes_are_conditional_on_the_manifest_read(store: ObjectStoreRef) {
        let path = "publish/s/M/1/Pump/_manifest.json";
        let none = read_versioned(&store, path).await.unwrap();
        assert_eq!(none.state, ManifestState::Missing);
        write(&store, path, &none, &sample("first")).await.unwrap();
        let error = write(&store, path, &none, &sample("second"))
            .await
            .unwrap_err();
        assert!(error.is_conflict(), "{error}");

        let first = read_versioned(&store, path).await.unwrap();
        assert!(first.e_tag.is_some());
        write(&store, path, &first, &sample("third")).await.unwrap();
        let error = write(&store, path, &first, &sample("fourth"))
            .await
            .unwrap_err();
        assert!(error.is_conflict(), "{error}");
        assert!(matches!(
            error.cause(),
            crate::failure::Cause::CommitConflict
        ));
        match read(&store, path).await {
            ManifestState::Found(manifest) => assert_eq!(manifest.view, "third"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn manifest_writes_are_conditional_in_memory() {
        let store: ObjectStoreRef =
            std::sync::Arc::new(deltalake::logstore::object_store::memory::InMemory::new());
        writes_are_conditional_on_the_manifest_read(store).await;
    }

    /// The local file system cannot replace conditionally; the check before the write
    /// still refuses a manifest read before another run's write.
    #[tokio::test]
    async fn manifest_writes_are_checked_on_a_local_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let store: ObjectStoreRef = std::sync::Arc::new(
            deltalake::logstore::object_store::local::LocalFileSystem::new_with_prefix(dir.path())
                .unwrap(),
        );
        writes_are_conditional_on_the_manifest_read(store).await;
    }
}
