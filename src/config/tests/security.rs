//! What a configuration may not do: a remote document redirecting data or credentials, a
//! secret copied into a field that is printed or sent, a document too large or too deep to
//! parse, and error texts that repeat themselves.

use serde_yaml_ng::Value;

use super::{VALID, fixture, readme_env, variant};
use crate::config::{
    ConfigError, EnvSource, MAX_DOCUMENT_BYTES, MapEnv, RawConfig, is_secret_variable, merge_remote,
};

const CLIENT_SECRET: &str = "cs-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const AWS_SECRET: &str = "aws-secret-9a8b7c6d5e4f3a2b1c0d";
const AWS_TOKEN: &str = "aws-session-IQoJb3JpZ2luX2VjEXAMPLE";

/// The Lambda's variables: the connection (as from the secret), the deployment's bucket and
/// the role's session credentials (as Lambda sets them).
fn lambda_env() -> MapEnv {
    readme_env()
        .with("COGNITE_CLIENT_SECRET", CLIENT_SECRET)
        .with("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .with("AWS_SESSION_TOKEN", AWS_TOKEN)
        .with("AWS_ACCESS_KEY_ID", "ASIAEXAMPLEEXAMPLE")
}

fn stub(env: &MapEnv) -> Value {
    match RawConfig::load(&fixture("remote-local.yaml"), env).unwrap() {
        RawConfig::NeedsRemote { local, .. } => local,
        RawConfig::Complete(_) => panic!("expected NeedsRemote"),
    }
}

const SELECTION: &str =
    "data_modeling:\n  - space: plant\n    data_models:\n      - external_id: M\n";

/// Refused, with exactly these key paths, and without any secret value in the text.
fn assert_refused(err: &ConfigError, paths: &[&str]) {
    let found: Vec<&str> = err.issues().iter().map(|i| i.path.as_str()).collect();
    assert_eq!(found, paths, "{err}");
    let text = format!("{err} {err:?}");
    for secret in [CLIENT_SECRET, AWS_SECRET, AWS_TOKEN] {
        assert!(!text.contains(secret), "a secret in the error: {text}");
    }
}

#[test]
fn remote_may_not_redirect_the_destination() {
    let env = lambda_env();
    let local = stub(&env);
    for (remote, path) in [
        (
            "destination:\n  s3:\n    endpoint-url: http://127.0.0.1:9/\n    allow-http: true\n",
            vec!["destination.s3.endpoint-url", "destination.s3.allow-http"],
        ),
        (
            "destination:\n  s3:\n    bucket: attacker-bucket\n",
            vec!["destination.s3.bucket"],
        ),
        (
            "destination:\n  s3:\n    prefix: x/\n",
            vec!["destination.s3.prefix"],
        ),
        (
            "destination:\n  s3:\n    region: eu-north-1\n",
            vec!["destination.s3.region"],
        ),
        (
            "destination:\n  s3:\n    access_key_id: AKIAATTACKER\n    secret-access-key: attacker\n",
            vec![
                "destination.s3.access_key_id",
                "destination.s3.secret-access-key",
            ],
        ),
        (
            "destination:\n  local:\n    path: /tmp/x\n",
            vec!["destination.local"],
        ),
        ("destination: elsewhere\n", vec!["destination"]),
        ("destination:\n  s3: null\n", vec!["destination.s3"]),
    ] {
        let err = merge_remote(&local, &format!("{SELECTION}{remote}"), &env).unwrap_err();
        assert_refused(&err, &path);
        assert!(
            err.issues()[0]
                .message
                .starts_with("the remote configuration may not change where data goes"),
            "{err}"
        );
        assert!(
            err.issues()[0]
                .message
                .contains("destination.s3.request-timeout")
        );
    }
    // The one tuning knob.
    let config = merge_remote(
        &local,
        &format!("{SELECTION}destination:\n  s3:\n    request_timeout: 5m\n"),
        &env,
    )
    .unwrap();
    let crate::config::Destination::S3(s3) = config.destination else {
        panic!("expected S3");
    };
    assert_eq!(s3.bucket, "your-bucket-name");
    assert_eq!(s3.request_timeout.as_secs(), 300);
}

#[test]
fn remote_may_not_expand_secrets_or_process_variables() {
    let env = lambda_env();
    let local = stub(&env);
    let remote = format!(
        "{SELECTION}extractor:\n  state-store:\n    raw:\n      database: ${{COGNITE_CLIENT_SECRET}}\n      \
         table: t-${{AWS_SESSION_TOKEN}}\n  snapshot:\n    temp-dir: /tmp/${{AWS_SECRET_ACCESS_KEY}}\n"
    );
    let err = merge_remote(&local, &remote, &env).unwrap_err();
    assert_refused(
        &err,
        &[
            "extractor.state-store.raw.database",
            "extractor.state-store.raw.table",
            "extractor.snapshot.temp-dir",
        ],
    );
    for (issue, name) in err.issues().iter().zip([
        "COGNITE_CLIENT_SECRET",
        "AWS_SESSION_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
    ]) {
        assert_eq!(
            issue.message.matches(name).count(),
            1,
            "names the variable once: {issue}"
        );
    }
    // The prefix attack of the issue: refused both for the key and for every variable.
    let remote = format!(
        "{SELECTION}destination:\n  s3:\n    prefix: \
         'x/${{COGNITE_CLIENT_SECRET}}/${{AWS_SECRET_ACCESS_KEY}}/${{AWS_SESSION_TOKEN}}/'\n"
    );
    let err = merge_remote(&local, &remote, &env).unwrap_err();
    assert_refused(
        &err,
        &[
            "destination.s3.prefix",
            "destination.s3.prefix",
            "destination.s3.prefix",
        ],
    );
    // Opted-in names still may not look like a secret, nor come from the secret store.
    struct FromSecretStore(MapEnv);
    impl EnvSource for FromSecretStore {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name)
        }
        fn is_from_secret_store(&self, name: &str) -> bool {
            name == "CDF_S3_REMOTE_DB"
        }
    }
    let env = FromSecretStore(
        lambda_env()
            .with("CDF_S3_REMOTE_DB", "db")
            .with("CDF_S3_REMOTE_SECRET", "x"),
    );
    for name in ["CDF_S3_REMOTE_DB", "CDF_S3_REMOTE_SECRET"] {
        let remote = format!(
            "{SELECTION}extractor:\n  state-store:\n    raw:\n      database: ${{{name}}}\n"
        );
        let err = merge_remote(&local, &remote, &env).unwrap_err();
        assert_refused(&err, &["extractor.state-store.raw.database"]);
    }
}

