//! What a catalog table should look like, from a file's Arrow schema and its location.
//! Pure: no SDK types, so the rules can be tested without Glue.
//!
//! - A **published file** becomes an external table over a folder of its own holding one
//!   symlink manifest ([`super::symlink`]) that names the file: `SymlinkTextInputFormat`
//!   with the Parquet SerDe and `parquet.column.index.access = true`, so the Athena-safe
//!   catalog names ([`super::naming`]) map to the file's columns by position, not by their
//!   dotted, mixed-case names. Each column's comment is the file column it reads.
//! - A **raw Delta table** becomes a table with `table_type = DELTA` at the table root:
//!   Athena reads the schema and the live files from the Delta log, so the declared
//!   columns only mirror the log (names as in the log, Athena types), the way Athena's own
//!   `CREATE EXTERNAL TABLE … TBLPROPERTIES ('table_type' = 'DELTA')` records them.
//!
//! Every table carries [`MANAGED_KEY`] and [`SOURCE_KEY`]: only tables with the mark are
//! ever updated, and a marked table serving another lake path is a name clash, not ours.

use std::collections::BTreeMap;

use deltalake::arrow::datatypes::Schema;

use super::athena_types::{UnsupportedType, athena_type};
use super::naming::column_names;

/// Table parameter marking a table this product created (value `true`).
pub(crate) const MANAGED_KEY: &str = "cdf_s3_replicator_managed";
/// Table parameter: the lake path the table serves, relative to the destination prefix.
pub(crate) const SOURCE_KEY: &str = "cdf_s3_replicator_source";
/// Table parameter: `publish` or `raw`.
pub(crate) const LAYER_KEY: &str = "cdf_s3_replicator_layer";
/// Table parameter: `space:model/version` of the data model.
pub(crate) const MODEL_KEY: &str = "cdf_s3_replicator_model";
/// Table parameter: the view folder.
pub(crate) const VIEW_KEY: &str = "cdf_s3_replicator_view";

pub(crate) const SYMLINK_INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat";
pub(crate) const HIVE_TEXT_OUTPUT_FORMAT: &str =
    "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
pub(crate) const PARQUET_SERDE: &str =
    "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
pub(crate) const INDEX_ACCESS_KEY: &str = "parquet.column.index.access";

/// The catalog layer a table belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    Publish,
    Raw,
}

impl Layer {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Layer::Publish => "publish",
            Layer::Raw => "raw",
        }
    }
}

/// How the table's files are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Format {
    /// A symlink manifest naming Parquet files, columns by position.
    SymlinkParquet,
    /// A native Delta Lake table.
    Delta,
    /// Anything else (a table this product did not define).
    Other,
}

impl Format {
    /// Reads the format back from a stored table's fields.
    pub(crate) fn detect(
        table_parameters: &BTreeMap<String, String>,
        input_format: Option<&str>,
        serde_library: Option<&str>,
        serde_parameters: &BTreeMap<String, String>,
    ) -> Self {
        let delta = table_parameters
            .get("table_type")
            .is_some_and(|t| t.eq_ignore_ascii_case("delta"));
        if delta {
            return Format::Delta;
        }
        let index_access = serde_parameters
            .get(INDEX_ACCESS_KEY)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if input_format == Some(SYMLINK_INPUT_FORMAT)
            && serde_library == Some(PARQUET_SERDE)
            && index_access
        {
            Format::SymlinkParquet
        } else {
            Format::Other
        }
    }
}

/// One declared column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: String,
    /// Athena type (`bigint`, `timestamp`, `array<string>`, …).
    pub(crate) athena_type: String,
    /// The file column it reads (publish) or a note (raw).
    pub(crate) comment: Option<String>,
}

/// A catalog table as this product defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableDefinition {
    pub(crate) name: String,
    /// `s3://bucket/prefix/…/` with a trailing slash.
    pub(crate) location: String,
    pub(crate) format: Format,
    pub(crate) columns: Vec<Column>,
    /// Table parameters this product sets (other parameters of a stored table are kept).
    pub(crate) parameters: BTreeMap<String, String>,
    pub(crate) description: String,
}

/// Who a table serves: written into its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableSource {
    pub(crate) layer: Layer,
    /// The lake path, relative to the destination prefix (the published file or the raw
    /// table root).
    pub(crate) path: String,
    pub(crate) model: String,
    pub(crate) view: String,
}

