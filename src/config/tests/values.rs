//! How individual values are read: defaults, numbers written for text, `${VAR}` re-reading,
//! duration strings, both key spellings, normalisation and redaction.

use std::path::PathBuf;
use std::time::Duration;

use super::{VALID, load, load_with, variant};
use crate::config::{
    Destination, LogFormat, LogLevel, MapEnv, Secret, StaticS3Credentials, defaults,
};

fn with_s3(body: &str) -> String {
    variant("  local:\n    path: ./lake\n", body)
}

#[test]
fn defaults_apply_when_extractor_keys_are_absent() {
    let config = load(&variant("  poll-time: 900\n  parallelism: 2\n", "  {}\n")).unwrap();
    let ex = &config.extractor;
    assert_eq!(ex.state_store.database, "s3_replicator_state");
    assert_eq!(ex.state_store.table, "data_modeling_state");
    assert_eq!(ex.poll_time, Duration::from_secs(900));
    assert_eq!(ex.snapshot_interval, Duration::from_secs(900));
    assert_eq!(ex.subscription_batch_size, 1_000);
    assert_eq!(ex.sync_page_size, 1_000);
    assert_eq!(ex.ingest_batch_size, 100_000);
    assert_eq!(ex.s3_ingest_batch_size, defaults::S3_INGEST_BATCH_SIZE);
    assert_eq!(ex.ingest_batch_bytes, 64 * 1024 * 1024);
    assert_eq!(ex.parallelism, 2);
    assert_eq!(ex.time_budget, None);
    assert_eq!(ex.deadline_margin, Duration::from_secs(20));
    assert_eq!(ex.snapshot.temp_dir, std::env::temp_dir());
    assert_eq!(ex.snapshot.memory_budget_bytes, 256 * 1024 * 1024);
    assert_eq!(ex.snapshot.part_rows, 10_000_000);
    assert!(ex.maintenance.enabled);
    assert_eq!(
        ex.maintenance.vacuum_retention,
        Duration::from_secs(168 * 3_600)
    );
    assert_eq!(ex.maintenance.checkpoint_interval, 10);
    assert_eq!(ex.maintenance.compact_min_files, 10);
    assert_eq!(config.logger.level, LogLevel::Info);
    assert_eq!(config.cognite.timeout, Duration::from_secs(60));
    assert_eq!(config.cognite.max_retries, 8);
}

#[test]
fn every_addition_is_read() {
    let yaml = variant(
        "  parallelism: 2\n",
        "  parallelism: 4\n  time-budget: 14m\n  deadline-margin: 30s\n  ingest-batch-bytes: 1048576\n\
         \x20 snapshot:\n    temp-dir: /var/tmp/snap\n    memory-budget-mb: 512\n    part-rows: 2000000\n\
         \x20 maintenance:\n    enabled: false\n    vacuum-retention-hours: 336\n\
         \x20   checkpoint-interval: 50\n    compact-min-files: 4\n",
    )
    .replace(
        "  project: my-project\n",
        "  project: my-project\n  timeout: 2m\n  max-retries: 3\n  extraction-pipeline:\n    external-id: pipe\n",
    )
    .replace(
        "    scopes: [https://api.cognitedata.com/.default]\n",
        "    scopes: \"a b\"\n    audience: aud\n    resource: res\n",
    );
    let yaml = format!("logger:\n  console:\n    level: warn\n    format: JSON\n{yaml}");
    let config = load(&yaml).unwrap();
    assert_eq!(config.logger.level, LogLevel::Warning);
    assert_eq!(config.logger.format, Some(LogFormat::Json));
    let c = &config.cognite;
    assert_eq!(c.timeout, Duration::from_secs(120));
    assert_eq!(c.max_retries, 3);
    assert_eq!(c.extraction_pipeline.as_deref(), Some("pipe"));
    assert_eq!(c.credentials.scopes, ["a", "b"]);
    assert_eq!(c.credentials.audience.as_deref(), Some("aud"));
    assert_eq!(c.credentials.resource.as_deref(), Some("res"));
    let ex = &config.extractor;
    assert_eq!(ex.parallelism, 4);
    assert_eq!(ex.time_budget, Some(Duration::from_secs(840)));
    assert_eq!(ex.deadline_margin, Duration::from_secs(30));
    assert_eq!(ex.ingest_batch_bytes, 1_048_576);
    assert_eq!(ex.snapshot.temp_dir, PathBuf::from("/var/tmp/snap"));
    assert_eq!(ex.snapshot.memory_budget_bytes, 512 * 1024 * 1024);
    assert_eq!(ex.snapshot.part_rows, 2_000_000);
    assert!(!ex.maintenance.enabled);
    assert_eq!(
        ex.maintenance.vacuum_retention,
        Duration::from_secs(336 * 3_600)
    );
    assert_eq!(ex.maintenance.checkpoint_interval, 50);
    assert_eq!(ex.maintenance.compact_min_files, 4);
    assert!(config.warnings.is_empty(), "{:#?}", config.warnings);
}

