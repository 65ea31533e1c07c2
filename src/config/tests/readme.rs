//! Every configuration example of the original README loads unchanged, with the variables of
//! its `.env` example, into the values a user of the original would expect.

use std::time::Duration;

use super::{fixture, fixture_text, load_with, readme_env};
use crate::config::{
    ConfigKind, DataModelSelection, Destination, LogLevel, MAX_SYNC_PAGE_SIZE, ProcessEnv,
    SpaceSelection, load_config,
};

fn model(xid: &str, version: Option<&str>, views: Option<&[&str]>) -> DataModelSelection {
    DataModelSelection {
        external_id: xid.to_string(),
        version: version.map(str::to_string),
        views: views.map(|v| v.iter().map(|s| s.to_string()).collect()),
    }
}

#[test]
fn readme_env_example_is_read_like_the_original() {
    let env = readme_env();
    assert_eq!(env.0["COGNITE_STATE_DB"], "s3_replicator_state");
    assert_eq!(env.0["S3_PREFIX"], "cdf-data/");
    assert_eq!(env.0["APP_ENV"], "");
    assert_eq!(env.0["AWS_ACCESS_KEY_ID"], "");
    assert_eq!(
        env.0["COGNITE_TOKEN_URL"],
        "https://login.microsoftonline.com/<tenant-id>/oauth2/v2.0/token"
    );
}

#[test]
fn readme_config_yaml_loads_unchanged() {
    let config = load_with(&fixture_text("readme-config.yaml"), &readme_env()).unwrap();

    assert_eq!(config.kind, ConfigKind::Local);
    assert_eq!(config.logger.level, LogLevel::Info);
    assert_eq!(config.logger.format, None);

    let cognite = &config.cognite;
    assert_eq!(cognite.host, "https://your-cluster.cognitedata.com");
    assert_eq!(cognite.project, "your-project-name");
    let auth = &cognite.credentials;
    assert_eq!(
        auth.token_url,
        "https://login.microsoftonline.com/<tenant-id>/oauth2/v2.0/token"
    );
    assert_eq!(auth.client_id, "your-client-id");
    assert_eq!(auth.secret.expose(), "your-client-secret");
    assert_eq!(
        auth.scopes,
        vec!["https://your-cluster.cognitedata.com/.default"]
    );
    assert_eq!(auth.audience, None);
    assert_eq!(
        cognite.extraction_pipeline.as_deref(),
        Some("s3-data-modeling-replicator")
    );
    assert_eq!(cognite.timeout, Duration::from_secs(60));
    assert_eq!(cognite.max_retries, 8);

    let ex = &config.extractor;
    assert_eq!(ex.state_store.database, "s3_replicator_state");
    assert_eq!(ex.state_store.table, "data_modeling_state");
    assert_eq!(ex.poll_time, Duration::from_secs(900));
    assert_eq!(ex.snapshot_interval, Duration::from_secs(900));
    assert_eq!(
        ex.subscription_batch_size, 10_000,
        "configured value stays visible"
    );
    assert_eq!(ex.sync_page_size, MAX_SYNC_PAGE_SIZE);
    assert_eq!(ex.ingest_batch_size, 100_000);
    assert_eq!(ex.s3_ingest_batch_size, 1_000);
    assert_eq!(ex.parallelism, 2);
    assert_eq!(ex.time_budget, None);
    assert_eq!(ex.deadline_margin, Duration::from_secs(20));

    assert_eq!(
        config.data_modeling,
        vec![
            SpaceSelection {
                space: "analytics-space".into(),
                data_models: vec![model("CustomerModel", None, None)],
            },
            SpaceSelection {
                space: "test-space".into(),
                data_models: vec![model(
                    "TestModel",
                    Some("2"),
                    Some(&["CustomerView", "OrderView", "ProductView"]),
                )],
            },
        ]
    );

    let Destination::S3(s3) = &config.destination else {
        panic!("expected an S3 destination");
    };
    assert_eq!(s3.bucket, "your-bucket-name");
    assert_eq!(s3.prefix, "cdf-data/");
    assert_eq!(s3.region.as_deref(), Some("us-east-1"));
    assert_eq!(s3.endpoint_url, None);
    assert!(!s3.allow_http);
    assert_eq!(s3.credentials, None);

    assert_eq!(config.warnings.len(), 2, "{:#?}", config.warnings);
    assert_eq!(config.warnings[0].path, "extractor.subscription-batch-size");
    assert!(config.warnings[0].message.contains("pages of 2000"));
    // The Python replicator's "rows per S3 write" means row groups here: said once.
    assert_eq!(config.warnings[1].path, "extractor.s3-ingest-batch-size");
    assert!(
        config.warnings[1]
            .message
            .contains("rows per Parquet row group")
    );
    assert!(config.warnings[1].message.contains("`ingest-batch-size`"));
}

