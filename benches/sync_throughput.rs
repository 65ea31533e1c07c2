//! Sync throughput: N instances with 20 properties, from the CDF emulator into Delta tables
//! on local disk and on the S3 server, next to a parse-only baseline measured in the same
//! run (fetch and JSON-decode the same pages, nothing else).
//!
//! `cargo bench --bench sync_throughput -- [--instances N] [--page-size P]`
//!
//! After the local sync, a membership pass runs over the same lake (a second sync whose
//! scan interval has passed, with nothing new to read): its CDF requests and wall time per
//! million instances are the scan's cost.
//!
//! Every phase runs in its own child process so that its peak RSS (VmHWM) is its own: the
//! emulator serves from one child, the baseline and each sync run in others.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cdf_emulator::{Emulator, EmulatorConfig};
use cdf_s3_replicator::cdf::dto::{
    Filter, SyncExpression, SyncMode, SyncRequest, SyncSelect, ViewReference,
};
use cdf_s3_replicator::cdf::{CdfClient, ClientCredentials, ClientSettings, Secret};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::sync::SyncJob;
use cdf_s3_replicator::sync::SyncOptions;
use serde_json::{Value, json};

const SPACE: &str = "bench";
const VIEW: &str = "Reading";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let instances: usize = arg("--instances")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let page_size: u32 = arg("--page-size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match arg("--child").as_deref() {
        Some("serve") => runtime.block_on(serve(instances)),
        Some("baseline") => {
            runtime.block_on(baseline(&arg("--url").unwrap_or_default(), page_size))
        }
        Some("sync") => runtime.block_on(sync_phase(
            &arg("--url").unwrap_or_default(),
            &arg("--destination").unwrap_or_default(),
            page_size,
            arg("--scan-interval").as_deref(),
        )),
        _ => parent(instances, page_size),
    }
}

