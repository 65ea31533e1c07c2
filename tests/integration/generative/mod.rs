//! Generative proof that publish equals CDF for every shape of data CDF accepts.
//!
//! Each case is one seed: a random valid data model ([`model`]) and a random instance history
//! ([`history`]) applied to the emulator in rounds, while sync runs with a random page size,
//! parallelism and time budget per run, and the snapshot runs now and then (so incremental
//! merges are exercised as well as rebuilds). After the last round, sync runs until every
//! stream is caught up; a stream that fails or never catches up counts as wedged. Then the
//! snapshot publishes, and an independent reader (`tests/readers/generative_check.py`:
//! pyarrow for the publish files, the `deltalake` package for the raw tables) compares every
//! row, every value and every column type with the emulator's truth. Columns are mapped back
//! to CDF properties through their field metadata, never by re-implementing the rename rule.
//!
//! `CDF_S3_GEN_SEED` (a number) replays one case; `CDF_S3_GEN_CASES` sets how many cases
//! the long variant runs. A failing case prints its seed.

mod history;
mod model;
mod rng;
mod values;

use std::time::Duration;

use cdf_emulator::{Emulator, EmulatorConfig, InstanceKind, ViewId};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::snapshot::SnapshotOptions;
use cdf_s3_replicator::sync::SyncOptions;
use cdf_s3_replicator::sync::summary::{RunSummary, StreamStatus};
use serde_json::{Value, json};
use tokio::time::Instant;

use self::history::History;
use self::model::{DATA_SPACE, Model, SPACE_A, ViewRef};
use self::rng::Gen;
use crate::support::{Lake, python};

/// Figures of one or more cases.
#[derive(Debug, Default)]
struct Figures {
    cases: usize,
    views: usize,
    instances: usize,
    writes: usize,
    deletes: usize,
    rounds: usize,
    sync_runs: usize,
    snapshot_runs: usize,
    rows_compared: u64,
    quarantined: u64,
    mismatches: u64,
    missing_columns: u64,
    wedged_streams: usize,
    failures: Vec<String>,
}

impl Figures {
    fn print(&self, label: &str) {
        println!(
            "generative {label}: {} cases, {} views, {} instances ({} writes, {} deletes) in {} rounds, \
             {} sync runs, {} snapshot runs; {} rows compared, {} quarantined rows, {} mismatches, \
             {} missing columns, {} wedged streams",
            self.cases,
            self.views,
            self.instances,
            self.writes,
            self.deletes,
            self.rounds,
            self.sync_runs,
            self.snapshot_runs,
            self.rows_compared,
            self.quarantined,
            self.mismatches,
            self.missing_columns,
            self.wedged_streams,
        );
        for failure in &self.failures {
            println!("  {failure}");
        }
    }
}

fn config_yaml(emulator: &Emulator, lake: &Lake, model: &Model, page: usize, par: usize) -> String {
    format!(
        "cognite:\n  host: {base}\n  project: {project}\n  idp-authentication:\n    token-url: {token}\n    client-id: emulator-client\n    secret: emulator-secret\nextractor:\n  state-store:\n    raw:\n      database: state\n      table: streams\n  subscription-batch-size: {page}\n  parallelism: {par}\n  deadline-margin: 0s\ndata_modeling:\n  - space: {SPACE_A}\n    data_models:\n      - external_id: {model}\ndestination:\n{destination}",
        base = emulator.base_url(),
        project = emulator.project(),
        token = emulator.token_url(),
        model = model.external_id,
        destination = lake.destination_yaml(),
    )
}

fn view_id(view: &ViewRef) -> ViewId {
    ViewId {
        space: view.space.clone(),
        external_id: view.external_id.clone(),
        version: "1".into(),
    }
}

