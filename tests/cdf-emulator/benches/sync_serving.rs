//! Sync serving throughput: seeds N instances with 20 properties in-process, then pages
//! through `instances/sync` (limit 1000) over real HTTP on loopback while the server runs
//! on a single-threaded tokio runtime (one core). Prints instances/s for serving, and for
//! a plain JSON decode of the same pages as a reference.
//!
//! `cargo bench -p cdf-emulator` (set SYNC_BENCH_INSTANCES to change N, default 100000).

use std::sync::mpsc;
use std::time::Instant;

use cdf_emulator::{Control, Emulator, EmulatorConfig};
use serde_json::{Map, Value, json};

const PROPS: usize = 20;
const PAGE: usize = 1000;

fn schema() -> Value {
    let mut props = Map::new();
    let mut view_props = Map::new();
    for i in 0..PROPS {
        let ty = match i % 5 {
            0 | 1 => json!({"type": "text"}),
            2 => json!({"type": "float64"}),
            3 => json!({"type": "int64"}),
            _ => json!({"type": "timestamp"}),
        };
        let name = format!("p{i:02}");
        props.insert(name.clone(), json!({"type": ty}));
        view_props.insert(
            name.clone(),
            json!({"container": {"type": "container", "space": "bench", "externalId": "BenchC"}, "containerPropertyIdentifier": name}),
        );
    }
    json!({
        "spaces": [{"space": "bench"}],
        "containers": [{"space": "bench", "externalId": "BenchC", "properties": props}],
        "views": [{"space": "bench", "externalId": "Bench", "version": "1", "properties": view_props}],
    })
}

/// Builds one instance write by moving values into place (`json!` with interpolated
/// variables would serialize and copy them).
fn item(i: usize, view: &Value) -> Value {
    let mut p = Map::new();
    for j in 0..PROPS {
        let v = match j % 5 {
            0 => Value::String(format!("tag-{i}-{j}")),
            1 => Value::String(format!("some longer descriptive text for instance {i}")),
            2 => Value::from(i as f64 * 0.25 + j as f64),
            3 => Value::from(i as i64 * 1_000 + j as i64),
            _ => Value::String(format!(
                "2024-01-{:02}T{:02}:{:02}:00.000+00:00",
                1 + i % 28,
                i % 24,
                j
            )),
        };
        p.insert(format!("p{j:02}"), v);
    }
    let mut source = Map::new();
    source.insert("source".into(), view.clone());
    source.insert("properties".into(), Value::Object(p));
    let mut item = Map::new();
    item.insert("instanceType".into(), Value::String("node".into()));
    item.insert("space".into(), Value::String("bench".into()));
    item.insert("externalId".into(), Value::String(format!("node-{i:08}")));
    item.insert("sources".into(), Value::Array(vec![Value::Object(source)]));
    Value::Object(item)
}

fn value(i: usize, j: usize) -> Value {
    match j % 5 {
        0 => Value::String(format!("tag-{i}-{j}")),
        1 => Value::String(format!("some longer descriptive text for instance {i}")),
        2 => Value::from(i as f64 * 0.25 + j as f64),
        3 => Value::from(i as i64 * 1_000 + j as i64),
        _ => Value::String(format!(
            "2024-01-{:02}T{:02}:{:02}:00.000+00:00",
            1 + i % 28,
            i % 24,
            j
        )),
    }
}

