//! Publish-layer benchmark: full rebuild, incremental merge and a plain copy baseline.
//!
//! `cargo bench --bench snapshot -- --rows N [--change-permille P] [--threads T]
//! [--parts K] [--vs-duckdb]` (default 10,000,000 rows, 10 per mille = 1% changed, every
//! core, one file):
//! 1. `build`: a raw Delta table of N node rows with 20 properties (text, numbers, booleans,
//!    timestamps, a date, a list), in keys of random order, appended in large commits;
//! 2. `full`: the snapshot rebuilds `nodes.parquet` from it (sort with spilling);
//! 3. `copy`: baseline, stream-copy that `nodes.parquet` (read batches, write them);
//! 4. `append`: P per mille of the rows change (a tenth of them are deletions), one commit;
//! 5. `incremental`: the snapshot merges that commit into the previous file.
//!
//! With `--vs-duckdb`, DuckDB (`tests/.venv/bin/python benches/peers/duckdb_snapshot.py`)
//! does the same full rebuild and incremental merge on the same raw table right after ours,
//! on the same cores; each pair of outputs is checked equal (same rows, same order), and the
//! same-run ratios of time and peak memory are printed.
//!
//! With `--parts K` (a power of two), the view is published as a folder of K parts
//! (`extractor.snapshot.part-rows` = rows / K) instead of one file; the copy baseline then
//! copies every part, and the DuckDB check compares the folder's rows with DuckDB's file
//! and checks that each part is sorted.
//!
//! With `--units` (and `--parts K`), the same parts are then rebuilt again as the units of a
//! fanned-out run do it, each unit in its own process one after the other: the plan of a
//! sharded build, S shard units, K part units, and the manifest; the report gives each
//! step's slowest unit and the critical path (a worker per unit), and checks that the
//! parts equal those of the one-process build (`benches/snapshot/units.rs`).
//!
//! Each phase runs in its own child process, which reports its peak resident memory
//! (`VmHWM`) and the peak size of its spill directory, so phases do not inflate each
//! other's figure. Our phases run with
//! `MALLOC_ARENA_MAX=2`, as the snapshot function is deployed (`template.yaml`); set
//! `MALLOC_ARENA_MAX` to measure another value. Targets: incremental at most 3×
//! the copy, incremental peak ≤ 512 MiB, full rebuild peak ≤ 1 GiB (default 256 MiB sort
//! budget).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use cdf_s3_replicator::cdf::dto::PropertyType;
use cdf_s3_replicator::lake::{
    Destination, InstanceKind, LakeTable, LocalDestination, ModelRef, StreamCommit, StreamMetadata,
    ViewFolder, WriteOptions,
};
use cdf_s3_replicator::schema::{PropertySource, TableKind, ViewSchema};
use cdf_s3_replicator::snapshot::writer::writer_properties;
use cdf_s3_replicator::snapshot::{FileAction, PublishSettings, TableTarget, ViewTarget};
use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, ListBuilder,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, FieldRef, SchemaRef};
use deltalake::logstore::object_store::buffered::BufWriter;
use deltalake::parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder};
use futures::TryStreamExt;
use serde_json::{Value, json};

#[path = "snapshot/requests.rs"]
mod requests;
#[path = "snapshot/units.rs"]
mod units;

const SPACE: &str = "bench";
const MODEL: &str = "BenchModel";
const VIEW: &str = "Item";
const STREAM: &str = "bench/BenchModel/1/Item/nodes";
const BATCH_ROWS: u64 = 65_536;
const COMMIT_ROWS: u64 = 1_000_000;
const BUDGET_MIB: u64 = 256;

