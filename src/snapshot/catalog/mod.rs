//! Glue Data Catalog registration, so that `SELECT * FROM <db>.<table>` works in Athena
//! without any DDL from the user.
//!
//! Opt-in with `destination.catalog.glue.database` (in Lambda: the template's `GlueDatabase`
//! parameter, pinned through `GLUE_DATABASE`). After a snapshot run has published, every
//! published file (nodes and edges of each view that published without error) and every
//! raw Delta table of those views gets a table in that database:
//!
//! - published files: a symlink manifest in a folder of its own ([`symlink`]), naming the
//!   file or, for a file published in parts, every part the view's manifest lists, and a
//!   table reading it by column position under Athena-safe names ([`table_definition`],
//!   [`naming`], [`athena_types`]);
//! - raw tables: a native Delta Lake table (`table_type = DELTA`).
//!
//! A table is created when missing and updated when its definition changed (a new
//! property, a moved location); a new data model version has new paths and so new tables.
//! Only tables marked as this product's (and serving the same lake path) are ever
//! updated; nothing is deleted, and nothing but these tables (and the manifests under
//! `catalog/`) is written. Failures are reported per table and make the run unsuccessful,
//! but never undo or block publishing. [`glue`] is the only module that talks to the SDK.

pub(crate) mod athena_types;
pub(crate) mod error;
pub(crate) mod glue;
pub(crate) mod naming;
pub(crate) mod symlink;
pub(crate) mod table_definition;

use deltalake::Path;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use deltalake::parquet::arrow::parquet_to_arrow_schema;
use deltalake::parquet::file::metadata::ParquetMetaDataReader;
use serde::Serialize;

pub(crate) use self::error::CatalogError;
use self::glue::GlueCatalog;
use self::table_definition::{Comparison, Layer, TableDefinition, TableSource};
use super::{ViewReport, ViewTarget};
use crate::config::{Config, GlueCatalogSettings};
use crate::failure::Failure;
use crate::lake::{Destination, InstanceKind, LakeTable, S3Destination, WriteOptions, layout};

/// What happened to one catalog table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TableAction {
    /// The table did not exist and was created.
    Created,
    /// The table existed with another definition (columns, location) and was updated.
    Updated,
    /// The table already had the right definition.
    Unchanged,
    /// The table could not be created or updated; `error` says why.
    Failed,
}

/// One catalog table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableReport {
    /// The table name in the database.
    pub(crate) name: String,
    /// `publish` or `raw`.
    pub(crate) layer: &'static str,
    /// `space:model/version`.
    pub(crate) model: String,
    pub(crate) view: String,
    /// `nodes` or `edges`.
    pub(crate) kind: &'static str,
    /// What was done to the table.
    pub action: TableAction,
    /// Why the table failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// The catalog part of a snapshot run.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CatalogReport {
    /// The Glue database.
    pub database: String,
    /// Tables with [`TableAction::Created`].
    pub tables_created: usize,
    /// Tables with [`TableAction::Updated`].
    pub tables_updated: usize,
    /// Tables with [`TableAction::Unchanged`].
    pub tables_unchanged: usize,
    /// Tables with [`TableAction::Failed`].
    pub tables_failed: usize,
    /// A failure that stopped every table (no database, no S3 destination).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<Failure>,
    pub(crate) tables: Vec<TableReport>,
}

impl CatalogReport {
    fn new(database: &str, tables: Vec<TableReport>, error: Option<Failure>) -> Self {
        let count = |action| tables.iter().filter(|t| t.action == action).count();
        Self {
            database: database.to_owned(),
            tables_created: count(TableAction::Created),
            tables_updated: count(TableAction::Updated),
            tables_unchanged: count(TableAction::Unchanged),
            tables_failed: count(TableAction::Failed),
            error: error.map(Failure::redacted),
            tables,
        }
    }

    pub(crate) fn is_success(&self) -> bool {
        self.error.is_none() && self.tables_failed == 0
    }

    /// The report of one table, by name.
    pub fn table(&self, name: &str) -> Option<&TableReport> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The failures of the registration: the one that stopped it, or each table's.
    pub(crate) fn failures(&self) -> impl Iterator<Item = &Failure> {
        self.error
            .iter()
            .chain(self.tables.iter().filter_map(|t| t.error.as_ref()))
    }

    /// For the run's one-line summary.
    pub(crate) fn one_line(&self) -> String {
        let mut line = format!(
            "catalog {}: {} tables created, {} updated, {} unchanged, {} failed",
            self.database,
            self.tables_created,
            self.tables_updated,
            self.tables_unchanged,
            self.tables_failed
        );
        let problems: Vec<String> = self
            .error
            .iter()
            .map(|e| e.message.clone())
            .chain(
                self.tables
                    .iter()
                    .filter_map(|t| t.error.as_ref().map(|e| format!("{}: {e}", t.name))),
            )
            .collect();
        if !problems.is_empty() {
            line.push_str(" (");
            line.push_str(&problems.join("; "));
            line.push(')');
        }
        line
    }
}

