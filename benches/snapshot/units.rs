//! `--units`: the parts of the one-process full rebuild, rebuilt again the way a fanned-out
//! run builds them: the plan of a sharded build, S shard units, K part units, the unit of
//! the (empty) edges file and the manifest, each in its own process (one after the other: the figures are per unit), then
//! a check that the parts hold exactly the rows of the one-process build.

use std::path::Path;

use cdf_s3_replicator::lake::{Destination, InstanceKind};
use cdf_s3_replicator::snapshot::units::direct;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::concat_batches;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use super::{Args, fail, print_phase, published, run_own_phase, settings, target};

/// Runs the unit phases after the one-process phases and prints the comparison.
pub(super) fn orchestrate(args: &Args, exe: &Path, threads: usize, results: &[Value]) {
    println!("units: a sharded rebuild of the same parts, one process per unit");
    let run = |phase: &str, extra: &[String]| {
        let report = run_own_phase(args, exe, threads, phase, extra);
        print_phase(&report);
        report
    };
    run("units-reset", &[]);
    let plan = run("units-plan", &[]);
    let build = plan["detail"]["build"]
        .as_str()
        .unwrap_or_else(|| fail("the plan started no shard build"))
        .to_owned();
    let shards: Vec<u64> = plan["detail"]["shards"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let extra = ["--build".to_owned(), build];
    let shard_reports: Vec<Value> = shards
        .iter()
        .map(|s| run(&format!("units-shard-{s}"), &extra))
        .collect();
    let parts = args.parts.unwrap_or(1);
    let part_reports: Vec<Value> = (0..parts)
        .map(|i| run(&format!("units-part-{i}"), &[]))
        .collect();
    run("units-edges", &[]);
    let assemble = run("units-assemble", &[]);
    let check = run("units-check", &[]);
    for report in &part_reports {
        let reason = report["detail"]["reason"].as_str().unwrap_or("");
        if !reason.contains("rebuild shards") {
            fail(&format!("a part unit did not use the shards: {report}"));
        }
    }

    let seconds = |r: &Value| r["seconds"].as_f64().unwrap_or(f64::NAN);
    let stats = |label: &str, reports: &[Value]| {
        let max = |key: &str| {
            reports
                .iter()
                .filter_map(|r| r[key].as_f64())
                .fold(0.0, f64::max)
        };
        let total: f64 = reports.iter().map(seconds).sum();
        let requests = reports
            .iter()
            .filter_map(|r| r["requests"]["total"].as_u64());
        println!(
            "  {label:<18} {:>3} units: slowest {:>7.2} s, all {:>8.2} s; peak RSS {:>7.1} MiB; \
             peak spill {:>7.1} MiB; S3 requests per unit at most {}, all {}",
            reports.len(),
            max("seconds"),
            total,
            max("peak_rss_mib"),
            max("peak_spill_mib"),
            requests.clone().max().unwrap_or(0),
            requests.sum::<u64>(),
        );
        (max("seconds"), total)
    };
    println!("units summary:");
    let (shard_max, shard_total) = stats("shards", &shard_reports);
    let (part_max, part_total) = stats("parts", &part_reports);
    let plan_s = seconds(&plan);
    let assemble_s = seconds(&assemble);
    let critical = plan_s + shard_max + part_max + assemble_s;
    let serial = plan_s + shard_total + part_total + assemble_s;
    let one_process = results
        .iter()
        .find(|r| r["phase"] == "full")
        .map_or(f64::NAN, seconds);
    println!(
        "  one process, {parts} parts: {one_process:.2} s; units with a worker each (plan + \
         slowest shard + slowest part + manifest): {critical:.2} s ({:.2}x); all units one \
         after the other: {serial:.2} s ({:.2}x)",
        critical / one_process,
        serial / one_process
    );
    println!("  units equal the one-process parts: {}", check["detail"]);
}

/// The unit phases, in the child process.
pub(super) async fn run_phase(destination: &Destination, args: &Args, phase: &str) -> Value {
    let settings = settings(args);
    let target = target();
    let parts = u32::try_from(args.parts.unwrap_or(1)).unwrap_or(1);
    let index = |prefix: &str| -> Option<u32> { phase.strip_prefix(prefix)?.parse().ok() };
    if phase == "units-reset" {
        return reset(destination);
    }
    if phase == "units-plan" {
        let planned =
            direct::plan_shards(destination, &target, &settings, InstanceKind::Nodes, parts)
                .await
                .unwrap_or_else(|e| fail(&e.to_string()));
        let (build, shards) = planned.unwrap_or_else(|| fail("no raw files to shard"));
        return json!({"build": build, "shards": shards});
    }
    if let Some(shard) = index("units-shard-") {
        let build = args
            .build
            .as_deref()
            .unwrap_or_else(|| fail("a shard phase needs --build"));
        let (read, written) = direct::sort_shard(
            destination,
            &target,
            &settings,
            InstanceKind::Nodes,
            build,
            shard,
        )
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
        return json!({"rows_read": read, "run_rows": written});
    }
    if let Some(part) = index("units-part-") {
        let report = direct::publish_part(
            destination,
            &target,
            &settings,
            InstanceKind::Nodes,
            part,
            parts,
        )
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
        let nodes = report
            .file(InstanceKind::Nodes)
            .unwrap_or_else(|| fail("no nodes report"));
        return json!({"action": nodes.action, "rows": nodes.rows, "rows_read": nodes.rows_read,
                      "reason": nodes.reason});
    }
    if phase == "units-edges" {
        // The view's other file (empty here): a unit of its own in a fanned-out run.
        let report = direct::publish_file(destination, &target, &settings, InstanceKind::Edges)
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        return json!({"success": report.is_success()});
    }
    if phase == "units-assemble" {
        let report = direct::assemble(destination, &target, &settings, parts, 1)
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        if !report.is_success() {
            fail(&format!("assembling the manifest: {report:?}"));
        }
        return json!({"manifest_written": report.manifest_written});
    }
    if phase == "units-check" {
        return check(destination);
    }
    fail(&format!("unknown phase {phase}"))
}

/// Keeps the one-process parts aside (`publish-full`) and empties the publish folder, so
/// that the units build every part anew.
fn reset(destination: &Destination) -> Value {
    let (ours, kept) = folders(destination);
    if kept.exists() {
        std::fs::remove_dir_all(&kept).unwrap_or_else(|e| fail(&format!("{e}")));
    }
    std::fs::rename(&ours, &kept).unwrap_or_else(|e| fail(&format!("keeping the parts: {e}")));
    json!({"kept": kept.display().to_string()})
}

/// The view's publish folder and where the one-process parts are kept.
fn folders(destination: &Destination) -> (std::path::PathBuf, std::path::PathBuf) {
    let Destination::Local(local) = destination else {
        fail("the bench writes to a local directory")
    };
    let ours = local.root().join(published(destination, ""));
    let ours = ours.components().collect::<std::path::PathBuf>();
    let kept = ours.with_file_name(format!(
        "{}-one-process",
        ours.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ));
    (ours, kept)
}

/// Compares every part of the units' build with the one-process build, row for row.
fn check(destination: &Destination) -> Value {
    let (ours, kept) = folders(destination);
    let (mine, theirs) = (
        part_names(&ours.join("nodes")),
        part_names(&kept.join("nodes")),
    );
    if mine != theirs {
        fail(&format!("parts {mine:?} against {theirs:?}"));
    }
    // One pair of parts in memory at a time: a folder of 50M rows does not fit.
    let mut rows = 0;
    for name in &mine {
        let batch = all_rows(&ours.join("nodes").join(name));
        if batch.columns() != all_rows(&kept.join("nodes").join(name)).columns() {
            fail(&format!("part {name} differs from the one-process build"));
        }
        rows += batch.num_rows();
    }
    json!({"equal": true, "parts": mine.len(), "rows": rows})
}

/// The part files of a folder, by name.
fn part_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    names.sort();
    names
}

/// All rows of a Parquet file, as one batch.
fn all_rows(path: &Path) -> RecordBatch {
    let name = path.display();
    let file = std::fs::File::open(path).unwrap_or_else(|e| fail(&format!("{name}: {e}")));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| fail(&format!("{name}: {e}")));
    let schema = reader.schema().clone();
    let batches: Vec<RecordBatch> = reader
        .build()
        .unwrap_or_else(|e| fail(&format!("{name}: {e}")))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| fail(&format!("{name}: {e}")));
    concat_batches(&schema, &batches).unwrap_or_else(|e| fail(&e.to_string()))
}
