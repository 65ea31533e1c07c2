//! Load: one data model with 210 views (210 streams) and a backlog of about 123,000
//! instances, one view holding far more than the others. Sync runs as the CLI in short time
//! slices. Every stream must get its turns in the order the scheduler promises (longest-waiting
//! first, so the big backlog starves nobody), every slice must move the backlog on, the peak
//! memory of a slice must stay bounded, and the tables must end up complete.
//!
//! Nothing here depends on how fast the machine is: fairness is checked on the order in
//! which streams are served, progress on the work each slice commits, and a slice that could
//! not reach a single page in its budget (a busy machine) is followed by one with twice the
//! budget. Throughput figures belong to the benchmarks; this test only prints its own.

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
/// The budget of a slice; doubled after a slice that committed nothing.
const TIME_BUDGET_SECS: u64 = 4;
/// A slice with this budget that commits nothing is not slow, it hangs.
const MAX_TIME_BUDGET_SECS: u64 = 128;
/// Streams that run at once (`parallelism` in the configuration).
const PARALLELISM: usize = 4;
/// Catches a slice that ignores its deadline altogether; never a measure of speed (process
/// start, model resolution and the last commits happen outside the run's deadline).
const HANG_SLACK: Duration = Duration::from_secs(120);
/// Peak RSS a slice may reach (debug build, 210 streams planned, 4 at a time). Slices sit
/// near 450 MiB; on a machine loaded far beyond its cores one slice was seen 80 MiB above
/// its neighbours (allocator high water, not growth), so the bound leaves room for that and
/// still fails a slice that holds the backlog.
const MAX_SLICE_RSS_MIB: u64 = 640;

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
    // CDF allows 100 views per data model: the views are spread over several models.
    let models: Vec<Value> = (0..VIEWS.div_ceil(VIEWS_PER_MODEL))
        .map(|m| {
            let refs: Vec<Value> = (m * VIEWS_PER_MODEL..VIEWS.min((m + 1) * VIEWS_PER_MODEL))
                .map(|i| json!({"type": "view", "space": SPACE, "externalId": view_name(i), "version": "1"}))
                .collect();
            json!({"space": SPACE, "externalId": model_name(m), "version": "1", "views": refs})
        })
        .collect();
    json!({
        "spaces": [{"space": SPACE}],
        "containers": containers,
        "views": views,
        "dataModels": models,
    })
}

/// Views per data model: CDF's limit.
const VIEWS_PER_MODEL: usize = 100;