#[test]
fn remote_may_not_copy_a_secret_value_into_another_field() {
    let env = lambda_env();
    let local = stub(&env);
    let remote = format!(
        "{SELECTION}extractor:\n  state-store:\n    raw:\n      database: db-{CLIENT_SECRET}\n"
    );
    let err = merge_remote(&local, &remote, &env).unwrap_err();
    assert_refused(&err, &["extractor.state-store.raw.database"]);
    assert!(
        err.issues()[0]
            .message
            .starts_with("holds the value of the CDF client secret"),
        "{err}"
    );
}

#[test]
fn local_secrets_only_go_into_credential_fields() {
    let env = lambda_env();
    let yaml = variant("secret: s3cr3t-value", "secret: ${COGNITE_CLIENT_SECRET}");
    // In the credential field: fine, and the secret is not printed.
    let RawConfig::Complete(config) = RawConfig::from_yaml(&yaml, "c.yaml", &env).unwrap() else {
        panic!("expected a complete configuration");
    };
    assert!(!format!("{config:?}").contains(CLIENT_SECRET));

    for (from, to, path) in [
        (
            "  parallelism: 2\n",
            "  parallelism: 2\n  state-store:\n    raw:\n      database: ${COGNITE_CLIENT_SECRET}\n",
            "extractor.state-store.raw.database",
        ),
        (
            "    path: ./lake\n",
            "    path: ./lake/${AWS_SESSION_TOKEN}\n",
            "destination.local.path",
        ),
        (
            "client-id: my-client",
            "client-id: ${AWS_SECRET_ACCESS_KEY}",
            "cognite.idp-authentication.client-id",
        ),
    ] {
        let err = RawConfig::from_yaml(&yaml.replacen(from, to, 1), "c.yaml", &env).unwrap_err();
        assert_refused(&err, &[path]);
        assert!(
            err.issues()[0].message.contains("is a secret variable"),
            "{err}"
        );
    }
    // A literal copy of the secret is found by its value.
    let copied = yaml.replacen(
        "  parallelism: 2\n",
        &format!("  parallelism: 2\n  state-store:\n    raw:\n      table: {CLIENT_SECRET}\n"),
        1,
    );
    let err = RawConfig::from_yaml(&copied, "c.yaml", &env).unwrap_err();
    assert_refused(&err, &["extractor.state-store.raw.table"]);

    // Static S3 keys from the AWS variables, in their own fields: fine.
    let s3 = VALID.replacen(
        "  local:\n    path: ./lake\n",
        "  s3:\n    bucket: my-bucket\n    access-key-id: ${AWS_ACCESS_KEY_ID}\n    secret-access-key: \
         ${AWS_SECRET_ACCESS_KEY}\n",
        1,
    );
    if let Err(err) = RawConfig::from_yaml(&s3, "c.yaml", &env) {
        panic!("static keys from AWS variables: {err}");
    }
}

