//! `.env` files: read without touching the process environment, process values win, the file
//! next to the configuration wins over the one in the current directory.

use crate::config::{ConfigError, EnvSource, ProcessEnv, load_config};

#[test]
fn process_environment_wins_over_dotenv() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".env");
    // PATH is set in every test process; the other name is specific to this test.
    std::fs::write(
        &file,
        "PATH=/from/dotenv\nCDF_S3_REPLICATOR_CONFIG_TEST_ONLY=from-dotenv\n",
    )
    .unwrap();
    let env = ProcessEnv::from_dotenv_files(&[file]).unwrap();
    assert_eq!(env.get("PATH"), std::env::var("PATH").ok());
    assert_eq!(
        env.get("CDF_S3_REPLICATOR_CONFIG_TEST_ONLY").as_deref(),
        Some("from-dotenv")
    );
    assert_eq!(env.get("CDF_S3_REPLICATOR_CONFIG_TEST_UNSET"), None);
}

#[test]
fn earlier_dotenv_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    let near = dir.path().join("near.env");
    let far = dir.path().join("far.env");
    std::fs::write(&near, "CDF_S3_REPLICATOR_CONFIG_TEST_A=near\n").unwrap();
    std::fs::write(
        &far,
        "CDF_S3_REPLICATOR_CONFIG_TEST_A=far\nCDF_S3_REPLICATOR_CONFIG_TEST_B=far\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.env");
    let env = ProcessEnv::from_dotenv_files(&[near, missing, far]).unwrap();
    assert_eq!(
        env.get("CDF_S3_REPLICATOR_CONFIG_TEST_A").as_deref(),
        Some("near")
    );
    assert_eq!(
        env.get("CDF_S3_REPLICATOR_CONFIG_TEST_B").as_deref(),
        Some("far")
    );
}

#[test]
fn malformed_dotenv_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".env");
    std::fs::write(&file, "GOOD=1\nTHIS LINE IS BROKEN\n").unwrap();
    let err = ProcessEnv::from_dotenv_files(std::slice::from_ref(&file)).unwrap_err();
    assert!(
        matches!(err, ConfigError::DotEnv { ref path, .. } if *path == file),
        "{err}"
    );
}

#[test]
fn config_file_next_to_its_dotenv() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "CDF_S3_REPLICATOR_CONFIG_TEST_PROJECT=from-dotenv-project\n",
    )
    .unwrap();
    let config_path = dir.path().join("config.yaml");
    std::fs::write(
        &config_path,
        super::variant(
            "project: my-project",
            "project: ${CDF_S3_REPLICATOR_CONFIG_TEST_PROJECT}",
        ),
    )
    .unwrap();
    let env = ProcessEnv::for_config_file(&config_path).unwrap();
    let config = load_config(&config_path, &env).unwrap();
    assert_eq!(config.cognite.project, "from-dotenv-project");
}

#[test]
fn missing_config_file() {
    let err = load_config(
        std::path::Path::new("/nonexistent/config.yaml"),
        &ProcessEnv::without_dotenv(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string().contains("/nonexistent/config.yaml"),
        "{err}"
    );
}