struct Args {
    rows: u64,
    /// Rows changed by the `append` phase, per thousand (10 = 1%).
    change_permille: u64,
    phase: Option<String>,
    dir: PathBuf,
    /// Threads of the snapshot (and of DuckDB); `None` for every core.
    threads: Option<usize>,
    /// Publish in this many parts instead of one file.
    parts: Option<u64>,
    vs_duckdb: bool,
    /// Also rebuild the parts as units: shards, then one unit per part, then the manifest.
    units: bool,
    /// The shard build a `shard-N` phase sorts.
    build: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        rows: 10_000_000,
        change_permille: 10,
        phase: None,
        dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-snapshot"),
        threads: None,
        parts: None,
        vs_duckdb: false,
        units: false,
        build: None,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--rows" => {
                args.rows = iter
                    .next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .unwrap_or_else(|| fail("--rows expects a row count"));
            }
            "--change-permille" => {
                args.change_permille = iter
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|p| (1..=1000).contains(p))
                    .unwrap_or_else(|| fail("--change-permille expects 1 to 1000"));
            }
            "--phase" => args.phase = iter.next(),
            "--threads" => {
                args.threads = Some(
                    iter.next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&t| t > 0)
                        .unwrap_or_else(|| fail("--threads expects a positive count")),
                );
            }
            "--parts" => {
                args.parts = Some(
                    iter.next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|&n| n.is_power_of_two() && n > 1)
                        .unwrap_or_else(|| fail("--parts expects a power of two above 1")),
                )
            }
            "--vs-duckdb" => args.vs_duckdb = true,
            "--units" => args.units = true,
            "--build" => args.build = iter.next(),
            "--dir" => args.dir = iter.next().map(PathBuf::from).unwrap_or(args.dir),
            // `cargo bench` passes `--bench`; anything else is ignored the same way.
            _ => {}
        }
    }
    if args.units && args.parts.is_none() {
        fail("--units needs --parts K");
    }
    args
}

fn fail(message: &str) -> ! {
    eprintln!("snapshot bench: {message}");
    std::process::exit(2)
}

fn main() {
    let args = parse_args();
    match args.phase.clone() {
        Some(phase) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.threads.unwrap_or(2).max(2))
                .enable_all()
                .build()
                .unwrap_or_else(|e| fail(&format!("tokio runtime: {e}")));
            requests::count_local_stores();
            let spill = SpillWatch::start(args.dir.join("tmp"));
            let started = Instant::now();
            let detail = runtime.block_on(run_phase(&phase, &args));
            let seconds = started.elapsed().as_secs_f64();
            let report = json!({
                "phase": phase,
                "seconds": seconds,
                "peak_rss_mib": peak_rss_mib(),
                "peak_spill_mib": spill.stop(),
                "requests": requests::counted(),
                "detail": detail,
            });
            println!("{report}");
        }
        None => orchestrate(&args),
    }
}

/// Samples the size of the spill directory every 50 ms, for the phase's peak spill.
struct SpillWatch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl SpillWatch {
    fn start(dir: PathBuf) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(dir_bytes(&dir));
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            peak
        });
        Self { stop, thread }
    }

    /// The peak, MiB.
    fn stop(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0) as f64 / (1024.0 * 1024.0)
    }
}