#[test]
fn secret_variable_names() {
    for name in [
        "COGNITE_CLIENT_SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "DB_PASSWORD",
        "my_api_key",
        "GITHUB_TOKEN",
        "CLIENT_SECRET_TOKEN_URL",
    ] {
        assert!(is_secret_variable(name), "{name}");
    }
    for name in [
        "COGNITE_TOKEN_URL",
        "COGNITE_TOKEN_SCOPES",
        "COGNITE_CLIENT_ID",
        "AWS_S3_BUCKET",
        "AWS_REGION",
        "S3_PREFIX",
    ] {
        assert!(!is_secret_variable(name), "{name}");
    }
}

fn deep_flow(levels: usize) -> String {
    format!(
        "{}extractor: {}1{}\n",
        VALID,
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

fn deep_block(levels: usize) -> String {
    format!("{VALID}extractor:\n  x:\n{}1\n", "  - ".repeat(levels))
}

fn assert_too_deep(err: &ConfigError) {
    let ConfigError::TooLarge { message, .. } = err else {
        panic!("expected a nesting refusal, got {err}");
    };
    assert!(message.contains("nests more than 64 levels"), "{err}");
}

#[test]
fn deeply_nested_documents_are_refused_before_parsing() {
    let env = MapEnv::new();
    for levels in [20_000, 100_000] {
        for text in [deep_flow(levels), deep_block(levels)] {
            let err = RawConfig::from_yaml(&text, "deep.yaml", &env).unwrap_err();
            assert_too_deep(&err);
            assert!(err.to_string().starts_with("deep.yaml: "), "{err}");
        }
    }
    // Remote documents too.
    let env = lambda_env();
    let local = stub(&env);
    let err = merge_remote(&local, &deep_flow(100_000), &env).unwrap_err();
    assert_too_deep(&err);
    assert!(err.to_string().starts_with("the remote configuration: "));
    // And files.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.yaml");
    std::fs::write(&path, deep_block(20_000)).unwrap();
    assert_too_deep(&RawConfig::load(&path, &MapEnv::new()).unwrap_err());
}

#[test]
fn oversized_documents_are_refused() {
    let big = format!("{VALID}# {}\n", "x".repeat(MAX_DOCUMENT_BYTES));
    let err = RawConfig::from_yaml(&big, "big.yaml", &MapEnv::new()).unwrap_err();
    assert!(
        matches!(&err, ConfigError::TooLarge { message, .. } if message.contains("at most 1048576 bytes")),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, &big).unwrap();
    let err = RawConfig::load(&path, &MapEnv::new()).unwrap_err();
    assert!(matches!(err, ConfigError::TooLarge { .. }), "{err}");
    // Just under the limit still loads.
    let fits = format!(
        "{VALID}# {}\n",
        "x".repeat(MAX_DOCUMENT_BYTES - VALID.len() - 10)
    );
    assert!(RawConfig::from_yaml(&fits, "fits.yaml", &MapEnv::new()).is_ok());
}

#[test]
fn a_missing_file_names_its_path_and_cause_once() {
    let path = std::path::Path::new("/nonexistent/dir/config.yaml");
    let err = RawConfig::load(path, &MapEnv::new()).unwrap_err();
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert_eq!(
        chain.matches("/nonexistent/dir/config.yaml").count(),
        1,
        "{chain}"
    );
    assert_eq!(chain.matches("No such file").count(), 1, "{chain}");
}

#[test]
fn a_key_that_is_not_text_is_named_once() {
    for (from, to, path, shown) in [
        ("  poll-time: 900\n", "  1: 900\n", "extractor", "`1`"),
        (
            "  project: my-project\n",
            "  true: x\n",
            "cognite",
            "`true`",
        ),
        (
            "destination:\n",
            "? [a, b]\n: x\ndestination:\n",
            "",
            "a list",
        ),
    ] {
        let err = RawConfig::from_yaml(&variant(from, to), "c.yaml", &MapEnv::new()).unwrap_err();
        assert_eq!(err.issues().len(), 1, "{err}");
        let issue = &err.issues()[0];
        assert_eq!(issue.path, path, "{err}");
        assert!(issue.message.contains(shown), "{err}");
        assert_eq!(issue.message.matches(shown).count(), 1, "{err}");
        assert!(!err.to_string().contains("field identifier"), "{err}");
    }
}