#[test]
fn log_levels_are_case_insensitive() {
    for (written, level) in [
        ("debug", LogLevel::Debug),
        ("Info", LogLevel::Info),
        ("WARNING", LogLevel::Warning),
        ("WARN", LogLevel::Warning),
        ("error", LogLevel::Error),
        ("TRACE", LogLevel::Trace),
    ] {
        let config = load(&format!(
            "logger:\n  console:\n    level: {written}\n{VALID}"
        ))
        .unwrap();
        assert_eq!(config.logger.level, level, "{written}");
    }
    assert_eq!(LogLevel::Warning.as_filter(), "warn");
}

#[test]
fn versions_written_as_numbers() {
    let config = load(&variant("version: \"1\"", "version: 2")).unwrap();
    assert_eq!(
        config.data_modeling[0].data_models[0].version.as_deref(),
        Some("2")
    );
    assert!(config.warnings.is_empty());

    let config = load(&variant("version: \"1\"", "version: 2.1")).unwrap();
    assert_eq!(
        config.data_modeling[0].data_models[0].version.as_deref(),
        Some("2.1")
    );
    assert_eq!(config.warnings.len(), 1);
    assert_eq!(
        config.warnings[0].path,
        "data_modeling[0].data_models[0].version"
    );
    assert!(config.warnings[0].message.contains("quote versions"));

    let config = load(&variant("version: \"1\"", "version: 2.0")).unwrap();
    assert_eq!(
        config.data_modeling[0].data_models[0].version.as_deref(),
        Some("2.0")
    );
}

#[test]
fn names_written_as_numbers_stay_text() {
    let config = load(
        &variant("project: my-project", "project: 2024")
            .replace("client-id: my-client", "client-id: 1234")
            .replace("secret: s3cr3t-value", "secret: 987654"),
    )
    .unwrap();
    assert_eq!(config.cognite.project, "2024");
    assert_eq!(config.cognite.credentials.client_id, "1234");
    assert_eq!(config.cognite.credentials.secret.expose(), "987654");
}

#[test]
fn exact_placeholders_are_reread() {
    let yaml = variant("poll-time: 900", "poll-time: ${POLL}")
        .replace("parallelism: 2", "parallelism: ${PAR}")
        .replace("secret: s3cr3t-value", "secret: ${SECRET}");
    let env = MapEnv::new()
        .with("POLL", "900")
        .with("PAR", "3")
        .with("SECRET", "0123");
    let config = load_with(&yaml, &env).unwrap();
    assert_eq!(config.extractor.poll_time, Duration::from_secs(900));
    assert_eq!(config.extractor.parallelism, 3);
    assert_eq!(
        config.cognite.credentials.secret.expose(),
        "0123",
        "never altered"
    );

    let env = MapEnv::new()
        .with("POLL", "1h")
        .with("PAR", "")
        .with("SECRET", "x");
    let config = load_with(&yaml, &env).unwrap();
    assert_eq!(config.extractor.poll_time, Duration::from_secs(3_600));
    assert_eq!(
        config.extractor.parallelism, 2,
        "empty variable means: not set"
    );
}

#[test]
fn duration_strings() {
    for (written, secs) in [
        ("900", 900),
        ("\"900s\"", 900),
        ("15m", 900),
        ("1h", 3_600),
        ("1h 30m", 5_400),
    ] {
        let config = load(&variant("poll-time: 900", &format!("poll-time: {written}"))).unwrap();
        assert_eq!(
            config.extractor.poll_time,
            Duration::from_secs(secs),
            "{written}"
        );
    }
}

#[test]
fn snake_case_spellings_of_the_original_are_accepted() {
    let yaml = variant(
        "poll-time: 900",
        "poll_time: 600\n  subscription_batch_size: 1500",
    )
    .replace("idp-authentication:", "idp_authentication:")
    .replace("client-id:", "client_id:");
    let config = load(&yaml).unwrap();
    assert_eq!(config.extractor.poll_time, Duration::from_secs(600));
    assert_eq!(config.extractor.sync_page_size, 1_500);
    assert_eq!(config.cognite.credentials.client_id, "my-client");
}