/// Bytes of the files under `dir` (recursively); files removed while walking count 0.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.file_type() {
                    Ok(t) if t.is_dir() => dir_bytes(&entry.path()),
                    _ => entry.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Peak resident set size of this process, MiB (`VmHWM` in `/proc/self/status`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn orchestrate(args: &Args) {
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .unwrap_or_else(|e| fail(&format!("cleaning {}: {e}", args.dir.display())));
    }
    std::fs::create_dir_all(args.dir.join("tmp"))
        .unwrap_or_else(|e| fail(&format!("creating {}: {e}", args.dir.display())));
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let arenas = std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "2".into());
    println!(
        "snapshot bench: {} rows, 20 properties, {:.1}% changed, {}, sort budget {BUDGET_MIB} \
         MiB, {threads} threads, MALLOC_ARENA_MAX={arenas}, load average {}",
        args.rows,
        args.change_permille as f64 / 10.0,
        args.parts
            .map_or_else(|| "one file".to_owned(), |k| format!("{k} parts")),
        load_average()
    );
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("own binary: {e}")));
    let mut phases = vec!["build", "full"];
    if args.vs_duckdb {
        phases.extend(["duckdb-full", "check-full"]);
    }
    phases.extend(["copy", "append", "incremental"]);
    if args.vs_duckdb {
        phases.extend(["duckdb-incremental", "check-incremental"]);
    }
    let mut results = Vec::new();
    for phase in phases {
        let report = match phase.strip_prefix("duckdb-") {
            Some(mode) => run_child(duckdb_command(args, mode, threads, &results), phase),
            None if phase.starts_with("check-") => run_child(check_command(args, phase), phase),
            None => run_own_phase(args, &exe, threads, phase, &[]),
        };
        print_phase(&report);
        results.push(report);
    }
    let of = |phase: &str, key: &str| {
        results
            .iter()
            .find(|r| r["phase"] == phase)
            .and_then(|r| r[key].as_f64())
            .unwrap_or(f64::NAN)
    };
    let ratio = of("incremental", "seconds") / of("copy", "seconds");
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "incremental / copy = {ratio:.2}x (target <= 3x: {})",
        verdict(ratio <= 3.0)
    );
    let incremental_rss = of("incremental", "peak_rss_mib");
    println!(
        "incremental peak RSS {incremental_rss:.1} MiB (target <= 512 MiB: {})",
        verdict(incremental_rss <= 512.0)
    );
    let full_rss = of("full", "peak_rss_mib");
    println!(
        "full rebuild peak RSS {full_rss:.1} MiB (target <= 1024 MiB: {})",
        verdict(full_rss <= 1024.0)
    );
    if args.units {
        units::orchestrate(args, &exe, threads, &results);
    }
    if args.vs_duckdb {
        for phase in ["full", "incremental"] {
            let peer = format!("duckdb-{phase}");
            let time = of(phase, "seconds") / of(&peer, "seconds");
            let memory = of(phase, "peak_rss_mib") / of(&peer, "peak_rss_mib");
            println!(
                "{phase} vs DuckDB: time {time:.2}x (target <= 1: {}), peak RSS {memory:.2}x \
                 (target <= 0.5: {})",
                verdict(time <= 1.0),
                verdict(memory <= 0.5)
            );
        }
    }
}

/// Runs one of our phases in a child process (with `extra` arguments): its report.
fn run_own_phase(args: &Args, exe: &Path, threads: usize, phase: &str, extra: &[String]) -> Value {
    let arenas = std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "2".into());
    let mut command = Command::new(exe);
    command
        .env("MALLOC_ARENA_MAX", &arenas)
        .args(["--phase", phase, "--rows", &args.rows.to_string()])
        .args(["--change-permille", &args.change_permille.to_string()])
        .args(["--threads", &threads.to_string(), "--dir"])
        .arg(&args.dir)
        .args(extra);
    if let Some(parts) = args.parts {
        command.args(["--parts", &parts.to_string()]);
    }
    run_child(command, phase)
}

