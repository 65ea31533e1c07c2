//! Malformed configurations: each names the key path and says what was expected.

use super::{VALID, assert_single_issue, issues, load, load_with, variant};
use crate::config::{ConfigError, MapEnv, RawConfig};

#[test]
fn valid_base_document_loads() {
    let config = load(VALID).unwrap();
    assert_eq!(config.data_modeling[0].space, "plant");
}

#[test]
fn malformed_yaml_reports_line_and_column() {
    let err = load("cognite:\n  host: https://x\n   project: [unclosed\n").unwrap_err();
    let ConfigError::Syntax {
        origin,
        line,
        column,
        message,
    } = &err
    else {
        panic!("expected a syntax error, got {err}");
    };
    assert_eq!(origin, "test.yaml");
    assert_eq!(*line, Some(3), "{message}");
    assert!(column.is_some());
    assert!(err.to_string().contains("line 3"), "{err}");
}

#[test]
fn duplicate_yaml_key_is_a_syntax_error() {
    let err = load(&variant(
        "  project: my-project\n",
        "  project: a\n  project: b\n",
    ))
    .unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("duplicate"), "{err}");
}

#[test]
fn empty_and_non_mapping_documents() {
    for (yaml, what) in [
        ("", "is empty"),
        ("# nothing\n", "is empty"),
        ("- a\n", "is a list"),
        ("42", "single value"),
    ] {
        let issues = issues(yaml);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].path, "");
        assert!(issues[0].message.contains(what), "{:?}", issues[0]);
        assert!(issues[0].message.contains("cognite, data_modeling"));
    }
}

#[test]
fn unknown_top_level_key() {
    assert_single_issue(
        &format!("{VALID}extractorr:\n  poll-time: 5\n"),
        "extractorr",
        &[
            "unknown key `extractorr`",
            "did you mean `extractor`?",
            "data_modeling",
        ],
    );
}

#[test]
fn unknown_nested_key_suggests_the_known_spelling() {
    let yaml = variant("client-id: my-client", "clientid: my-client");
    let found = issues(&yaml);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].path, "cognite.idp-authentication.clientid");
    assert!(
        found[0].message.contains("did you mean `client-id`?"),
        "{}",
        found[0].message
    );
    // Each key is listed once, in its documented spelling.
    assert!(
        found[0].message.contains("token-url, client-id, secret"),
        "{}",
        found[0].message
    );
    assert!(
        !found[0].message.contains("client_id"),
        "{}",
        found[0].message
    );
}

#[test]
fn views_at_space_level_point_to_data_models() {
    let yaml = variant(
        "  - space: plant\n",
        "  - space: plant\n    views: [Pump]\n",
    );
    assert_single_issue(
        &yaml,
        "data_modeling[0].views",
        &["unknown key `views`", "data_models[].views"],
    );
}

#[test]
fn missing_environment_variable_names_variable_and_key() {
    let yaml = variant("project: my-project", "project: ${COGNITE_PROJECT}");
    let err = load(&yaml).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration:\n  cognite.project: environment variable COGNITE_PROJECT is not set"
    );
}

#[test]
fn empty_environment_variable_for_required_key() {
    let yaml = variant("project: my-project", "project: ${COGNITE_PROJECT}");
    let env = MapEnv::new().with("COGNITE_PROJECT", "");
    let err = load_with(&yaml, &env).unwrap_err();
    assert_eq!(err.issues()[0].path, "cognite.project");
    assert_eq!(
        err.issues()[0].message,
        "environment variable COGNITE_PROJECT is set but empty; this key needs a value"
    );
}

#[test]
fn missing_required_key() {
    assert_single_issue(
        &variant("    secret: s3cr3t-value\n", ""),
        "cognite.idp-authentication.secret",
        &["required key is missing"],
    );
    assert_single_issue(
        &variant("  host: https://api.cognitedata.com\n", ""),
        "cognite.host",
        &["required key is missing"],
    );
}

#[test]
fn missing_sections() {
    let found = issues("data_modeling: []\n");
    let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["cognite", "data_modeling", "destination"]);
}

