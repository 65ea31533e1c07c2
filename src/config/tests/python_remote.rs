//! The Python replicator's whole `config.yaml`, stored in the extraction pipeline as its
//! README says, loads as a remote document: its `cognite` and `destination` sections and its
//! `${COGNITE_*}`, `${AWS_*}` and `${S3_PREFIX}` references repeat the function's own values
//! and are ignored. A section that would change them is refused with the key, the value,
//! the function's own value and the fix, and the client secret never becomes text.

use serde_yaml_ng::Value;

use super::{fixture, fixture_text, readme_env};
use crate::config::remote::merge;
use crate::config::{ConfigError, Destination, MapEnv, RawConfig};

const CLIENT_SECRET: &str = "cs-5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b";

/// The function's environment: the Python replicator's `.env` example (its runtime secret)
/// with a recognisable client secret and the role's credentials.
fn function_env() -> MapEnv {
    readme_env()
        .with("COGNITE_CLIENT_SECRET", CLIENT_SECRET)
        .with("AWS_SECRET_ACCESS_KEY", "aws-secret-0a1b2c3d4e5f6a7b8c9d")
        .with("AWS_SESSION_TOKEN", "aws-session-IQoJb3JpZ2luX2VjPYTHON")
}

/// The template's bootstrap shape (connection from the secret, the stack's bucket and
/// prefix), after substitution.
fn bootstrap(env: &MapEnv) -> Value {
    match RawConfig::load(&fixture("remote-local.yaml"), env).expect("the bootstrap loads") {
        RawConfig::NeedsRemote { local, .. } => local,
        RawConfig::Complete(_) => panic!("expected NeedsRemote"),
    }
}

/// The Python README's `config.yaml`, verbatim.
fn python_config() -> String {
    fixture_text("readme-config.yaml")
}

fn refused(remote: &str, env: &MapEnv) -> ConfigError {
    match merge(&bootstrap(env), remote, env) {
        Ok(_) => panic!("expected a refusal of:\n{remote}"),
        Err(err) => err,
    }
}

#[test]
fn the_python_readme_config_stored_in_the_pipeline_is_accepted() {
    let env = function_env()
        .with("COGNITE_STATE_DB", "python_state")
        .with("COGNITE_STATE_TABLE", "python_streams");
    let local = bootstrap(&env);
    let merged = merge(&local, &python_config(), &env)
        .unwrap_or_else(|err| panic!("the Python README's config.yaml is refused: {err}"));
    assert_eq!(merged.ignored, ["cognite", "destination"]);
    let note = merged
        .ignored_note()
        .expect("a note on the ignored sections");
    assert!(
        note.contains("its `cognite` and `destination` sections repeat the function's own values and were ignored"),
        "{note}"
    );
    assert!(!note.contains(CLIENT_SECRET), "{note}");

    let config = merged.config;
    assert_eq!(config.cognite.host, "https://your-cluster.cognitedata.com");
    assert_eq!(config.cognite.project, "your-project-name");
    assert_eq!(config.cognite.credentials.secret.expose(), CLIENT_SECRET);
    assert_eq!(
        config.cognite.extraction_pipeline.as_deref(),
        Some("s3-data-modeling-replicator")
    );
    let Destination::S3(s3) = &config.destination else {
        panic!("expected the function's S3 destination");
    };
    assert_eq!(
        (s3.bucket.as_str(), s3.prefix.as_str()),
        ("your-bucket-name", "cdf-data/")
    );
    assert_eq!(
        s3.region, None,
        "the function's own region setting (the SDK's AWS_REGION) is kept as it is"
    );
    // The state store is the function's own: the Python replicator's variables of its
    // runtime secret, since the bootstrap names none.
    let state = &config.extractor.state_store;
    assert_eq!(
        (state.database.as_str(), state.table.as_str()),
        ("python_state", "python_streams")
    );
    let spaces: Vec<&str> = config
        .data_modeling
        .iter()
        .map(|s| s.space.as_str())
        .collect();
    assert_eq!(spaces, ["analytics-space", "test-space"]);
    assert_eq!(config.extractor.poll_time.as_secs(), 900);
    assert!(!format!("{config:?}").contains(CLIENT_SECRET));

    // A bootstrap that names its state table (the template's, per stack) keeps it.
    let mut named = local.clone();
    named["extractor"] =
        serde_yaml_ng::from_str("state-store:\n  raw:\n    table: stack-table\n").expect("YAML");
    let config = merge(&named, &python_config(), &env)
        .expect("accepted")
        .config;
    assert_eq!(config.extractor.state_store.table, "stack-table");
    assert_eq!(config.extractor.state_store.database, "python_state");
}