/// Runs a phase's child process: the JSON report on the last line of its output.
fn run_child(mut command: Command, phase: &str) -> Value {
    let output = command
        .output()
        .unwrap_or_else(|e| fail(&format!("running phase {phase}: {e}")));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|_| output.status.success());
    let Some(mut report) = report else {
        fail(&format!(
            "phase {phase} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    };
    report["phase"] = json!(phase);
    report
}

fn print_phase(report: &Value) {
    let phase = report["phase"].as_str().unwrap_or("?");
    if phase.starts_with("check-") {
        println!("  {phase:<18} {}", report["detail"]);
    } else {
        println!(
            "  {phase:<18} {:>9.2} s   peak RSS {:>8.1} MiB   spill {:>8.1} MiB   S3 requests \
             {:>6}   {}",
            report["seconds"].as_f64().unwrap_or(f64::NAN),
            report["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            report["peak_spill_mib"].as_f64().unwrap_or(0.0),
            report["requests"]["total"].as_u64().unwrap_or(0),
            report["detail"]
        );
    }
}

/// The 1-minute load average, to tell a quiet machine from a busy one.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// The Python of the test environment (it has DuckDB) and the peer script.
fn peer_python() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("tests/.venv/bin/python");
    if !python.exists() {
        fail("--vs-duckdb needs tests/.venv (with duckdb); see tests/run-all.sh");
    }
    (python, root.join("benches/peers/duckdb_snapshot.py"))
}

fn local_paths(args: &Args) -> (PathBuf, PathBuf) {
    let lake = args.dir.join("lake");
    let destination = Destination::Local(
        LocalDestination::new(&lake).unwrap_or_else(|e| fail(&format!("destination: {e}"))),
    );
    let table = destination
        .raw_table_url(&model(), &folder(), InstanceKind::Nodes)
        .ok()
        .and_then(|url| url.to_file_path().ok())
        .unwrap_or_else(|| fail("the raw table is not a local directory"));
    let publish = lake.join(published(&destination, ""));
    (table, publish)
}

/// DuckDB's full rebuild or incremental merge, on the same raw table and cores.
fn duckdb_command(args: &Args, mode: &str, threads: usize, results: &[Value]) -> Command {
    let (python, script) = peer_python();
    let (table, publish) = local_paths(args);
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg(mode)
        .arg("--table")
        .arg(&table)
        .args(["--threads", &threads.to_string(), "--temp-dir"])
        .arg(args.dir.join("tmp"))
        .arg("--out")
        .arg(publish.join(format!("duckdb-{mode}.parquet")));
    if mode == "incremental" {
        let built = results
            .iter()
            .find(|r| r["phase"] == "build")
            .and_then(|r| r["detail"]["version"].as_u64())
            .unwrap_or_else(|| fail("the build phase did not report its version"));
        command
            .args(["--since-version", &built.to_string(), "--previous"])
            .arg(publish.join("duckdb-full.parquet"));
    }
    command
}

/// Compares our published file with DuckDB's (untimed).
fn check_command(args: &Args, phase: &str) -> Command {
    let (python, script) = peer_python();
    let (_, publish) = local_paths(args);
    let mode = phase.trim_start_matches("check-");
    let ours = match args.parts {
        Some(_) => publish.join("nodes"),
        None => publish.join("nodes.parquet"),
    };
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg("check")
        .arg("--out")
        .arg(ours)
        .arg("--previous")
        .arg(publish.join(format!("duckdb-{mode}.parquet")));
    command
}

async fn run_phase(phase: &str, args: &Args) -> Value {
    let destination = Destination::Local(
        LocalDestination::new(args.dir.join("lake"))
            .unwrap_or_else(|e| fail(&format!("destination: {e}"))),
    );
    match phase {
        "build" => build(&destination, args.rows).await,
        "append" => append_changes(&destination, args.rows, args.change_permille).await,
        "full" | "incremental" => publish(&destination, args, phase).await,
        "copy" => copy(&destination, args).await,
        other => units::run_phase(&destination, args, other).await,
    }
}

fn model() -> ModelRef {
    ModelRef::new(SPACE, MODEL, "1").unwrap_or_else(|e| fail(&e.to_string()))
}

fn folder() -> ViewFolder {
    ViewFolder::plain(VIEW).unwrap_or_else(|e| fail(&e.to_string()))
}

/// The raw schema: node system columns and 20 properties.
fn raw_schema() -> SchemaRef {
    let kinds = [
        "text",
        "text",
        "text",
        "text",
        "text",
        "text",
        "int64",
        "int64",
        "int64",
        "int64",
        "float64",
        "float64",
        "float64",
        "boolean",
        "boolean",
        "timestamp",
        "timestamp",
        "date",
        "int32",
    ];
    let mut types: Vec<(String, PropertyType)> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| (format!("p{i:02}"), property_type(json!({"type": kind}))))
        .collect();
    types.push((
        "p19".into(),
        property_type(json!({"type": "text", "list": true})),
    ));
    let source = PropertySource {
        space: SPACE.into(),
        key: format!("{VIEW}/1"),
    };
    ViewSchema::from_property_types(
        TableKind::Nodes,
        source,
        types.iter().map(|(n, t)| (n.as_str(), t)),
    )
    .arrow_schema()
    .clone()
}

fn property_type(value: Value) -> PropertyType {
    serde_json::from_value(value).unwrap_or_else(|e| fail(&format!("property type: {e}")))
}

/// A permutation of 0..n, so that keys arrive in scattered order.
struct Permutation {
    n: u64,
    step: u64,
}

impl Permutation {
    fn new(n: u64) -> Self {
        let mut step: u64 = 2_654_435_761;
        while gcd(step, n.max(1)) != 1 {
            step += 2;
        }
        Self { n: n.max(1), step }
    }

    fn at(&self, i: u64) -> u64 {
        ((i as u128 * self.step as u128) % self.n as u128) as u64
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Rows `keys` (key numbers) of round `round`; `deleted` marks tombstones.
fn batch(
    schema: &SchemaRef,
    keys: &[u64],
    round: u64,
    deleted: &dyn Fn(u64) -> bool,
) -> RecordBatch {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(c, field)| column(field, c as u64, keys, round, deleted))
        .collect();
    RecordBatch::try_new(schema.clone(), columns).unwrap_or_else(|e| fail(&format!("batch: {e}")))
}

fn column(
    field: &FieldRef,
    c: u64,
    keys: &[u64],
    round: u64,
    deleted: &dyn Fn(u64) -> bool,
) -> ArrayRef {
    let created = |k: u64| 1_600_000_000_000 + k as i64;
    match field.name().as_str() {
        "space" => return Arc::new(StringArray::from(vec!["bench-data"; keys.len()])),
        "externalId" => {
            return Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| format!("item-{k:010}")),
            ));
        }
        "instanceType" => return Arc::new(StringArray::from(vec!["node"; keys.len()])),
        "version" => {
            return Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|_| 1 + round as i64),
            ));
        }
        "createdTime" => {
            return Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|&k| created(k)),
            ));
        }
        "lastUpdatedTime" => {
            return Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|&k| created(k) + round as i64 * 1000),
            ));
        }
        "deletedTime" => {
            return Arc::new(Int64Array::from_iter(
                keys.iter().map(|&k| deleted(k).then(|| created(k) + 5000)),
            ));
        }
        "type.space" | "type.externalId" => {
            return Arc::new(StringArray::from(vec![None::<&str>; keys.len()]));
        }
        _ => {}
    }
    let v = |k: u64| k.wrapping_mul(c + 1).wrapping_add(round * 7);
    match field.data_type() {
        DataType::Utf8 => Arc::new(StringArray::from_iter_values(
            keys.iter()
                .map(|&k| format!("value {c} {} r{round}", v(k) % 100_000)),
        )),
        DataType::Int64 => Arc::new(Int64Array::from_iter_values(
            keys.iter().map(|&k| v(k) as i64),
        )),
        DataType::Int32 => Arc::new(Int32Array::from_iter_values(
            keys.iter().map(|&k| (v(k) % 1_000_000) as i32),
        )),
        DataType::Float64 => Arc::new(Float64Array::from_iter_values(
            keys.iter().map(|&k| v(k) as f64 * 0.25),
        )),
        DataType::Boolean => Arc::new(BooleanArray::from_iter(
            keys.iter().map(|&k| Some(v(k) % 2 == 0)),
        )),
        DataType::Timestamp(_, tz) => Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                keys.iter()
                    .map(|&k| 1_600_000_000_000_000 + (v(k) % 1_000_000_000) as i64 * 1000),
            )
            .with_timezone_opt(tz.clone()),
        ),
        DataType::Date32 => Arc::new(Date32Array::from_iter_values(
            keys.iter().map(|&k| 18_000 + (v(k) % 3_000) as i32),
        )),
        DataType::List(element) => {
            let mut list = ListBuilder::new(StringBuilder::new()).with_field(element.clone());
            for &k in keys {
                list.values().append_value(format!("a{}", v(k) % 10));
                list.values().append_value(format!("b{}", v(k) % 7));
                list.append(true);
            }
            Arc::new(list.finish())
        }
        other => fail(&format!("no generator for {other}")),
    }
}

