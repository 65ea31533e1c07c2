//! Chaos: a workload keeps creating, updating, deleting and recreating instances of several
//! views (with edges) while sync and snapshot invocations run as child processes of the CLI,
//! with random deadlines, random kills (failpoints between any two steps, and SIGKILL at a
//! random moment), CDF faults (429 storms, 5xx, latency, dropped connections, truncated
//! bodies, token expiry, forced cursor expiry with tombstone purge) and S3 faults from the
//! fault-injecting proxy (500, 503 SlowDown, stalls past the client timeout, resets,
//! truncated responses, and writes whose answer is lost).
//!
//! When the workload stops and the system catches up, `publish/` must equal the emulator's
//! truth exactly (read by pyarrow and DuckDB), and every raw table must hold each change at
//! most once per stream generation, with no txn version committed twice.
//!
//! `chaos_short` runs in CI. The long run:
//! `CHAOS_SEED=7 cargo test --test integration chaos_long -- --ignored --nocapture`
//! (`CHAOS_INVOCATIONS` overrides the number of invocations of either run).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cdf_emulator::FaultSpec;
use cdf_emulator::sample_model::{DATA_SPACE, SCHEMA_SPACE};
use cdf_s3_replicator::lake::LakeTable;
use cdf_s3_replicator::snapshot::arrival::CommitOrigin;
use deltalake::arrow::array::{Array, AsArray as _, RecordBatch};
use deltalake::arrow::datatypes::Int64Type;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use s3_fault_proxy::{FaultKind, FaultRule, S3FaultProxy, S3Op};
use serde_json::{Value, json};

use crate::support::{Lab, VIEWS, lab_behind_proxy, parquet_object_batches, published_file_spec};

/// The CLI's request timeout for S3 in this run; stalls outlast it.
const S3_TIMEOUT_SECS: u64 = 2;

/// Settings of one chaos run.
struct Chaos {
    seed: u64,
    invocations: usize,
    pumps: usize,
}

