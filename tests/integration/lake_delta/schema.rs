//! Schema changes on append: new nullable columns and lossless widenings evolve the table, an
//! incompatible type change is a typed error.

use std::sync::Arc;

use cdf_s3_replicator::lake::LakeError;
use deltalake::arrow::array::{Int32Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use serde_json::json;

use crate::support::{python_read, required_env};

use super::{
    NODES_APP, assert_python_values, base_schema, batch, batch_with_column, commit, committed,
    local_lake, open, table_rows,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_schema_evolution_adds_nullable_columns_and_casts_lossless_widenings() {
    let lake = local_lake();
    let mut table = open(&lake.destination, &lake.url).await;
    table
        .append(&[batch(0..10)], commit(NODES_APP, 1, "c1"))
        .await
        .unwrap();

    let with_pressure = batch_with_column(
        10..20,
        "pressure",
        Arc::new(Int32Array::from_iter_values(0..10)),
    );
    let outcome = table
        .append(&[with_pressure], commit(NODES_APP, 2, "c2"))
        .await
        .unwrap();
    assert_eq!(committed(&outcome).added_columns, ["pressure"]);
    let schema = table.arrow_schema().unwrap();
    let pressure = schema.field_with_name("pressure").unwrap();
    assert!(pressure.is_nullable());
    assert_eq!(pressure.data_type(), &DataType::Int32);
    assert!(table.changes_since(Some(1)).await.unwrap()[0].metadata_changed);

    // Rows without the new column still append (null-filled).
    let outcome = table
        .append(&[batch(20..30)], commit(NODES_APP, 3, "c3"))
        .await
        .unwrap();
    assert!(committed(&outcome).added_columns.is_empty());

    // A narrower type than stored is widened losslessly: int32 data into the int64 `version`.
    let mut narrow_fields: Vec<Field> = base_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    narrow_fields[2] = Field::new("version", DataType::Int32, false);
    let base = batch(30..40);
    let mut columns = base.columns().to_vec();
    columns[2] = Arc::new(Int32Array::from_iter_values((30..40).map(|i| i * 10)));
    let narrow = RecordBatch::try_new(Arc::new(Schema::new(narrow_fields)), columns).unwrap();
    table
        .append(&[narrow], commit(NODES_APP, 4, "c4"))
        .await
        .unwrap();

    // An empty append with a new column evolves the schema and records progress only.
    let empty = batch_with_column(
        0..0,
        "flow",
        Arc::new(StringArray::from(Vec::<String>::new())),
    );
    let outcome = table
        .append(&[empty], commit(NODES_APP, 5, "c5"))
        .await
        .unwrap();
    let report = committed(&outcome);
    assert_eq!((report.rows, report.files), (0, 0));
    assert_eq!(report.added_columns, ["flow"]);
    assert_eq!(table.txn_version(NODES_APP).await.unwrap(), Some(5));
    assert_eq!(table_rows(&table), 40);

    if let Some(python) = required_env("CDF_S3_TEST_PYTHON", "independent Delta readers") {
        let path = lake.url.to_file_path().unwrap();
        let path = path.to_str().unwrap();
        let read = python_read(
            &python,
            json!({
                "uri": path,
                "columns": ["externalId", "version", "name", "lastUpdated", "tags", "pressure"],
                "duckdb_path": path,
            }),
        );
        assert_python_values(&read, &(0..40).collect());
        let pressure: Vec<Option<i64>> = (0..40)
            .map(|i| (10..20).contains(&i).then_some(i - 10))
            .collect();
        assert_eq!(read["values"]["pressure"], json!(pressure));
        assert!(read["columns"].as_array().unwrap().contains(&json!("flow")));
        assert_eq!(read["duckdb_rows"], 40);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_incompatible_type_change_is_a_typed_error() {
    let lake = local_lake();
    let mut table = open(&lake.destination, &lake.url).await;
    table
        .append(&[batch(0..10)], commit(NODES_APP, 1, "c1"))
        .await
        .unwrap();
    let version = table.version();

    let mut fields: Vec<Field> = base_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[2] = Field::new("version", DataType::Utf8, false);
    let base = batch(10..20);
    let mut columns = base.columns().to_vec();
    columns[2] = Arc::new(StringArray::from_iter_values(
        (10..20).map(|i| format!("v{i}")),
    ));
    let changed = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();

    match table
        .append(&[changed], commit(NODES_APP, 2, "c2"))
        .await
        .unwrap_err()
    {
        LakeError::IncompatibleType {
            column,
            table_type,
            batch_type,
            ..
        } => {
            assert_eq!(column, "version");
            assert_eq!(table_type, "long");
            assert_eq!(batch_type, "string");
        }
        other => panic!("expected IncompatibleType, got {other}"),
    }
    table.refresh().await.unwrap();
    assert_eq!(table.version(), version, "nothing was committed");
    assert_eq!(table.txn_version(NODES_APP).await.unwrap(), Some(1));

    // A batch lacking a required (non-nullable) column is refused by name.
    let partial = batch(10..20).project(&[0, 2]).unwrap();
    assert!(matches!(
        table.append(&[partial], commit(NODES_APP, 2, "c2")).await,
        Err(LakeError::MissingRequiredColumn { column, .. }) if column == "externalId"
    ));
}
