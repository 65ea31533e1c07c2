//! Where a test writes its lake (a local directory or a fresh bucket on the S3 server), the
//! URIs the readers open, and direct access to its tables and objects.

use std::path::{Path, PathBuf};

use cdf_emulator::sample_model::{MODEL, MODEL_VERSION, SCHEMA_SPACE};
use serde_json::{Value, json};

use super::{Lab, required_env};

/// Where a test writes its lake.
#[derive(Debug, Clone)]
pub enum Lake {
    Local(PathBuf),
    S3 { endpoint: String, bucket: String },
}

impl Lake {
    pub fn local(dir: &Path) -> Self {
        Lake::Local(dir.join("lake"))
    }

    /// A fresh bucket on the S3 server, or `None` (skip) when none runs.
    pub async fn s3() -> Option<Self> {
        let endpoint = required_env("CDF_S3_TEST_S3_ENDPOINT", "the S3 protocol server")?;
        let bucket = format!("lake-{:016x}", rand::random::<u64>());
        let response = reqwest::Client::new()
            .put(format!("{endpoint}/{bucket}"))
            .send()
            .await
            .expect("creating a bucket on the S3 server");
        assert!(
            response.status().is_success(),
            "creating bucket {bucket}: {}",
            response.status()
        );
        Some(Lake::S3 { endpoint, bucket })
    }

    pub fn destination_yaml(&self) -> String {
        match self {
            Lake::Local(path) => format!("  local:\n    path: \"{}\"\n", path.display()),
            Lake::S3 { endpoint, bucket } => format!(
                "  s3:\n    bucket: {bucket}\n    prefix: cdf-data\n    region: us-east-1\n    endpoint-url: {endpoint}\n    allow-http: true\n"
            ),
        }
    }

    /// URI of a raw table under the sample model, as the Python readers open it.
    pub fn raw_table_uri(&self, view_folder: &str, kind: &str) -> String {
        let relative =
            format!("raw/{SCHEMA_SPACE}/{MODEL}/{MODEL_VERSION}/views/{view_folder}/{kind}");
        match self {
            Lake::Local(path) => path.join(relative).display().to_string(),
            Lake::S3 { bucket, .. } => format!("s3://{bucket}/cdf-data/{relative}"),
        }
    }

    /// The bytes of an object, by its key relative to the lake's root.
    pub async fn read_object(&self, relative: &str) -> Vec<u8> {
        match self {
            Lake::Local(path) => std::fs::read(path.join(relative))
                .unwrap_or_else(|e| panic!("reading {relative} in the local lake: {e}")),
            Lake::S3 { bucket, .. } => {
                use deltalake::logstore::object_store::ObjectStoreExt as _;
                deltalake::aws::register_handlers(None);
                let url = url::Url::parse(&format!("s3://{bucket}/cdf-data")).expect("lake URL");
                let options: std::collections::HashMap<String, String> = self
                    .storage_options()
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let store = deltalake::logstore::store_for(&url, options).expect("object store");
                store
                    .get(&deltalake::Path::from(relative))
                    .await
                    .unwrap_or_else(|e| panic!("reading {relative} from the S3 server: {e}"))
                    .bytes()
                    .await
                    .expect("object body")
                    .to_vec()
            }
        }
    }

    pub fn storage_options(&self) -> Value {
        match self {
            Lake::Local(_) => json!({}),
            Lake::S3 { endpoint, .. } => json!({
                "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            }),
        }
    }
}

/// URI of a view's publish folder under the sample model, as the Python readers open it.
pub fn publish_dir_uri(lake: &Lake, view_folder: &str) -> String {
    let relative = format!("publish/{SCHEMA_SPACE}/{MODEL}/{MODEL_VERSION}/{view_folder}");
    match lake {
        Lake::Local(path) => path.join(relative).display().to_string(),
        Lake::S3 { bucket, .. } => format!("s3://{bucket}/cdf-data/{relative}"),
    }
}

/// Every batch of a Parquet object, read whole with the arrow-rs reader (which fails on a
/// truncated or otherwise incomplete file).
pub async fn parquet_object_batches(
    store: &deltalake::logstore::ObjectStoreRef,
    path: &deltalake::Path,
) -> Vec<deltalake::arrow::array::RecordBatch> {
    use deltalake::logstore::object_store::ObjectStoreExt as _;
    let bytes = store
        .get(path)
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"));
    deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap_or_else(|e| panic!("{path} is a complete Parquet file: {e}"))
        .build()
        .expect("Parquet reader")
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{path}: row groups: {e}"))
}

/// Appends `count` commits of another stream (empty appends: only a txn and metadata) to a
/// raw table, as a busy neighbour sharing the table would.
pub async fn neighbour_commits(lab: &Lab, folder: &str, kind: &str, first: i64, count: i64) {
    let uri = lab.lake.raw_table_uri(folder, kind);
    let url = url::Url::from_directory_path(&uri).expect("local table URL");
    let mut table = cdf_s3_replicator::lake::LakeTable::open_with_storage_options(
        url,
        Default::default(),
        Default::default(),
    )
    .await
    .expect("raw table");
    for txn_version in first..first + count {
        let outcome = table
            .append(
                &[],
                cdf_s3_replicator::lake::StreamCommit {
                    app_id: "neighbour".into(),
                    txn_version,
                    metadata: Default::default(),
                },
            )
            .await
            .expect("neighbour commit");
        assert!(matches!(
            outcome,
            cdf_s3_replicator::lake::CommitOutcome::Committed(_)
        ));
    }
}