impl Chaos {
    fn from_env(invocations: usize) -> Self {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
        Self {
            seed: var("CHAOS_SEED").unwrap_or(20_261_127),
            invocations: var("CHAOS_INVOCATIONS").map_or(invocations, |n: u64| n as usize),
            pumps: 24,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_short() {
    run(Chaos::from_env(36)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long chaos run (10+ minutes); run with --ignored"]
async fn chaos_long() {
    run(Chaos::from_env(240)).await;
}

/// What happened, for the printed report.
#[derive(Default)]
struct Tally {
    sync_runs: u64,
    snapshot_runs: u64,
    failpoint_kills: u64,
    sigkills: u64,
    exits: BTreeMap<String, u64>,
    cdf_faults: BTreeMap<&'static str, u64>,
    workload: BTreeMap<String, u64>,
    resyncs_reported: u64,
    files_compacted: u64,
    checkpoints: u64,
}

impl Tally {
    fn kills(&self) -> u64 {
        self.failpoint_kills + self.sigkills
    }
}

async fn run(chaos: Chaos) {
    if crate::support::python().is_none() {
        return;
    }
    let Some((lab, proxy)) = lab_behind_proxy(chaos.pumps, chaos.seed).await else {
        return;
    };
    let control = lab.emulator.control();
    // Short cursor and tombstone lifetimes are forced by the faults below, not by the clock.
    let config = write_config(&lab);
    // Outside the lab's temp dir, so that the logs of a failed run stay for reading.
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{}", chaos.seed));
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).expect("log dir");

    let mut rng = StdRng::seed_from_u64(chaos.seed);
    let mut tally = Tally::default();
    let started = Instant::now();
    println!(
        "chaos: seed {}, {} invocations, {} pumps to start with",
        chaos.seed, chaos.invocations, chaos.pumps
    );

    for invocation in 0..chaos.invocations {
        apply_workload(&lab, &mut rng, chaos.pumps * 2, &mut tally);
        if rng.random_bool(0.35) {
            inject_cdf_fault(&lab, &mut rng, &mut tally);
        }
        if rng.random_bool(0.4) {
            inject_s3_faults(&proxy, &mut rng);
        }
        let sync = rng.random_bool(0.7);
        let (command, failpoints): (&str, &[&str]) = if sync {
            tally.sync_runs += 1;
            ("sync", SYNC_FAILPOINTS)
        } else {
            tally.snapshot_runs += 1;
            ("snapshot", SNAPSHOT_FAILPOINTS)
        };
        let mut args = vec![command.to_string()];
        if sync {
            args.extend([
                "--time-budget".into(),
                rng.random_range(2..=6u32).to_string(),
            ]);
        }
        let roll = rng.random_range(0..100u32);
        let failpoint = (roll < 30).then(|| {
            let name = failpoints[rng.random_range(0..failpoints.len())];
            format!("{name}:{}", rng.random_range(1..=3u32))
        });
        let kill_after = (30..50)
            .contains(&roll)
            .then(|| Duration::from_millis(rng.random_range(100..2500)));
        let outcome = invoke(
            &config,
            &args,
            failpoint.as_deref(),
            kill_after,
            &logs.join(format!("{invocation:04}-{command}")),
        )
        .await;
        record(&mut tally, &outcome, sync);
        control.clear_faults();
        proxy.clear();
    }
    let chaos_time = started.elapsed();

    // The workload stops; without faults the system must catch up and publish the truth.
    let caught_up = catch_up(&config, &logs, &mut tally).await;
    assert!(
        caught_up,
        "sync stopped making progress before it caught up; logs in {}",
        logs.display()
    );
    let outcome = invoke(
        &config,
        &["snapshot".to_string()],
        None,
        None,
        &logs.join("final-snapshot"),
    )
    .await;
    assert_eq!(
        outcome.status.code(),
        Some(0),
        "final snapshot: {}",
        outcome.stderr_tail()
    );

    let (rows_compared, mismatches) = compare_published(&lab);
    let raw = check_raw_tables(&lab).await;
    let s3 = proxy.stats();

    println!("chaos report (seed {}):", chaos.seed);
    println!(
        "  invocations: {} ({} sync, {} snapshot) in {:.0?}",
        tally.sync_runs + tally.snapshot_runs,
        tally.sync_runs,
        tally.snapshot_runs,
        chaos_time
    );
    println!(
        "  kills: {} ({} at failpoints, {} SIGKILL mid-run)",
        tally.kills(),
        tally.failpoint_kills,
        tally.sigkills
    );
    println!("  exits: {:?}", tally.exits);
    println!("  workload: {:?}", tally.workload);
    println!("  CDF faults injected: {:?}", tally.cdf_faults);
    let mut s3_faults: BTreeMap<&str, u64> = BTreeMap::new();
    for ((kind, _), n) in &s3.faults {
        *s3_faults.entry(kind).or_default() += n;
    }
    println!(
        "  S3 faults fired: {:?} (of {} S3 requests)",
        s3_faults,
        s3.requests.values().sum::<u64>()
    );
    println!(
        "  S3 faults on conditional commit PUTs: {}, on multipart parts: {}",
        s3.faults_on(S3Op::ConditionalPut),
        s3.faults_on(S3Op::UploadPart)
    );
    println!(
        "  resyncs: {} reported by completed runs, {} generations opened after the first",
        tally.resyncs_reported, raw.later_generations
    );
    println!(
        "  raw: {} stream commits, {} change rows, {} duplicate changes, {} txn versions committed twice",
        raw.commits, raw.rows, raw.duplicate_changes, raw.duplicate_txns
    );
    println!(
        "  maintenance by completed snapshots: {} small files compacted, {} checkpoints",
        tally.files_compacted, tally.checkpoints
    );
    println!("  publish: {rows_compared} rows compared, {mismatches} mismatches");

    assert_eq!(mismatches, 0, "publish/ differs from the truth");
    assert_eq!(
        raw.duplicate_changes, 0,
        "a change landed twice in a raw table"
    );
    assert_eq!(raw.duplicate_txns, 0, "a txn version was committed twice");
    assert!(rows_compared > 0, "the comparison compared rows");
    assert_eq!(
        tally.exits.get("panic").copied().unwrap_or(0),
        0,
        "no invocation may panic"
    );
}

const SYNC_FAILPOINTS: &[&str] = &[
    "after-data-upload",
    "before-delta-commit",
    "after-delta-commit",
    "after-raw-checkpoint",
];

const SNAPSHOT_FAILPOINTS: &[&str] = &[
    "snapshot-before-file-complete",
    "snapshot-after-nodes-file",
    "snapshot-after-edges-file",
    "snapshot-after-manifest",
];

fn write_config(lab: &Lab) -> PathBuf {
    let extractor = "  deadline-margin: 1\n  subscription-batch-size: 40\n  ingest-batch-size: 60\n  parallelism: 3\n  maintenance:\n    checkpoint-interval: 4\n    compact-min-files: 3\n";
    let yaml = lab.config_yaml(extractor, None).replace(
        "    allow-http: true\n",
        &format!("    allow-http: true\n    request-timeout: {S3_TIMEOUT_SECS}\n"),
    );
    let path = lab.dir.path().join("chaos.yaml");
    std::fs::write(&path, yaml).expect("chaos configuration");
    path
}

fn view_ref(view: &str) -> Value {
    json!({"type": "view", "space": SCHEMA_SPACE, "externalId": view, "version": "1"})
}

fn node(external_id: &str, view: &str, properties: Value) -> Value {
    json!({
        "instanceType": "node", "space": DATA_SPACE, "externalId": external_id,
        "sources": [{"source": view_ref(view), "properties": properties}],
    })
}

fn reference(instance_type: &str, external_id: &str) -> Value {
    json!({"instanceType": instance_type, "space": DATA_SPACE, "externalId": external_id})
}

/// One round of workload: a few random creates, updates, deletes and recreations. Pumps are
/// drawn from twice the initial range, so some are new and deleted ones come back.
fn apply_workload(lab: &Lab, rng: &mut StdRng, pump_range: usize, tally: &mut Tally) {
    let control = lab.emulator.control();
    for _ in 0..rng.random_range(1..=6) {
        let p = rng.random_range(0..pump_range);
        let pump = format!("pump-{p:04}");
        let order = format!("wo-{p:04}-{}", rng.random_range(0..2));
        let roll = rng.random_range(0..100u32);
        let (what, result) = match roll {
            0..35 => {
                let kw = f64::from(rng.random_range(0..400_000u32)) / 4.0;
                let items = vec![
                    node(
                        &pump,
                        "Pump",
                        json!({
                            "tag": format!("P-{p:04} chaos ✓"),
                            "ratedKw": kw,
                            "running": rng.random_bool(0.5),
                            "status": if rng.random_bool(0.5) { "running" } else { "stopped" },
                            "site": {"space": DATA_SPACE, "externalId": format!("site-{}", p % 3)},
                            "aliases": [format!("chaos-{}", rng.random_range(0..1000u32))],
                            "readings": [kw, -kw],
                        }),
                    ),
                    node(
                        &order,
                        "WorkOrder",
                        json!({
                            "title": format!("Chaos {order}"),
                            "priority": rng.random_range(0..4i32),
                            "done": rng.random_bool(0.5),
                        }),
                    ),
                    json!({
                        "instanceType": "edge", "space": DATA_SPACE, "externalId": format!("{pump}--{order}"),
                        "type": {"space": SCHEMA_SPACE, "externalId": "Pump.workOrders"},
                        "startNode": {"space": DATA_SPACE, "externalId": pump},
                        "endNode": {"space": DATA_SPACE, "externalId": order},
                        "sources": [{"source": view_ref("PumpWorkOrder"), "properties": {
                            "linkedBy": format!("chaos-{}", rng.random_range(0..100u32)),
                        }}],
                    }),
                ];
                (
                    "upsert pump+order+edge",
                    control.apply_instances(
                        json!({"items": items, "autoCreateDirectRelations": true}),
                    ),
                )
            }
            35..60 => (
                "update pump",
                control.apply_instances(json!({"items": [node(&pump, "Pump", json!({
                    "ratedKw": f64::from(rng.random_range(0..1000u32)) + 0.5,
                    "stages": rng.random_range(1..6i32),
                }))], "autoCreateDirectRelations": true})),
            ),
            60..75 => (
                "delete pump",
                control.delete_instances(json!({"items": [reference("node", &pump)]})),
            ),
            75..85 => (
                "delete work order",
                control.delete_instances(json!({"items": [reference("node", &order)]})),
            ),
            85..95 => (
                "delete edge",
                control.delete_instances(
                    json!({"items": [reference("edge", &format!("{pump}--{order}"))]}),
                ),
            ),
            _ => (
                "update site",
                control.apply_instances(json!({"items": [node(
                    &format!("site-{}", p % 3),
                    "Site",
                    json!({"name": format!("Site {}", rng.random_range(0..100u32))}),
                )]})),
            ),
        };
        let counted = match result {
            Ok(_) => what.to_string(),
            Err(_) => format!("{what} (rejected)"),
        };
        *tally.workload.entry(counted).or_default() += 1;
    }
}

fn inject_cdf_fault(lab: &Lab, rng: &mut StdRng, tally: &mut Tally) {
    let control = lab.emulator.control();
    const SYNC: &str = "/models/instances/sync";
    let (kind, fault): (&'static str, Option<FaultSpec>) = match rng.random_range(0..8u32) {
        0 => (
            "429 storm",
            Some(FaultSpec::status(SYNC, 429, rng.random_range(2..6)).with_retry_after(1)),
        ),
        1 => (
            "5xx on sync",
            Some(FaultSpec::status(
                SYNC,
                [500, 502, 503][rng.random_range(0..3)],
                rng.random_range(1..4),
            )),
        ),
        2 => (
            "5xx on RAW",
            Some(FaultSpec::status("/rows", 503, rng.random_range(1..3))),
        ),
        3 => (
            "latency",
            Some(FaultSpec::delay(SYNC, rng.random_range(200..900), 4)),
        ),
        4 => (
            "dropped connection",
            Some(FaultSpec::drop_connection(SYNC, 1)),
        ),
        5 => ("truncated body", Some(FaultSpec::truncate_body(SYNC, 1))),
        6 => {
            control.expire_all_tokens();
            ("token expiry", None)
        }
        _ => {
            control.expire_all_cursors();
            control.purge_tombstones();
            ("cursor expiry + tombstone purge", None)
        }
    };
    if let Some(fault) = fault {
        control.add_fault(fault);
    }
    *tally.cdf_faults.entry(kind).or_default() += 1;
}

fn inject_s3_faults(proxy: &S3FaultProxy, rng: &mut StdRng) {
    let kinds = [
        FaultKind::InternalError,
        FaultKind::SlowDown,
        FaultKind::Reset,
        FaultKind::Truncate,
        FaultKind::ResponseLost,
        FaultKind::Delay(Duration::from_millis(300)),
        FaultKind::Stall(Duration::from_secs(S3_TIMEOUT_SECS + 1)),
    ];
    for _ in 0..rng.random_range(1..=2) {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let (ops, probability): (&[S3Op], f64) = match rng.random_range(0..4u32) {
            // Commits are few, so they are hit harder.
            0 => (&[S3Op::ConditionalPut], 0.3),
            1 => (
                &[
                    S3Op::Put,
                    S3Op::UploadPart,
                    S3Op::CreateMultipart,
                    S3Op::CompleteMultipart,
                ],
                0.1,
            ),
            2 => (&[S3Op::Get, S3Op::Head, S3Op::List], 0.05),
            _ => (&[], 0.05),
        };
        proxy.inject(FaultRule::random(ops, kind, probability));
    }
}

struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: PathBuf,
    killed: bool,
}

impl Outcome {
    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// Runs the CLI once; SIGKILLs it after `kill_after` if it is still running.
async fn invoke(
    config: &Path,
    args: &[String],
    failpoint: Option<&str>,
    kill_after: Option<Duration>,
    log: &Path,
) -> Outcome {
    let stdout_path = log.with_extension("out");
    let stderr_path = log.with_extension("err");
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"));
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .env_remove(cdf_s3_replicator::failpoint::ENV)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
    if let Some(failpoint) = failpoint {
        command.env(cdf_s3_replicator::failpoint::ENV, failpoint);
    }
    let (status, killed) = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("CLI starts");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the CLI") {
                return (status, false);
            }
            if kill_after.is_some_and(|after| started.elapsed() >= after) {
                let _ = child.kill();
                return (child.wait().expect("killed CLI"), true);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .await
    .expect("CLI task");
    Outcome {
        status,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: stderr_path,
        killed,
    }
}

fn record(tally: &mut Tally, outcome: &Outcome, sync: bool) {
    let exit = match (outcome.status.code(), outcome.status.signal()) {
        (_, Some(6)) => {
            tally.failpoint_kills += 1;
            "aborted at failpoint".to_string()
        }
        (_, Some(9)) if outcome.killed => {
            tally.sigkills += 1;
            "SIGKILL".to_string()
        }
        (Some(101), _) => "panic".to_string(),
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => "unknown".to_string(),
    };
    if exit == "panic" {
        eprintln!("an invocation panicked:\n{}", outcome.stderr_tail());
    }
    *tally.exits.entry(exit).or_default() += 1;
    if let Ok(summary) = serde_json::from_str::<Value>(outcome.stdout.trim()) {
        if sync {
            tally.resyncs_reported += summary["cursorResets"].as_u64().unwrap_or(0);
        } else {
            let maintenance = &summary["maintenance"];
            tally.files_compacted += maintenance["filesCompacted"].as_u64().unwrap_or(0);
            tally.checkpoints += maintenance["checkpoints"].as_u64().unwrap_or(0);
        }
    }
}

/// Runs sync until it is caught up. Rounds go on while they make progress: two rounds in a
/// row that commit nothing (or print no summary) without catching up mean the sync is stuck,
/// whatever the speed of the machine; the number of rounds itself is not bounded.
async fn catch_up(config: &Path, logs: &Path, tally: &mut Tally) -> bool {
    let mut stalled = 0;
    for round in 0.. {
        let outcome = invoke(
            config,
            &["sync".into(), "--time-budget".into(), "60".into()],
            None,
            None,
            &logs.join(format!("catch-up-{round}")),
        )
        .await;
        record(tally, &outcome, true);
        let summary = serde_json::from_str::<Value>(outcome.stdout.trim()).ok();
        if let Some(summary) = &summary
            && outcome.status.code() == Some(0)
            && summary["streamsBehind"] == 0
            && summary["streamsFailed"] == 0
        {
            return true;
        }
        let commits: u64 = summary
            .as_ref()
            .and_then(|summary| summary["streams"].as_array())
            .map(|streams| {
                streams
                    .iter()
                    .map(|s| s["commits"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        stalled = if commits == 0 { stalled + 1 } else { 0 };
        if stalled == 2 {
            return false;
        }
    }
    false
}

/// Reads every view's published files with pyarrow and DuckDB; returns (rows, mismatches).
fn compare_published(lab: &Lab) -> (u64, u64) {
    let mut rows = 0;
    let mut mismatches = 0;
    for (view, nodes_of, edges_of) in VIEWS {
        let files = json!({
            "nodes": published_file_spec(lab, "nodes", nodes_of, view, &json!({})),
            "edges": published_file_spec(lab, "edges", edges_of, view, &json!({})),
        });
        let report = lab.check_published(view, files.clone()).expect("python");
        for kind in ["nodes", "edges"] {
            let expected = files[kind]["truth"].as_array().map_or(0, Vec::len) as u64;
            for reader in ["pyarrow", "duckdb"] {
                let r = &report["files"][kind][reader];
                let bad = r["mismatch_count"].as_u64().unwrap_or(u64::MAX)
                    + r["type_errors"].as_array().map_or(1, |e| e.len() as u64)
                    + r["duplicates"].as_array().map_or(1, |d| d.len() as u64)
                    + r["deleted_time_set"].as_u64().unwrap_or(1)
                    + u64::from(r["sorted"] != true)
                    + u64::from(r["rows"].as_u64() != Some(expected));
                if bad > 0 {
                    eprintln!("{view}/{kind} ({reader}) differs from the truth: {r}");
                }
                mismatches += bad;
                rows += expected;
            }
        }
    }
    (rows, mismatches)
}

#[derive(Default)]
struct RawCheck {
    commits: u64,
    rows: u64,
    duplicate_changes: u64,
    duplicate_txns: u64,
    later_generations: u64,
}

/// Reads every data file each stream commit added, straight from the Delta log: a change
/// (space, externalId, version) may appear once per stream generation, and a txn version
/// once per stream.
async fn check_raw_tables(lab: &Lab) -> RawCheck {
    let mut check = RawCheck::default();
    let tables = [
        ("Site", "nodes"),
        ("Pump", "nodes"),
        ("WorkOrder", "nodes"),
        ("Pump", "edges"),
        ("PumpWorkOrder", "edges"),
    ];
    let options: HashMap<String, String> = lab
        .lake
        .storage_options()
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    for (folder, kind) in tables {
        let uri = lab.lake.raw_table_uri(folder, kind);
        let url = url::Url::parse(&uri).expect("table URL");
        let table = LakeTable::open_with_storage_options(url, options.clone(), Default::default())
            .await
            .expect("raw table opens");
        let store = table.object_store();
        let mut changes: HashSet<(String, u64, String, String, i64, bool)> = HashSet::new();
        let mut txns: HashSet<(String, i64)> = HashSet::new();
        let mut generations: HashSet<(String, u64)> = HashSet::new();
        for commit in table.changes_since(None).await.expect("Delta log") {
            let CommitOrigin::Stream {
                app_id, generation, ..
            } = CommitOrigin::of(&commit)
            else {
                continue;
            };
            let generation = generation.unwrap_or(0);
            check.commits += 1;
            generations.insert((app_id.clone(), generation));
            for txn in &commit.txns {
                if !txns.insert((txn.app_id.clone(), txn.version)) {
                    eprintln!("{folder}/{kind}: txn {} v{} twice", txn.app_id, txn.version);
                    check.duplicate_txns += 1;
                }
            }
            for add in commit.adds.iter().filter(|a| a.data_change) {
                let path = deltalake::Path::parse(&add.path).expect("file path");
                for batch in parquet_object_batches(&store, &path).await {
                    for (space, external_id, version, exit) in keys(&batch) {
                        check.rows += 1;
                        let key = (
                            app_id.clone(),
                            generation,
                            space,
                            external_id,
                            version,
                            exit,
                        );
                        if !changes.insert(key.clone()) {
                            eprintln!(
                                "{folder}/{kind}: change {key:?} twice (commit {:?}, {})",
                                commit.version, add.path
                            );
                            check.duplicate_changes += 1;
                        }
                    }
                }
            }
        }
        let streams: HashSet<&String> = generations.iter().map(|(app, _)| app).collect();
        check.later_generations += (generations.len() - streams.len()) as u64;
    }
    check
}

/// Each row's key, version and whether it is an exit row. An exit row repeats the version of
/// the row it ends, and an instance recreated after its tombstone was purged starts again at
/// version 1: the exit of the old instance and the first row of the new one are two changes.
fn keys(batch: &RecordBatch) -> Vec<(String, String, i64, bool)> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("raw column {name}"))
    };
    let spaces = column("space").as_string::<i32>();
    let ids = column("externalId").as_string::<i32>();
    let versions = column("version").as_primitive::<Int64Type>();
    let exited = batch.column_by_name("_exitedTime");
    (0..batch.num_rows())
        .map(|i| {
            (
                spaces.value(i).to_string(),
                ids.value(i).to_string(),
                if versions.is_null(i) {
                    -1
                } else {
                    versions.value(i)
                },
                exited.is_some_and(|c| c.is_valid(i)),
            )
        })
        .collect()
}