#[test]
fn literal_repeats_of_the_connection_and_destination_are_accepted() {
    let env = function_env();
    let remote = format!(
        "cognite:\n  host: https://your-cluster.cognitedata.com/\n  project: your-project-name\n  \
         idp_authentication:\n    client_id: your-client-id\n    secret: {CLIENT_SECRET}\n    \
         scopes: [https://your-cluster.cognitedata.com/.default]\n  timeout: 45\n\
         destination:\n  s3:\n    bucket: your-bucket-name\n    prefix: /cdf-data\n    \
         region: us-east-1\n    allow-http: false\n    request-timeout: 40\n\
         data_modeling:\n  - space: plant\n    data_models:\n      - external_id: M\n"
    );
    let merged = merge(&bootstrap(&env), &remote, &env).expect("a literal repeat is accepted");
    assert_eq!(merged.ignored, ["cognite", "destination"]);
    let config = merged.config;
    assert_eq!(
        config.cognite.timeout.as_secs(),
        45,
        "a tuning knob applies"
    );
    let Destination::S3(s3) = &config.destination else {
        panic!("expected S3");
    };
    assert_eq!(s3.request_timeout.as_secs(), 40, "a tuning knob applies");
    assert_eq!(
        (s3.prefix.as_str(), s3.region.as_deref()),
        ("cdf-data/", None)
    );

    // One section repeated: the note names it alone.
    let merged = merge(
        &bootstrap(&env),
        "destination:\n  s3:\n    bucket: your-bucket-name\ndata_modeling:\n  - space: plant\n    \
         data_models:\n      - external_id: M\n",
        &env,
    )
    .expect("accepted");
    assert_eq!(merged.ignored, ["destination"]);
    let note = merged.ignored_note().expect("a note");
    assert!(
        note.contains(
            "its `destination` section repeats the function's own values and was ignored"
        ),
        "{note}"
    );

    // Only tuning knobs: nothing repeated, nothing to say.
    let merged = merge(
        &bootstrap(&env),
        "cognite:\n  max-retries: 3\ndata_modeling:\n  - space: plant\n    data_models:\n      \
         - external_id: M\n",
        &env,
    )
    .expect("accepted");
    assert!(merged.ignored.is_empty());
    assert_eq!(merged.ignored_note(), None);
}

#[test]
fn a_section_that_differs_is_refused_with_the_key_its_value_and_the_fix() {
    let env = function_env();
    let python = python_config();
    for (from, to, path, given, function_has) in [
        (
            "host: ${COGNITE_BASE_URL}",
            "host: https://other-cluster.cognitedata.com",
            "cognite.host",
            "\"https://other-cluster.cognitedata.com\"",
            "\"https://your-cluster.cognitedata.com\"",
        ),
        (
            "project: ${COGNITE_PROJECT}",
            "project: other-project",
            "cognite.project",
            "\"other-project\"",
            "\"your-project-name\"",
        ),
        (
            "bucket: ${AWS_S3_BUCKET}",
            "bucket: attacker-bucket",
            "destination.s3.bucket",
            "\"attacker-bucket\"",
            "\"your-bucket-name\"",
        ),
        (
            "prefix: ${S3_PREFIX} ",
            "prefix: loot/",
            "destination.s3.prefix",
            "\"loot/\"",
            "\"cdf-data/\"",
        ),
        (
            "region: ${AWS_REGION}",
            "region: eu-north-1",
            "destination.s3.region",
            "\"eu-north-1\"",
            "\"us-east-1\"",
        ),
    ] {
        assert!(python.contains(from), "test bug: {from:?}");
        let err = refused(&python.replacen(from, to, 1), &env);
        let issues = err.issues();
        assert_eq!(issues.len(), 1, "{err}");
        assert_eq!(issues[0].path, path, "{err}");
        let message = &issues[0].message;
        let connection = path.starts_with("cognite");
        let what = if connection {
            "may not change the CDF connection or credentials"
        } else {
            "may not change where data goes or which credentials are used"
        };
        assert!(
            message.starts_with(&format!("the remote configuration {what}")),
            "{message}"
        );
        let own = if connection {
            "connection"
        } else {
            "destination"
        };
        assert!(
            message.contains(&format!(
                "it has {given} where the function's own {own} has {function_has}"
            )),
            "{message}"
        );
        assert!(
            message.contains(&format!(
                "Remove {path} from the configuration stored in the extraction pipeline"
            )),
            "{message}"
        );
        assert!(!err.to_string().contains(CLIENT_SECRET), "{err}");
    }
}