fn parameters(source: &TableSource, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut parameters: BTreeMap<String, String> = [
        (MANAGED_KEY, "true"),
        (SOURCE_KEY, source.path.as_str()),
        (LAYER_KEY, source.layer.as_str()),
        (MODEL_KEY, source.model.as_str()),
        (VIEW_KEY, source.view.as_str()),
        ("EXTERNAL", "TRUE"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    parameters.retain(|_, v| !v.is_empty());
    parameters
}

/// The table over a published file, whose symlink manifest folder is `location`.
pub(crate) fn publish_table(
    name: String,
    location: String,
    source: &TableSource,
    file_schema: &Schema,
) -> Result<TableDefinition, UnsupportedType> {
    let originals: Vec<&str> = file_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let names = column_names(&originals);
    let columns = file_schema
        .fields()
        .iter()
        .zip(names)
        .map(|(field, name)| {
            Ok(Column {
                name,
                athena_type: athena_type(field.name(), field.data_type())?,
                comment: Some(field.name().clone()),
            })
        })
        .collect::<Result<Vec<_>, UnsupportedType>>()?;
    Ok(TableDefinition {
        name,
        location,
        format: Format::SymlinkParquet,
        columns,
        parameters: parameters(source, &[("classification", "parquet")]),
        description: format!(
            "Published {} of view {} ({}), written by cdf-s3-replicator; columns by position",
            kind_of(&source.path),
            source.view,
            source.model
        ),
    })
}

/// The native Delta table at `location` (the raw table root).
pub(crate) fn raw_table(
    name: String,
    location: String,
    source: &TableSource,
    delta_schema: &Schema,
) -> Result<TableDefinition, UnsupportedType> {
    let columns = delta_schema
        .fields()
        .iter()
        .map(|field| {
            Ok(Column {
                name: field.name().clone(),
                athena_type: athena_type(field.name(), field.data_type())?,
                comment: None,
            })
        })
        .collect::<Result<Vec<_>, UnsupportedType>>()?;
    Ok(TableDefinition {
        name,
        location,
        format: Format::Delta,
        columns,
        parameters: parameters(source, &[("table_type", "DELTA")]),
        description: format!(
            "Raw change log ({}) of view {} ({}), a Delta Lake table written by \
             cdf-s3-replicator",
            kind_of(&source.path),
            source.view,
            source.model
        ),
    })
}

fn kind_of(path: &str) -> &str {
    let last = path.rsplit('/').next().unwrap_or(path);
    last.strip_suffix(".parquet").unwrap_or(last)
}

/// A table as stored in the catalog, read back into this product's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredTable {
    pub(crate) location: Option<String>,
    pub(crate) format: Format,
    pub(crate) columns: Vec<Column>,
    pub(crate) parameters: BTreeMap<String, String>,
}

/// Whether a stored table may be updated, and whether it needs to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Comparison {
    /// Ours, and already as defined.
    Unchanged,
    /// Ours, but location, format, columns or parameters differ.
    Differs,
    /// Not created by this product: never touched.
    NotManaged,
    /// Created by this product for another lake path (its value of [`SOURCE_KEY`]).
    OtherSource(String),
}

impl TableDefinition {
    /// Compares with the stored table of the same name.
    pub(crate) fn compare(&self, stored: &StoredTable) -> Comparison {
        let managed = stored
            .parameters
            .get(MANAGED_KEY)
            .is_some_and(|v| v == "true");
        if !managed {
            return Comparison::NotManaged;
        }
        let ours = self.parameters.get(SOURCE_KEY);
        let theirs = stored.parameters.get(SOURCE_KEY);
        if ours != theirs {
            return Comparison::OtherSource(theirs.cloned().unwrap_or_default());
        }
        let parameters_match = self
            .parameters
            .iter()
            .all(|(k, v)| stored.parameters.get(k) == Some(v));
        if stored.location.as_deref() == Some(self.location.as_str())
            && stored.format == self.format
            && stored.columns == self.columns
            && parameters_match
        {
            Comparison::Unchanged
        } else {
            Comparison::Differs
        }
    }

