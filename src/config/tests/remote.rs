//! `type: remote`: the local stub, the merge of the pipeline's configuration over it, and the
//! documents that must be refused.

use std::time::Duration;

use serde_yaml_ng::Value;

use super::{fixture, fixture_text, readme_env};
use crate::config::remote::deep_merge;
use crate::config::{
    ConfigError, ConfigKind, Destination, LogLevel, MapEnv, RawConfig, load_config, merge_remote,
};

fn stub() -> (Value, MapEnv) {
    let env = readme_env().with("CDF_S3_REMOTE_STATE_DB", "remote_state");
    match RawConfig::load(&fixture("remote-local.yaml"), &env).unwrap() {
        RawConfig::NeedsRemote {
            local,
            cognite,
            logger,
            pipeline_external_id,
        } => {
            assert_eq!(pipeline_external_id, "s3-data-modeling-replicator");
            assert_eq!(cognite.host, "https://your-cluster.cognitedata.com");
            assert_eq!(cognite.credentials.client_id, "your-client-id");
            assert_eq!(logger.level, LogLevel::Debug);
            (local, env)
        }
        RawConfig::Complete(_) => panic!("expected NeedsRemote"),
    }
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

#[test]
fn load_config_refuses_a_remote_stub() {
    let err = load_config(&fixture("remote-local.yaml"), &readme_env()).unwrap_err();
    let ConfigError::RemoteNotFetched {
        pipeline_external_id,
    } = err
    else {
        panic!("expected RemoteNotFetched, got {err}");
    };
    assert_eq!(pipeline_external_id, "s3-data-modeling-replicator");
}

#[test]
fn readme_remote_update_flow_merges_over_the_local_stub() {
    let (local, env) = stub();
    let config = merge_remote(&local, &fixture_text("remote-pipeline-config.yaml"), &env).unwrap();

    assert_eq!(config.kind, ConfigKind::Remote);
    // The README sets `poll_time = 600` next to the original `poll-time: 900`; the later
    // spelling wins, as in the original, and the user is told.
    assert_eq!(config.extractor.poll_time, Duration::from_secs(600));
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.path == "extractor.poll_time" && w.message.contains("given twice")),
        "{:#?}",
        config.warnings
    );
    let spaces: Vec<&str> = config
        .data_modeling
        .iter()
        .map(|s| s.space.as_str())
        .collect();
    assert_eq!(spaces, ["analytics-space", "test-space", "new-space"]);
    // Remote wins on scalars: the remote logger level replaces the local DEBUG.
    assert_eq!(config.logger.level, LogLevel::Info);
    assert_eq!(
        config.cognite.credentials.secret.expose(),
        "your-client-secret"
    );
    assert_eq!(config.extractor.state_store.database, "remote_state");
    let Destination::S3(s3) = &config.destination else {
        panic!("expected the local file's S3 destination");
    };
    assert_eq!(
        (s3.bucket.as_str(), s3.prefix.as_str()),
        ("your-bucket-name", "cdf-data/")
    );
    assert_eq!(s3.request_timeout, Duration::from_secs(45), "a tuning knob");
}

#[test]
fn remote_may_omit_the_connection() {
    let (local, env) = stub();
    let remote = "data_modeling:\n  - space: plant\n    data_models:\n      - external_id: M\n";
    let config = merge_remote(&local, remote, &env).unwrap();
    assert_eq!(config.cognite.project, "your-project-name");
    assert_eq!(config.logger.level, LogLevel::Debug, "local value kept");
    assert_eq!(
        config.extractor.poll_time,
        Duration::from_secs(900),
        "default"
    );
}

#[test]
fn remote_expands_only_allowlisted_variables() {
    let (local, _) = stub();
    let env = readme_env()
        .with("CDF_S3_REMOTE_POLL", "15m")
        .with("POLL", "15m");
    let remote = "extractor:\n  poll-time: ${CDF_S3_REMOTE_POLL}\ndata_modeling:\n  - space: \
                  plant\n    data_models:\n      - external_id: M\n";
    let config = merge_remote(&local, remote, &env).unwrap();
    assert_eq!(config.extractor.poll_time, Duration::from_secs(900));

    let err = merge_remote(
        &local,
        "extractor:\n  poll-time: ${CDF_S3_REMOTE_NOT_SET}\n",
        &env,
    )
    .unwrap_err();
    assert_eq!(err.issues()[0].path, "extractor.poll-time");
    assert!(
        err.issues()[0]
            .message
            .contains("CDF_S3_REMOTE_NOT_SET is not set")
    );

    // Set, but not opted in by its name.
    let err =
        merge_remote(&local, &remote.replace("CDF_S3_REMOTE_POLL", "POLL"), &env).unwrap_err();
    assert_eq!(err.issues().len(), 1, "{err}");
    assert_eq!(err.issues()[0].path, "extractor.poll-time");
    assert!(
        err.issues()[0].message.starts_with(
            "`${POLL}` may not be used in the remote configuration: it expands only variables \
             named CDF_S3_REMOTE_*"
        ),
        "{err}"
    );
}