#[test]
fn the_client_secret_reference_is_never_expanded_into_printable_text() {
    let env = function_env();
    let python = python_config();
    // In its own field it stands for the function's own secret; nothing shows it.
    let config = merge(&bootstrap(&env), &python, &env)
        .expect("accepted")
        .config;
    assert!(!format!("{config:?}").contains(CLIENT_SECRET));

    for (from, to, path) in [
        (
            "project: ${COGNITE_PROJECT}",
            "project: ${COGNITE_CLIENT_SECRET}",
            "cognite.project",
        ),
        (
            "prefix: ${S3_PREFIX}",
            "prefix: x/${COGNITE_CLIENT_SECRET}/",
            "destination.s3.prefix",
        ),
        (
            "database: ${COGNITE_STATE_DB}",
            "database: ${COGNITE_CLIENT_SECRET}",
            "extractor.state-store.raw.database",
        ),
        (
            "secret: ${COGNITE_CLIENT_SECRET}",
            "secret: x${COGNITE_CLIENT_SECRET}",
            "cognite.idp-authentication.secret",
        ),
        (
            "- space: analytics-space",
            "- space: ${COGNITE_CLIENT_SECRET}",
            "data_modeling[0].space",
        ),
    ] {
        assert!(python.contains(from), "test bug: {from:?}");
        let err = refused(&python.replacen(from, to, 1), &env);
        let issues = err.issues();
        assert_eq!(issues.len(), 1, "{err}");
        assert_eq!(issues[0].path, path, "{err}");
        assert!(
            issues[0].message.starts_with(
                "`${COGNITE_CLIENT_SECRET}` stands for the function's own CDF client secret"
            ),
            "{err}"
        );
        let text = format!("{err} {err:?}");
        assert!(!text.contains(CLIENT_SECRET), "{text}");
    }

    // A literal secret that is not the function's: refused, neither value shown.
    let err = refused(
        &python.replacen(
            "secret: ${COGNITE_CLIENT_SECRET}",
            "secret: another-secret-value-123",
            1,
        ),
        &env,
    );
    assert_eq!(err.issues()[0].path, "cognite.idp-authentication.secret");
    let text = format!("{err} {err:?}");
    assert!(text.contains("neither is shown"), "{text}");
    assert!(!text.contains(CLIENT_SECRET) && !text.contains("another-secret-value-123"));

    // A literal copy of the function's secret where a value is shown: redacted.
    let err = refused(
        &python.replacen(
            "prefix: ${S3_PREFIX}",
            &format!("prefix: x/{CLIENT_SECRET}/"),
            1,
        ),
        &env,
    );
    assert_eq!(err.issues()[0].path, "destination.s3.prefix");
    let text = format!("{err} {err:?}");
    assert!(text.contains("it has \"x/***/\""), "{text}");
    assert!(!text.contains(CLIENT_SECRET), "{text}");
}

#[test]
fn an_unknown_variable_in_the_connection_or_destination_is_refused() {
    let env = function_env()
        .with("COGNITE_HOST", "https://your-cluster.cognitedata.com")
        .with("BUCKET_NAME", "your-bucket-name");
    let python = python_config();
    for (from, to, path, name) in [
        (
            "host: ${COGNITE_BASE_URL}",
            "host: ${COGNITE_HOST}",
            "cognite.host",
            "COGNITE_HOST",
        ),
        (
            "bucket: ${AWS_S3_BUCKET}",
            "bucket: ${BUCKET_NAME}",
            "destination.s3.bucket",
            "BUCKET_NAME",
        ),
    ] {
        let err = refused(&python.replacen(from, to, 1), &env);
        let issues = err.issues();
        assert_eq!(issues.len(), 1, "{err}");
        assert_eq!(issues[0].path, path, "{err}");
        let message = &issues[0].message;
        assert!(
            message.starts_with(&format!(
                "`${{{name}}}` may not be used in the remote configuration"
            )),
            "{message}"
        );
        assert_eq!(message.matches(name).count(), 1, "names it once: {message}");
        assert!(
            message.contains("COGNITE_BASE_URL, COGNITE_PROJECT"),
            "{message}"
        );
        assert!(
            message.contains(&format!(
                "remove {path} from the configuration stored in the extraction pipeline (the \
                 function's own value applies)"
            )),
            "{message}"
        );
    }
}

#[test]
fn a_python_variable_elsewhere_or_without_a_value_of_the_function_is_refused() {
    let env = function_env();
    let python = python_config();
    let err = refused(
        &python.replacen(
            "database: ${COGNITE_STATE_DB}",
            "database: ${COGNITE_PROJECT}",
            1,
        ),
        &env,
    );
    assert_eq!(err.issues()[0].path, "extractor.state-store.raw.database");
    assert!(
        err.issues()[0].message.contains(
            "stands for the function's own CDF project and may be used in the remote \
             configuration only in cognite.project"
        ),
        "{err}"
    );

    // A function that writes to a local directory has no bucket to repeat.
    let local: Value = serde_yaml_ng::from_str(&format!(
        "type: remote\ncognite:\n  host: https://your-cluster.cognitedata.com\n  project: \
         your-project-name\n  idp-authentication:\n    token-url: https://login.example.com/t\n    \
         client-id: your-client-id\n    secret: {CLIENT_SECRET}\n    scopes: [x]\n  \
         extraction-pipeline:\n    external-id: p\ndestination:\n  local:\n    path: ./lake\n"
    ))
    .expect("YAML");
    let Err(err) = merge(&local, &python, &env) else {
        panic!("a bucket for a local lake");
    };
    let paths: Vec<&str> = err.issues().iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "destination.s3.bucket",
            "destination.s3.prefix",
            "destination.s3.region"
        ],
        "{err}"
    );
    assert!(
        err.issues()[0]
            .message
            .contains("but the function has none"),
        "{err}"
    );
}
