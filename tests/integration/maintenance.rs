//! Table maintenance on synced tables: compaction keeps every version's rows and the arrival
//! order, vacuum deletes only what compaction replaced, and compaction next to a running
//! sync (local directory and S3 server) loses and duplicates nothing.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cdf_emulator::sample_model::{self, MODEL, MODEL_VERSION, SCHEMA_SPACE};
use cdf_s3_replicator::context::Context;
use cdf_s3_replicator::jobs;
use cdf_s3_replicator::lake::{
    CompactionInfo, CompactionOptions, CompactionOutcome, InstanceKind, LakeTable, ModelRef,
    VersionChanges, ViewFolder,
};
use cdf_s3_replicator::maintenance::{MaintenanceOptions, MaintenanceSummary, TableStatus};
use cdf_s3_replicator::snapshot::SnapshotOptions;
use cdf_s3_replicator::sync::SyncOptions;
use cdf_s3_replicator::sync::summary::RunSummary;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{Lab, Lake, neighbour_commits, published_file_spec, python};

/// Every table of the sample model: (view folder, kind, view whose properties it holds).
const TABLES: [(&str, &str, &str); 5] = [
    ("Site", "nodes", "Site"),
    ("Pump", "nodes", "Pump"),
    ("WorkOrder", "nodes", "WorkOrder"),
    ("Pump", "edges", "PumpWorkOrder"),
    ("PumpWorkOrder", "edges", "PumpWorkOrder"),
];

/// One commit per page of ten: many small files.
const TINY_BATCHES: &str = "  subscription-batch-size: 10\n  ingest-batch-size: 10\n  parallelism: 2\n  maintenance:\n    compact-min-files: 2\n    checkpoint-interval: 5\n";

fn slice() -> SyncOptions {
    SyncOptions::until(Instant::now() + Duration::from_secs(300))
}

fn only(compact: bool, checkpoint: bool, vacuum: bool) -> MaintenanceOptions {
    MaintenanceOptions {
        compact,
        checkpoint,
        vacuum,
        ..MaintenanceOptions::default()
    }
}

async fn sync_ok(context: &Context) -> RunSummary {
    let summary = jobs::sync(&context.sync_job(), &slice()).await;
    assert!(summary.is_success(), "{summary:#?}");
    summary
}

async fn open_table(context: &Context, folder: &str, kind: &str) -> LakeTable {
    let model = ModelRef::new(SCHEMA_SPACE, MODEL, MODEL_VERSION).unwrap();
    let kind = if kind == "nodes" {
        InstanceKind::Nodes
    } else {
        InstanceKind::Edges
    };
    let url = context
        .destination
        .raw_table_url(&model, &ViewFolder::plain(folder).unwrap(), kind)
        .unwrap();
    let write_options = context.sync_job().streams.write_options;
    LakeTable::open(&context.destination, url, write_options)
        .await
        .unwrap()
}