#[test]
fn remote_document_that_is_not_a_mapping() {
    let (local, env) = stub();
    for (text, what) in [
        ("- a\n- b\n", "is a list"),
        ("", "is empty"),
        ("just text", "single value"),
    ] {
        let err = merge_remote(&local, text, &env).unwrap_err();
        assert_eq!(err.issues().len(), 1, "{err}");
        assert_eq!(err.issues()[0].path, "");
        assert!(err.issues()[0].message.contains(what), "{err}");
        assert!(err.to_string().contains("remote configuration"), "{err}");
    }
    let err = merge_remote(&local, "a: [b\n", &env).unwrap_err();
    assert!(
        matches!(err, ConfigError::Syntax { ref origin, .. } if origin == "the remote configuration")
    );
}

#[test]
fn remote_saying_remote_again() {
    let (local, env) = stub();
    let remote = format!(
        "type: remote\n{}",
        fixture_text("remote-pipeline-config.yaml")
    );
    let err = merge_remote(&local, &remote, &env).unwrap_err();
    assert_eq!(err.issues()[0].path, "type");
    assert!(err.issues()[0].message.contains("`type: remote` again"));
    let remote = format!(
        "type: local\n{}",
        fixture_text("remote-pipeline-config.yaml")
    );
    assert!(merge_remote(&local, &remote, &env).is_ok());
}

#[test]
fn remote_may_not_change_the_connection() {
    let (local, env) = stub();
    let remote = format!(
        "{}cognite:\n  idp-authentication:\n    token-url: https://attacker.example.com/token\n",
        "data_modeling:\n  - space: plant\n    data_models:\n      - external_id: M\n"
    );
    let err = merge_remote(&local, &remote, &env).unwrap_err();
    let paths: Vec<&str> = err.issues().iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["cognite.idp-authentication.token-url"]);
    let message = &err.issues()[0].message;
    assert!(
        message.contains("may not change the CDF connection"),
        "{message}"
    );
    assert!(
        message.contains(
            "it has \"https://attacker.example.com/token\" where the function's own connection \
             has \"https://login.microsoftonline.com/<tenant-id>/oauth2/v2.0/token\""
        ),
        "{message}"
    );
    assert!(
        message.contains(
            "Remove cognite.idp-authentication.token-url from the configuration stored in the \
             extraction pipeline"
        ),
        "{message}"
    );
}

#[test]
fn remote_result_is_fully_validated() {
    let (local, env) = stub();
    let err = merge_remote(&local, "extractor:\n  parallelism: 99\n", &env).unwrap_err();
    let paths: Vec<&str> = err.issues().iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["extractor.parallelism", "data_modeling"]);
    let err = merge_remote(&local, "extractor:\n  pol-time: 5\n", &env).unwrap_err();
    assert_eq!(err.issues()[0].path, "extractor.pol-time");
}

#[test]
fn deep_merge_semantics() {
    let mut base = yaml(
        "a:\n  keep: 1\n  replace: 2\n  nested:\n    x: 1\n    y: 2\nlist: [1, 2, 3]\n\
         poll-time: 5\nscalar_to_map: 1\n",
    );
    let over = yaml(
        "a:\n  replace: 20\n  nested:\n    y: 20\n    z: 30\n  added: true\nlist: [9]\n\
         poll_time: 6\nscalar_to_map:\n  k: v\nnew: n\n",
    );
    deep_merge(&mut base, over);
    let expected = yaml(
        "a:\n  keep: 1\n  replace: 20\n  nested:\n    x: 1\n    y: 20\n    z: 30\n  added: true\n\
         list: [9]\npoll_time: 6\nscalar_to_map:\n  k: v\nnew: n\n",
    );
    assert_eq!(base, expected);
}