/// The parent: starts the emulator child, runs each phase child, prints the table.
fn parent(instances: usize, page_size: u32) {
    let exe = std::env::current_exe().expect("bench executable");
    let mut server = Command::new(&exe)
        .args(["--child", "serve", "--instances", &instances.to_string()])
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()
        .expect("emulator child");
    let url = ready_line(&mut server);
    println!("sync benchmark: {instances} instances x 20 properties, pages of {page_size}");

    let phase = |name: &str, extra: &[&str]| -> Value {
        let mut command = Command::new(&exe);
        command
            .args([
                "--child",
                name,
                "--url",
                &url,
                "--page-size",
                &page_size.to_string(),
            ])
            .args(extra);
        let output = command.output().expect("phase child");
        assert!(
            output.status.success(),
            "{name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("phase prints JSON")
    };
    let baseline = phase("baseline", &[]);
    let lake = std::env::temp_dir().join(format!("sync-bench-{}", std::process::id()));
    let local = phase(
        "sync",
        &["--destination", &format!("local:{}", lake.display())],
    );
    let membership = phase(
        "sync",
        &[
            "--destination",
            &format!("local:{}", lake.display()),
            "--scan-interval",
            "1ms",
        ],
    );
    let _ = std::fs::remove_dir_all(&lake);
    let s3 = std::env::var("CDF_S3_TEST_S3_ENDPOINT")
        .ok()
        .map(|endpoint| {
            let bucket = format!("sync-bench-{}", std::process::id());
            let created = Command::new("curl")
                .args(["-sf", "-X", "PUT", &format!("{endpoint}/{bucket}")])
                .status();
            assert!(
                created.map(|s| s.success()).unwrap_or(false),
                "creating bucket {bucket}"
            );
            phase(
                "sync",
                &["--destination", &format!("s3:{endpoint}/{bucket}")],
            )
        });
    if let Some(stdin) = server.stdin.as_mut() {
        let _ = stdin.write_all(b"stop\n");
    }
    let _ = server.wait();

    let base_secs = baseline["seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "{:<28} {:>10} {:>12} {:>9} {:>8} {:>6} {:>10} {:>9}",
        "phase", "seconds", "instances/s", "MB/s", "commits", "files", "peak RSS", "vs parse"
    );
    let row = |name: &str, r: &Value| {
        let secs = r["seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<28} {:>10.2} {:>12.0} {:>9.1} {:>8} {:>6} {:>7.0} MiB {:>8.2}x",
            name,
            secs,
            r["instances"].as_f64().unwrap_or(0.0) / secs,
            r["bytes"].as_f64().unwrap_or(0.0) / secs / 1e6,
            r["commits"],
            r["files"],
            r["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            secs / base_secs,
        );
    };
    row("parse-only baseline", &baseline);
    row("sync -> Delta, local disk", &local);
    if let Some(s3) = &s3 {
        row("sync -> Delta, S3 server", s3);
    }
    println!("(MB/s: Parquet bytes written; the baseline writes nothing)");
    let scan_secs = membership["seconds"].as_f64().unwrap_or(f64::NAN);
    let requests = membership["membership_requests"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let per_million = 1e6 / instances.max(1) as f64;
    println!(
        "membership pass, local disk: {scan_secs:.2} s ({:.2}x the parse-only baseline), \
         {requests} CDF requests, {} checked, {} refreshed, {} exited; per million \
         instances: {:.0} requests, {:.1} s; peak RSS {:.0} MiB",
        scan_secs / base_secs,
        membership["membership_checked"],
        membership["membership_refreshed"],
        membership["membership_exited"],
        requests * per_million,
        scan_secs * per_million,
        membership["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
    );
}

fn ready_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("emulator stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("ready ") => {
                return line["ready ".len()..].to_owned();
            }
            Some(Ok(_)) => continue,
            _ => panic!("the emulator child stopped before it was ready"),
        }
    }
}

fn schema() -> Value {
    let mut props = serde_json::Map::new();
    let types = [
        ("text", 5),
        ("int64", 4),
        ("float64", 4),
        ("boolean", 2),
        ("timestamp", 2),
        ("date", 1),
        ("json", 1),
        ("direct", 1),
    ];
    for (kind, count) in types {
        for i in 0..count {
            props.insert(format!("{kind}{i}"), json!({"type": {"type": kind}}));
        }
    }
    let view_props: serde_json::Map<String, Value> = props
        .keys()
        .map(|name| {
            (name.clone(), json!({"container": {"type": "container", "space": SPACE, "externalId": "ReadingC"}, "containerPropertyIdentifier": name}))
        })
        .collect();
    json!({
        "spaces": [{"space": SPACE}],
        "containers": [{"space": SPACE, "externalId": "ReadingC", "properties": props, "usedFor": "node"}],
        "views": [{"space": SPACE, "externalId": VIEW, "version": "1", "properties": view_props}],
        "dataModels": [{"space": SPACE, "externalId": "BenchModel", "version": "1",
            "views": [{"type": "view", "space": SPACE, "externalId": VIEW, "version": "1"}]}],
    })
}

/// The 20 property values of instance `i`, by property name.
fn instance(i: usize) -> Value {
    let mut p = serde_json::Map::new();
    for k in 0..5 {
        p.insert(
            format!("text{k}"),
            json!(format!("reading {i} field {k} with some text")),
        );
    }
    for k in 0..4 {
        p.insert(format!("int64{k}"), json!(i as i64 * 1_000_003 + k));
        p.insert(format!("float64{k}"), json!(i as f64 * 0.5 + k as f64));
    }
    p.insert("boolean0".into(), json!(i.is_multiple_of(2)));
    p.insert("boolean1".into(), json!(i.is_multiple_of(3)));
    p.insert(
        "timestamp0".into(),
        json!(format!(
            "2024-0{}-1{}T08:30:00.{:03}+00:00",
            1 + i % 9,
            i % 10,
            i % 1000
        )),
    );
    p.insert("timestamp1".into(), json!("2025-01-02T03:04:05.678+00:00"));
    p.insert(
        "date0".into(),
        json!(format!("2024-{:02}-{:02}", 1 + i % 12, 1 + i % 28)),
    );
    p.insert("json0".into(), json!({"k": i, "tags": ["a", "b"]}));
    p.insert(
        "direct0".into(),
        json!({"space": SPACE, "externalId": format!("site-{}", i % 100)}),
    );
    Value::Object(p)
}

async fn serve(instances: usize) {
    let config = EmulatorConfig {
        cursor_expiry: Duration::from_secs(30 * 24 * 3600),
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).await.expect("emulator");
    let control = emulator.control();
    control.apply_schema(schema()).expect("schema");
    let started = Instant::now();
    // Bulk seeding through the control API: the same upsert semantics as the JSON API
    // without building a request body per instance.
    let view = cdf_emulator::ViewId {
        space: SPACE.into(),
        external_id: VIEW.into(),
        version: "1".into(),
    };
    let names: Vec<String> = instance(0)
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for chunk in (0..instances).collect::<Vec<_>>().chunks(50_000) {
        let nodes = chunk.iter().map(|&i| {
            let mut values = instance(i);
            cdf_emulator::SeedNode {
                space: SPACE.into(),
                external_id: format!("r-{i:08}"),
                values: names.iter().map(|n| values[*n].take()).collect(),
            }
        });
        control.seed_nodes(&view, &names, nodes).expect("seed");
    }
    eprintln!(
        "seeded {instances} instances in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    println!("ready {}", emulator.base_url());
    let _ = std::io::stdout().flush();
    // Serve until the parent writes to (or closes) stdin.
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().next()).await;
    emulator.shutdown().await;
}

fn client(url: &str) -> CdfClient {
    let credentials = ClientCredentials {
        token_url: format!("{url}/oauth2/token"),
        client_id: "emulator-client".into(),
        client_secret: Secret::new("emulator-secret"),
        scopes: Vec::new(),
        audience: None,
        resource: None,
    };
    CdfClient::new(ClientSettings::new(url, "emulated-project", credentials)).expect("client")
}

/// Fetch and decode every page of the view's sync, nothing else.
async fn baseline(url: &str, page_size: u32) {
    let client = client(url);
    let view = ViewReference::new(SPACE, VIEW, "1");
    let expression = SyncExpression::nodes(
        Some(Filter::has_data_view(view.clone())),
        page_size,
        SyncMode::TwoPhase,
    );
    let mut request = SyncRequest::single("changes", expression, SyncSelect::all_of(view));
    let started = Instant::now();
    let (mut instances, mut pages) = (0usize, 0usize);
    loop {
        let mut response = client.sync(&request).await.expect("sync page");
        let items = response.take_items("changes");
        instances += items.len();
        pages += 1;
        let short = items.len() < page_size as usize;
        drop(items);
        let cursor = response.cursor_of("changes").map(str::to_owned);
        request = request.with_cursor("changes", cursor);
        if short {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"instances": instances, "pages": pages, "seconds": seconds, "commits": 0, "files": 0,
               "bytes": 0, "peak_rss_kib": peak_rss_kib()})
    );
}

