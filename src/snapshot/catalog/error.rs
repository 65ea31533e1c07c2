//! Why one catalog table (or the whole registration) failed.

use super::athena_types::UnsupportedType;
use crate::failure::{Cause, Failure};
use crate::lake::LakeError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CatalogError {
    #[error(
        "Glue database {0:?} does not exist; create it (the template does when its \
         GlueDatabase parameter is set) - tables are registered into an existing database only"
    )]
    NoDatabase(String),
    #[error("Glue {operation} of {target}: {message}")]
    Glue {
        operation: &'static str,
        target: String,
        message: String,
    },
    #[error(
        "table {table} exists and was not created by cdf-s3-replicator (no \
         cdf_s3_replicator_managed parameter); it is left unchanged - drop or rename it to let \
         the replicator register {served}"
    )]
    NotManaged { table: String, served: String },
    #[error(
        "table {table} was created by cdf-s3-replicator for {other}, not for {served}; it is \
         left unchanged"
    )]
    NameClash {
        table: String,
        served: String,
        other: String,
    },
    #[error("table {table}: {reason}")]
    Definition { table: String, reason: String },
    #[error(transparent)]
    Type(#[from] UnsupportedType),
    #[error("{0}")]
    Lake(#[from] LakeError),
    #[error("{what} {path}: {message}")]
    Store {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("the Glue Data Catalog needs an S3 destination: table locations must be s3:// URLs")]
    NotS3,
}

impl CatalogError {
    /// Why registration failed, for whoever decides whether to run again.
    pub(crate) fn cause(&self) -> Cause {
        match self {
            CatalogError::NoDatabase(_) | CatalogError::NotS3 => Cause::InvalidConfiguration,
            // The SDK's answer is kept as text; throttling and outages are the common case,
            // and a retry is the safe advice.
            CatalogError::Glue { .. } => Cause::CatalogUnavailable,
            CatalogError::NotManaged { .. } | CatalogError::NameClash { .. } => {
                Cause::CatalogConflict
            }
            CatalogError::Type(_) => Cause::SchemaConflict,
            CatalogError::Definition { .. } => Cause::Internal,
            CatalogError::Lake(error) => Cause::of_lake(error),
            CatalogError::Store { .. } => Cause::LakeUnavailable,
        }
    }

    pub(crate) fn to_failure(&self) -> Failure {
        Failure::new(self.cause(), self.to_string())
    }
}