/// Seeds the first tenth through `apply_instances` (JSON bodies, like the HTTP API) and the
/// rest through `seed_nodes` (the bulk path), reporting both rates in CPU time.
fn seed(ctl: &Control, n: usize) {
    ctl.apply_schema(schema()).expect("schema applies");
    let json_part = (n / 10).max(1).min(n);
    let view_ref = json!({"type": "view", "space": "bench", "externalId": "Bench", "version": "1"});
    let cpu = thread_cpu_secs();
    let mut i = 0;
    while i < json_part {
        let end = (i + 10_000).min(json_part);
        let items: Vec<Value> = (i..end).map(|i| item(i, &view_ref)).collect();
        let mut body = Map::new();
        body.insert("items".into(), Value::Array(items));
        ctl.apply_instances(Value::Object(body))
            .expect("seed batch applies");
        i = end;
    }
    let json_cpu = thread_cpu_secs() - cpu;
    println!(
        "seeded {json_part} instances via apply_instances (JSON bodies): {json_cpu:.2} s CPU = {:.0} instances per CPU-second",
        json_part as f64 / json_cpu.max(0.01)
    );
    let view = cdf_emulator::ViewId::new("bench", "Bench", "1");
    let names: Vec<String> = (0..PROPS).map(|j| format!("p{j:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let t = Instant::now();
    let cpu = thread_cpu_secs();
    while i < n {
        let end = (i + 100_000).min(n);
        let batch = (i..end).map(|i| cdf_emulator::SeedNode {
            space: "bench".into(),
            external_id: format!("node-{i:08}"),
            values: (0..PROPS).map(|j| value(i, j)).collect(),
        });
        ctl.seed_nodes(&view, &names, batch)
            .expect("seed batch applies");
        i = end;
    }
    let bulk = n - json_part;
    let bulk_cpu = thread_cpu_secs() - cpu;
    println!(
        "seeded {bulk} instances via seed_nodes (bulk): {:.2} s wall, {bulk_cpu:.2} s CPU = {:.0} instances per CPU-second",
        t.elapsed().as_secs_f64(),
        bulk as f64 / bulk_cpu.max(0.01)
    );
}

fn sync_body(cursor: Option<&str>) -> Value {
    let view = json!({"type": "view", "space": "bench", "externalId": "Bench", "version": "1"});
    json!({
        "with": {"b": {"nodes": {"filter": {"hasData": [view]}}, "limit": PAGE, "mode": "onePhase"}},
        "select": {"b": {"sources": [{"source": view, "properties": ["*"]}]}},
        "cursors": {"b": cursor},
    })
}

fn main() {
    // `cargo bench` passes --bench; other harness flags are ignored.
    let n: usize = std::env::var("SYNC_BENCH_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    let (info_tx, info_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (cpu_tx, mut cpu_rx) =
        tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<f64>>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let emu = Emulator::start(EmulatorConfig::default())
                .await
                .expect("emulator starts");
            info_tx
                .send((emu.api_url(), emu.control()))
                .expect("bench main is waiting");
            // Answers "how much CPU has the server thread used?" from the server thread itself.
            tokio::spawn(async move {
                while let Some(reply) = cpu_rx.recv().await {
                    let _ = reply.send(thread_cpu_secs());
                }
            });
            let _ = stop_rx.await;
            emu.shutdown().await;
        });
    });
    let server_cpu = || {
        let (tx, rx) = tokio::sync::oneshot::channel();
        cpu_tx.send(tx).expect("server thread is running");
        rx.blocking_recv().expect("server thread answers")
    };
    let (api, ctl) = info_rx.recv().expect("server thread reports its address");
    seed(&ctl, n);
    let token = ctl.issue_token();
    let server_cpu_before = server_cpu();

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let pages: Vec<bytes::Bytes> = client_rt.block_on(async {
        let http = reqwest::Client::new();
        let url = format!("{api}/models/instances/sync");
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        let mut total = 0usize;
        let t = Instant::now();
        loop {
            let resp = http.post(&url).bearer_auth(&token).json(&sync_body(cursor.as_deref())).send().await.expect("sync call");
            assert_eq!(resp.status(), 200);
            let bytes = resp.bytes().await.expect("sync body");
            // Only the cursor is needed to continue; the full decode is measured separately.
            let (count, next) = cursor_and_count(&bytes);
            total += count;
            cursor = Some(next);
            pages.push(bytes);
            if count < PAGE {
                break;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(total, n, "every instance is served exactly once");
        println!(
            "sync serving over HTTP (1 server core, pages of {PAGE}, {PROPS} props): {total} instances in {secs:.2} s = {:.0} instances/s ({} pages, {:.1} MB)",
            total as f64 / secs,
            pages.len(),
            pages.iter().map(|p| p.len()).sum::<usize>() as f64 / 1e6
        );
        pages
    });
    let server_secs = server_cpu() - server_cpu_before;
    println!(
        "  server thread CPU while paging: {server_secs:.2} s = {:.0} instances per server-CPU-second",
        n as f64 / server_secs.max(0.01)
    );

    // Decoding runs on a fresh thread so that its allocations do not compete with the
    // seeded store's heap (glibc gives each thread its own arena).
    let (decoded, secs, cpu) = std::thread::spawn(move || {
        let t = Instant::now();
        let cpu = thread_cpu_secs();
        let mut decoded = 0usize;
        for p in &pages {
            let v: Value = serde_json::from_slice(p).expect("page is valid JSON");
            decoded += v["items"]["b"].as_array().map_or(0, Vec::len);
        }
        (decoded, t.elapsed().as_secs_f64(), thread_cpu_secs() - cpu)
    })
    .join()
    .expect("decode thread");
    println!(
        "reference: serde_json::Value decode of the same pages: {:.0} instances/s ({:.0} instances per CPU-second)",
        decoded as f64 / secs,
        decoded as f64 / cpu.max(0.01)
    );
    let _ = stop_tx.send(());
    let _ = server.join();
}

/// CPU time (user + system) used by the calling thread, from /proc (Linux; 0 elsewhere).
/// Robust against other load on the machine, unlike wall-clock rates.
fn thread_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    let Some((_, after_comm)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields after the command name start at field 3 (state); utime is 14, stime is 15.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Counts items and extracts the next cursor without a full decode.
fn cursor_and_count(bytes: &[u8]) -> (usize, String) {
    #[derive(serde::Deserialize)]
    struct Page {
        items: std::collections::HashMap<String, Vec<serde::de::IgnoredAny>>,
        #[serde(rename = "nextCursor")]
        next_cursor: std::collections::HashMap<String, String>,
    }
    let page: Page = serde_json::from_slice(bytes).expect("page is valid JSON");
    (
        page.items.get("b").map_or(0, Vec::len),
        page.next_cursor.get("b").cloned().unwrap_or_default(),
    )
}