async fn sync_phase(url: &str, destination: &str, page_size: u32, scan_interval: Option<&str>) {
    let destination_yaml = if let Some(path) = destination.strip_prefix("local:") {
        format!("  local:\n    path: \"{path}\"\n")
    } else if let Some(rest) = destination.strip_prefix("s3:") {
        let (endpoint, bucket) = rest.rsplit_once('/').expect("s3:<endpoint>/<bucket>");
        format!(
            "  s3:\n    bucket: {bucket}\n    region: us-east-1\n    endpoint-url: {endpoint}\n    allow-http: true\n"
        )
    } else {
        panic!("unknown destination {destination}");
    };
    let scan = scan_interval.unwrap_or("0");
    // One state table per lake: the local and the S3 lake are two deployments, and a lake
    // refuses state rows another lake wrote.
    let state_table = if destination.starts_with("local:") {
        "bench_state_local"
    } else {
        "bench_state_s3"
    };
    let yaml = format!(
        "logger:\n  console:\n    level: WARNING\ncognite:\n  host: {url}\n  project: emulated-project\n  idp-authentication:\n    token-url: {url}/oauth2/token\n    client-id: emulator-client\n    secret: emulator-secret\nextractor:\n  subscription-batch-size: {page_size}\n  membership-scan-interval: {scan}\n  state-store:\n    raw:\n      table: {state_table}\ndata_modeling:\n  - space: {SPACE}\n    data_models:\n      - external_id: BenchModel\ndestination:\n{destination_yaml}"
    );
    let config = load_config_text(&yaml, "bench", &MapEnv::new())
        .await
        .expect("config");
    let context = Context::new(config).expect("context");
    let started = Instant::now();
    let summary = jobs::sync(
        &SyncJob::from_context(&context),
        &JobInputs::until(tokio::time::Instant::now() + Duration::from_secs(3600)),
        &SyncOptions::default(),
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    assert!(summary.is_success(), "{summary:#?}");
    println!(
        "{}",
        json!({"instances": summary.rows, "seconds": seconds, "commits": summary.commits, "files": summary.files,
               "bytes": summary.bytes, "peak_rss_kib": peak_rss_kib(),
               "membership_requests": summary.membership.requests,
               "membership_checked": summary.streams.iter().map(|s| s.membership.checked).sum::<u64>(),
               "membership_refreshed": summary.membership.refreshed,
               "membership_exited": summary.membership.exited})
    );
}

/// Peak resident set size of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
