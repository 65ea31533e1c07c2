//! Ctrl-C, typed at a real terminal (a pseudo-terminal driven by
//! `tests/tools/pty_interrupt.py`), in `sync` and `demo`: the run stops at its next safe
//! point, says what it committed and what resumes, exits 130, leaves a consistent lake
//! (RAW and the Delta log agree on every stream), and the next sync resumes without a
//! duplicate row. A rerun of the demo into its lake starts over and says so.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};

use cdf_emulator::FaultSpec;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::status::report::{Agreement, Progress};
use cdf_s3_replicator::status::{self, StatusOptions};
use cdf_s3_replicator::sync::{StreamStatus, SyncJob, SyncOptions};
use serde_json::Value;

use crate::support::{Lab, python};

const PUMPS: usize = 60;
const SYNC: &str = "/models/instances/sync";
/// Small pages, a commit every two pages, one stream at a time: the backfill takes many
/// pages, each delayed by the emulator.
const SLOW: &str = "  subscription-batch-size: 10\n  ingest-batch-size: 20\n  parallelism: 1\n";

/// What the pseudo-terminal saw.
struct Typed {
    status: i64,
    interrupted: bool,
    output: String,
    /// What `before` printed (stdout and stderr), run before Ctrl-C was typed.
    before: Option<(i64, String)>,
}

/// Runs the CLI with `args` in a pseudo-terminal and types Ctrl-C once its output matches
/// `wait_for`.
async fn ctrl_c(python: &str, args: Vec<String>, wait_for: &str, dir: &Path) -> Typed {
    ctrl_c_after(python, args, wait_for, None, dir).await
}

