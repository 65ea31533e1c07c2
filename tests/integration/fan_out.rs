//! A snapshot run split into units: plan → units → finalize through the snapshot function
//! in-process (as the state machine of `template.yaml` invokes it), and through
//! `cdf-s3-replicator snapshot --fan-out 2` (child processes). Each publishes exactly what a
//! whole single-process run publishes over the same raw tables: the same rows in every file
//! and the same manifests, first as full rebuilds, then as incremental merges.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::context::{Context, load_config_text};
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lambda::config_source::{CONFIG_ENV, ConfigSource};
use cdf_s3_replicator::lambda::logging::LogControl;
use cdf_s3_replicator::lambda::metrics::MemorySink;
use cdf_s3_replicator::lambda::{Function, FunctionKind, FunctionSetup, Invocation};
use cdf_s3_replicator::snapshot::{SnapshotOptions, SnapshotSummary};
use cdf_s3_replicator::sync::{SyncJob, SyncOptions};
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::concat_batches;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake};

const PUMPS: usize = 30;
const MODEL: &str = "plant_schema:PlantModel/1";

/// The configuration of the lab with its lake at `lake` instead.
fn yaml_for(lab: &Lab, lake: &Path) -> String {
    yaml_with(lab, lake, "")
}

/// [`yaml_for`] with `extractor` settings.
fn yaml_with(lab: &Lab, lake: &Path, extractor: &str) -> String {
    let Lake::Local(own) = &lab.lake else {
        panic!("a local lake")
    };
    let yaml = lab.config_yaml(extractor, None);
    let (from, to) = (
        format!("\"{}\"", own.display()),
        format!("\"{}\"", lake.display()),
    );
    assert!(yaml.contains(&from), "{yaml}");
    yaml.replace(&from, &to)
}

async fn context_for(yaml: &str) -> Context {
    let config = load_config_text(yaml, "test configuration", &MapEnv::new())
        .await
        .unwrap_or_else(|e| panic!("configuration loads: {e}\n{yaml}"));
    Context::new(config).expect("context")
}

fn snapshot_function(yaml: String) -> (Function, std::sync::Arc<MemorySink>) {
    let env = MapEnv::new().with(CONFIG_ENV, yaml);
    let metrics = std::sync::Arc::new(MemorySink::default());
    let function = Function::new(FunctionSetup {
        kind: FunctionKind::Snapshot,
        name: "test-cdf-s3-snapshot".into(),
        config_source: ConfigSource::from_env(&env),
        env: Box::new(env),
        secrets: None,
        metrics: metrics.clone(),
        logs: LogControl::detached(),
    });
    (function, metrics)
}

fn invocation() -> Invocation {
    Invocation {
        request_id: format!("req-{:012x}", rand::random::<u64>() >> 16),
        deadline: SystemTime::now() + Duration::from_secs(300),
    }
}