/// One table to check: where it is, which columns it must have and the rows CDF holds.
fn table_request(
    lake: &Lake,
    model: &Model,
    folder: &str,
    kind: &str,
    sources: &[ViewRef],
    truth: Vec<Value>,
) -> Value {
    let relative = format!("{SPACE_A}/{}/1", model.external_id);
    let (raw, publish) = match lake {
        Lake::Local(path) => (
            path.join(format!("raw/{relative}/views/{folder}/{kind}"))
                .display()
                .to_string(),
            path.join(format!("publish/{relative}/{folder}/{kind}.parquet"))
                .display()
                .to_string(),
        ),
        Lake::S3 { bucket, .. } => (
            format!("s3://{bucket}/cdf-data/raw/{relative}/views/{folder}/{kind}"),
            format!("s3://{bucket}/cdf-data/publish/{relative}/{folder}/{kind}.parquet"),
        ),
    };
    let declared: Vec<Value> = sources
        .iter()
        .flat_map(|source| {
            let view = model.view_index(source);
            view.map(|v| model.view_properties(v))
                .unwrap_or_default()
                .into_iter()
                .map(move |p| {
                    json!({"source": source.label(), "space": source.space, "key": format!("{}/1", source.external_id),
                           "property": p.name, "type": p.ptype.kind, "list": p.ptype.list})
                })
        })
        .collect();
    json!({
        "label": format!("{folder}/{kind}"),
        "kind": kind,
        "raw": raw,
        "publish": publish,
        "declared": declared,
        "truth": truth,
    })
}

/// Every table of the model with the emulator's truth for it.
fn tables(emulator: &Emulator, lake: &Lake, model: &Model) -> Vec<Value> {
    let control = emulator.control();
    let mut counts = std::collections::HashMap::new();
    for v in &model.views {
        *counts.entry(v.id.external_id.clone()).or_insert(0) += 1;
    }
    let folder = |v: &ViewRef| {
        if counts[&v.external_id] > 1 {
            format!("{}.{}", v.space, v.external_id)
        } else {
            v.external_id.clone()
        }
    };
    let mut out = Vec::new();
    for (index, view) in model.views.iter().enumerate() {
        let id = view_id(&view.id);
        let has_data = json!({"hasData": [id.to_json()]});
        if view.used_for == "node" {
            let truth = control
                .live_instances_matching(InstanceKind::Node, Some(has_data), &[id])
                .expect("truth of a node view");
            out.push(table_request(
                lake,
                model,
                &folder(&view.id),
                "nodes",
                std::slice::from_ref(&view.id),
                truth,
            ));
            // Own and inherited connections: one stream per edge type, selecting every edge
            // source its connections name.
            let connections = model.view_connections(index);
            if connections.is_empty() {
                continue;
            }
            let mut truth = Vec::new();
            let mut all_sources: Vec<ViewRef> = Vec::new();
            let mut types: Vec<&str> = connections.iter().map(|c| c.edge_type.as_str()).collect();
            types.sort_unstable();
            types.dedup();
            for edge_type in types {
                let sources: Vec<ViewRef> = {
                    let mut s: Vec<ViewRef> = connections
                        .iter()
                        .filter(|c| c.edge_type == edge_type)
                        .filter_map(|c| c.edge_source.clone())
                        .collect();
                    s.sort();
                    s.dedup();
                    s
                };
                let filter = json!({"equals": {"property": ["edge", "type"], "value": {"space": DATA_SPACE, "externalId": edge_type}}});
                let ids: Vec<ViewId> = sources.iter().map(view_id).collect();
                truth.extend(
                    control
                        .live_instances_matching(InstanceKind::Edge, Some(filter), &ids)
                        .expect("truth of an edge type"),
                );
                for s in sources {
                    if !all_sources.contains(&s) {
                        all_sources.push(s);
                    }
                }
            }
            out.push(table_request(
                lake,
                model,
                &folder(&view.id),
                "edges",
                &all_sources,
                truth,
            ));
        } else {
            let truth = control
                .live_instances_matching(InstanceKind::Edge, Some(has_data), &[id])
                .expect("truth of an edge view");
            out.push(table_request(
                lake,
                model,
                &folder(&view.id),
                "edges",
                &[model.views[index].id.clone()],
                truth,
            ));
        }
    }
    out
}

/// Runs `f` on a thread with a large stack. The test's own handling of deeply nested JSON
/// (building, serializing and dropping `serde_json::Value`s) recurses per level; the
/// replicator under test keeps running on the runtime's ordinary worker stacks.
fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn_scoped(scope, f)
            .expect("a thread for the test's deep JSON")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `tests/readers/generative_check.py` on a request and returns its JSON report.