/// Registers the published views when the configuration turns the catalog on; `None`
/// otherwise. The one call the snapshot run makes.
pub(crate) async fn register_configured(
    config: &Config,
    destination: &Destination,
    targets: &[ViewTarget],
    reports: &[ViewReport],
) -> Option<Box<CatalogReport>> {
    let settings = config.catalog.as_ref()?;
    Some(Box::new(
        register(settings, destination, targets, reports).await,
    ))
}

/// One table to register.
struct Planned<'a> {
    target: &'a ViewTarget,
    kind: InstanceKind,
    layer: Layer,
    /// The lake path it serves, relative to the prefix.
    path: String,
    name: String,
}

/// Names for every table of every planned view (published or not), so that a name does
/// not depend on which views happened to publish in this run.
fn plan<'a>(targets: &'a [ViewTarget]) -> Vec<Planned<'a>> {
    let mut planned = Vec::new();
    for target in targets {
        let model = &target.model;
        for kind in [InstanceKind::Nodes, InstanceKind::Edges] {
            let parts = [
                model.space(),
                model.external_id(),
                model.version(),
                target.folder.name(),
                kind.as_str(),
            ];
            let paths = layout::publish_paths(model, &target.folder);
            planned.push((
                target,
                kind,
                Layer::Publish,
                paths.data_file(kind).to_owned(),
                naming::table_base_name(false, &parts),
            ));
            if target.table(kind).has_streams() {
                planned.push((
                    target,
                    kind,
                    Layer::Raw,
                    layout::raw_table_path(model, &target.folder, kind),
                    naming::table_base_name(true, &parts),
                ));
            }
        }
    }
    let keys: Vec<(String, String)> = planned
        .iter()
        .map(|(_, _, _, path, base)| (path.clone(), base.clone()))
        .collect();
    planned
        .into_iter()
        .zip(naming::unique_table_names(&keys))
        .map(|((target, kind, layer, path, _), name)| Planned {
            target,
            kind,
            layer,
            path,
            name,
        })
        .collect()
}

/// Registers the tables of every view in `targets` whose report in `reports` is a
/// success. Never fails as a whole: problems are in the report.
pub(crate) async fn register(
    settings: &GlueCatalogSettings,
    destination: &Destination,
    targets: &[ViewTarget],
    reports: &[ViewReport],
) -> CatalogReport {
    let database = settings.database.as_str();
    let Destination::S3(s3) = destination else {
        return CatalogReport::new(database, Vec::new(), Some(CatalogError::NotS3.to_failure()));
    };
    let store = match destination.object_store() {
        Ok(store) => store,
        Err(e) => {
            return CatalogReport::new(database, Vec::new(), Some(Failure::lake("the lake", &e)));
        }
    };
    let glue = GlueCatalog::connect(
        database,
        &destination.storage_options(),
        settings.endpoint_url.as_deref(),
    )
    .await;
    if let Err(e) = glue.check_database().await {
        return CatalogReport::new(database, Vec::new(), Some(e.to_failure()));
    }
    let published = |target: &ViewTarget| {
        reports.iter().any(|r| {
            r.model == target.model_label() && r.view == target.folder.name() && r.is_success()
        })
    };
    let ctx = Registration {
        glue: &glue,
        store: &store,
        destination,
        s3,
    };
    let mut tables = Vec::new();
    for planned in plan(targets).iter().filter(|p| published(p.target)) {
        let outcome = ctx.register_table(planned).await;
        let (action, error) = match outcome {
            Ok(Some(action)) => (action, None),
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(table = %planned.name, error = %e, "catalog registration failed");
                (TableAction::Failed, Some(e.to_failure().redacted()))
            }
        };
        tables.push(TableReport {
            name: planned.name.clone(),
            layer: planned.layer.as_str(),
            model: planned.target.model_label(),
            view: planned.target.folder.to_string(),
            kind: planned.kind.as_str(),
            action,
            error,
        });
    }
    CatalogReport::new(database, tables, None)
}

struct Registration<'a> {
    glue: &'a GlueCatalog,
    store: &'a ObjectStoreRef,
    destination: &'a Destination,
    s3: &'a S3Destination,
}

