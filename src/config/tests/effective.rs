//! `check-config`'s effective configuration: YAML in the file's key names that loads back
//! to the same configuration, with no credential in it.

use super::load_with;
use crate::config::{Config, MapEnv, REDACTED};

/// Every section, non-default values, durations in several spellings, credentials from
/// variables and a literal `${` (written `$${`).
const RICH: &str = r#"
type: local
logger:
  console:
    level: debug
    format: json
cognite:
  host: ${CDF_HOST}
  project: ${CDF_PROJECT}
  idp-authentication:
    token-url: https://login.example.com/oauth2/token
    client-id: ${CDF_CLIENT_ID}
    secret: ${CDF_CLIENT_SECRET}
    scopes: "https://a.example.com/.default https://b.example.com/.default"
    audience: https://audience.example.com
  extraction-pipeline:
    external-id: replicator-pipeline
  timeout: 90s
  max_retries: 3
extractor:
  state-store:
    raw:
      database: my_state
      table: streams$${x}
  poll-time: 90
  snapshot-interval: 1h30m
  subscription-batch-size: 5000
  ingest-batch-size: 5000
  s3-ingest-batch-size: 1000
  ingest-batch-bytes: 1048576
  parallelism: 4
  time-budget: 14m
  deadline-margin: 30s
  membership-scan-interval: 0
  verify-interval: 2d
  verify-sample: 50
  snapshot:
    temp-dir: /var/tmp/snapshots
    memory-budget-mb: 512
    part-rows: 1000
  maintenance:
    enabled: false
    vacuum-retention-hours: 200
    checkpoint-interval: 20
    compact-min-files: 4
data_modeling:
  - space: plant
    data_models:
      - external_id: PlantModel
        version: "1"
        views: [Pump, Valve]
      - external_id: PlantModel
        version: v2
  - space: other
    data_models:
      - external_id: Other
destination:
  s3:
    bucket: my-bucket
    prefix: /data/cdf
    region: eu-west-1
    endpoint-url: http://127.0.0.1:9000
    allow-http: true
    request-timeout: 45s
    access-key-id: ${S3_KEY_ID}
    secret-access-key: ${S3_SECRET_KEY}
  catalog:
    glue:
      database: my_db
      endpoint-url: http://127.0.0.1:9001
"#;

const CLIENT_SECRET: &str = "client-secret-value-123";
const S3_SECRET: &str = "s3-secret-key-value-456";

fn env() -> MapEnv {
    MapEnv::new()
        .with("CDF_HOST", "https://api.cognitedata.com")
        .with("CDF_PROJECT", "my-project")
        .with("CDF_CLIENT_ID", "my-client")
        .with("CDF_CLIENT_SECRET", CLIENT_SECRET)
        .with("S3_KEY_ID", "AKIAEXAMPLE")
        .with("S3_SECRET_KEY", S3_SECRET)
}

/// The configuration without its notes about how the file was written.
fn without_warnings(mut config: Config) -> Config {
    config.warnings.clear();
    config
}

#[test]
fn the_effective_configuration_loads_back_to_the_same_configuration() {
    let env = env();
    let loaded = load_with(RICH, &env).unwrap();
    let shown = loaded.to_effective_yaml();
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
    assert!(!shown.contains(S3_SECRET), "{shown}");
    assert!(shown.contains("secret: ${CDF_CLIENT_SECRET}"), "{shown}");
    assert!(
        shown.contains("secret-access-key: ${S3_SECRET_KEY}"),
        "{shown}"
    );
    // Durations in the configuration's syntax, keys in the file's spelling.
    for line in [
        "timeout: 90s",
        "max-retries: 3",
        "poll-time: 90s",
        "snapshot-interval: 90m",
        "time-budget: 14m",
        "verify-interval: 2d",
        "membership-scan-interval: 0s",
        "table: streams$${x}",
        "- external_id: PlantModel",
    ] {
        assert!(shown.contains(line), "{line:?} not in:\n{shown}");
    }

    let reloaded = load_with(&shown, &env).unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(
        without_warnings(reloaded),
        without_warnings(loaded),
        "{shown}"
    );
}

#[test]
fn credentials_written_in_the_file_are_redacted() {
    let yaml = RICH
        .replace("${CDF_CLIENT_SECRET}", CLIENT_SECRET)
        .replace("${S3_SECRET_KEY}", S3_SECRET);
    let env = env();
    let loaded = load_with(&yaml, &env).unwrap();
    let shown = loaded.to_effective_yaml();
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
    assert!(!shown.contains(S3_SECRET), "{shown}");
    assert!(shown.contains(&format!("secret: {REDACTED}")), "{shown}");
    assert!(
        shown.contains(&format!("secret-access-key: {REDACTED}")),
        "{shown}"
    );

    // Everything else loads back the same.
    let mut reloaded = load_with(&shown, &env).unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(reloaded.cognite.credentials.secret.expose(), REDACTED);
    reloaded.cognite.credentials.secret = loaded.cognite.credentials.secret.clone();
    if let (crate::config::Destination::S3(back), crate::config::Destination::S3(original)) =
        (&mut reloaded.destination, &loaded.destination)
    {
        back.credentials = original.credentials.clone();
    }
    assert_eq!(without_warnings(reloaded), without_warnings(loaded));
}

#[test]
fn defaults_are_spelled_out() {
    let loaded = super::load(super::VALID).unwrap();
    let shown = loaded.to_effective_yaml();
    for line in [
        "level: INFO",
        "database: s3_replicator_state",
        "ingest-batch-size: 100000",
        "deadline-margin: 20s",
        "vacuum-retention-hours: 168",
        &format!("secret: {REDACTED}"),
    ] {
        assert!(shown.contains(line), "{line:?} not in:\n{shown}");
    }
    assert!(!shown.contains("s3cr3t-value"));
    assert_eq!(super::load(&shown).unwrap().extractor, loaded.extractor);
}
