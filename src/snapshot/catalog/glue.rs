//! The only place that talks to the Glue API: four calls (`GetDatabase`, `GetTable`,
//! `CreateTable`, `UpdateTable`), exactly the actions the template grants.
//!
//! The client is configured like the S3 destination: its region and static keys when the
//! configuration gives them, otherwise the default AWS chain (the function's role in
//! Lambda); the endpoint is `destination.catalog.glue.endpoint-url` when set (a test server),
//! otherwise the SDK's own resolution (`AWS_ENDPOINT_URL_GLUE`, then AWS).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_glue::Client;
use aws_sdk_glue::config::{Credentials, Region};
use aws_sdk_glue::error::DisplayErrorContext;
use aws_sdk_glue::types::{Column as GlueColumn, SerDeInfo, StorageDescriptor, Table, TableInput};

use super::error::CatalogError;
use super::table_definition::{
    Column, Format, HIVE_TEXT_OUTPUT_FORMAT, INDEX_ACCESS_KEY, PARQUET_SERDE, SYMLINK_INPUT_FORMAT,
    StoredTable, TableDefinition,
};

/// A Glue request that takes longer than this is abandoned (and retried by the SDK).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// A Glue client bound to one database.
#[derive(Debug, Clone)]
pub(crate) struct GlueCatalog {
    client: Client,
    database: String,
}

impl GlueCatalog {
    /// A client for `database`. `storage_options` are the S3 destination's (region and
    /// static keys are taken from them); `endpoint_url` overrides the Glue endpoint.
    pub(crate) async fn connect(
        database: &str,
        storage_options: &HashMap<String, String>,
        endpoint_url: Option<&str>,
    ) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
        if let Some(region) = storage_options.get("AWS_REGION") {
            loader = loader.region(Region::new(region.clone()));
        }
        if let (Some(id), Some(secret)) = (
            storage_options.get("AWS_ACCESS_KEY_ID"),
            storage_options.get("AWS_SECRET_ACCESS_KEY"),
        ) {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.clone(),
                storage_options.get("AWS_SESSION_TOKEN").cloned(),
                None,
                "cdf-s3-replicator destination keys",
            ));
        }
        if let Some(endpoint) = endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        Self {
            client: Client::new(&config),
            database: database.to_owned(),
        }
    }

    pub(crate) fn database(&self) -> &str {
        &self.database
    }

    /// Fails when the database does not exist or cannot be read: it is never created here.
    pub(crate) async fn check_database(&self) -> Result<(), CatalogError> {
        self.client
            .get_database()
            .name(&self.database)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let missing = e
                    .as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception());
                if missing {
                    CatalogError::NoDatabase(self.database.clone())
                } else {
                    self.error("GetDatabase", &self.database, DisplayErrorContext(&e))
                }
            })
    }

    /// The stored table of that name, `None` when there is none.
    pub(crate) async fn table(&self, name: &str) -> Result<Option<StoredTable>, CatalogError> {
        match self
            .client
            .get_table()
            .database_name(&self.database)
            .name(name)
            .send()
            .await
        {
            Ok(output) => Ok(output.table().map(stored_table)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error("GetTable", name, DisplayErrorContext(&e))),
        }
    }

    pub(crate) async fn create(&self, definition: &TableDefinition) -> Result<(), CatalogError> {
        let input = table_input(definition, definition.parameters.clone())?;
        self.client
            .create_table()
            .database_name(&self.database)
            .table_input(input)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("CreateTable", &definition.name, DisplayErrorContext(&e)))
    }

    /// Replaces the table's definition, keeping the stored parameters this product does not
    /// set.
    pub(crate) async fn update(
        &self,
        definition: &TableDefinition,
        stored: &StoredTable,
    ) -> Result<(), CatalogError> {
        let input = table_input(definition, definition.merged_parameters(stored))?;
        self.client
            .update_table()
            .database_name(&self.database)
            .table_input(input)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("UpdateTable", &definition.name, DisplayErrorContext(&e)))
    }

    fn error(
        &self,
        operation: &'static str,
        table: &str,
        cause: impl std::fmt::Display,
    ) -> CatalogError {
        CatalogError::Glue {
            operation,
            target: format!("{}.{table}", self.database),
            message: crate::secret::redact(&cause.to_string()),
        }
    }
}

fn stored_table(table: &Table) -> StoredTable {
    let parameters = to_btree(table.parameters());
    let descriptor = table.storage_descriptor();
    let serde = descriptor.and_then(StorageDescriptor::serde_info);
    let serde_parameters = to_btree(serde.and_then(SerDeInfo::parameters));
    let format = Format::detect(
        &parameters,
        descriptor.and_then(StorageDescriptor::input_format),
        serde.and_then(SerDeInfo::serialization_library),
        &serde_parameters,
    );
    StoredTable {
        location: descriptor
            .and_then(StorageDescriptor::location)
            .map(str::to_owned),
        format,
        columns: descriptor
            .map(|d| {
                d.columns()
                    .iter()
                    .map(|c| Column {
                        name: c.name().to_owned(),
                        athena_type: c.r#type().unwrap_or_default().to_owned(),
                        comment: c.comment().map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        parameters,
    }
}

fn to_btree(map: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn table_input(
    definition: &TableDefinition,
    parameters: BTreeMap<String, String>,
) -> Result<TableInput, CatalogError> {
    let build_error = |e: aws_sdk_glue::error::BuildError| CatalogError::Definition {
        table: definition.name.clone(),
        reason: e.to_string(),
    };
    let columns = definition
        .columns
        .iter()
        .map(|c| {
            GlueColumn::builder()
                .name(&c.name)
                .r#type(&c.athena_type)
                .set_comment(c.comment.clone())
                .build()
                .map_err(build_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut descriptor = StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(&definition.location);
    if definition.format == Format::SymlinkParquet {
        descriptor = descriptor
            .input_format(SYMLINK_INPUT_FORMAT)
            .output_format(HIVE_TEXT_OUTPUT_FORMAT)
            .serde_info(
                SerDeInfo::builder()
                    .serialization_library(PARQUET_SERDE)
                    .parameters(INDEX_ACCESS_KEY, "true")
                    .parameters("serialization.format", "1")
                    .build(),
            );
    }
    TableInput::builder()
        .name(&definition.name)
        .description(&definition.description)
        .table_type("EXTERNAL_TABLE")
        .set_parameters(Some(parameters.into_iter().collect()))
        .storage_descriptor(descriptor.build())
        .build()
        .map_err(build_error)
}