fn compaction_commits(log: &[VersionChanges]) -> Vec<(&VersionChanges, CompactionInfo)> {
    log.iter()
        .filter_map(|c| CompactionInfo::of_commit(c).map(|info| (c, info)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Independent readers (Python `deltalake`, DuckDB, pyarrow)
// ---------------------------------------------------------------------------------------

/// Reads versions, the latest version with DuckDB, or single Parquet files. Rows are
/// compared as canonical JSON (keys sorted, null values left out, so that a column a file
/// lacks and a null compare equal); a version is reduced to its row count and the digest
/// of its sorted rows, i.e. a row multiset.
const READER: &str = r#"
import hashlib, json, os, sys

def canon(row):
    return json.dumps({k: v for k, v in row.items() if v is not None}, sort_keys=True, default=str)

def multiset(rows):
    lines = sorted(canon(r) for r in rows)
    return {"rows": len(lines), "digest": hashlib.sha256("\n".join(lines).encode()).hexdigest()}

def versions(req):
    from deltalake import DeltaTable
    table = DeltaTable(req["uri"], storage_options=req["storage_options"] or None)
    out = {}
    for version in req["versions"]:
        table.load_as_version(version)
        out[str(version)] = multiset(table.to_pyarrow_table().to_pylist())
    return out

def duckdb_latest(req):
    import duckdb
    con = duckdb.connect()
    ext_dir = os.environ.get("CDF_S3_TEST_DUCKDB_EXTENSION_DIR")
    if ext_dir:
        con.execute(f"SET extension_directory = '{ext_dir}'")
    con.execute("LOAD delta")
    uri = req["uri"]
    if uri.startswith("s3://"):
        con.execute("LOAD httpfs")
        con.execute("LOAD aws")
        endpoint = req["storage_options"]["AWS_ENDPOINT_URL"].split("://", 1)[1]
        con.execute(
            "CREATE SECRET s3 (TYPE s3, KEY_ID 'testing', SECRET 'testing', "
            f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')")
    return multiset(con.execute(f"SELECT * FROM delta_scan('{uri}')").fetch_arrow_table().to_pylist())

def files(req):
    import pyarrow.parquet as pq
    return [[canon(r) for r in pq.read_table(path).to_pylist()] for path in req["paths"]]

command, path = sys.argv[1], sys.argv[2]
with open(path, encoding="utf-8") as f:
    request = json.load(f)
print(json.dumps({"versions": versions, "duckdb_latest": duckdb_latest, "files": files}[command](request)))
sys.stdout.flush()
# Skip interpreter teardown: native thread pools (pyarrow, the deltalake runtime) sometimes
# abort while shutting down, after the answer is complete.
os._exit(0)
"#;

fn read(lab: &Lab, command: &str, request: Value) -> Value {
    let python = python().expect("python reader");
    let dir = lab.dir.path();
    let script = dir.join("maintenance_reader.py");
    std::fs::write(&script, READER).unwrap();
    let request_file = dir.join(format!("maintenance-{:016x}.json", rand::random::<u64>()));
    std::fs::write(&request_file, request.to_string()).unwrap();
    let output = Command::new(python)
        .arg(&script)
        .arg(command)
        .arg(&request_file)
        .output()
        .expect("running the Python reader");
    assert!(
        output.status.success(),
        "Python reader {command} failed ({}, {} bytes of output): {}\nrequest: {request}",
        output.status,
        output.stdout.len(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("reader prints JSON")
}

/// `{version: {rows, digest}}` of the given versions, read with the Python `deltalake`.
fn version_multisets(
    lab: &Lab,
    folder: &str,
    kind: &str,
    versions: &[u64],
) -> BTreeMap<u64, Value> {
    let request = json!({
        "uri": lab.lake.raw_table_uri(folder, kind),
        "storage_options": lab.lake.storage_options(),
        "versions": versions,
    });
    let out = read(lab, "versions", request);
    versions
        .iter()
        .map(|v| (*v, out[v.to_string()].clone()))
        .collect()
}

fn duckdb_latest(lab: &Lab, folder: &str, kind: &str) -> Value {
    let request = json!({
        "uri": lab.lake.raw_table_uri(folder, kind),
        "storage_options": lab.lake.storage_options(),
    });
    read(lab, "duckdb_latest", request)
}

fn local_table_dir(lab: &Lab, folder: &str, kind: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(lab.lake.raw_table_uri(folder, kind))
}

fn assert_success(summary: &MaintenanceSummary) {
    assert!(summary.is_success(), "{summary:#?}");
    assert_eq!(summary.tables_total, TABLES.len(), "{summary:#?}");
}

/// Checks every compaction commit of a table against the log and the files: it carries no
/// txn, rewrites with `dataChange=false`, replaced files of exactly the stream and generation
/// it names, only data of that stream lies inside its version range, and the merged file
/// holds the replaced rows in arrival order (local lakes only: the files are read by path).
async fn check_compaction_commits(
    lab: &Lab,
    table: &LakeTable,
    folder: &str,
    kind: &str,
) -> Vec<CompactionInfo> {
    let label = format!("{folder}/{kind}");
    let log = table.changes_since(None).await.unwrap();
    let mut infos = Vec::new();
    for (commit, info) in compaction_commits(&log) {
        assert!(commit.txns.is_empty(), "{label}: no txn in a compaction");
        assert!(commit.stream_commit.is_none());
        assert_eq!(commit.operation.as_deref(), Some("OPTIMIZE"));
        assert_eq!(commit.adds.len(), 1);
        assert_eq!(commit.removes.len(), info.source_files);
        assert!(
            commit
                .adds
                .iter()
                .chain(&commit.removes)
                .all(|f| !f.data_change)
        );
        let removed: HashSet<&str> = commit.removes.iter().map(|r| r.path.as_str()).collect();
        // Where the replaced files came from, in arrival order: the sync commits of the
        // range, or earlier compactions of it.
        let mut sources = Vec::new();
        for source in &log[info.first_version as usize..commit.version as usize] {
            let added: Vec<&str> = source
                .adds
                .iter()
                .filter(|a| removed.contains(a.path.as_str()))
                .map(|a| a.path.as_str())
                .collect();
            if added.is_empty() {
                continue;
            }
            match (CompactionInfo::of_commit(source), &source.stream_commit) {
                (Some(earlier), _) => {
                    assert_eq!(
                        (&earlier.app_id, earlier.generation),
                        (&info.app_id, info.generation),
                        "{label}"
                    );
                    assert!(
                        earlier.first_version >= info.first_version
                            && earlier.last_version <= info.last_version
                    );
                }
                (None, Some(stream)) => {
                    assert!(source.version <= info.last_version, "{label}");
                    assert_eq!(stream.app_id, info.app_id, "{label}");
                    assert_eq!(stream.metadata.generation, Some(info.generation), "{label}");
                }
                (None, None) => panic!("{label}: a replaced file of an unknown commit"),
            }
            sources.push((
                CompactionInfo::of_commit(source).map_or(source.version, |e| e.first_version),
                added,
            ));
        }
        sources.sort_by_key(|(first, _)| *first);
        let sources: Vec<&str> = sources.into_iter().flat_map(|(_, paths)| paths).collect();
        assert_eq!(sources.len(), info.source_files, "{label}");
        // No other stream's (or generation's) data arrived inside the range.
        for other in &log[info.first_version as usize..=info.last_version as usize] {
            if let Some(stream) = &other.stream_commit
                && other.adds.iter().any(|a| a.data_change)
            {
                assert_eq!(
                    stream.app_id, info.app_id,
                    "{label}: version {}",
                    other.version
                );
                assert_eq!(stream.metadata.generation, Some(info.generation), "{label}");
            }
        }
        if let Lake::Local(_) = lab.lake {
            let dir = local_table_dir(lab, folder, kind);
            if sources.iter().all(|p| dir.join(p).exists()) {
                let mut paths: Vec<String> = sources
                    .iter()
                    .map(|p| dir.join(p).display().to_string())
                    .collect();
                paths.push(dir.join(&commit.adds[0].path).display().to_string());
                let rows = read(lab, "files", json!({ "paths": paths }));
                let rows = rows.as_array().unwrap();
                let (merged, sources) = rows.split_last().unwrap();
                let concatenated: Vec<&Value> =
                    sources.iter().flat_map(|f| f.as_array().unwrap()).collect();
                let merged: Vec<&Value> = merged.as_array().unwrap().iter().collect();
                assert_eq!(
                    merged, concatenated,
                    "{label}: rows of {info:?} in arrival order"
                );
            }
        }
        infos.push(info);
    }
    infos
}

// ---------------------------------------------------------------------------------------
// Compaction keeps every version and the arrival order
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_version_and_the_arrival_order() {
    if python().is_none() {
        return;
    }
    const PUMPS: usize = 40;
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    let control = lab.emulator.control();
    control
        .apply_instances(sample_model::updates(PUMPS, 1))
        .unwrap();
    control
        .delete_instances(sample_model::deletions(PUMPS))
        .unwrap();
    sync_ok(&context).await;

    // Before: every version's row multiset, DuckDB's latest, the file count.
    let mut before = BTreeMap::new();
    for (folder, kind, _) in TABLES {
        let table = open_table(&context, folder, kind).await;
        let latest = table.version().unwrap();
        let versions: Vec<u64> = (0..=latest).collect();
        let files = table.active_files().unwrap().len();
        assert!(
            files >= 2,
            "{folder}/{kind}: tiny batches give several files"
        );
        before.insert(
            (folder, kind),
            (
                latest,
                files,
                version_multisets(&lab, folder, kind, &versions),
                duckdb_latest(&lab, folder, kind),
            ),
        );
    }

    // A dry run plans without writing.
    let dry = jobs::maintenance(
        &context,
        &MaintenanceOptions {
            dry_run: true,
            ..MaintenanceOptions::default()
        },
    )
    .await;
    assert_success(&dry);
    assert!(dry.files_compacted > 0, "{dry:#?}");
    assert!(dry.tables.iter().all(|t| t.status == TableStatus::Planned));
    // A run whose deadline has passed defers every table.
    let late = jobs::maintenance(
        &context,
        &MaintenanceOptions {
            deadline: Some(Instant::now()),
            ..MaintenanceOptions::default()
        },
    )
    .await;
    assert_eq!(late.tables_deferred, TABLES.len(), "{late:#?}");
    for (folder, kind, _) in TABLES {
        let table = open_table(&context, folder, kind).await;
        assert_eq!(
            table.version(),
            Some(before[&(folder, kind)].0),
            "dry and late runs write nothing"
        );
    }

    let summary = jobs::maintenance(&context, &only(true, true, false)).await;
    assert_success(&summary);
    assert!(
        summary.files_compacted > summary.files_written,
        "{summary:#?}"
    );
    eprintln!("{}", summary.one_line());

    for (folder, kind, _) in TABLES {
        let (old_latest, old_files, old_versions, old_duckdb) = &before[&(folder, kind)];
        let label = format!("{folder}/{kind}");
        let report = summary
            .tables
            .iter()
            .find(|t| t.table.ends_with(&format!("views/{folder}/{kind}")))
            .unwrap_or_else(|| panic!("{label} in the summary"));
        assert_eq!(report.status, TableStatus::Done, "{report:#?}");
        let mut table = open_table(&context, folder, kind).await;
        let latest = table.version().unwrap();
        let files = table.active_files().unwrap().len();
        assert!(
            files < *old_files,
            "{label}: {old_files} files before, {files} after"
        );
        assert_eq!(files, report.files_after, "{label}");
        assert_eq!(
            old_files - report.files_compacted + report.files_written,
            files,
            "{label}"
        );
        // Every version that existed reads the same rows; every new version reads the
        // rows of the old latest.
        let versions: Vec<u64> = (0..=latest).collect();
        let now = version_multisets(&lab, folder, kind, &versions);
        for version in versions {
            let expected = &old_versions[&version.min(*old_latest)];
            assert_eq!(&now[&version], expected, "{label} version {version}");
        }
        assert_eq!(
            &duckdb_latest(&lab, folder, kind),
            old_duckdb,
            "{label} DuckDB"
        );
        if latest >= 4 {
            assert!(report.checkpoint_version.is_some(), "{report:#?}");
            assert_eq!(
                table.last_checkpoint_version().await.unwrap(),
                report.checkpoint_version
            );
        }

        let infos = check_compaction_commits(&lab, &table, folder, kind).await;
        assert_eq!(infos.len(), report.files_written, "{label}");
        // The table refreshes fine after the checkpoint.
        table.refresh().await.unwrap();
    }

    // The sync continues over compaction commits, and a second compaction merges the new
    // files with the earlier merged ones.
    control
        .apply_instances(sample_model::updates(PUMPS, 2))
        .unwrap();
    sync_ok(&context).await;
    let again = jobs::maintenance(&context, &only(true, true, false)).await;
    assert_success(&again);
    let mut merged_again = false;
    for (folder, kind, _) in TABLES {
        let table = open_table(&context, folder, kind).await;
        let infos = check_compaction_commits(&lab, &table, folder, kind).await;
        // A merged file that is still small is merged again with the newer files.
        merged_again |= infos
            .windows(2)
            .any(|w| w[1].first_version <= w[0].first_version);
    }
    assert!(merged_again, "{again:#?}");
    lab.assert_all_tables_match("after two compactions");
    // An idle sync still writes nothing: its resume point survived the compactions.
    let idle = sync_ok(&context).await;
    assert_eq!((idle.rows, idle.commits), (0, 0), "{idle:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generations_are_compacted_apart() {
    if python().is_none() {
        return;
    }
    const PUMPS: usize = 40;
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    // A forced resync starts generation 2 of the Pump streams with a full backfill; the
    // rows of generation 1 stay in the table as history.
    let resync = SyncOptions {
        force_resync: vec!["Pump".into()],
        ..slice()
    };
    let summary = jobs::sync(&context.sync_job(), &resync).await;
    assert!(summary.is_success(), "{summary:#?}");
    assert!(
        summary.streams.iter().any(|s| s.generation == 2),
        "{summary:#?}"
    );

    let table = open_table(&context, "Pump", "nodes").await;
    let latest = table.version().unwrap();
    let versions: Vec<u64> = (0..=latest).collect();
    let before = version_multisets(&lab, "Pump", "nodes", &versions);

    let compacted = jobs::maintenance(&context, &only(true, false, false)).await;
    assert_success(&compacted);
    let table = open_table(&context, "Pump", "nodes").await;
    let infos = check_compaction_commits(&lab, &table, "Pump", "nodes").await;
    let generations: HashSet<u64> = infos.iter().map(|i| i.generation).collect();
    assert_eq!(generations, HashSet::from([1, 2]), "{infos:#?}");
    let now = version_multisets(&lab, "Pump", "nodes", &versions);
    // (The truth comparison does not apply here: a resync writes every row again, in the
    // new generation, which only the snapshot's generation filter resolves.)
    assert_eq!(now, before);
}

// ---------------------------------------------------------------------------------------
// Vacuum
// ---------------------------------------------------------------------------------------

fn parquet_files(dir: &Path) -> HashSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".parquet"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_with_zero_retention_deletes_only_replaced_files() {
    if python().is_none() {
        return;
    }
    const PUMPS: usize = 30;
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    let compacted = jobs::maintenance(&context, &only(true, false, false)).await;
    assert_success(&compacted);
    assert!(compacted.files_compacted > 0);

    let mut latest = BTreeMap::new();
    for (folder, kind, _) in TABLES {
        let table = open_table(&context, folder, kind).await;
        let version = table.version().unwrap();
        latest.insert(
            (folder, kind),
            (
                version_multisets(&lab, folder, kind, &[version])[&version].clone(),
                duckdb_latest(&lab, folder, kind),
            ),
        );
    }

    // With the configured retention (7 days) nothing is old enough.
    let kept = jobs::maintenance(&context, &only(false, false, true)).await;
    assert_success(&kept);
    assert_eq!(kept.files_vacuumed, 0, "{kept:#?}");

    let zero = MaintenanceOptions {
        vacuum_retention: Some(Duration::ZERO),
        ..only(false, false, true)
    };
    let dry = jobs::maintenance(
        &context,
        &MaintenanceOptions {
            dry_run: true,
            ..zero.clone()
        },
    )
    .await;
    assert_success(&dry);
    assert_eq!(dry.files_vacuumed, compacted.files_compacted, "{dry:#?}");

    let mut before = BTreeMap::new();
    for (folder, kind, _) in TABLES {
        before.insert(
            (folder, kind),
            parquet_files(&local_table_dir(&lab, folder, kind)),
        );
    }
    let vacuumed = jobs::maintenance(&context, &zero).await;
    assert_success(&vacuumed);
    assert_eq!(
        vacuumed.files_vacuumed, compacted.files_compacted,
        "{vacuumed:#?}"
    );

    for (folder, kind, _) in TABLES {
        let label = format!("{folder}/{kind}");
        let dir = local_table_dir(&lab, folder, kind);
        let table = open_table(&context, folder, kind).await;
        let active: HashSet<String> = table
            .active_files()
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        let on_disk = parquet_files(&dir);
        assert_eq!(on_disk, active, "{label}: exactly the active files remain");
        let deleted: HashSet<&String> = before[&(folder, kind)].difference(&on_disk).collect();
        let log = table.changes_since(None).await.unwrap();
        let replaced: HashSet<&String> = compaction_commits(&log)
            .iter()
            .flat_map(|(c, _)| c.removes.iter().map(|r| &r.path))
            .collect();
        assert_eq!(
            deleted, replaced,
            "{label}: vacuum deleted the replaced files"
        );
        // Every commit file is still there: the log is kept for the table's log retention.
        assert_eq!(log.len() as u64, table.version().unwrap() + 1, "{label}");
        let version = table.version().unwrap();
        let (rows, duckdb) = &latest[&(folder, kind)];
        assert_eq!(
            &version_multisets(&lab, folder, kind, &[version])[&version],
            rows,
            "{label}"
        );
        assert_eq!(&duckdb_latest(&lab, folder, kind), duckdb, "{label} DuckDB");
    }
    assert_eq!(vacuumed.logs_deleted, 0);
    lab.assert_all_tables_match("after vacuum");
}

/// Sets a file's modification time `days` days back (local lakes only).
fn age(path: &Path, days: u32) {
    let status = Command::new("touch")
        .arg("-d")
        .arg(format!("{days} days ago"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_cleanup_keeps_the_retention_window() {
    if python().is_none() {
        return;
    }
    const PUMPS: usize = 30;
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    let checkpointed = jobs::maintenance(&context, &only(false, true, false)).await;
    assert_success(&checkpointed);
    lab.emulator
        .control()
        .apply_instances(sample_model::updates(PUMPS, 1))
        .unwrap();
    sync_ok(&context).await;

    let (folder, kind) = ("WorkOrder", "nodes");
    let table = open_table(&context, folder, kind).await;
    let checkpoint = table.last_checkpoint_version().await.unwrap().unwrap();
    let latest = table.version().unwrap();
    assert!(latest > checkpoint, "commits after the checkpoint");
    let rows = version_multisets(&lab, folder, kind, &[latest])[&latest].clone();
    let duckdb = duckdb_latest(&lab, folder, kind);
    // The commits up to the checkpoint become 40 days old: older than the table's log
    // retention (30 days), younger than a configured retention of 60 days.
    let log_dir = local_table_dir(&lab, folder, kind).join("_delta_log");
    for version in 0..=checkpoint {
        age(&log_dir.join(format!("{version:020}.json")), 40);
    }

    let long = MaintenanceOptions {
        vacuum_retention: Some(Duration::from_secs(60 * 24 * 3600)),
        ..only(false, false, true)
    };
    let kept = jobs::maintenance(&context, &long).await;
    assert_success(&kept);
    assert_eq!(
        kept.logs_deleted, 0,
        "younger than the configured retention"
    );

    let cleaned = jobs::maintenance(&context, &only(false, false, true)).await;
    assert_success(&cleaned);
    let report = cleaned
        .tables
        .iter()
        .find(|t| t.table.ends_with("views/WorkOrder/nodes"))
        .unwrap();
    // Commits older than the checkpoint go; the checkpoint's own commit and all later stay.
    assert_eq!(report.logs_deleted as u64, checkpoint, "{report:#?}");
    for version in 0..=latest {
        let exists = log_dir.join(format!("{version:020}.json")).exists();
        assert_eq!(exists, version >= checkpoint, "commit {version}");
    }

    // Readers start from the checkpoint; the sync resumes; compaction leaves alone what it
    // can no longer place in the log and still merges the newer files.
    assert_eq!(
        version_multisets(&lab, folder, kind, &[latest])[&latest],
        rows
    );
    assert_eq!(duckdb_latest(&lab, folder, kind), duckdb);
    let idle = sync_ok(&context).await;
    assert_eq!(idle.commits, 0, "{idle:#?}");
    let compacted = jobs::maintenance(&context, &only(true, false, false)).await;
    assert_success(&compacted);
    let table = open_table(&context, folder, kind).await;
    let log = table
        .changes_between(checkpoint, table.version().unwrap())
        .await
        .unwrap();
    for (_, info) in compaction_commits(&log) {
        assert!(
            info.first_version >= checkpoint,
            "{info:?} reaches before the readable log"
        );
    }
    let latest = table.version().unwrap();
    assert_eq!(
        version_multisets(&lab, folder, kind, &[latest])[&latest],
        rows
    );
    lab.assert_all_tables_match("after log cleanup");
}

// ---------------------------------------------------------------------------------------
// Races, step by step: a compaction against another compaction and against an append
// ---------------------------------------------------------------------------------------

async fn races(lake: Option<Lake>) {
    const PUMPS: usize = 30;
    let lab = Lab::start(PUMPS, lake).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    let options = CompactionOptions {
        min_files: 2,
        ..CompactionOptions::default()
    };

    // Two compactions of the same files: the second must not land (it would duplicate
    // every row of the group).
    let mut first = open_table(&context, "WorkOrder", "nodes").await;
    let mut second = open_table(&context, "WorkOrder", "nodes").await;
    let rows_before = row_count(&first);
    let plan_a = first.plan_compaction(&options).await.unwrap();
    let plan_b = second.plan_compaction(&options).await.unwrap();
    assert_eq!(plan_a, plan_b);
    let group = plan_a.groups.first().expect("a group to compact").clone();
    let prepared_a = first.prepare_compaction(&group).await.unwrap();
    let prepared_b = second.prepare_compaction(&group).await.unwrap();
    let loser_output = prepared_b.output_path();
    let won = first.commit_compaction(prepared_a, &options).await.unwrap();
    assert!(
        matches!(
            won,
            CompactionOutcome::Committed {
                delta_version: Some(_),
                conflicts: 0
            }
        ),
        "{won:?}"
    );
    let lost = second
        .commit_compaction(prepared_b, &options)
        .await
        .unwrap();
    match &lost {
        CompactionOutcome::Skipped { reason, conflicts } => {
            assert!(
                reason.contains("removed by a concurrent commit"),
                "{reason}"
            );
            assert_eq!(*conflicts, 1);
        }
        other => panic!("the second compaction of the same files landed: {other:?}"),
    }
    first.refresh().await.unwrap();
    assert_eq!(row_count(&first), rows_before, "no duplicated rows");
    assert!(
        !first
            .active_files()
            .unwrap()
            .iter()
            .any(|f| f.path == loser_output),
        "the loser's file is not referenced"
    );
    if let Lake::Local(_) = lab.lake {
        let dir = local_table_dir(&lab, "WorkOrder", "nodes");
        assert!(
            !dir.join(&loser_output).exists(),
            "the loser's file is deleted"
        );
    }

    // A sync commits between the rewrite and the compaction commit: the compaction
    // re-checks its files and lands after the append; the append is kept.
    let mut table = open_table(&context, "Pump", "nodes").await;
    let plan = table.plan_compaction(&options).await.unwrap();
    let group = plan.groups.first().expect("a group to compact").clone();
    let prepared = table.prepare_compaction(&group).await.unwrap();
    lab.emulator
        .control()
        .apply_instances(sample_model::updates(PUMPS, 1))
        .unwrap();
    let synced = sync_ok(&context).await;
    assert!(synced.commits > 0);
    let outcome = table.commit_compaction(prepared, &options).await.unwrap();
    match outcome {
        CompactionOutcome::Committed {
            delta_version: Some(version),
            conflicts,
        } => {
            assert!(conflicts >= 1, "the sync's commit came first");
            let log = table.changes_since(None).await.unwrap();
            assert!(
                log[..version as usize]
                    .iter()
                    .any(|c| c.stream_commit.is_some() && c.version > group.info.last_version),
                "the append landed before the compaction"
            );
        }
        other => panic!("expected the compaction to land after the append: {other:?}"),
    }
    if python().is_some() {
        lab.assert_all_tables_match("after step-by-step races");
    }
}

fn row_count(table: &LakeTable) -> u64 {
    table
        .active_files()
        .unwrap()
        .iter()
        .map(|f| f.num_records.expect("row count statistics"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_races_are_detected_local() {
    races(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_races_are_detected_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    races(Some(lake)).await;
}

// ---------------------------------------------------------------------------------------
// Compaction while a sync runs
// ---------------------------------------------------------------------------------------

async fn compaction_during_sync(lake: Option<Lake>) {
    const PUMPS: usize = 120;
    let lab = Lab::start(PUMPS, lake).await;
    let context = lab.context(TINY_BATCHES).await;
    let sync_context = context.clone();
    let syncing = tokio::spawn(async move { jobs::sync(&sync_context.sync_job(), &slice()).await });
    let mut rounds = 0;
    let mut committed = 0;
    let mut maintenance_errors = Vec::new();
    while !syncing.is_finished() {
        let summary = jobs::maintenance(&context, &only(true, false, false)).await;
        rounds += 1;
        committed += summary.files_written;
        maintenance_errors.extend(summary.tables.iter().flat_map(|t| t.errors.clone()));
    }
    let first = syncing.await.unwrap();
    assert!(first.is_success(), "{first:#?}");
    assert!(
        maintenance_errors.is_empty(),
        "compaction next to a sync: {maintenance_errors:#?}"
    );
    eprintln!("{rounds} maintenance rounds, {committed} compaction commits during the sync");

    // Again with changes, and with the sync and one compaction started together.
    lab.emulator
        .control()
        .apply_instances(sample_model::updates(PUMPS, 1))
        .unwrap();
    let (job, sync_options, compact_only) = (context.sync_job(), slice(), only(true, false, false));
    let (second, compaction) = tokio::join!(
        jobs::sync(&job, &sync_options),
        jobs::maintenance(&context, &compact_only)
    );
    assert!(second.is_success(), "{second:#?}");
    assert!(compaction.is_success(), "{compaction:#?}");

    // Both kinds of commit interleaved in some table: a sync commit after a compaction.
    let mut interleaved = false;
    for (folder, kind, _) in TABLES {
        let table = open_table(&context, folder, kind).await;
        let log = table.changes_since(None).await.unwrap();
        let first_compaction = compaction_commits(&log).first().map(|(c, _)| c.version);
        if let Some(first_compaction) = first_compaction {
            interleaved |= log
                .iter()
                .any(|c| c.version > first_compaction && c.stream_commit.is_some());
        }
        // Every row the syncs committed is there exactly once.
        let stream_rows: u64 = [&first, &second]
            .iter()
            .flat_map(|s| s.streams.iter())
            .filter(|s| {
                s.stream.ends_with(&format!("/{folder}/{kind}"))
                    || s.stream.contains(&format!("/{folder}/{kind}/"))
            })
            .map(|s| s.rows)
            .sum();
        assert_eq!(row_count(&table), stream_rows, "{folder}/{kind}");
    }
    assert!(
        interleaved,
        "a sync committed after a compaction in some table"
    );
    if python().is_some() {
        lab.assert_all_tables_match("compaction during sync");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_during_sync_loses_nothing_local() {
    compaction_during_sync(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_during_sync_loses_nothing_on_s3() {
    let Some(lake) = Lake::s3().await else { return };
    compaction_during_sync(Some(lake)).await;
}

/// A stream whose newest commit is gone from the log (log cleanup) while RAW is behind it (a
/// crash between that commit and its RAW write, long ago) cannot know its cursor. It starts
/// a new generation numbered above every earlier one instead of failing on every run, and
/// the published files still equal the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_commit_left_the_log_starts_a_new_generation() {
    if python().is_none() {
        return;
    }
    const PUMPS: usize = 20;
    let pump_key = "plant_schema/PlantModel/1/Pump/nodes";
    let lab = Lab::start(PUMPS, None).await;
    let context = lab.context(TINY_BATCHES).await;
    sync_ok(&context).await;
    let control = lab.emulator.control();
    let stale_row = lab.state_row(pump_key);
    control
        .apply_instances(sample_model::updates(PUMPS, 1))
        .unwrap();
    sync_ok(&context).await;
    neighbour_commits(&lab, "Pump", "nodes", 1, 3).await;

    let mut table = open_table(&context, "Pump", "nodes").await;
    table.create_checkpoint().await.unwrap();
    let checkpoint = table.last_checkpoint_version().await.unwrap().unwrap();
    let log_dir = local_table_dir(&lab, "Pump", "nodes").join("_delta_log");
    for version in 0..checkpoint {
        age(&log_dir.join(format!("{version:020}.json")), 40);
    }
    let removed = table
        .cleanup_logs(Duration::from_secs(30 * 24 * 3600))
        .await
        .unwrap();
    assert!(removed > 0, "the stream's commits left the log");
    lab.put_state_row(&stale_row).await;

    control
        .apply_instances(sample_model::updates(PUMPS, 2))
        .unwrap();
    control
        .delete_instances(sample_model::deletions(PUMPS))
        .unwrap();
    let summary = sync_ok(&context).await;
    let pump = summary
        .streams
        .iter()
        .find(|s| s.stream == pump_key)
        .expect("Pump stream report");
    assert_eq!(pump.cursor_resets, 1, "{pump:#?}");
    assert!(pump.generation > checkpoint, "{pump:#?}");
    let published = jobs::snapshot(&context, &SnapshotOptions::default()).await;
    assert!(published.is_success(), "{published:#?}");
    let files = json!({
        "nodes": published_file_spec(&lab, "nodes", Some("Pump"), "Pump", &json!({})),
        "edges": published_file_spec(&lab, "edges", Some("PumpWorkOrder"), "Pump", &json!({})),
    });
    let report = lab.check_published("Pump", files.clone()).expect("python");
    for kind in ["nodes", "edges"] {
        let expected = files[kind]["truth"].as_array().map_or(0, Vec::len);
        for reader in ["pyarrow", "duckdb"] {
            let r = &report["files"][kind][reader];
            assert_eq!(r["mismatch_count"], 0, "Pump/{kind} ({reader}): {r}");
            assert_eq!(r["rows"], expected, "Pump/{kind} ({reader}) rows");
        }
    }
}