#[test]
fn wrong_type() {
    assert_single_issue(
        &variant("parallelism: 2", "parallelism: two"),
        "extractor.parallelism",
        &["wrong type: string \"two\"", "expected a whole number"],
    );
    assert_single_issue(
        &variant("poll-time: 900", "poll-time: [900]"),
        "extractor.poll-time",
        &["wrong type: sequence", "number of seconds or a duration"],
    );
    assert_single_issue(
        &variant("poll-time: 900", "poll-time: 1.5"),
        "extractor.poll-time",
        &["wrong type: floating point `1.5`"],
    );
    assert_single_issue(
        &variant("  local:\n    path: ./lake\n", "  local: 5\n"),
        "destination.local",
        &["wrong type: integer `5`, expected a mapping"],
    );
    assert_single_issue(
        &variant("views: [Pump, Valve]", "views: Pump"),
        "data_modeling[0].data_models[0].views",
        &["wrong type: string \"Pump\", expected a list"],
    );
}

#[test]
fn negative_and_zero_batch_sizes() {
    assert_single_issue(
        &variant("parallelism: 2", "parallelism: 2\n  ingest-batch-size: -5"),
        "extractor.ingest-batch-size",
        &["-5 is out of range", "from 1 to"],
    );
    assert_single_issue(
        &variant(
            "parallelism: 2",
            "parallelism: 2\n  s3-ingest-batch-size: 0",
        ),
        "extractor.s3-ingest-batch-size",
        &["0 is out of range", "from 1 to"],
    );
    assert_single_issue(
        &variant(
            "parallelism: 2",
            "parallelism: 2\n  subscription-batch-size: 0",
        ),
        "extractor.subscription-batch-size",
        &["0 is out of range"],
    );
    assert_single_issue(
        &variant("parallelism: 2", "parallelism: 2\n  ingest-batch-bytes: 0"),
        "extractor.ingest-batch-bytes",
        &["0 is out of range"],
    );
}

#[test]
fn part_rows_out_of_range() {
    assert_single_issue(
        &variant(
            "parallelism: 2",
            "parallelism: 2\n  snapshot:\n    part-rows: 0",
        ),
        "extractor.snapshot.part-rows",
        &["0 is out of range; expected a whole number from 1 to 1000000000000"],
    );
}

#[test]
fn parallelism_out_of_range() {
    assert_single_issue(
        &variant("parallelism: 2", "parallelism: 9"),
        "extractor.parallelism",
        &["9 is out of range; expected a whole number from 1 to 8"],
    );
}

#[test]
fn bad_host_url() {
    assert_single_issue(
        &variant(
            "host: https://api.cognitedata.com",
            "host: api.cognitedata.com",
        ),
        "cognite.host",
        &[
            "\"api.cognitedata.com\" is not a valid URL",
            "expected e.g. https://",
        ],
    );
    assert_single_issue(
        &variant(
            "host: https://api.cognitedata.com",
            "host: ftp://api.cognitedata.com",
        ),
        "cognite.host",
        &["scheme `ftp`"],
    );
    assert_single_issue(
        &variant(
            "host: https://api.cognitedata.com",
            "host: https://api.cognitedata.com/api/v1/projects/my-project",
        ),
        "cognite.host",
        &["cluster URL only"],
    );
}

#[test]
fn url_with_credentials_is_rejected_without_echoing_it() {
    let found = issues(&variant(
        "host: https://api.cognitedata.com",
        "host: https://user:hunter2@api.cognitedata.com",
    ));
    assert_eq!(found[0].path, "cognite.host");
    assert!(!found[0].message.contains("hunter2"));
}

#[test]
fn plain_http_host_only_on_loopback() {
    assert_single_issue(
        &variant(
            "host: https://api.cognitedata.com",
            "host: http://api.cognitedata.com",
        ),
        "cognite.host",
        &["plain http", "127.0.0.1 or localhost"],
    );
    for host in [
        "http://127.0.0.1:8080/",
        "http://localhost:9000",
        "http://[::1]:1",
    ] {
        let config = load(&variant(
            "host: https://api.cognitedata.com",
            &format!("host: \"{host}\""),
        ))
        .unwrap();
        assert_eq!(config.cognite.host, host.trim_end_matches('/'));
    }
    assert_single_issue(
        &variant(
            "token-url: https://login.example.com/oauth2/token",
            "token-url: http://login.example.com/oauth2/token",
        ),
        "cognite.idp-authentication.token-url",
        &["plain http"],
    );
}

