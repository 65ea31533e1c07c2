//! A CDF that does not answer: interactive commands give up after `--connect-timeout`,
//! naming the host, and `status` shows what the lake holds and says what it could not read.
//! No assertion on time other than the test's own generous bound: a command that waited on
//! CDF's retries instead would blow it.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::snapshot::SnapshotOptions;
use cdf_s3_replicator::sync::{SyncJob, SyncOptions};

use crate::support::Lab;

const PUMPS: usize = 20;

/// Runs the CLI, failing the test if it is still running after two minutes.
async fn cli(args: Vec<String>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"));
    command
        .args(args)
        .env("RUST_LOG", "warn,buoyant_kernel=off")
        .env_remove(cdf_s3_replicator::failpoint::ENV)
        .stdin(Stdio::null());
    tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || command.output().expect("CLI runs")),
    )
    .await
    .expect("the command gave up on its own")
    .expect("CLI task")
}

#[tokio::test(flavor = "multi_thread")]
async fn status_answers_from_the_lake_when_cdf_does_not() {
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context("").await;
    let synced = jobs::sync(
        &SyncJob::from_context(&context),
        &JobInputs::everything(),
        &SyncOptions::default(),
    )
    .await;
    assert!(synced.is_success(), "{synced:#?}");
    let published = jobs::snapshot(
        &context,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(published.is_success(), "{published:#?}");

    // CDF's address accepts connections and never answers (packets dropped somewhere);
    // the identity provider still answers.
    let blackhole = TcpListener::bind("127.0.0.1:0").expect("listener");
    let silent = blackhole.local_addr().expect("address");
    let yaml = lab.config_yaml("", None).replace(
        &format!("  host: {}\n", lab.emulator.base_url()),
        &format!("  host: http://{silent}\n"),
    );
    assert!(yaml.contains(&format!("host: http://{silent}")), "{yaml}");
    let config = lab.dir.path().join("unreachable.yaml");
    std::fs::write(&config, yaml).expect("config");
    let config = config.display().to_string();
    let args = |command: &str| -> Vec<String> {
        vec![
            command.into(),
            "--connect-timeout".into(),
            "2".into(),
            "--config".into(),
            config.clone(),
        ]
    };

    let status = cli(args("status")).await;
    let table = String::from_utf8_lossy(&status.stdout);
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "{table}{stderr}");
    let host = format!("cannot reach CDF at {silent}: no answer within 2 s");
    assert!(
        table.contains(&format!("state rows: not read ({host}")),
        "says what it could not read, naming the host: {table}"
    );
    assert!(
        table.contains("plan error: the model definitions were not read"),
        "{table}"
    );
    for stream in [
        "plant_schema/PlantModel/1/Pump/nodes",
        "plant_schema/PlantModel/1/WorkOrder/nodes",
        "plant_schema/PlantModel/1/Pump/edges/plant_schema/Pump.workOrders",
    ] {
        let line = table
            .lines()
            .find(|line| line.starts_with(stream))
            .unwrap_or_else(|| panic!("{stream} from the lake: {table}"));
        // Streaming, per the Delta log; whether caught up (RAW's to say) and whether RAW
        // agrees are unknown.
        let columns: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(columns[1..3], ["streaming", "unknown"], "{line}");
        assert!(line.contains(" unknown "), "RAW unread: {line}");
    }
    let pumps = table
        .lines()
        .find(|line| line.contains(" Pump ") && line.contains(" nodes "))
        .unwrap_or_else(|| panic!("the published pumps: {table}"));
    assert!(pumps.contains("current"), "{pumps}");

    let json = cli({
        let mut a = args("status");
        a.push("--json".into());
        a
    })
    .await;
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert!(
        report["stateError"]
            .as_str()
            .is_some_and(|e| e.contains(&host)),
        "{report:#}"
    );
    assert_eq!(
        report["streams"].as_array().map(Vec::len),
        Some(5),
        "{report:#}"
    );

    // Commands that need CDF give up, naming it.
    let sync = cli(args("sync")).await;
    let stderr = String::from_utf8_lossy(&sync.stderr);
    assert!(!sync.status.success());
    assert!(stderr.contains(&host), "{stderr}");
    // Its log lines (the retries' warnings) went to a pipe: no colour codes.
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI escape in piped logs: {stderr:?}"
    );
    drop(blackhole);

    // An identity provider on a closed port is named as such.
    let closed = TcpListener::bind("127.0.0.1:0").expect("listener");
    let closed_addr = closed.local_addr().expect("address");
    drop(closed);
    let yaml = lab.config_yaml("", None).replace(
        &lab.emulator.token_url(),
        &format!("http://{closed_addr}/token"),
    );
    let config = lab.dir.path().join("no-idp.yaml");
    std::fs::write(&config, yaml).expect("config");
    let sync = cli(vec![
        "sync".into(),
        "--connect-timeout".into(),
        "2".into(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&sync.stderr);
    assert!(!sync.status.success());
    assert!(
        stderr.contains(&format!(
            "cannot reach the identity provider at {closed_addr}"
        )),
        "{stderr}"
    );
}