impl Registration<'_> {
    fn s3_url(&self, relative: &str) -> String {
        format!("s3://{}/{}", self.s3.bucket(), self.s3.object_key(relative))
    }

    /// `None` when there is nothing to register (a raw table no stream has created yet).
    async fn register_table(
        &self,
        planned: &Planned<'_>,
    ) -> Result<Option<TableAction>, CatalogError> {
        let target = planned.target;
        let source = TableSource {
            layer: planned.layer,
            path: planned.path.clone(),
            model: target.model_label(),
            view: target.folder.to_string(),
        };
        let (definition, manifest) = match planned.layer {
            Layer::Publish => {
                let dir = symlink::manifest_dir(&target.model, &target.folder, planned.kind);
                let objects = published_objects(self.store, planned).await;
                let first = objects.first().unwrap_or(&planned.path);
                let schema = file_schema(self.store, first).await?;
                let definition = table_definition::publish_table(
                    planned.name.clone(),
                    format!("{}/", self.s3_url(&dir)),
                    &source,
                    &schema,
                )?;
                let urls = objects.iter().map(|o| self.s3_url(o)).collect();
                (definition, Some((dir, urls)))
            }
            Layer::Raw => {
                let url =
                    self.destination
                        .raw_table_url(&target.model, &target.folder, planned.kind)?;
                let table =
                    LakeTable::open(self.destination, url.clone(), WriteOptions::default()).await?;
                let Some(schema) = table.arrow_schema() else {
                    return Ok(None);
                };
                let definition = table_definition::raw_table(
                    planned.name.clone(),
                    url.to_string(),
                    &source,
                    &schema,
                )?;
                (definition, None)
            }
        };
        self.apply(&definition, manifest).await.map(Some)
    }

    /// Creates or updates one table; the manifest (folder, file URLs) first.
    async fn apply(
        &self,
        definition: &TableDefinition,
        manifest: Option<(String, Vec<String>)>,
    ) -> Result<TableAction, CatalogError> {
        let stored = self.glue.table(&definition.name).await?;
        let comparison = stored.as_ref().map(|s| definition.compare(s));
        match &comparison {
            Some(Comparison::NotManaged) => {
                return Err(CatalogError::NotManaged {
                    table: self.qualified(&definition.name),
                    served: source_of(definition),
                });
            }
            Some(Comparison::OtherSource(other)) => {
                return Err(CatalogError::NameClash {
                    table: self.qualified(&definition.name),
                    served: source_of(definition),
                    other: other.clone(),
                });
            }
            _ => {}
        }
        if let Some((dir, file_urls)) = &manifest {
            symlink::ensure(self.store, dir, file_urls).await?;
        }
        match (stored, comparison) {
            (None, _) => {
                self.glue.create(definition).await?;
                Ok(TableAction::Created)
            }
            (Some(_), Some(Comparison::Unchanged)) => Ok(TableAction::Unchanged),
            (Some(stored), _) => {
                self.glue.update(definition, &stored).await?;
                Ok(TableAction::Updated)
            }
        }
    }

    fn qualified(&self, table: &str) -> String {
        format!("{}.{table}", self.glue.database())
    }
}

fn source_of(definition: &TableDefinition) -> String {
    definition
        .parameters
        .get(table_definition::SOURCE_KEY)
        .cloned()
        .unwrap_or_default()
}

/// The objects of a published file, relative to the prefix: every part the view's manifest
/// lists when the file is published in parts, the file itself otherwise. The table keeps
/// serving the file's own path (`planned.path`) in either form, so a switch of form is a
/// new symlink manifest, not another table.
async fn published_objects(store: &ObjectStoreRef, planned: &Planned<'_>) -> Vec<String> {
    let paths = layout::publish_paths(&planned.target.model, &planned.target.folder);
    let state = crate::snapshot::manifest::read(store, &paths.manifest).await;
    match state.entry(planned.kind) {
        Some(entry) if entry.parts.is_some() => entry
            .objects(&paths.dir)
            .into_iter()
            .map(|(path, _)| path)
            .collect(),
        _ => vec![planned.path.clone()],
    }
}

/// The Arrow schema of a published file, from its footer: what Athena will read, even if
/// a sync has widened the raw table since.
///
/// Two ranged reads: the 8-byte tail (metadata length, `PAR1`), then the metadata.
async fn file_schema(store: &ObjectStoreRef, path: &str) -> Result<SchemaRef, CatalogError> {
    let failed = |message: String| CatalogError::Store {
        what: "reading the footer of",
        path: path.to_owned(),
        message: crate::secret::redact(&message),
    };
    let location = Path::from(path);
    let size = store
        .head(&location)
        .await
        .map_err(|e| failed(e.to_string()))?
        .size;
    if size < 12 {
        return Err(failed(format!(
            "{size} bytes is too short for a Parquet file"
        )));
    }
    let tail = store
        .get_range(&location, size - 8..size)
        .await
        .map_err(|e| failed(e.to_string()))?;
    if &tail[4..] != b"PAR1" {
        return Err(failed("no Parquet footer (PAR1)".to_owned()));
    }
    let length = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if length + 12 > size {
        return Err(failed(format!("footer length {length} exceeds the file")));
    }
    let metadata = store
        .get_range(&location, size - 8 - length..size - 8)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let metadata =
        ParquetMetaDataReader::decode_metadata(&metadata).map_err(|e| failed(e.to_string()))?;
    let file = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
        .map_err(|e| failed(e.to_string()))?;
    Ok(std::sync::Arc::new(schema))
}