async fn invoke(function: &Function, payload: Value) -> Value {
    function
        .invoke(payload.clone(), &invocation())
        .await
        .unwrap_or_else(|e| panic!("{payload}: {}: {e}", e.error_type()))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("target directory");
    for entry in std::fs::read_dir(from).expect("source directory") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `to`'s raw layer replaced by a copy of `from`'s: the same raw tables, byte for byte.
fn copy_raw(from: &Path, to: &Path) {
    let target = to.join("raw");
    if target.exists() {
        std::fs::remove_dir_all(&target).expect("old raw layer");
    }
    copy_dir(&from.join("raw"), &target);
}

/// Every published view of a lake: its files (all rows, one batch each) and its manifest
/// without what differs between two writes of the same rows (times, ETags, write ids and
/// the file sizes their footers change).
fn published(lake: &Path) -> BTreeMap<String, (Vec<(String, RecordBatch)>, Value)> {
    let model = lake.join("publish/plant_schema/PlantModel/1");
    let mut views = BTreeMap::new();
    for entry in std::fs::read_dir(&model).expect("publish folder") {
        let dir = entry.expect("entry").path();
        let view = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files = Vec::new();
        for kind in ["nodes", "edges"] {
            // The kind's objects as the manifest names them: one file, or every part.
            let mut objects: Vec<String> = Vec::new();
            let folder = dir.join(kind);
            if folder.is_dir() {
                for part in std::fs::read_dir(&folder).expect("parts folder") {
                    let name = part
                        .expect("part")
                        .file_name()
                        .to_string_lossy()
                        .into_owned();
                    objects.push(format!("{kind}/{name}"));
                }
                objects.sort();
            } else {
                objects.push(format!("{kind}.parquet"));
            }
            for object in objects {
                let bytes = std::fs::read(dir.join(&object))
                    .unwrap_or_else(|e| panic!("{view}/{object}: {e}"));
                let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
                    .expect("a Parquet file");
                let schema = reader.schema().clone();
                let batches: Vec<RecordBatch> = reader
                    .build()
                    .expect("reader")
                    .collect::<Result<_, _>>()
                    .expect("row groups");
                let all = concat_batches(&schema, &batches).expect("one batch");
                files.push((object, all));
            }
        }
        let mut manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join("_manifest.json")).expect("a manifest"))
                .expect("manifest JSON");
        manifest.as_object_mut().unwrap().remove("writtenAt");
        for file in manifest["files"].as_object_mut().unwrap().values_mut() {
            for volatile in ["writtenAt", "eTag", "writeId", "bytes"] {
                file.as_object_mut().unwrap().remove(volatile);
            }
            if let Some(parts) = file
                .pointer_mut("/parts/files")
                .and_then(Value::as_array_mut)
            {
                for part in parts {
                    for volatile in ["writtenAt", "eTag", "writeId", "bytes"] {
                        part.as_object_mut().unwrap().remove(volatile);
                    }
                }
            }
        }
        views.insert(view, (files, manifest));
    }
    views
}

/// The footer's record of what the file was built from, without the write's own id and time.
fn build_stamp(batch: &RecordBatch) -> Value {
    let schema = batch.schema();
    let text = schema
        .metadata()
        .get("cdf_s3_replicator.built_from")
        .expect("a build stamp");
    let mut stamp: Value = serde_json::from_str(text).expect("stamp JSON");
    for volatile in ["writeId", "writtenAt"] {
        stamp.as_object_mut().unwrap().remove(volatile);
    }
    stamp
}

fn assert_same_publish(label: &str, left: &Path, right: &Path) {
    let (left, right) = (published(left), published(right));
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        right.keys().collect::<Vec<_>>(),
        "{label}: the same views"
    );
    assert_eq!(left.len(), 4, "{label}: every view of the sample model");
    for (view, (files, manifest)) in &left {
        let (other_files, other_manifest) = &right[view];
        assert_eq!(
            files.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            other_files.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            "{label}: {view}: the same objects"
        );
        for ((kind, batch), (_, other)) in files.iter().zip(other_files) {
            assert_eq!(
                batch.schema().fields(),
                other.schema().fields(),
                "{label}: {view}/{kind} columns"
            );
            assert_eq!(
                build_stamp(batch),
                build_stamp(other),
                "{label}: {view}/{kind} built from the same raw state"
            );
            assert_eq!(
                batch.columns(),
                other.columns(),
                "{label}: {view}/{kind} rows"
            );
        }
        assert_eq!(manifest, other_manifest, "{label}: {view} manifest");
    }
}