/// The first model keeps the name `MODEL`, so stream keys of its views read as before.
fn model_name(m: usize) -> String {
    if m == 0 {
        MODEL.to_owned()
    } else {
        format!("{MODEL}{m}")
    }
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
        "cognite:\n  host: {base}\n  project: {project}\n  idp-authentication:\n    token-url: {token}\n    client-id: emulator-client\n    secret: emulator-secret\nextractor:\n  state-store:\n    raw:\n      database: state\n      table: streams\n  subscription-batch-size: 100\n  ingest-batch-size: 1000\n  parallelism: {PARALLELISM}\n  deadline-margin: 1\ndata_modeling:\n  - space: {SPACE}\n    data_models:\n{models}destination:\n{destination}",
        base = emulator.base_url(),
        project = emulator.project(),
        token = emulator.token_url(),
        destination = lake.destination_yaml(),
        models = (0..VIEWS.div_ceil(VIEWS_PER_MODEL))
            .map(|m| format!("      - external_id: {}\n", model_name(m)))
            .collect::<String>(),
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
fn run_slice(config: &Path, budget_secs: u64) -> Slice {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"))
        .args([
            "sync",
            "--time-budget",
            &budget_secs.to_string(),
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

/// Checks the scheduler's promise across slices, in terms no machine speed changes: streams
/// are served longest-waiting first. When a slice serves a stream whose last turn was in
/// slice `j` (0: never), every stream that had waited longer (last served before `j`) was
/// taken before it, so at most `parallelism` of those (the turns in flight when the deadline
/// came) can have gone without a page. "Served" means the stream fetched at least one page.
pub(crate) struct TurnOrder {
    parallelism: usize,
    slice: usize,
    last_served: HashMap<String, usize>,
}

impl TurnOrder {
    pub(crate) fn new(parallelism: usize) -> Self {
        Self {
            parallelism,
            slice: 0,
            last_served: HashMap::new(),
        }
    }

    /// Records one slice: every planned stream with whether it was served.
    pub(crate) fn record<'a>(&mut self, streams: impl IntoIterator<Item = (&'a str, bool)>) {
        self.slice += 1;
        let streams: Vec<(&str, usize, bool)> = streams
            .into_iter()
            .map(|(key, served)| (key, self.last_served.get(key).copied().unwrap_or(0), served))
            .collect();
        let newest_served = streams
            .iter()
            .filter(|(_, _, served)| *served)
            .map(|(_, last, _)| *last)
            .max();
        if let Some(newest) = newest_served {
            let passed_over: Vec<&str> = streams
                .iter()
                .filter(|(_, last, served)| !served && *last < newest)
                .map(|(key, _, _)| *key)
                .collect();
            assert!(
                passed_over.len() <= self.parallelism,
                "slice {}: a stream last served in slice {newest} got a turn while {} streams that had waited longer got none: {passed_over:?}",
                self.slice,
                passed_over.len(),
            );
        }
        for (key, _, served) in streams {
            if served {
                self.last_served.insert(key.to_owned(), self.slice);
            }
        }
    }

    /// Streams that have had at least one turn.
    pub(crate) fn served(&self) -> usize {
        self.last_served.len()
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
    let mut order = TurnOrder::new(PARALLELISM);
    let mut first_turn: HashMap<String, usize> = HashMap::new();
    let mut rows_per_stream: HashMap<String, u64> = HashMap::new();
    let mut slices = Vec::new();
    let mut budget = TIME_BUDGET_SECS;
    let mut idle_slices = 0;
    loop {
        let number = slices.len() + 1;
        let path = config_path.clone();
        let slice = tokio::task::spawn_blocking(move || run_slice(&path, budget))
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
        let mut rows = 0;
        let mut commits = 0;
        let mut turns = Vec::new();
        for stream in &streams {
            let key = stream["stream"].as_str().unwrap_or_default().to_string();
            let pages = stream["pages"].as_u64().unwrap_or(0);
            let stream_rows = stream["rows"].as_u64().unwrap_or(0);
            rows += stream_rows;
            commits += stream["commits"].as_u64().unwrap_or(0);
            *rows_per_stream.entry(key.clone()).or_default() += stream_rows;
            if pages > 0 && stream["status"] == "behind" {
                // The deadline never costs work already read: what a stream fetched is
                // committed before its turn ends.
                assert!(
                    stream["commits"].as_u64().unwrap_or(0) > 0,
                    "slice {number}: a stream read {pages} pages and committed none of them: {stream}"
                );
            }
            if pages > 0 {
                served += 1;
                first_turn.entry(key.clone()).or_insert(number);
            }
            turns.push((key, pages > 0));
        }
        order.record(turns.iter().map(|(key, served)| (key.as_str(), *served)));
        println!(
            "slice {number}: budget {budget} s, {served} streams served, {commits} commits, {rows} rows, {} caught up, wall {:.1?}, peak RSS {} MiB",
            slice.summary["streamsCaughtUp"],
            slice.wall,
            slice.max_rss_kib / 1024
        );
        assert!(
            slice.wall <= Duration::from_secs(budget) + HANG_SLACK,
            "slice {number} took {:.1?} with a {budget} s budget: it ignored its deadline",
            slice.wall
        );
        assert!(
            slice.max_rss_kib / 1024 <= MAX_SLICE_RSS_MIB,
            "slice {number} peaked at {} MiB",
            slice.max_rss_kib / 1024
        );
        let caught_up = slice.summary["streamsCaughtUp"] == VIEWS;
        slices.push(slice);
        if caught_up {
            break;
        }
        if commits == 0 {
            // Nothing committed: the machine is too busy for this budget (or the one stream
            // with a backlog waited behind the others, and goes first next time).
            idle_slices += 1;
            assert!(
                budget < MAX_TIME_BUDGET_SECS,
                "a slice of {budget} s committed nothing with the backlog unfinished: the sync hangs"
            );
            budget *= 2;
        } else {
            budget = TIME_BUDGET_SECS;
        }
    }

    assert_eq!(first_turn.len(), VIEWS, "every stream got a turn");
    assert_eq!(order.served(), VIEWS);
    let latest = first_turn.values().copied().max().unwrap_or(0);
    let rows: u64 = rows_per_stream.values().sum();
    assert_eq!(rows as usize, total, "every instance landed once");
    let big = format!("{SPACE}/{MODEL}/1/{}/nodes", view_name(0));
    assert_eq!(
        rows_per_stream.get(&big).copied(),
        Some(BIG_VIEW_NODES as u64)
    );
    println!(
        "load: {VIEWS} streams, {total} instances in {} slices ({idle_slices} without a commit); first turns by slice {latest}; max slice wall {:.1?}; max peak RSS {} MiB",
        slices.len(),
        slices.iter().map(|s| s.wall).max().unwrap_or_default(),
        slices.iter().map(|s| s.max_rss_kib).max().unwrap_or(0) / 1024
    );
}

/// The fairness check itself: it accepts the order the scheduler promises and refuses a
/// stream served again while more streams than can be in flight waited longer.
#[test]
fn the_turn_order_check_refuses_a_stream_served_out_of_turn() {
    let mut order = TurnOrder::new(1);
    // Slice 1: a and b served, c and d never reached.
    order.record([("a", true), ("b", true), ("c", false), ("d", false)]);
    // Slice 2: the longest-waiting first; d was in flight when the deadline came.
    order.record([("c", true), ("d", false), ("a", false), ("b", false)]);
    // Slice 3: d, then a and b (served in slice 1, before c).
    order.record([("d", true), ("a", true), ("b", true), ("c", false)]);
    assert_eq!(order.served(), 4);

    let unfair = std::panic::catch_unwind(|| {
        let mut order = TurnOrder::new(1);
        order.record([("a", true), ("b", false), ("c", false)]);
        // a goes again while b and c, never served, wait.
        order.record([("a", true), ("b", false), ("c", false)]);
    });
    assert!(unfair.is_err(), "a starved stream must fail the check");
}
