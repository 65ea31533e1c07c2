//! Load: one data model with 210 views (210 streams) and a backlog of about 123,000
//! instances, one view holding far more than the others. Sync runs as the CLI in short time
//! slices. Every slice must end within its deadline, every stream must get its turn in the
//! order the scheduler promises (longest-waiting first, so the big backlog starves nobody),
//! the peak memory of a slice must stay bounded, and the tables must end up complete.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdf_emulator::{Emulator, EmulatorConfig, SeedNode, ViewId};
use serde_json::{Value, json};

use crate::support::Lake;

const SPACE: &str = "load";
const MODEL: &str = "LoadModel";
const VIEWS: usize = 210;
const NODES_PER_VIEW: usize = 300;
/// The one view with a backlog far larger than a slice can take.
const BIG_VIEW_NODES: usize = 60_000;
const TIME_BUDGET_SECS: u64 = 4;
/// Process start, configuration, model resolution and exit happen outside the run's own
/// deadline accounting.
const SLICE_SLACK: Duration = Duration::from_secs(4);
/// Peak RSS a slice may reach (debug build, 210 streams planned, 4 at a time).
const MAX_SLICE_RSS_MIB: u64 = 512;

fn view_name(i: usize) -> String {
    format!("V{i:03}")
}

fn schema() -> Value {
    let properties = json!({
        "reading": {"type": {"type": "float64"}},
        "label": {"type": {"type": "text"}},
    });
    let views: Vec<Value> = (0..VIEWS)
        .map(|i| {
            let container =
                json!({"type": "container", "space": SPACE, "externalId": format!("C{i:03}")});
            json!({"space": SPACE, "externalId": view_name(i), "version": "1", "properties": {
                "reading": {"container": container, "containerPropertyIdentifier": "reading"},
                "label": {"container": container, "containerPropertyIdentifier": "label"},
            }})
        })
        .collect();
    let containers: Vec<Value> = (0..VIEWS)
        .map(|i| json!({"space": SPACE, "externalId": format!("C{i:03}"), "properties": properties, "usedFor": "node"}))
        .collect();
    let refs: Vec<Value> = (0..VIEWS)
        .map(
            |i| json!({"type": "view", "space": SPACE, "externalId": view_name(i), "version": "1"}),
        )
        .collect();
    json!({
        "spaces": [{"space": SPACE}],
        "containers": containers,
        "views": views,
        "dataModels": [{"space": SPACE, "externalId": MODEL, "version": "1", "views": refs}],
    })
}

fn seed(emulator: &Emulator) -> usize {
    let control = emulator.control();
    control.apply_schema(schema()).expect("load schema");
    let mut total = 0;
    for i in 0..VIEWS {
        let count = if i == 0 {
            BIG_VIEW_NODES
        } else {
            NODES_PER_VIEW
        };
        let view = ViewId {
            space: SPACE.into(),
            external_id: view_name(i),
            version: "1".into(),
        };
        let nodes = (0..count).map(|n| SeedNode {
            space: SPACE.into(),
            external_id: format!("{}-{n:05}", view_name(i)),
            values: vec![json!(n as f64 * 0.5), json!(format!("node {n}"))],
        });
        total += control
            .seed_nodes(&view, &["reading", "label"], nodes)
            .expect("seed nodes");
    }
    total
}

fn config(emulator: &Emulator, lake: &Lake) -> String {
    format!(
        "cognite:\n  host: {base}\n  project: {project}\n  idp-authentication:\n    token-url: {token}\n    client-id: emulator-client\n    secret: emulator-secret\nextractor:\n  state-store:\n    raw:\n      database: state\n      table: streams\n  subscription-batch-size: 100\n  ingest-batch-size: 1000\n  parallelism: 4\n  deadline-margin: 1\ndata_modeling:\n  - space: {SPACE}\n    data_models:\n      - external_id: {MODEL}\ndestination:\n{destination}",
        base = emulator.base_url(),
        project = emulator.project(),
        token = emulator.token_url(),
        destination = lake.destination_yaml(),
    )
}

/// One slice as a child process: its summary, wall time and peak RSS (from `wait4`).
struct Slice {
    summary: Value,
    wall: Duration,
    max_rss_kib: u64,
}