#[test]
fn both_destinations() {
    assert_single_issue(
        &variant(
            "    path: ./lake\n",
            "    path: ./lake\n  s3:\n    bucket: my-bucket\n",
        ),
        "destination",
        &["both `s3` and `local`", "exactly one"],
    );
}

#[test]
fn no_destination() {
    assert_single_issue(
        &variant("  local:\n    path: ./lake\n", "  {}\n"),
        "destination",
        &["exactly one of `s3` or `local`"],
    );
    assert_single_issue(
        &variant("destination:\n  local:\n    path: ./lake\n", ""),
        "destination",
        &["required section is missing"],
    );
}

#[test]
fn empty_data_modeling() {
    let yaml = VALID.replace(
        &VALID[VALID.find("  - space: plant").unwrap()..VALID.find("destination:").unwrap()],
        "",
    );
    let yaml = yaml.replace("data_modeling:\n", "data_modeling: []\n");
    assert_single_issue(
        &yaml,
        "data_modeling",
        &["empty list", "at least one space"],
    );
}

#[test]
fn data_model_without_external_id() {
    assert_single_issue(
        &variant(
            "      - external_id: PlantModel\n        version",
            "      - version",
        ),
        "data_modeling[0].data_models[0].external_id",
        &["required key is missing"],
    );
}

#[test]
fn bad_space_identifier() {
    assert_single_issue(
        &variant("space: plant", "space: 1plant"),
        "data_modeling[0].space",
        &["\"1plant\"", "a letter first"],
    );
    assert_single_issue(
        &variant("space: plant", "space: system"),
        "data_modeling[0].space",
        &["reserved space name"],
    );
}

#[test]
fn bad_external_id_and_version() {
    assert_single_issue(
        &variant("external_id: PlantModel", "external_id: Plant-Model"),
        "data_modeling[0].data_models[0].external_id",
        &["\"Plant-Model\"", "letters, digits or `_`"],
    );
    assert_single_issue(
        &variant("version: \"1\"", "version: \"1/2\""),
        "data_modeling[0].data_models[0].version",
        &["\"1/2\"", "expected a version"],
    );
}

#[test]
fn duplicate_views() {
    assert_single_issue(
        &variant("views: [Pump, Valve]", "views: [Pump, Valve, Pump]"),
        "data_modeling[0].data_models[0].views[2]",
        &["view \"Pump\" is listed twice (also at views[0])"],
    );
    assert_single_issue(
        &variant("views: [Pump, Valve]", "views: []"),
        "data_modeling[0].data_models[0].views",
        &["empty list"],
    );
}

#[test]
fn duplicate_data_model() {
    let yaml = VALID.replace(
        "        views: [Pump, Valve]\n",
        "        views: [Pump, Valve]\n  - space: plant\n    data_models:\n      - external_id: PlantModel\n",
    );
    assert_single_issue(
        &yaml,
        "data_modeling[1].data_models[0]",
        &[
            "plant/PlantModel",
            "already listed at data_modeling[0].data_models[0]",
        ],
    );
    // Two explicit, different versions of one model are fine (a migration period).
    let two_versions = VALID.replace(
        "        views: [Pump, Valve]\n",
        "        views: [Pump, Valve]\n      - external_id: PlantModel\n        version: \"2\"\n",
    );
    let config = load(&two_versions).unwrap();
    assert_eq!(config.data_modeling[0].data_models.len(), 2);
    assert_eq!(
        config.data_modeling[0].data_models[1].version.as_deref(),
        Some("2")
    );
}

#[test]
fn version_given_as_a_list() {
    assert_single_issue(
        &variant("version: \"1\"", "version: [1, 2]"),
        "data_modeling[0].data_models[0].version",
        &["wrong type: sequence", "expected a version string"],
    );
}

#[test]
fn bad_duration_string() {
    assert_single_issue(
        &variant("poll-time: 900", "poll-time: 15 minutes"),
        "extractor.poll-time",
        &["\"15 minutes\"", "unknown unit `minutes`", "\"15m\""],
    );
    assert_single_issue(
        &variant("poll-time: 900", "poll-time: 0"),
        "extractor.poll-time",
        &["0s is too short; expected at least 1s"],
    );
    assert_single_issue(
        &variant("poll-time: 900", "poll-time: -60"),
        "extractor.poll-time",
        &["-60 is negative"],
    );
}