#[test]
fn both_spellings_in_one_mapping_later_wins_with_a_warning() {
    let config = load(&variant(
        "poll-time: 900",
        "poll-time: 900\n  poll_time: 60",
    ))
    .unwrap();
    assert_eq!(config.extractor.poll_time, Duration::from_secs(60));
    assert_eq!(config.warnings.len(), 1);
    assert_eq!(config.warnings[0].path, "extractor.poll_time");
    assert!(
        !config.warnings[0].message.contains("60"),
        "values are not repeated"
    );
}

#[test]
fn yaml_merge_keys_are_applied() {
    let yaml = VALID
        .replace("      - external_id: PlantModel\n", "      - &base\n        external_id: PlantModel\n")
        .replace(
            "destination:\n",
            "  - space: other\n    data_models:\n      - <<: *base\n        version: \"2\"\ndestination:\n",
        );
    let config = load(&yaml).unwrap();
    let other = &config.data_modeling[1].data_models[0];
    assert_eq!(other.external_id, "PlantModel");
    assert_eq!(other.version.as_deref(), Some("2"));
    assert_eq!(
        other.views.as_deref(),
        Some(&["Pump".to_string(), "Valve".to_string()][..])
    );
}

#[test]
fn s3_destination_values() {
    let config = load(&with_s3(
        "  s3:\n    bucket: my-bucket\n    prefix: /team/cdf\n    region: eu-west-1\n\
         \x20   endpoint-url: http://127.0.0.1:5000/\n    allow-http: true\n    request-timeout: 5s\n\
         \x20   access-key-id: AKIAEXAMPLE\n    secret-access-key: wJalrEXAMPLE\n",
    ))
    .unwrap();
    let Destination::S3(s3) = config.destination else {
        panic!("expected S3");
    };
    assert_eq!(s3.bucket, "my-bucket");
    assert_eq!(s3.prefix, "team/cdf/");
    assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(s3.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
    assert!(s3.allow_http);
    assert_eq!(s3.request_timeout, std::time::Duration::from_secs(5));
    assert_eq!(
        s3.credentials,
        Some(StaticS3Credentials {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrEXAMPLE"),
        })
    );
}

#[test]
fn prefix_normalisation() {
    for (written, prefix) in [
        ("\"\"", ""),
        ("/", ""),
        ("cdf-data", "cdf-data/"),
        ("cdf-data/", "cdf-data/"),
        ("/a/b//", "a/b/"),
        ("~", ""),
    ] {
        let config = load(&with_s3(&format!(
            "  s3:\n    bucket: my-bucket\n    prefix: {written}\n"
        )))
        .unwrap();
        let Destination::S3(s3) = config.destination else {
            panic!("expected S3");
        };
        assert_eq!(s3.prefix, prefix, "{written}");
    }
}

#[test]
fn empty_static_keys_mean_default_credential_chain() {
    let env = MapEnv::new()
        .with("AWS_ACCESS_KEY_ID", "")
        .with("AWS_SECRET_ACCESS_KEY", "");
    let config = load_with(
        &with_s3(
            "  s3:\n    bucket: my-bucket\n    access-key-id: ${AWS_ACCESS_KEY_ID}\n\
             \x20   secret-access-key: ${AWS_SECRET_ACCESS_KEY}\n",
        ),
        &env,
    )
    .unwrap();
    let Destination::S3(s3) = config.destination else {
        panic!("expected S3");
    };
    assert_eq!(s3.credentials, None);
}

#[test]
fn secret_is_redacted() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret:?}"), "***");
    assert_eq!(format!("{secret}"), "***");
    assert_eq!(secret.expose(), "hunter2");

    let config = load(&with_s3(
        "  s3:\n    bucket: my-bucket\n    access-key-id: AKIAEXAMPLE\n    secret-access-key: wJalrEXAMPLE\n",
    ))
    .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cr3t-value"), "{debug}");
    assert!(!debug.contains("wJalrEXAMPLE"), "{debug}");
    assert!(debug.contains("***"));
}

#[test]
fn local_destination_path() {
    let config = load(VALID).unwrap();
    assert_eq!(
        config.destination,
        Destination::Local(crate::config::LocalDestination {
            path: PathBuf::from("./lake")
        })
    );
    let err = load(&variant("    path: ./lake\n", "    path: \"\"\n")).unwrap_err();
    assert_eq!(err.issues()[0].path, "destination.local.path");
}

#[test]
fn log_format_default_depends_on_lambda() {
    let config = load(VALID).unwrap();
    assert_eq!(config.logger.format_or_default(true), LogFormat::Json);
    assert_eq!(config.logger.format_or_default(false), LogFormat::Text);
}