// The child is reaped by `wait4` (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_slice(config: &Path) -> Slice {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"))
        .args([
            "sync",
            "--time-budget",
            &TIME_BUDGET_SECS.to_string(),
            "--config",
        ])
        .arg(config)
        .env("RUST_LOG", "warn,buoyant_kernel=off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("CLI starts");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("stdout");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut text).expect("summary");
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills; the pid is our own unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "waiting for the CLI");
    let wall = started.elapsed();
    let exit = std::process::ExitStatus::from_raw(status);
    assert!(
        matches!(exit.code(), Some(0 | 2)),
        "the slice ended with {exit}"
    );
    Slice {
        summary: serde_json::from_str(text.trim()).expect("summary JSON"),
        wall,
        max_rss_kib: usage.ru_maxrss as u64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_streams_share_short_slices_fairly_within_bounded_memory() {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let total = seed(&emulator);
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = Lake::local(dir.path());
    let config_path = dir.path().join("load.yaml");
    std::fs::write(&config_path, config(&emulator, &lake)).expect("config");

    // Slices run one after the other, as the schedule runs them.
    let mut first_turn: HashMap<String, usize> = HashMap::new();
    let mut rows_per_stream: HashMap<String, u64> = HashMap::new();
    let mut served_first_slice = 0usize;
    let mut slices = Vec::new();
    let mut caught_up = false;
    for number in 1..=40 {
        let path = config_path.clone();
        let slice = tokio::task::spawn_blocking(move || run_slice(&path))
            .await
            .expect("slice task");
        let streams = slice.summary["streams"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            streams.len(),
            VIEWS,
            "every stream is planned: {}",
            slice.summary
        );
        let mut served = 0;
        for stream in &streams {
            let key = stream["stream"].as_str().unwrap_or_default().to_string();
            let pages = stream["pages"].as_u64().unwrap_or(0);
            *rows_per_stream.entry(key.clone()).or_default() +=
                stream["rows"].as_u64().unwrap_or(0);
            if pages > 0 {
                served += 1;
                first_turn.entry(key).or_insert(number);
            }
        }
        if number == 1 {
            served_first_slice = served;
        }
        println!(
            "slice {number}: {served} streams served, {} rows, {} caught up, wall {:.1?} (budget {TIME_BUDGET_SECS} s), peak RSS {} MiB",
            slice.summary["rows"],
            slice.summary["streamsCaughtUp"],
            slice.wall,
            slice.max_rss_kib / 1024
        );
        caught_up = slice.summary["streamsCaughtUp"] == VIEWS;
        slices.push(slice);
        if caught_up {
            break;
        }
    }
    assert!(caught_up, "the backlog is worked off within 40 slices");

    for (i, slice) in slices.iter().enumerate() {
        assert!(
            slice.wall <= Duration::from_secs(TIME_BUDGET_SECS) + SLICE_SLACK,
            "slice {} took {:.1?}, past its {TIME_BUDGET_SECS} s deadline",
            i + 1,
            slice.wall
        );
        assert!(
            slice.max_rss_kib / 1024 <= MAX_SLICE_RSS_MIB,
            "slice {} peaked at {} MiB",
            i + 1,
            slice.max_rss_kib / 1024
        );
    }
    // Longest-waiting first: if the first slice could serve N streams, every stream has
    // had its first turn by slice ceil(210 / N) + 1, whatever the big view still holds.
    assert!(served_first_slice > 0, "the first slice served streams");
    let bound = VIEWS.div_ceil(served_first_slice) + 1;
    assert_eq!(first_turn.len(), VIEWS, "every stream got a turn");
    let latest = first_turn.values().copied().max().unwrap_or(0);
    assert!(
        latest <= bound,
        "a stream waited until slice {latest} for its first turn (bound {bound}, {served_first_slice} served in the first)"
    );
    let rows: u64 = rows_per_stream.values().sum();
    assert_eq!(rows as usize, total, "every instance landed once");
    let big = format!("{SPACE}/{MODEL}/1/{}/nodes", view_name(0));
    assert_eq!(
        rows_per_stream.get(&big).copied(),
        Some(BIG_VIEW_NODES as u64)
    );
    println!(
        "load: {VIEWS} streams, {total} instances in {} slices; first turns by slice {latest} (bound {bound}); max slice wall {:.1?}; max peak RSS {} MiB",
        slices.len(),
        slices.iter().map(|s| s.wall).max().unwrap_or_default(),
        slices.iter().map(|s| s.max_rss_kib).max().unwrap_or(0) / 1024
    );
}