fn run_checker(python: &str, request: &Value, dir: &std::path::Path) -> Value {
    let request_file = dir.join("generative-request.json");
    std::fs::write(&request_file, request.to_string()).expect("checker request");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/generative_check.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg("generative")
        .arg(&request_file)
        .output()
        .expect("running the generative checker");
    assert!(
        output.status.success(),
        "the generative checker failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("the checker prints JSON")
}

async fn context(yaml: &str) -> Context {
    let config = load_config_text(yaml, "generative configuration", &MapEnv::new())
        .await
        .unwrap_or_else(|e| panic!("the generated configuration loads: {e}\n{yaml}"));
    Context::new(config).expect("context")
}

/// Runs one case; adds its figures and failures to `figures`.
async fn run_case(seed: u64, case: usize, lake: Lake, figures: &mut Figures) {
    let mut g = Gen::new(seed);
    let model = model::generate(&mut g, case);
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let control = emulator.control();
    if let Err(error) = control.apply_schema(model.schema_json()) {
        figures.failures.push(format!(
            "seed {seed}: the emulator refused the generated model: {error:?}"
        ));
        return;
    }
    let page = *g.pick(&[1usize, 2, 3, 5, 17, 100, 1000]);
    let parallelism = g.range(1, 5);
    let yaml = config_yaml(&emulator, &lake, &model, page, parallelism);
    let context = context(&yaml).await;
    let job = context.sync_job();
    let mut history = History::default();
    let rounds = g.range(2, 6);
    for round in 0..rounds {
        let applied = on_big_stack(|| {
            let changes = history.round(&mut g, &model, round == 0);
            if !changes.upserts.is_empty() {
                control
                    .apply_instances(json!({"items": changes.upserts}))
                    .map_err(|error| format!("upserts: {error:?}"))?;
            }
            if !changes.deletes.is_empty() {
                control
                    .delete_instances(json!({"items": changes.deletes}))
                    .map_err(|error| format!("deletes: {error:?}"))?;
            }
            Ok::<(), String>(())
        });
        if let Err(error) = applied {
            figures.failures.push(format!(
                "seed {seed}: the emulator refused round {round}'s {error}"
            ));
            return;
        }
        control.advance_clock(Duration::from_secs(1));
        // A random slice: sometimes too short to finish, so later runs must resume.
        let budget = Duration::from_millis(g.range(50, 3_000) as u64);
        let summary = jobs::sync(&job, &SyncOptions::until(Instant::now() + budget)).await;
        figures.sync_runs += 1;
        figures.quarantined += summary.rows_quarantined;
        if g.chance(0.4) {
            jobs::snapshot(&context, &SnapshotOptions::default()).await;
            figures.snapshot_runs += 1;
        }
    }
    figures.rounds += rounds;

    // Catch up. Every run must make progress until all streams are caught up.
    let mut last: Option<RunSummary> = None;
    for _ in 0..40 {
        let summary = jobs::sync(
            &job,
            &SyncOptions::until(Instant::now() + Duration::from_secs(60)),
        )
        .await;
        figures.sync_runs += 1;
        figures.quarantined += summary.rows_quarantined;
        let done = summary.streams_failed == 0
            && summary.streams_behind == 0
            && summary.plan_errors.is_empty();
        last = Some(summary);
        if done {
            break;
        }
    }
    let last = last.expect("at least one catch-up run");
    let wedged: Vec<String> = last
        .streams
        .iter()
        .filter(|s| s.status != StreamStatus::CaughtUp)
        .map(|s| {
            format!(
                "{} {:?}: {}",
                s.stream,
                s.status,
                s.error.as_ref().map_or("", |e| e.message.as_str())
            )
        })
        .chain(last.plan_errors.iter().map(|e| e.message.clone()))
        .collect();
    figures.wedged_streams += wedged.len();
    for w in &wedged {
        figures
            .failures
            .push(format!("seed {seed}: wedged stream {w}"));
    }

    let published = jobs::snapshot(&context, &SnapshotOptions::default()).await;
    figures.snapshot_runs += 1;
    if !published.is_success() {
        figures.failures.push(format!(
            "seed {seed}: the snapshot failed: {}",
            serde_json::to_string(&published).unwrap_or_default()
        ));
    }

    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let report = on_big_stack(|| {
        let request = json!({
            "storage_options": lake.storage_options(),
            "tables": tables(&emulator, &lake, &model),
        });
        let report = run_checker(&python, &request, dir.path());
        if case == 0 {
            assert_checker_sees_a_changed_value(&python, request, dir.path());
        }
        report
    });
    figures.cases += 1;
    figures.views += model.views.len();
    figures.instances += history.instances();
    figures.writes += history.writes;
    figures.deletes += history.deletes;
    figures.rows_compared += report["rows_compared"].as_u64().unwrap_or(0);
    let mismatches = report["mismatch_count"].as_u64().unwrap_or(u64::MAX);
    let missing = report["missing_columns"].as_u64().unwrap_or(0);
    figures.mismatches += mismatches;
    figures.missing_columns += missing;
    if mismatches > 0 || missing > 0 {
        figures.failures.push(format!(
            "seed {seed}: {mismatches} mismatches, {missing} missing columns; first: {}",
            serde_json::to_string(&report["first"]).unwrap_or_default()
        ));
    }
}

/// The checker must notice one wrong value, or its "0 mismatches" would prove nothing.
fn assert_checker_sees_a_changed_value(python: &str, mut request: Value, dir: &std::path::Path) {
    let mut changed = false;
    'tables: for table in request["tables"].as_array_mut().into_iter().flatten() {
        for instance in table["truth"].as_array_mut().into_iter().flatten() {
            for (_, views) in instance["properties"].as_object_mut().into_iter().flatten() {
                for (_, values) in views.as_object_mut().into_iter().flatten() {
                    for (_, value) in values.as_object_mut().into_iter().flatten() {
                        if !value.is_null() {
                            *value = if value.is_string() {
                                json!(12345)
                            } else {
                                json!("a value CDF does not hold")
                            };
                            changed = true;
                            break 'tables;
                        }
                    }
                }
            }
        }
    }
    if changed {
        let report = run_checker(python, &request, dir);
        assert!(
            report["mismatch_count"].as_u64().unwrap_or(0) > 0,
            "the checker missed a changed value: {report}"
        );
    }
}