async fn sync(context: &Context) {
    let inputs = JobInputs::until(Instant::now() + Duration::from_secs(300));
    let summary = jobs::sync(
        &SyncJob::from_context(context),
        &inputs,
        &SyncOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{summary:#?}");
}

async fn whole_run(lake: &Path, yaml: &str) -> SnapshotSummary {
    let summary = jobs::snapshot(
        &context_for(yaml).await,
        &JobInputs::everything(),
        &SnapshotOptions::default(),
    )
    .await;
    assert!(summary.is_success(), "{}: {summary:#?}", lake.display());
    summary
}

/// The units' figures add up to the whole run's.
fn assert_same_figures(finalize: &Value, whole: &SnapshotSummary) {
    let snapshot = &finalize["snapshot"];
    assert_eq!(
        snapshot["viewsTotal"],
        json!(whole.views_total),
        "{finalize:#}"
    );
    assert_eq!(
        snapshot["filesRebuilt"],
        json!(whole.files_rebuilt),
        "{finalize:#}"
    );
    assert_eq!(
        snapshot["filesIncremental"],
        json!(whole.files_incremental),
        "{finalize:#}"
    );
    assert_eq!(
        snapshot["filesSkipped"],
        json!(whole.files_skipped),
        "{finalize:#}"
    );
    assert_eq!(snapshot["filesFailed"], 0, "{finalize:#}");
}

/// Plan, every shard at once, then every unit at once, finalize with the units' outcomes:
/// what the state machine does.
async fn fan_out_through_the_function(function: &Function) -> (Vec<Value>, Value) {
    let plan = invoke(function, json!({"plan": true})).await;
    run_shards(function, &plan, None).await;
    let units: Vec<Value> = plan["units"].as_array().expect("units").clone();
    let ids: Vec<String> = units
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_owned())
        .collect();
    let responses = invoke_units(function, &ids).await;
    let outcomes: Vec<Value> = responses.iter().map(|r| r["outcome"].clone()).collect();
    for (id, outcome) in ids.iter().zip(&outcomes) {
        assert_eq!(outcome["unit"], json!(id), "{outcome:#}");
        assert_eq!(outcome["success"], json!(true), "{outcome:#}");
    }
    let finalize = invoke(function, json!({"finalize": true, "outcomes": outcomes})).await;
    (units, finalize)
}

/// A finalize step over `outcomes` that fails as retryable (the next run completes the
/// run), naming `unit`; its message.
async fn finalize_incomplete(function: &Function, outcomes: Vec<Value>, unit: &str) -> String {
    let error = function
        .invoke(
            json!({"finalize": true, "maintenance": false, "outcomes": outcomes}),
            &invocation(),
        )
        .await
        .expect_err("a run with a unit that did not finish");
    assert_eq!(error.error_type(), "Retryable.RunIncomplete", "{error}");
    assert!(error.to_string().contains(unit), "{error}");
    error.to_string()
}

/// Invokes the function with every unit id at once; their responses, in order.
async fn invoke_units(function: &Function, ids: &[String]) -> Vec<Value> {
    futures::future::join_all(ids.iter().map(|id| invoke(function, json!({ "unit": id })))).await
}

/// How many files are under `dir` (a local store leaves empty folders behind).
fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|entry| {
            let entry = entry.expect("entry");
            if entry.file_type().expect("file type").is_dir() {
                files_under(&entry.path())
            } else {
                1
            }
        })
        .sum()
}