async fn open_table(destination: &Destination) -> LakeTable {
    let url = destination
        .raw_table_url(&model(), &folder(), InstanceKind::Nodes)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let options = WriteOptions {
        rows_per_row_group: 128 * 1024,
        ..WriteOptions::default()
    };
    LakeTable::open(destination, url, options)
        .await
        .unwrap_or_else(|e| fail(&format!("opening the raw table: {e}")))
}

async fn commit(table: &mut LakeTable, batches: &[RecordBatch], seq: i64, complete: bool) {
    let commit = StreamCommit {
        app_id: STREAM.into(),
        txn_version: seq,
        metadata: StreamMetadata {
            generation: Some(1),
            opens_generation: Some(seq == 1),
            backfill_complete: Some(complete),
            ..StreamMetadata::default()
        },
    };
    table
        .append(batches, commit)
        .await
        .unwrap_or_else(|e| fail(&format!("append: {e}")));
}

async fn build(destination: &Destination, rows: u64) -> Value {
    let schema = raw_schema();
    let permutation = Permutation::new(rows);
    let mut table = open_table(destination).await;
    let mut seq = 0;
    let mut start = 0;
    while start < rows {
        let end = (start + COMMIT_ROWS).min(rows);
        let batches: Vec<RecordBatch> = (start..end)
            .step_by(BATCH_ROWS as usize)
            .map(|from| {
                let keys: Vec<u64> = (from..(from + BATCH_ROWS).min(end))
                    .map(|i| permutation.at(i))
                    .collect();
                batch(&schema, &keys, 0, &|_| false)
            })
            .collect();
        seq += 1;
        commit(&mut table, &batches, seq, end == rows).await;
        start = end;
    }
    json!({"rows": rows, "commits": seq, "version": table.version()})
}