fn base_seed() -> Option<u64> {
    std::env::var("CDF_S3_GEN_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Runs `cases` cases from `first_seed` on (one case with `CDF_S3_GEN_SEED`), or as many
/// as fit in `minutes` when that is set.
async fn run_cases(cases: usize, first_seed: u64, minutes: Option<u64>, label: &str) {
    if python().is_none() {
        return;
    }
    let mut figures = Figures::default();
    let seeds: Vec<u64> = match base_seed() {
        Some(seed) => vec![seed],
        None => (0..cases as u64).map(|i| first_seed + i).collect(),
    };
    let started = std::time::Instant::now();
    for (case, seed) in seeds.into_iter().enumerate() {
        if let Some(minutes) = minutes
            && started.elapsed() >= Duration::from_secs(minutes * 60)
        {
            break;
        }
        // Every third case writes to the S3 server, the rest to a local directory.
        let dir = tempfile::tempdir().expect("temp dir");
        let lake = if case % 3 == 2 {
            match Lake::s3().await {
                Some(lake) => lake,
                None => Lake::local(dir.path()),
            }
        } else {
            Lake::local(dir.path())
        };
        run_case(seed, case, lake, &mut figures).await;
    }
    figures.print(label);
    assert!(
        figures.failures.is_empty(),
        "generative {label} failed (replay one case with CDF_S3_GEN_SEED=<seed>):\n{}",
        figures.failures.join("\n")
    );
    assert!(figures.cases > 0, "no case ran");
}

/// The suite's variant: a handful of fixed seeds, a few minutes at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_models_and_histories_replicate_exactly() {
    run_cases(8, 1_000, None, "short").await;
}

/// The long variant, run by hand under `tests/run-all.sh --run`: 500 cases, or as many as
/// fit in `CDF_S3_GEN_MINUTES` (for example 30) when that is set:
/// `cargo test --release --test integration generative_long -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by hand"]
async fn generative_long() {
    let number = |name: &str| std::env::var(name).ok().and_then(|s| s.parse().ok());
    let cases = number("CDF_S3_GEN_CASES").unwrap_or(500) as usize;
    run_cases(cases, 100_000, number("CDF_S3_GEN_MINUTES"), "long").await;
}