/// Runs the plan's shards at once (all but `skip`); each succeeds.
async fn run_shards(function: &Function, plan: &Value, skip: Option<&str>) -> Vec<String> {
    let ids: Vec<String> = plan["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_owned())
        .filter(|id| Some(id.as_str()) != skip)
        .collect();
    let responses = invoke_units(function, &ids).await;
    for (id, response) in ids.iter().zip(&responses) {
        assert_eq!(response["outcome"]["unit"], json!(id), "{response:#}");
        assert_eq!(response["outcome"]["success"], json!(true), "{response:#}");
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_units_and_finalize_publish_what_a_whole_run_publishes() {
    let lab = Lab::start(PUMPS, None).await;
    let Lake::Local(fanned) = lab.lake.clone() else {
        unreachable!()
    };
    let whole = lab.dir.path().join("whole");
    let by_cli = lab.dir.path().join("cli");
    let (fanned_yaml, whole_yaml, cli_yaml) = (
        yaml_for(&lab, &fanned),
        yaml_for(&lab, &whole),
        yaml_for(&lab, &by_cli),
    );
    let fanned_context = context_for(&fanned_yaml).await;
    sync(&fanned_context).await;
    copy_raw(&fanned, &whole);
    let first_whole = whole_run(&whole, &whole_yaml).await;

    let (function, metrics) = snapshot_function(fanned_yaml);
    let (units, finalize) = fan_out_through_the_function(&function).await;
    let ids: Vec<&str> = units.iter().map(|u| u["id"].as_str().unwrap()).collect();
    let mut expected: Vec<String> = ["Site", "Pump", "WorkOrder", "PumpWorkOrder"]
        .iter()
        .map(|view| format!("view:{MODEL}:{view}"))
        .collect();
    let mut sorted = ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "one unit per view: {units:#?}");
    for unit in &units {
        assert_eq!(unit["kind"], "view", "{unit}");
        assert_eq!(unit["staleness"], "unpublished", "never published: {unit}");
    }
    // Most stale first, the largest first among equals: the pumps' table is the largest.
    let costs: Vec<u64> = units.iter().map(|u| u["cost"].as_u64().unwrap()).collect();
    assert!(costs.windows(2).all(|w| w[0] >= w[1]), "{costs:?}");
    assert!(costs[0] > 0, "{units:#?}");
    assert_eq!(finalize["units"]["planned"], 4, "{finalize:#}");
    assert_eq!(finalize["units"]["succeeded"], 4, "{finalize:#}");
    assert_eq!(finalize["units"]["missing"], json!([]), "{finalize:#}");
    assert_same_figures(&finalize, &first_whole);
    assert!(first_whole.files_rebuilt > 0, "{first_whole:#?}");
    assert!(finalize["maintenance"].is_object(), "{finalize:#}");
    // The run's metrics come once, from finalize, summed over the units.
    let lines = metrics.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let emf: Value = serde_json::from_str(&lines[0]).expect("EMF");
    assert_eq!(emf["ViewsTotal"].as_f64(), Some(4.0), "{emf:#}");
    assert_eq!(
        emf["FilesRebuilt"].as_f64(),
        Some(first_whole.files_rebuilt as f64),
        "{emf:#}"
    );
    assert_same_publish("full rebuilds", &fanned, &whole);

    // An id that names no unit fails for good, naming it.
    let unknown = format!("view:{MODEL}:Nope");
    let error = function
        .invoke(json!({ "unit": unknown }), &invocation())
        .await
        .expect_err("an unknown unit");
    assert_eq!(error.error_type(), "Permanent.InvalidRequest");
    assert!(error.to_string().contains(&unknown), "{error}");

    // A planned unit without an outcome (its child execution failed, or the map lost it)
    // fails the run, naming it, as a retryable failure: the next run publishes it.
    let plan = invoke(&function, json!({"plan": true})).await;
    let lost = plan["units"][0]["id"].as_str().unwrap().to_owned();
    let kept: Vec<Value> = plan["units"].as_array().unwrap()[1..]
        .iter()
        .map(|u| json!({"unit": u["id"], "success": true}))
        .collect();
    let error = finalize_incomplete(&function, kept, &lost).await;
    assert!(error.contains("3 of 4 units"), "{error}");

    // The CLI's lake starts where the other two are now.
    copy_dir(&whole.join("publish"), &by_cli.join("publish"));

    // Changes in CDF, synced once; every lake gets the same raw tables and publishes them
    // incrementally.
    lab.update_and_delete_pumps(PUMPS);
    sync(&fanned_context).await;
    copy_raw(&fanned, &whole);
    copy_raw(&fanned, &by_cli);
    let second_whole = whole_run(&whole, &whole_yaml).await;
    assert!(second_whole.files_incremental > 0, "{second_whole:#?}");

    let plan = invoke(&function, json!({"plan": true})).await;
    let first = &plan["units"][0];
    assert_eq!(
        first["staleness"], "behind",
        "changed views first: {plan:#}"
    );
    let (_, finalize) = fan_out_through_the_function(&function).await;
    assert_eq!(finalize["units"]["succeeded"], 4, "{finalize:#}");
    assert_same_figures(&finalize, &second_whole);
    assert_same_publish("incremental merges", &fanned, &whole);

    let config = lab.dir.path().join("cli.yaml");
    std::fs::write(&config, cli_yaml).expect("CLI configuration");
    let report = tokio::task::spawn_blocking(move || fan_out_by_cli(&config, 2))
        .await
        .expect("CLI task");
    assert_eq!(report["units"]["planned"], 4, "{report:#}");
    assert_eq!(report["units"]["succeeded"], 4, "{report:#}");
    assert_same_figures(&report, &second_whole);
    assert_same_publish("child processes", &by_cli, &whole);
}

/// `snapshot --fan-out <workers>`: its report (the finalize step's).
fn fan_out_by_cli(config: &PathBuf, workers: usize) -> Value {
    let (report, stderr) = fan_out_by_cli_with_log(config, workers);
    assert!(stderr.contains(&format!("[view:{MODEL}:Pump]")), "{stderr}");
    report
}

/// `snapshot --fan-out <workers>`: its report and its log (each child's lines marked with
/// its unit).
fn fan_out_by_cli_with_log(config: &PathBuf, workers: usize) -> (Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cdf-s3-replicator"))
        .args(["snapshot", "--config"])
        .arg(config)
        .args(["--fan-out", &workers.to_string()])
        .output()
        .expect("the CLI runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{}: {stderr}", output.status);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "a JSON report ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (report, stderr)
}

/// A view whose nodes are in parts fans out one unit per part (and one for its single
/// edges file); finalize writes its manifest from what the units left. The result equals a
/// whole run's, object for object, as full rebuilds and as incremental merges; a part whose
/// unit did not run leaves the view unpublished (the run fails as retryable, nothing else
/// changes), and the next run completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_in_parts_fans_out_one_unit_per_part() {
    const PART_ROWS: &str = "  snapshot:\n    part-rows: 8\n";
    let lab = Lab::start(PUMPS, None).await;
    let Lake::Local(fanned) = lab.lake.clone() else {
        unreachable!()
    };
    let whole = lab.dir.path().join("whole");
    let (fanned_yaml, whole_yaml) = (
        yaml_with(&lab, &fanned, PART_ROWS),
        yaml_with(&lab, &whole, PART_ROWS),
    );
    let fanned_context = context_for(&fanned_yaml).await;
    sync(&fanned_context).await;
    copy_raw(&fanned, &whole);
    whole_run(&whole, &whole_yaml).await;
    let (function, _) = snapshot_function(fanned_yaml);

    let plan = invoke(&function, json!({"plan": true})).await;
    let units: Vec<Value> = plan["units"].as_array().expect("units").clone();
    let pump: Vec<&Value> = units.iter().filter(|u| u["view"] == "Pump").collect();
    let pump_ids: Vec<&str> = pump.iter().map(|u| u["id"].as_str().unwrap()).collect();
    let count_of = |file: &str| {
        pump.iter()
            .filter(|u| u["kind"] == "part" && u["file"] == file)
            .map(|u| u["part"][1].as_u64().unwrap())
            .max()
            .unwrap_or(1)
    };
    let count = count_of("nodes");
    assert_eq!(count, 4, "30 pumps at 8 rows per part: {pump_ids:?}");
    let edges = count_of("edges");
    assert!(edges > 1, "the pumps' work order edges: {pump_ids:?}");
    let mut expected: Vec<String> = (0..count)
        .map(|i| format!("part:{MODEL}:Pump:nodes:{i}-of-{count}"))
        .collect();
    expected.extend((0..edges).map(|i| format!("part:{MODEL}:Pump:edges:{i}-of-{edges}")));
    assert_eq!(pump_ids, expected, "one unit per part");
    // A view with nodes in parts and no edge streams: its empty edges file is a unit too.
    let files: Vec<&str> = units
        .iter()
        .filter(|u| u["kind"] == "file")
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert!(files.iter().any(|id| id.ends_with(":edges")), "{units:#?}");
    for unit in &pump {
        assert_eq!(unit["staleness"], "unpublished", "{unit}");
    }

    // Every unit but one part: the view is not published, and the run says so.
    let skipped = format!("part:{MODEL}:Pump:nodes:2-of-{count}");
    let ids: Vec<String> = units
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .filter(|id| *id != skipped)
        .collect();
    let responses = invoke_units(&function, &ids).await;
    let mut outcomes: Vec<Value> = responses.iter().map(|r| r["outcome"].clone()).collect();
    for outcome in &outcomes {
        assert_eq!(outcome["success"], json!(true), "{outcome:#}");
    }
    let pump_dir = fanned.join("publish/plant_schema/PlantModel/1/Pump");
    assert!(
        !pump_dir.join("_manifest.json").exists(),
        "a unit of one part writes no manifest"
    );
    outcomes.push(json!({"unit": skipped, "success": false,
        "error": {"errorType": "States.Timeout", "message": "the unit timed out"}}));
    finalize_incomplete(&function, outcomes, &skipped).await;
    // The manifest names what is in place: the edges' parts, not the nodes'.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(pump_dir.join("_manifest.json")).unwrap()).unwrap();
    assert!(manifest["files"]["nodes"].is_null(), "{manifest:#}");
    assert_eq!(
        manifest["files"]["edges"]["parts"]["count"],
        json!(edges),
        "{manifest:#}"
    );

    // The next run publishes it: the parts already built are current and skipped.
    let (units, finalize) = fan_out_through_the_function(&function).await;
    assert_eq!(
        finalize["units"]["planned"],
        json!(units.len()),
        "{finalize:#}"
    );
    assert_eq!(
        finalize["units"]["succeeded"],
        json!(units.len()),
        "{finalize:#}"
    );
    assert_same_publish("parts, full rebuilds", &fanned, &whole);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(pump_dir.join("_manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["files"]["nodes"]["parts"]["count"],
        json!(count),
        "{manifest:#}"
    );

    // Changes: every part merges its own, and the result still equals a whole run's.
    lab.update_and_delete_pumps(PUMPS);
    sync(&fanned_context).await;
    copy_raw(&fanned, &whole);
    let second_whole = whole_run(&whole, &whole_yaml).await;
    assert!(second_whole.files_incremental > 0, "{second_whole:#?}");
    let plan = invoke(&function, json!({"plan": true})).await;
    assert_eq!(plan["units"][0]["staleness"], "behind", "{plan:#}");
    let (_, finalize) = fan_out_through_the_function(&function).await;
    assert!(
        finalize["snapshot"]["filesIncremental"].as_u64().unwrap() > 0,
        "{finalize:#}"
    );
    assert_same_publish("parts, incremental merges", &fanned, &whole);
}

/// The first build of a view in parts is sharded: the plan records a build, S shard units
/// each sort their range of raw files into one run per part, and each part unit merges its
/// runs instead of reading the whole raw table. The result equals a whole run's, object for
/// object; finalize removes the build. Without one of the shards, the parts read the raw
/// table themselves, with the same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_build_in_parts_is_sharded_by_raw_file() {
    const EXTRACTOR: &str =
        "  subscription-batch-size: 5\n  ingest-batch-size: 5\n  snapshot:\n    part-rows: 8\n";
    let lab = Lab::start(PUMPS, None).await;
    let Lake::Local(sharded) = lab.lake.clone() else {
        unreachable!()
    };
    let whole = lab.dir.path().join("whole");
    let partial = lab.dir.path().join("partial");
    let (sharded_yaml, whole_yaml, partial_yaml) = (
        yaml_with(&lab, &sharded, EXTRACTOR),
        yaml_with(&lab, &whole, EXTRACTOR),
        yaml_with(&lab, &partial, EXTRACTOR),
    );
    // Updates and deletions in later raw files than the instances they change: a shard
    // must not resurrect what a later shard deletes.
    let context = context_for(&sharded_yaml).await;
    sync(&context).await;
    lab.update_and_delete_pumps(PUMPS);
    sync(&context).await;
    copy_raw(&sharded, &whole);
    copy_raw(&sharded, &partial);
    whole_run(&whole, &whole_yaml).await;

    let (function, _) = snapshot_function(sharded_yaml);
    let plan = invoke(&function, json!({"plan": true})).await;
    let shards: Vec<&Value> = plan["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .filter(|u| u["view"] == "Pump" && u["file"] == "nodes")
        .collect();
    assert!(
        shards.len() >= 2,
        "the pumps' raw files in several shards: {plan:#}"
    );
    for (index, shard) in shards.iter().enumerate() {
        assert_eq!(shard["kind"], "shard", "{shard}");
        assert_eq!(shard["shard"], json!([index, shards.len()]), "{shard}");
        let id = shard["id"].as_str().unwrap();
        assert!(
            id.starts_with(&format!("shard:{MODEL}:Pump:nodes:")),
            "{id}"
        );
    }
    let build_dir = sharded.join("_work/shards/plant_schema/PlantModel/1/Pump/nodes");
    assert_eq!(files_under(&build_dir), 1, "the plan records the build");

    // The shards, then the units: each part merges its runs.
    run_shards(&function, &plan, None).await;
    let units: Vec<String> = plan["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    let responses = invoke_units(&function, &units).await;
    let pump_part = units
        .iter()
        .position(|id| id.starts_with(&format!("part:{MODEL}:Pump:nodes:")))
        .expect("a part unit of the pumps' nodes");
    let file = &responses[pump_part]["snapshot"]["views"][0]["files"][0];
    assert_eq!(file["action"], "rebuilt", "{file:#}");
    assert!(
        file["reason"]
            .as_str()
            .unwrap_or("")
            .contains("rebuild shards"),
        "the part was merged from the shards' runs: {file:#}"
    );
    assert_eq!(file["rowsRead"], json!(0), "no raw row read: {file:#}");
    let outcomes: Vec<Value> = responses.iter().map(|r| r["outcome"].clone()).collect();
    let finalize = invoke(
        &function,
        json!({"finalize": true, "maintenance": false, "outcomes": outcomes}),
    )
    .await;
    assert_eq!(
        finalize["units"]["succeeded"],
        json!(units.len()),
        "{finalize:#}"
    );
    assert_same_publish("sharded first build", &sharded, &whole);
    assert_eq!(files_under(&build_dir), 0, "finalize removes the build");

    // One shard never ran: the parts of that kind read the raw table themselves.
    let (function, _) = snapshot_function(partial_yaml);
    let plan = invoke(&function, json!({"plan": true})).await;
    let skipped = plan["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["view"] == "Pump" && u["file"] == "nodes")
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .expect("a shard of the pumps' nodes");
    run_shards(&function, &plan, Some(&skipped)).await;
    // A new plan continues the build: only the shard that did not run is listed again.
    let again = invoke(&function, json!({"plan": true})).await;
    let left: Vec<&str> = again["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["view"] == "Pump" && u["file"] == "nodes")
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(left, [skipped.as_str()], "{again:#}");
    let units: Vec<String> = plan["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    let responses = invoke_units(&function, &units).await;
    let file = &responses[pump_part]["snapshot"]["views"][0]["files"][0];
    assert!(
        !file["reason"]
            .as_str()
            .unwrap_or("")
            .contains("rebuild shards"),
        "{file:#}"
    );
    assert!(file["rowsRead"].as_u64().unwrap() > 0, "{file:#}");
    let outcomes: Vec<Value> = responses.iter().map(|r| r["outcome"].clone()).collect();
    invoke(
        &function,
        json!({"finalize": true, "maintenance": false, "outcomes": outcomes}),
    )
    .await;
    assert_same_publish("a shard missing", &partial, &whole);

    // The CLI runs the shards first too, in child processes.
    let by_cli = lab.dir.path().join("cli");
    copy_raw(&sharded, &by_cli);
    let config = lab.dir.path().join("cli.yaml");
    std::fs::write(&config, yaml_with(&lab, &by_cli, EXTRACTOR)).expect("CLI configuration");
    let (report, stderr) = tokio::task::spawn_blocking(move || fan_out_by_cli_with_log(&config, 2))
        .await
        .expect("CLI task");
    assert!(
        stderr.contains(&format!("[shard:{MODEL}:Pump:nodes:")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("[part:{MODEL}:Pump:nodes:0-of-")),
        "{stderr}"
    );
    assert_eq!(report["units"]["failed"], 0, "{report:#}");
    assert_same_publish("sharded by the CLI", &by_cli, &whole);
}