#[test]
fn time_budget_must_exceed_deadline_margin() {
    assert_single_issue(
        &variant(
            "parallelism: 2",
            "parallelism: 2\n  time-budget: 20s\n  deadline-margin: 30",
        ),
        "extractor.time-budget",
        &["20s leaves no time", "deadline-margin of 30s"],
    );
}

#[test]
fn static_key_without_secret() {
    let s3 = "  s3:\n    bucket: my-bucket\n    access-key-id: AKIAEXAMPLE\n";
    assert_single_issue(
        &variant("  local:\n    path: ./lake\n", s3),
        "destination.s3.secret-access-key",
        &[
            "missing while access-key-id is set",
            "both static keys or neither",
        ],
    );
    let s3 = "  s3:\n    bucket: my-bucket\n    secret-access-key: abc\n";
    assert_single_issue(
        &variant("  local:\n    path: ./lake\n", s3),
        "destination.s3.access-key-id",
        &["missing while secret-access-key is set"],
    );
}

#[test]
fn bad_bucket_and_prefix() {
    let with_s3 = |body: &str| variant("  local:\n    path: ./lake\n", body);
    assert_single_issue(
        &with_s3("  s3:\n    bucket: s3://my-bucket/data\n"),
        "destination.s3.bucket",
        &["without `s3://`", "write `my-bucket`"],
    );
    assert_single_issue(
        &with_s3("  s3:\n    bucket: My_Bucket\n"),
        "destination.s3.bucket",
        &["\"My_Bucket\"", "lowercase"],
    );
    assert_single_issue(
        &with_s3("  s3:\n    bucket: my-bucket\n    prefix: a//b\n"),
        "destination.s3.prefix",
        &["\"a//b\"", "empty segments"],
    );
    assert_single_issue(
        &with_s3("  s3:\n    bucket: my-bucket\n    endpoint-url: http://10.0.0.5:9000\n"),
        "destination.s3.endpoint-url",
        &["plain http", "allow-http: true"],
    );
}

#[test]
fn remote_without_extraction_pipeline() {
    let yaml = format!("type: remote\n{VALID}");
    let err = RawConfig::from_yaml(&yaml, "test.yaml", &MapEnv::new()).unwrap_err();
    assert_eq!(err.issues().len(), 1, "{err}");
    assert_eq!(
        err.issues()[0].path,
        "cognite.extraction-pipeline.external-id"
    );
    assert!(
        err.issues()[0]
            .message
            .contains("required when `type: remote`")
    );
}

#[test]
fn unknown_config_type() {
    assert_single_issue(
        &format!("type: cloud\n{VALID}"),
        "type",
        &["\"cloud\"", "`local` or `remote`"],
    );
}

#[test]
fn invalid_log_level() {
    assert_single_issue(
        &format!("logger:\n  console:\n    level: verbose\n{VALID}"),
        "logger.console.level",
        &["\"verbose\"", "DEBUG, INFO, WARNING, ERROR"],
    );
    assert_single_issue(
        &format!("logger:\n  console:\n    format: xml\n{VALID}"),
        "logger.console.format",
        &["`text` or `json`"],
    );
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let yaml = variant("space: plant", "space: 1plant")
        .replace("parallelism: 2", "parallelism: 0")
        .replace("views: [Pump, Valve]", "views: [Pump, Pump]")
        .replace(
            "host: https://api.cognitedata.com",
            "host: http://example.com",
        );
    let err = load(&yaml).unwrap_err();
    let paths: Vec<&str> = err.issues().iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "cognite.host",
            "extractor.parallelism",
            "data_modeling[0].space",
            "data_modeling[0].data_models[0].views[1]",
        ]
    );
    // Display lists each issue on its own line.
    assert_eq!(err.to_string().lines().count(), 5, "{err}");
}

#[test]
fn secrets_never_appear_in_errors() {
    let yaml = variant(
        "secret: s3cr3t-value",
        "secret: s3cr3t-value\n    secret_: x",
    );
    let err = load(&yaml).unwrap_err();
    assert!(!err.to_string().contains("s3cr3t-value"), "{err}");
    let yaml = variant("secret: s3cr3t-value", "secret: [s3cr3t-value]");
    let err = load(&yaml).unwrap_err();
    assert_eq!(err.issues()[0].path, "cognite.idp-authentication.secret");
    assert!(!err.to_string().contains("s3cr3t-value"), "{err}");
}