async fn append_changes(destination: &Destination, rows: u64, permille: u64) -> Value {
    let schema = raw_schema();
    let mut table = open_table(destination).await;
    let permutation = Permutation::new(rows);
    let stride = (1000 / permille).max(1);
    let changed: Vec<u64> = (0..rows / stride)
        .map(|k| permutation.at(k * stride + stride / 2))
        .collect();
    // A tenth of the changes are deletions, spread over the keys by a multiplicative hash
    // (the changed keys follow a pattern that a plain `k % 10` would miss entirely).
    let deleted = |k: u64| (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 10 == 3;
    let batches: Vec<RecordBatch> = changed
        .chunks(BATCH_ROWS as usize)
        .map(|keys| batch(&schema, keys, 1, &deleted))
        .collect();
    let seq = i64::try_from(rows.div_ceil(COMMIT_ROWS)).unwrap_or(i64::MAX) + 1;
    commit(&mut table, &batches, seq, false).await;
    let tombstones = changed.iter().filter(|&&k| deleted(k)).count();
    json!({"changed": changed.len(), "deleted": tombstones, "version": table.version()})
}

fn target() -> ViewTarget {
    let source = PropertySource {
        space: SPACE.into(),
        key: format!("{VIEW}/1"),
    };
    ViewTarget {
        model: model(),
        folder: folder(),
        nodes: TableTarget {
            kind: InstanceKind::Nodes,
            streams: vec![STREAM.into()],
            schema_without_table: raw_schema(),
        },
        edges: TableTarget::without_streams(InstanceKind::Edges, source),
    }
}

fn settings(args: &Args) -> PublishSettings {
    PublishSettings {
        memory_budget_bytes: BUDGET_MIB * 1024 * 1024,
        temp_dir: args.dir.join("tmp"),
        threads: args.threads,
        // One file whatever the size, unless parts are asked for.
        part_rows: args
            .parts
            .map_or(u64::MAX, |parts| args.rows.div_ceil(parts)),
    }
}

async fn publish(destination: &Destination, args: &Args, phase: &str) -> Value {
    let settings = settings(args);
    let reports = cdf_s3_replicator::snapshot::publish_views(destination, &[target()], &settings)
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    let nodes = reports
        .first()
        .and_then(|r| r.file(InstanceKind::Nodes))
        .unwrap_or_else(|| fail("no nodes report"));
    let expected = if phase == "full" {
        FileAction::Rebuilt
    } else {
        FileAction::Incremental
    };
    if nodes.action != expected {
        fail(&format!("{phase}: expected {expected:?}, got {nodes:?}"));
    }
    if nodes.parts.map_or(1, |p| u64::from(p.count)) != args.parts.unwrap_or(1) {
        fail(&format!(
            "{phase}: expected {:?} parts, got {nodes:?}",
            args.parts
        ));
    }
    json!({"action": nodes.action, "rows": nodes.rows, "bytes": nodes.bytes,
           "rows_read": nodes.rows_read, "spilled_runs": nodes.spilled_runs,
           "parts": nodes.parts})
}

fn published(destination: &Destination, name: &str) -> String {
    let paths = destination.publish_paths(&model(), &folder());
    format!("{}/{name}", paths.dir)
}

/// Stream-copies the published file, or every part of it (one after the other, as one
/// process would).
async fn copy(destination: &Destination, args: &Args) -> Value {
    let Destination::Local(local) = destination else {
        fail("the bench writes to a local directory")
    };
    let sources: Vec<String> = match args.parts {
        None => vec![published(destination, "nodes.parquet")],
        Some(_) => {
            let dir = local.root().join(published(destination, "nodes"));
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())))
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".parquet"))
                .collect();
            names.sort();
            names
                .iter()
                .map(|name| published(destination, &format!("nodes/{name}")))
                .collect()
        }
    };
    let mut rows = 0;
    for (i, source) in sources.iter().enumerate() {
        let target = published(destination, &format!("copy-{i:05}.parquet"));
        rows += copy_file(destination, &local.root().join(source), &target).await;
    }
    json!({"rows": rows, "files": sources.len()})
}

async fn copy_file(destination: &Destination, source: &Path, target: &str) -> u64 {
    let file = tokio::fs::File::open(source)
        .await
        .unwrap_or_else(|e| fail(&format!("{}: {e}", source.display())));
    let builder = ParquetRecordBatchStreamBuilder::new(file)
        .await
        .unwrap_or_else(|e| fail(&format!("reading the footer: {e}")));
    let schema = builder.schema().clone();
    let mut batches = builder
        .with_batch_size(8192)
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let store = destination
        .object_store()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let upload = BufWriter::with_capacity(store, deltalake::Path::from(target), 8 * 1024 * 1024);
    let mut writer = AsyncArrowWriter::try_new(upload, schema, Some(writer_properties()))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let mut rows = 0u64;
    while let Some(batch) = batches
        .try_next()
        .await
        .unwrap_or_else(|e| fail(&e.to_string()))
    {
        rows += batch.num_rows() as u64;
        writer
            .write(&batch)
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
    }
    writer
        .close()
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    rows
}