#[test]
fn readme_config_loads_from_disk_with_its_env_file_next_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yaml");
    std::fs::copy(fixture("readme-config.yaml"), &config_path).unwrap();
    std::fs::copy(fixture("readme.env"), dir.path().join(".env")).unwrap();

    // Process variables that the README's `.env` also sets would win over it; compare with
    // what the process actually holds rather than assuming a clean environment.
    let env = ProcessEnv::for_config_file(&config_path).unwrap();
    let config = load_config(&config_path, &env).unwrap();
    let expected_project =
        std::env::var("COGNITE_PROJECT").unwrap_or_else(|_| "your-project-name".into());
    assert_eq!(config.cognite.project, expected_project);
    assert_eq!(config.data_modeling.len(), 2);
}

#[test]
fn readme_data_modeling_options_load_in_a_minimal_document() {
    let text = format!(
        "{}\n{}",
        fixture_text("minimal-base.yaml"),
        fixture_text("readme-data-modeling-options.yaml")
    );
    let config = load_with(&text, &readme_env()).unwrap();
    assert_eq!(
        config.data_modeling,
        vec![
            SpaceSelection {
                space: "analytics-space".into(),
                data_models: vec![
                    model("CustomerModel", None, None),
                    model("OrderModel", None, None),
                ],
            },
            SpaceSelection {
                space: "staging-space".into(),
                data_models: vec![model("TestModel", Some("2"), None)],
            },
            SpaceSelection {
                space: "reporting-space".into(),
                data_models: vec![model(
                    "ReportingModel",
                    None,
                    Some(&["SummaryView", "DetailView"]),
                )],
            },
        ]
    );
    // Without an extractor section every default applies.
    assert_eq!(
        config.extractor,
        crate::config::ExtractorSettings::default()
    );
    assert!(config.warnings.is_empty(), "{:#?}", config.warnings);
}

#[test]
fn readme_performance_tuning_example_loads() {
    let text = format!(
        "{}\n{}\n{}",
        fixture_text("minimal-base.yaml"),
        fixture_text("readme-data-modeling-options.yaml"),
        fixture_text("readme-performance-tuning.yaml")
    );
    let config = load_with(&text, &readme_env()).unwrap();
    let ex = &config.extractor;
    assert_eq!(ex.poll_time, Duration::from_secs(300));
    assert_eq!(ex.snapshot_interval, Duration::from_secs(3_600));
    assert_eq!(ex.subscription_batch_size, 50_000);
    assert_eq!(ex.sync_page_size, 2_000);
    assert_eq!(ex.ingest_batch_size, 500_000);
    assert_eq!(ex.s3_ingest_batch_size, 10_000);
    // Keys the snippet leaves out keep their defaults.
    assert_eq!(ex.state_store.database, "s3_replicator_state");
    assert_eq!(ex.parallelism, 2);
}

#[test]
fn example_config_of_this_project_loads() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml"),
    )
    .unwrap();
    let env = crate::config::MapEnv::new()
        .with("COGNITE_BASE_URL", "https://api.cognitedata.com")
        .with("COGNITE_PROJECT", "my-project")
        .with("COGNITE_TOKEN_URL", "https://login.example.com/token")
        .with("COGNITE_CLIENT_ID", "client")
        .with("COGNITE_CLIENT_SECRET", "secret")
        .with(
            "COGNITE_TOKEN_SCOPES",
            "https://api.cognitedata.com/.default",
        );
    let config = load_with(&text, &env).unwrap();
    let Destination::Local(local) = &config.destination else {
        panic!("the example writes to a local directory");
    };
    assert_eq!(local.path, std::path::PathBuf::from("./lake"));
}