/// [`ctrl_c`], running the shell command `before` first, once the output matched.
async fn ctrl_c_after(
    python: &str,
    args: Vec<String>,
    wait_for: &str,
    before: Option<String>,
    dir: &Path,
) -> Typed {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/pty_interrupt.py");
    let mut command = Command::new(python);
    command
        .arg(driver)
        .args(["--wait-for", wait_for, "--timeout", "600"]);
    if let Some(before) = before {
        command.args(["--before-interrupt", &before]);
    }
    command
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_cdf-s3-replicator"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn,buoyant_kernel=off")
        .env_remove(cdf_s3_replicator::failpoint::ENV)
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output().expect("driver runs"))
        .await
        .expect("driver task");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "driver JSON: {e}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(report["timed_out"], false, "{report:#}");
    Typed {
        status: report["status"].as_i64().expect("status"),
        interrupted: report["interrupted"].as_bool().unwrap_or(false),
        output: report["output"].as_str().unwrap_or_default().to_owned(),
        before: report["before_interrupt"].as_object().map(|before| {
            (
                before["status"].as_i64().unwrap_or(-1),
                before["output"].as_str().unwrap_or_default().to_owned(),
            )
        }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_in_sync_commits_what_it_read_and_the_next_sync_resumes() {
    let Some(python) = python() else {
        return;
    };
    let lab = Lab::start(PUMPS, None).await;
    let control = lab.emulator.control();
    control.add_fault(FaultSpec::delay(SYNC, 200, 100_000));
    let config = lab.config_file(SLOW);

    let typed = ctrl_c(
        &python,
        vec![
            "sync".into(),
            "--config".into(),
            config.display().to_string(),
        ],
        r"[1-9][0-9]* committed",
        lab.dir.path(),
    )
    .await;
    let output = &typed.output;
    assert!(typed.interrupted, "{output}");
    assert_eq!(typed.status, 130, "{output}");
    // The terminal showed rows fetched beside rows committed while the backfill ran.
    assert!(
        output.contains("backfill: ") && output.contains(" fetched, "),
        "{output}"
    );
    assert!(
        output.contains("Interrupted: stopping at the next safe point"),
        "{output}"
    );
    assert!(
        output.contains("Stopped at a safe point: every commit is whole."),
        "{output}"
    );
    assert!(
        output.contains("the next run resumes them from their last commit"),
        "{output}"
    );

    // Consistent: every stream that committed has its RAW row at its last Delta commit,
    // and the run stopped part-way.
    control.clear_faults();
    let context = lab.context(SLOW).await;
    let report = status::gather(&context, &StatusOptions::default()).await;
    let committed: Vec<_> = report
        .streams
        .iter()
        .filter(|s| s.delta_seq.is_some())
        .collect();
    assert!(!committed.is_empty(), "{report:#?}");
    for stream in &committed {
        assert_eq!(stream.agreement, Agreement::Agree, "{stream:#?}");
    }
    assert!(
        report
            .streams
            .iter()
            .any(|s| s.progress != Progress::CaughtUp),
        "the interrupt came before the end: {report:#?}"
    );

    // The next sync resumes: everything caught up, each instance exactly once.
    let summary = jobs::sync(
        &SyncJob::from_context(&context),
        &JobInputs::everything(),
        &SyncOptions::default(),
    )
    .await;
    assert!(
        summary
            .streams
            .iter()
            .all(|s| s.status == StreamStatus::CaughtUp),
        "{summary:#?}"
    );
    for (view, instances) in [("Pump", PUMPS), ("WorkOrder", 2 * PUMPS)] {
        let rows = lab.raw_rows(view, "nodes").expect("python reader");
        let keys: HashSet<String> = rows
            .iter()
            .map(|row| row["externalId"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(keys.len(), instances, "{view}: every instance");
        assert_eq!(rows.len(), instances, "{view}: no instance twice");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_in_the_demo_stops_it_and_a_rerun_starts_over() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = dir.path().join("lake");
    let typed = ctrl_c(
        &python,
        vec![
            "demo".into(),
            "--lake".into(),
            lake.display().to_string(),
            "--pumps".into(),
            "2000".into(),
        ],
        r"[0-9]+ fetched",
        dir.path(),
    )
    .await;
    let output = &typed.output;
    assert!(typed.interrupted, "{output}");
    assert_eq!(typed.status, 130, "{output}");
    assert!(
        output.contains("seeded 500/"),
        "seeding shows progress: {output}"
    );
    assert!(
        output.contains("Stopped at a safe point: every commit is whole."),
        "{output}"
    );
    assert!(
        output.contains("The demo stopped before its end; run it again to start over."),
        "{output}"
    );
    assert!(
        !output.contains("Publish layer"),
        "the steps after the interrupt were skipped: {output}"
    );

    // A rerun into the same lake says that it starts over, and finishes; its output,
    // written to pipes, has no ANSI escape.
    let rerun = Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"))
        .args(["demo", "--pumps", "5", "--lake"])
        .arg(&lake)
        .env("RUST_LOG", "warn,buoyant_kernel=off")
        .env_remove(cdf_s3_replicator::failpoint::ENV)
        .stdin(Stdio::null())
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&rerun.stdout);
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("holds an earlier demo: starting over"),
        "{stdout}"
    );
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "no ANSI escape in piped output: {stdout:?} {stderr:?}"
    );
    assert!(
        stdout.contains("caught up") && !stdout.contains("CaughtUp"),
        "{stdout}"
    );

    // The printed examples run with Python alone, and each shows something: the published
    // pumps, and the history of a pump that changed (here, pump-0000, deleted).
    let examples: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("python3 -c "))
        .collect();
    assert_eq!(examples.len(), 2, "{stdout}");
    let run = |example: &str| {
        let script = example.replacen("python3", &python, 1);
        let out = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("example runs");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let published = run(examples[0]);
    assert_eq!(
        published.lines().count(),
        4,
        "pumps 1 to 4 are live: {published}"
    );
    assert!(
        published.contains("'externalId': 'pump-0001'"),
        "{published}"
    );
    let history = run(examples[1]);
    let rows: Vec<&str> = history.lines().collect();
    assert_eq!(rows.len(), 2, "created, then deleted: {history}");
    assert!(
        rows.iter().all(|r| r.contains("'externalId': 'pump-0000'")),
        "{history}"
    );
    assert!(
        rows[0].contains("'deletedTime': None") && !rows[1].contains("'deletedTime': None"),
        "{history}"
    );

    // A directory that holds something else is not cleared.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).expect("dir");
    std::fs::write(other.join("keep.txt"), "mine").expect("file");
    let refused = Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"))
        .args(["demo", "--pumps", "5", "--lake"])
        .arg(&other)
        .stdin(Stdio::null())
        .output()
        .expect("demo runs");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("holds no earlier demo"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(other.join("keep.txt").is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_can_keep_running_with_a_configuration_to_explore() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = dir.path().join("lake");
    let config = dir.path().join("config.yaml");
    let bin = env!("CARGO_BIN_EXE_cdf-s3-replicator");
    // What the demo prints to try next, run while it waits: status reads the emulator's
    // state rows, and a sync finds nothing new.
    let explore = format!(
        "{bin} status --config {config} && {bin} sync --config {config}",
        config = config.display()
    );
    let typed = ctrl_c_after(
        &python,
        vec![
            "demo".into(),
            "--lake".into(),
            lake.display().to_string(),
            "--pumps".into(),
            "5".into(),
            "--keep-running".into(),
        ],
        "Press Ctrl-C to stop the emulator",
        Some(explore),
        dir.path(),
    )
    .await;
    let output = &typed.output;
    assert!(typed.interrupted, "{output}");
    assert_eq!(
        typed.status, 0,
        "Ctrl-C is how the kept emulator stops: {output}"
    );
    for command in ["status", "sync", "snapshot", "verify"] {
        let line = format!("cdf-s3-replicator {command} --config {}", config.display());
        assert!(output.contains(&line), "{line} in {output}");
    }
    assert!(output.contains("Stopping the emulator."), "{output}");
    let (status, explored) = typed.before.expect("ran");
    assert_eq!(status, 0, "{explored}");
    assert!(
        explored.contains("plant_schema/PlantModel/1/Pump/nodes")
            && explored.contains("caught up")
            && explored.contains("agree"),
        "status against the kept emulator: {explored}"
    );
    assert!(explored.contains("\"streamsCaughtUp\": 5"), "{explored}");
    let written = std::fs::read_to_string(&config).expect("config.yaml next to the lake");
    assert!(written.starts_with("# Written by `cdf-s3-replicator demo --keep-running`"));
}
