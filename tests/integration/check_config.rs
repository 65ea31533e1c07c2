//! The CLI's `check-config` against the CDF emulator: the effective configuration it prints
//! loads back, and `--connect` gives one clear line per check (credentials, models and
//! views, the lake), naming what fails. Also the CLI's other first-hour messages that need
//! CDF: a missing model lists the models that exist, a snapshot before any sync says to run
//! sync first, and `sync` logs one summary line and takes `--time-budget` in the
//! configuration's duration syntax.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cdf_emulator::sample_model::{MODEL, SCHEMA_SPACE};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::load_config_text;

use crate::support::Lab;

const PUMPS: usize = 3;

/// Runs the CLI with `args` (blocking, off the runtime that serves the emulator).
async fn cli(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"))
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("CLI runs")
    })
    .await
    .expect("CLI task")
}

fn write_config(lab: &Lab, yaml: &str) -> PathBuf {
    let path = lab.dir.path().join("config.yaml");
    std::fs::write(&path, yaml).expect("config file");
    path
}

async fn check_config(config: &Path, connect: bool) -> Output {
    let mut args = vec![
        "check-config".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
    ];
    if connect {
        args.extend([
            "--connect".to_owned(),
            "--connect-timeout".to_owned(),
            "1m".to_owned(),
        ]);
    }
    cli(args).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_checks_pass_and_the_printed_configuration_loads_back() {
    let lab = Lab::start(PUMPS, None).await;
    let yaml = lab.config_yaml("", None);
    let config = write_config(&lab, &yaml);
    let output = check_config(&config, true).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for check in [
        "ok      CDF credentials",
        "ok      data models and views",
        "ok      lake ",
    ] {
        assert!(stderr.contains(check), "{check:?} missing:\n{stderr}");
    }
    assert!(
        stderr.contains(&format!("{SCHEMA_SPACE}:{MODEL}/1:Pump")),
        "{stderr}"
    );
    assert!(!stdout.contains("emulator-secret"), "{stdout}");
    assert!(!stderr.contains("emulator-secret"), "{stderr}");

    // The probe left nothing behind in the lake.
    let probes: Vec<PathBuf> = files_under(lab.dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("probe"))
        .collect();
    assert!(probes.is_empty(), "{probes:?}");

    // What it printed loads back to the configuration it checked (the secret aside).
    let original = load_config_text(&yaml, "original", &MapEnv::new())
        .await
        .unwrap();
    let printed = stdout.replace("<redacted>", "emulator-secret");
    let reloaded = load_config_text(&printed, "printed", &MapEnv::new())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(reloaded, original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_names_a_missing_view_and_a_missing_model_with_the_models_that_exist() {
    let lab = Lab::start(PUMPS, None).await;
    let yaml = lab.config_yaml("", Some(&["Pump", "NoSuchView"]));
    let output = check_config(&write_config(&lab, &yaml), true).await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("ok      CDF credentials"), "{stderr}");
    let failed: Vec<&str> = stderr.lines().filter(|l| l.starts_with("FAILED")).collect();
    assert_eq!(failed.len(), 1, "{stderr}");
    assert!(failed[0].contains("NoSuchView"), "{stderr}");

    let yaml = lab
        .config_yaml("", None)
        .replace(&format!("external_id: {MODEL}"), "external_id: PlantModl");
    let output = check_config(&write_config(&lab, &yaml), true).await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("FAILED") && l.contains("PlantModl"))
        .unwrap_or_else(|| panic!("no line names the model:\n{stderr}"));
    assert!(
        line.contains(&format!(
            "does not exist; the space {SCHEMA_SPACE} has: {MODEL}/1"
        )),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_names_the_token_url_of_wrong_credentials_and_an_unwritable_lake() {
    let lab = Lab::start(PUMPS, None).await;
    let blocker = lab.dir.path().join("not-a-directory");
    std::fs::write(&blocker, "a file where the lake's parent should be").unwrap();
    let yaml = lab
        .config_yaml("", None)
        .replace("secret: emulator-secret", "secret: wrong-secret-value")
        .replace(
            &lab.dir.path().join("lake").display().to_string(),
            &blocker.join("lake").display().to_string(),
        );
    let output = check_config(&write_config(&lab, &yaml), true).await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let line = |prefix: &str| {
        stderr
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{stderr}"))
            .to_owned()
    };
    let credentials = line("FAILED  CDF credentials");
    assert!(
        credentials.contains(&lab.emulator.token_url()),
        "{credentials}"
    );
    assert!(credentials.contains("emulator-client"), "{credentials}");
    assert!(!stderr.contains("wrong-secret-value"), "{stderr}");
    assert!(line("FAILED  data models and views").contains("not checked: no token"));
    assert!(
        line("FAILED  lake ").contains("not-a-directory"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_lists_every_problem_and_exits_non_zero() {
    let lab = Lab::start(PUMPS, None).await;
    let yaml = lab
        .config_yaml("  poll-tim: 5m\n  parallelism: many\n", None)
        .replace("idp-authentication", "idp-authentification");
    let output = check_config(&write_config(&lab, &yaml), false).await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(output.stdout.is_empty());
    for words in [
        "cognite.idp-authentification: unknown key `idp-authentification`; did you mean `idp-authentication`?",
        "extractor.poll-tim: unknown key `poll-tim`; did you mean `poll-time`?",
        "extractor.parallelism: wrong type: string \"many\", expected a whole number",
    ] {
        assert!(stderr.contains(words), "{words:?} missing:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_before_any_sync_says_to_run_sync_first_and_sync_logs_one_summary_line() {
    let lab = Lab::start(PUMPS, None).await;
    let config = lab.config_file("");
    let config_arg = config.display().to_string();
    let snapshot = cli(vec![
        "snapshot".into(),
        "--config".into(),
        config_arg.clone(),
    ])
    .await;
    let out = text(&snapshot.stdout);
    assert!(!snapshot.status.success(), "{out}");
    assert!(out.contains("Run sync first"), "{out}");

    let sync = cli(vec![
        "sync".into(),
        "--config".into(),
        config_arg,
        "--time-budget".into(),
        "5m".into(),
    ])
    .await;
    let stderr = text(&sync.stderr);
    assert!(sync.status.success(), "{stderr}");
    let summaries: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("sync finished"))
        .collect();
    assert_eq!(summaries.len(), 1, "{stderr}");
    assert!(summaries[0].contains("streams:"), "{}", summaries[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_gives_up_on_a_silent_token_endpoint_and_still_checks_the_lake() {
    let lab = Lab::start(PUMPS, None).await;
    // Accepts connections (the backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let silent_url = format!(
        "http://{}/oauth2/token",
        silent.local_addr().expect("address")
    );
    let yaml = lab
        .config_yaml("", None)
        .replace(&lab.emulator.token_url(), &silent_url);
    let config = write_config(&lab, &yaml);
    let output = cli(vec![
        "check-config".into(),
        "--config".into(),
        config.display().to_string(),
        "--connect".into(),
        "--connect-timeout".into(),
        "2s".into(),
    ])
    .await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let credentials = stderr
        .lines()
        .find(|l| l.starts_with("FAILED  CDF credentials"))
        .unwrap_or_else(|| panic!("no credentials line:\n{stderr}"));
    assert!(credentials.contains(&silent_url), "{credentials}");
    assert!(stderr.contains("ok      lake "), "{stderr}");
    drop(silent);
}