    /// The parameters to store on update: the stored ones (which Athena or other tools may
    /// have added) with this definition's over them.
    pub(crate) fn merged_parameters(&self, stored: &StoredTable) -> BTreeMap<String, String> {
        let mut merged = stored.parameters.clone();
        merged.extend(self.parameters.clone());
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use deltalake::arrow::datatypes::{DataType, Field, TimeUnit};

    fn source(layer: Layer, path: &str) -> TableSource {
        TableSource {
            layer,
            path: path.to_owned(),
            model: "sp:M/1".into(),
            view: "Pump".into(),
        }
    }

    fn file_schema() -> Schema {
        Schema::new(vec![
            Field::new("space", DataType::Utf8, false),
            Field::new("externalId", DataType::Utf8, false),
            Field::new("createdTime", DataType::Int64, false),
            Field::new("site.space", DataType::Utf8, true),
            Field::new(
                "installedAt",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("Name", DataType::Utf8, true),
            Field::new("name", DataType::Int32, true),
        ])
    }

    fn stored(definition: &TableDefinition) -> StoredTable {
        StoredTable {
            location: Some(definition.location.clone()),
            format: definition.format.clone(),
            columns: definition.columns.clone(),
            parameters: definition.parameters.clone(),
        }
    }

    #[test]
    fn publish_tables_read_by_position_with_safe_names() {
        let path = "publish/sp/M/1/Pump/nodes.parquet";
        let table = publish_table(
            "sp_m_1_pump_nodes".into(),
            "s3://b/p/catalog/athena/sp/M/1/Pump/nodes/".into(),
            &source(Layer::Publish, path),
            &file_schema(),
        )
        .unwrap();
        let declared: Vec<(&str, &str, &str)> = table
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.athena_type.as_str(),
                    c.comment.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(declared[2], ("createdtime", "bigint", "createdTime"));
        assert_eq!(declared[3], ("site_space", "string", "site.space"));
        assert_eq!(declared[4], ("installedat", "timestamp", "installedAt"));
        assert_eq!(declared[5].0, "name");
        assert!(declared[6].0.starts_with("name_") && declared[6].1 == "int");
        assert_eq!(table.format, Format::SymlinkParquet);
        assert_eq!(table.parameters[MANAGED_KEY], "true");
        assert_eq!(table.parameters[SOURCE_KEY], path);
        assert_eq!(table.parameters[LAYER_KEY], "publish");
        assert!(table.description.contains("nodes"), "{}", table.description);
    }

    #[test]
    fn raw_tables_are_delta_tables_mirroring_the_log() {
        let list = DataType::List(Arc::new(Field::new("element", DataType::Int64, true)));
        let schema = Schema::new(vec![
            Field::new("type.space", DataType::Utf8, true),
            Field::new("counts", list, true),
        ]);
        let table = raw_table(
            "raw_sp_m_1_pump_nodes".into(),
            "s3://b/p/raw/sp/M/1/views/Pump/nodes/".into(),
            &source(Layer::Raw, "raw/sp/M/1/views/Pump/nodes"),
            &schema,
        )
        .unwrap();
        assert_eq!(table.format, Format::Delta);
        assert_eq!(table.parameters["table_type"], "DELTA");
        assert_eq!(table.columns[0].name, "type.space");
        assert_eq!(table.columns[1].athena_type, "array<bigint>");
    }

    #[test]
    fn only_our_tables_for_the_same_path_are_updated() {
        let path = "publish/sp/M/1/Pump/nodes.parquet";
        let table = publish_table(
            "t".into(),
            "s3://b/x/".into(),
            &source(Layer::Publish, path),
            &file_schema(),
        )
        .unwrap();
        let mut same = stored(&table);
        same.parameters
            .insert("transient_lastDdlTime".into(), "1".into());
        assert_eq!(table.compare(&same), Comparison::Unchanged);
        assert_eq!(table.merged_parameters(&same)["transient_lastDdlTime"], "1");

        let mut grown = stored(&table);
        grown.columns.pop();
        assert_eq!(table.compare(&grown), Comparison::Differs);
        let mut moved = stored(&table);
        moved.location = Some("s3://b/y/".into());
        assert_eq!(table.compare(&moved), Comparison::Differs);

        let mut foreign = stored(&table);
        foreign.parameters.remove(MANAGED_KEY);
        assert_eq!(table.compare(&foreign), Comparison::NotManaged);
        let mut other = stored(&table);
        other
            .parameters
            .insert(SOURCE_KEY.into(), "publish/other.parquet".into());
        assert_eq!(
            table.compare(&other),
            Comparison::OtherSource("publish/other.parquet".into())
        );
    }

    #[test]
    fn formats_are_read_back() {
        let none = BTreeMap::new();
        let index: BTreeMap<String, String> =
            [(INDEX_ACCESS_KEY.to_owned(), "true".to_owned())].into();
        let delta: BTreeMap<String, String> =
            [("table_type".to_owned(), "delta".to_owned())].into();
        assert_eq!(Format::detect(&delta, None, None, &none), Format::Delta);
        assert_eq!(
            Format::detect(
                &none,
                Some(SYMLINK_INPUT_FORMAT),
                Some(PARQUET_SERDE),
                &index
            ),
            Format::SymlinkParquet
        );
        assert_eq!(
            Format::detect(
                &none,
                Some(SYMLINK_INPUT_FORMAT),
                Some(PARQUET_SERDE),
                &none
            ),
            Format::Other
        );
    }
}
