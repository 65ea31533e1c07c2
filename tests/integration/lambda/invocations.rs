//! The Lambda functions invoked in-process: the sample events in `events/` against the emulator
//! and the S3 server, the secret from Secrets Manager (never logged), failures classified by
//! whether a retry helps, configuration reloaded per invocation, a panic reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use cdf_emulator::sample_model::{self, MODEL, SCHEMA_SPACE};
use cdf_emulator::{EmulatorConfig, FaultSpec};
use cdf_s3_replicator::config::{EnvSource, MapEnv};
use cdf_s3_replicator::lambda::config_source::CONFIG_ENV;
use cdf_s3_replicator::lambda::event::parse_request;
use cdf_s3_replicator::lambda::logging::LogControl;
use cdf_s3_replicator::lambda::metrics::{MemorySink, NAMESPACE};
use cdf_s3_replicator::lambda::secrets::SecretSource;
use cdf_s3_replicator::lambda::{Function, FunctionError, FunctionKind, FunctionSetup, Invocation};
use serde_json::{Value, json};

use crate::support::{
    Lab, Lake, LogCapture, assert_matches_truth, required_env, sample_property_types,
};

use super::{event, repo_root};

const PUMPS: usize = 30;
const PUMP_NODES: &str = "plant_schema/PlantModel/1/Pump/nodes";

/// A function as a cold start builds it, with the given environment and metrics kept in
/// memory.
fn function(
    kind: FunctionKind,
    env: impl EnvSource + Send + Sync + 'static,
    secrets: Option<SecretSource>,
) -> (Function, Arc<MemorySink>) {
    let metrics = Arc::new(MemorySink::default());
    let config_source = cdf_s3_replicator::lambda::config_source::ConfigSource::from_env(&env);
    let function = Function::new(FunctionSetup {
        kind,
        name: format!("test-{}", kind.default_name()),
        env: Box::new(env),
        config_source,
        secrets,
        metrics: metrics.clone(),
        logs: LogControl::detached(),
    });
    (function, metrics)
}

/// An invocation Lambda would end after `timeout`.
fn invocation(timeout: Duration) -> Invocation {
    Invocation {
        request_id: format!("req-{:012x}", rand::random::<u64>() >> 16),
        deadline: SystemTime::now() + timeout,
    }
}

fn five_minutes() -> Invocation {
    invocation(Duration::from_secs(300))
}

fn stream_keys(summary: &Value) -> Vec<String> {
    summary["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["stream"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn emf(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("EMF line is not JSON ({e}): {line}"))
}

#[test]
fn every_event_file_parses_for_its_function() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo_root().join("events")).expect("events/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let kind = if name.starts_with("sync-") {
            FunctionKind::Sync
        } else if name.starts_with("snapshot-") {
            FunctionKind::Snapshot
        } else {
            panic!("events/{name}: name it sync-* or snapshot-* after the function it is for");
        };
        assert!(name.ends_with(".json"), "events/{name} is not a .json file");
        let payload = event(&name);
        if let Err(error) = parse_request(kind, &payload) {
            panic!("events/{name} is refused by the {kind} function: {error}");
        }
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} event files");
}

/// The scheduled event, a manual payload, a dry run and a forced resync against the S3
/// server: summaries, metrics, extraction-pipeline runs and the tables themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_function_runs_the_sample_events_against_s3() {
    let Some(lake) = Lake::s3().await else { return };
    let lab = Lab::start(PUMPS, Some(lake)).await;
    let yaml = lab.config_yaml("  subscription-batch-size: 25\n", None);
    let (sync, metrics) = function(
        FunctionKind::Sync,
        MapEnv::new().with(CONFIG_ENV, yaml),
        None,
    );

    // Scheduled: every stream of the model, to the end.
    let summary = sync
        .invoke(event("sync-scheduled-event.json"), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    assert_eq!(summary["streamsTotal"], 5, "{summary:#}");
    assert_eq!(summary["streamsCaughtUp"], 5, "{summary:#}");
    assert_eq!(summary["streamsFailed"], 0, "{summary:#}");
    let rows = summary["rows"].as_u64().unwrap();
    assert!(rows > 0, "{summary:#}");
    let lines = metrics.lines();
    assert_eq!(lines.len(), 1, "one EMF line per invocation");
    let first = emf(&lines[0]);
    assert_eq!(
        first["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        NAMESPACE
    );
    assert_eq!(first["Function"], "test-cdf-s3-sync");
    assert_eq!(first["Rows"].as_f64(), Some(rows as f64));
    assert_eq!(first["StreamsBehind"].as_f64(), Some(0.0));
    assert_eq!(first["Commits"].as_f64(), summary["commits"].as_f64());
    let generation_of = |summary: &Value| {
        summary["streams"]
            .as_array()
            .and_then(|streams| streams.iter().find(|s| s["stream"] == PUMP_NODES))
            .and_then(|s| s["generation"].as_u64())
            .unwrap_or_else(|| panic!("no {PUMP_NODES} in {summary:#}"))
    };
    let first_generation = generation_of(&summary);

    for view in ["Site", "Pump", "WorkOrder"] {
        let truth = lab.truth_nodes(view);
        let expected = truth.len();
        let Some(report) = lab.compare(view, "nodes", view, truth) else {
            return;
        };
        assert_matches_truth(&report, expected, &format!("{view} nodes"));
    }

    // Manual: changes arrive; only the Pump view is asked for.
    let control = lab.emulator.control();
    control
        .apply_instances(sample_model::updates(PUMPS, 1))
        .expect("updates");
    let manual = sync
        .invoke(event("sync-manual.json"), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    let keys = stream_keys(&manual);
    assert!(!keys.is_empty(), "{manual:#}");
    assert!(
        keys.iter().all(|k| k.contains("/Pump/")),
        "only Pump streams: {keys:?}"
    );
    assert!(manual["rows"].as_u64().unwrap() > 0, "{manual:#}");
    let truth = lab.truth_nodes("Pump");
    let expected = truth.len();
    let report = lab.compare("Pump", "nodes", "Pump", truth).expect("python");
    assert_matches_truth(&report, expected, "Pump nodes after the manual sync");

    // Dry run: planned, nothing read or written, no metrics.
    let dry = sync
        .invoke(event("sync-dry-run.json"), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    assert_eq!(dry["streamsTotal"], 5, "{dry:#}");
    assert_eq!(
        (dry["rows"].as_u64(), dry["commits"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(
        dry["streams"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "planned"),
        "{dry:#}"
    );
    assert_eq!(metrics.lines().len(), 2, "a dry run emits no metrics");

    // Resync: the Pump streams start a new generation with a full backfill.
    let resync = sync
        .invoke(event("sync-resync.json"), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    let pumps = resync["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == PUMP_NODES)
        .cloned()
        .unwrap_or_else(|| panic!("no {PUMP_NODES} in {resync:#}"));
    assert_eq!(pumps["rows"].as_u64(), Some(PUMPS as u64), "{pumps:#}");
    assert!(
        generation_of(&resync) > first_generation,
        "a new generation: {pumps:#}"
    );

    // Warm invocations reuse the CDF client: one token for the whole container.
    assert_eq!(
        lab.token_requests(),
        1,
        "the access token is cached across invocations"
    );
    // Each invocation that ran reports one extraction-pipeline run (a dry run does not).
    let runs = control.extpipe_runs("replicator");
    assert_eq!(runs.len(), 3, "{runs:#?}");
    assert!(runs.iter().all(|r| r["status"] == "success"), "{runs:#?}");
}

/// The Pump view's published files, read by pyarrow and DuckDB, hold exactly the live
/// pumps and their work-order edges.
fn assert_pump_published(lab: &Lab, label: &str) {
    let nodes = lab.truth_nodes("Pump");
    let edges = lab.truth_work_order_edges();
    let files = json!({
        "nodes": {"kind": "nodes", "view_space": SCHEMA_SPACE, "view_key": "Pump/1",
                  "properties": sample_property_types("Pump"), "truth": nodes},
        "edges": {"kind": "edges", "view_space": SCHEMA_SPACE, "view_key": "PumpWorkOrder/1",
                  "properties": sample_property_types("PumpWorkOrder"), "truth": edges},
    });
    let Some(report) = lab.check_published("Pump", files.clone()) else {
        return;
    };
    for kind in ["nodes", "edges"] {
        let expected = files[kind]["truth"].as_array().map_or(0, Vec::len);
        assert!(expected > 0, "{label}: Pump {kind} has live instances");
        for reader in ["pyarrow", "duckdb"] {
            let r = &report["files"][kind][reader];
            let what = format!("{label}: Pump/{kind} ({reader})");
            assert_eq!(r["mismatch_count"], 0, "{what}: {}", r["mismatches"]);
            assert_eq!(r["duplicates"], json!([]), "{what}");
            assert_eq!(r["rows"], expected, "{what}");
        }
    }
}

/// The sync function writes, the snapshot function publishes and maintains: the scheduled
/// event (everything), the manual event (Pump only, maintenance on) and a payload that
/// turns maintenance off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_function_publishes_what_the_sync_function_wrote() {
    let Some(lake) = Lake::s3().await else { return };
    let lab = Lab::start(PUMPS, Some(lake)).await;
    let yaml = lab.config_yaml(
        "  subscription-batch-size: 25\n  ingest-batch-size: 40\n",
        None,
    );
    let env = MapEnv::new().with(CONFIG_ENV, yaml);
    let (sync, _) = function(FunctionKind::Sync, env.clone(), None);
    let (snapshot, metrics) = function(FunctionKind::Snapshot, env, None);

    sync.invoke(event("sync-scheduled-event.json"), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    let first = snapshot
        .invoke(event("snapshot-scheduled-event.json"), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    let published = &first["snapshot"];
    assert_eq!(published["viewsTotal"], 4, "{first:#}");
    assert_eq!(published["filesFailed"], 0, "{first:#}");
    assert!(published["filesRebuilt"].as_u64().unwrap() > 0, "{first:#}");
    let maintained = &first["maintenance"];
    assert_eq!(maintained["tablesTotal"], 5, "{first:#}");
    assert_eq!(maintained["tablesFailed"], 0, "{first:#}");
    let tables = maintained["tables"].as_array().unwrap();
    assert!(
        tables
            .iter()
            .all(|t| t["status"] == "done" && t["version"].is_u64()),
        "every raw table was visited: {first:#}"
    );
    let lines = metrics.lines();
    assert_eq!(lines.len(), 1, "one EMF line per invocation");
    let emf = emf(&lines[0]);
    assert_eq!(emf["Function"], "test-cdf-s3-snapshot");
    assert_eq!(emf["Rows"].as_f64(), published["rows"].as_f64());
    assert_eq!(emf["ViewsTotal"].as_f64(), Some(4.0));
    assert_eq!(emf["TablesMaintained"].as_f64(), Some(5.0));
    assert_eq!(emf["TablesMaintenanceFailed"].as_f64(), Some(0.0));
    assert_pump_published(&lab, "after the scheduled snapshot");

    // Changes reach the Pump view; the manual event publishes only that view.
    let control = lab.emulator.control();
    lab.update_and_delete_pumps(PUMPS);
    sync.invoke(event("sync-manual.json"), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    let manual = snapshot
        .invoke(event("snapshot-manual.json"), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    let views: Vec<&str> = manual["snapshot"]["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["view"].as_str().unwrap())
        .collect();
    assert_eq!(views, vec!["Pump"], "{manual:#}");
    assert!(manual["maintenance"].is_object(), "{manual:#}");
    assert_pump_published(&lab, "after updates, deletes and the manual snapshot");

    // Maintenance off: nothing changed since, so nothing is rewritten either.
    let quiet = snapshot
        .invoke(json!({"maintenance": false}), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    assert!(quiet["maintenance"].is_null(), "{quiet:#}");
    assert_eq!(quiet["snapshot"]["rows"], 0, "{quiet:#}");
    assert_eq!(metrics.lines().len(), 3);
    // Two sync and three snapshot invocations, one extraction-pipeline run each.
    let runs = control.extpipe_runs("replicator");
    let snapshot_runs = runs
        .iter()
        .filter(|r| {
            r["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("snapshot: "))
        })
        .count();
    assert_eq!((runs.len(), snapshot_runs), (5, 3), "{runs:#?}");
    assert!(runs.iter().all(|r| r["status"] == "success"), "{runs:#?}");

    let err = snapshot
        .invoke(event("sync-resync.json"), &five_minutes())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Permanent.InvalidRequest");
    assert!(err.to_string().contains("`resync`"), "{err}");
}

/// Runs a sync whose CDF credentials come from the Secrets Manager secret, logging every
/// level of every crate, and searches the logs, the metrics and the summary for the client
/// secret and for any access token the emulator issued.
#[tokio::test]
async fn secret_from_secrets_manager_is_used_and_never_logged() {
    // The SDK's own variable is AWS_ENDPOINT_URL_SECRETS_MANAGER; either name is accepted.
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").ok();
    let Some(endpoint) = endpoint.or_else(|| {
        required_env(
            "AWS_ENDPOINT_URL_SECRETSMANAGER",
            "the Secrets Manager server (moto)",
        )
    }) else {
        return;
    };
    let Some(lake) = Lake::s3().await else { return };
    let client_secret = format!("cs-{:032x}", rand::random::<u128>());
    let emulator_config = EmulatorConfig {
        client_id: "lambda-client".into(),
        client_secret: client_secret.clone(),
        ..EmulatorConfig::default()
    };
    let lab = Lab::start_with(emulator_config, 12, Some(lake)).await;

    // The original replicator's runtime secret, keys as in its README.
    let secret_id = format!("cdf-s3-replicator/test/{:016x}", rand::random::<u64>());
    let secret = json!({
        "APP_ENV": "test",
        "COGNITE_BASE_URL": lab.emulator.base_url(),
        "COGNITE_PROJECT": lab.emulator.project(),
        "COGNITE_TOKEN_URL": lab.emulator.token_url(),
        "COGNITE_CLIENT_ID": "lambda-client",
        "COGNITE_CLIENT_SECRET": client_secret,
        "COGNITE_TOKEN_SCOPES": format!("{}/.default", lab.emulator.base_url()),
        "COGNITE_STATE_DB": "state",
        "COGNITE_STATE_TABLE": "streams",
        "COGNITE_EXTRACTION_PIPELINE": "replicator",
    });
    let aws = aws_config::load_from_env().await;
    let secrets_client = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&aws)
            .endpoint_url(endpoint)
            .build(),
    );
    secrets_client
        .create_secret()
        .name(&secret_id)
        .secret_string(secret.to_string())
        .send()
        .await
        .expect("creating the secret on the Secrets Manager server");

    let yaml = format!(
        "cognite:\n  host: ${{COGNITE_BASE_URL}}\n  project: ${{COGNITE_PROJECT}}\n  idp-authentication:\n    token-url: ${{COGNITE_TOKEN_URL}}\n    client-id: ${{COGNITE_CLIENT_ID}}\n    secret: ${{COGNITE_CLIENT_SECRET}}\n    scopes:\n      - ${{COGNITE_TOKEN_SCOPES}}\n  extraction-pipeline:\n    external-id: ${{COGNITE_EXTRACTION_PIPELINE}}\nextractor:\n  state-store:\n    raw:\n      database: ${{COGNITE_STATE_DB}}\n      table: ${{COGNITE_STATE_TABLE}}\ndata_modeling:\n  - space: {SCHEMA_SPACE}\n    data_models:\n      - external_id: {MODEL}\ndestination:\n{}",
        lab.lake.destination_yaml()
    );
    let (sync, metrics) = function(
        FunctionKind::Sync,
        MapEnv::new().with(CONFIG_ENV, yaml),
        Some(SecretSource::new(secrets_client, &secret_id)),
    );

    let capture = LogCapture::default();
    let guard = tracing::subscriber::set_default(capture.subscriber());
    let first = sync
        .invoke(event("sync-scheduled-event.json"), &five_minutes())
        .await;
    let second = sync
        .invoke(event("sync-schedule-v2.json"), &five_minutes())
        .await;
    drop(guard);

    let first = first.unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    let second = second.unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    assert_eq!(
        first["streamsCaughtUp"], 5,
        "the secret's credentials worked: {first:#}"
    );
    assert!(first["rows"].as_u64().unwrap() > 0);
    assert_eq!(second["rows"], 0, "nothing new: {second:#}");

    let logs = capture.text();
    let summary_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"message\":\"sync finished: "))
        .collect();
    assert_eq!(
        summary_lines.len(),
        2,
        "one summary line per invocation: {summary_lines:#?}"
    );
    assert!(
        logs.contains("read the CDF credentials secret") && logs.contains(&secret_id),
        "the secret was read (and named) in the logs:\n{logs}"
    );
    assert!(
        logs.lines().count() > 20,
        "TRACE logs were captured:\n{logs}"
    );

    let everything = format!("{logs}\n{}\n{first}\n{second}", metrics.lines().join("\n"));
    assert!(
        !everything.contains(&client_secret),
        "the client secret appears in the logs, metrics or summary"
    );
    let tokens = issued_token_like(&everything);
    assert!(
        tokens.is_empty(),
        "access tokens appear in the logs, metrics or summary: {tokens:?}"
    );
    assert_eq!(lab.token_requests(), 1, "a token was fetched (and cached)");
}

/// Substrings shaped like the emulator's access tokens: `emu_` and 32 hex digits.
fn issued_token_like(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("emu_") {
        let candidate = &rest[at + 4..];
        let hex: String = candidate
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        if hex.len() >= 32 {
            found.push(format!("emu_{hex}"));
        }
        rest = &rest[at + 4..];
    }
    found
}

#[test]
fn token_search_finds_emulator_tokens() {
    let token = format!("emu_{:032x}", u128::MAX - 7);
    assert_eq!(issued_token_like(&format!("x {token} y")), vec![token]);
    assert!(issued_token_like("emu_not-a-token emu_123").is_empty());
}

/// `type: remote`: the bootstrap configuration is in the function environment, the rest in
/// the extraction pipeline; an edit there applies to the next invocation of the same
/// (warm) function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_configuration_is_reloaded_on_every_invocation() {
    let lab = Lab::start(10, None).await;
    let local = lab.config_yaml("", None);
    let (cognite, rest) = local
        .split_once("extractor:")
        .expect("the lab configuration has an extractor block");
    // The destination stays in the local file: a remote configuration may not set it.
    let (rest, destination) = rest
        .split_once("destination:")
        .expect("the lab configuration has a destination block");
    let bootstrap = format!("type: remote\n{cognite}destination:{destination}");
    // The remote part sets its own request timeout: the run uses other client settings than
    // the fetch of the remote configuration.
    let remote_with = |views: &str| {
        format!("cognite:\n  timeout: 45\nextractor:{rest}").replace(
            &format!("      - external_id: {MODEL}\n"),
            &format!("      - external_id: {MODEL}\n        views: [{views}]\n"),
        )
    };
    let control = lab.emulator.control();
    control
        .set_extpipe_config("replicator", &remote_with("Site"))
        .expect("remote config");
    let (sync, _) = function(
        FunctionKind::Sync,
        MapEnv::new().with(CONFIG_ENV, bootstrap),
        None,
    );

    let first = sync
        .invoke(json!({}), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    assert_eq!(
        stream_keys(&first),
        vec!["plant_schema/PlantModel/1/Site/nodes".to_owned()]
    );

    control
        .set_extpipe_config("replicator", &remote_with("WorkOrder"))
        .expect("remote config");
    let second = sync
        .invoke(json!({}), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    assert_eq!(
        stream_keys(&second),
        vec!["plant_schema/PlantModel/1/WorkOrder/nodes".to_owned()]
    );
    assert_eq!(
        lab.token_requests(),
        2,
        "one token for the configuration fetches and one for the runs, each reused"
    );
}

/// Each failure names its cause, and its type says whether running again can help.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_say_whether_a_retry_helps() {
    let lab = Lab::start(5, None).await;
    let yaml = lab.config_yaml("", None);
    let (sync, metrics) = function(
        FunctionKind::Sync,
        MapEnv::new().with(CONFIG_ENV, yaml.clone()),
        None,
    );

    let err = sync
        .invoke(json!({"views": ["Pump"], "dry_run": true}), &five_minutes())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Permanent.InvalidRequest");
    assert!(err.to_string().contains("`dry_run`"), "{err}");

    let err = sync
        .invoke(event("snapshot-manual.json"), &five_minutes())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Permanent.InvalidRequest");
    assert!(err.to_string().contains("`maintenance`"), "{err}");

    // A view the model does not have: the rest syncs, the invocation reports the view.
    let err = sync
        .invoke(json!({"views": ["Pump"]}), &five_minutes())
        .await
        .err();
    assert!(err.is_none(), "{err:?}");
    let (unknown_view, _) = function(
        FunctionKind::Sync,
        MapEnv::new().with(CONFIG_ENV, lab.config_yaml("", Some(&["Pump", "Turbine"]))),
        None,
    );
    let err = unknown_view
        .invoke(json!({}), &five_minutes())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Permanent.ViewNotFound");
    assert!(err.to_string().contains("Turbine"), "{err}");
    assert_eq!(
        metrics.lines().len(),
        1,
        "only the run that did work emitted metrics"
    );

    // Refused credentials stop the invocation before any stream runs, as a permanent error.
    assert_refused_credentials(&yaml).await;

    // Lambda's time is shorter than the configured margin (20 s by default).
    let err = sync
        .invoke(json!({}), &invocation(Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Permanent.InvalidConfiguration");
    assert!(err.to_string().contains("deadline-margin"), "{err}");

    // No configuration at all.
    let (unconfigured, _) = function(FunctionKind::Sync, MapEnv::new(), None);
    let err = unconfigured
        .invoke(json!({}), &five_minutes())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Permanent.InvalidConfiguration");
    assert!(err.to_string().contains(CONFIG_ENV), "{err}");

    // A configuration naming a variable nobody set.
    let (unset, _) = function(
        FunctionKind::Sync,
        MapEnv::new().with(
            CONFIG_ENV,
            yaml.replace("secret: emulator-secret", "secret: ${NOT_SET_IN_THIS_TEST}"),
        ),
        None,
    );
    let err = unset.invoke(json!({}), &five_minutes()).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.InvalidConfiguration");
    assert!(err.to_string().contains("NOT_SET_IN_THIS_TEST"), "{err}");
    assert!(
        err.to_string().contains("idp-authentication.secret"),
        "{err}"
    );

    // `type: remote` while CDF answers 503 to every attempt: try again later.
    let (cognite, _) = yaml.split_once("extractor:").unwrap();
    let bootstrap = format!(
        "type: remote\n{}",
        cognite.replace(
            "  extraction-pipeline:",
            "  max-retries: 1\n  extraction-pipeline:"
        )
    );
    let (remote, _) = function(
        FunctionKind::Sync,
        MapEnv::new().with(CONFIG_ENV, bootstrap.clone()),
        None,
    );
    lab.emulator
        .control()
        .add_fault(FaultSpec::status("/extpipes/config", 503, 2));
    let err = remote.invoke(json!({}), &five_minutes()).await.unwrap_err();
    assert_eq!(err.error_type(), "Retryable.CdfUnavailable", "{err}");
    lab.emulator.control().clear_faults();

    // Credentials the identity provider refuses: retrying cannot help.
    assert_refused_credentials(&bootstrap).await;
}

/// With `yaml`'s client secret replaced by a wrong one, the sync function fails with a
/// permanent authentication error that does not repeat the secret.
async fn assert_refused_credentials(yaml: &str) {
    let (refused, _) = function(
        FunctionKind::Sync,
        MapEnv::new().with(
            CONFIG_ENV,
            yaml.replace("secret: emulator-secret", "secret: not-the-secret"),
        ),
        None,
    );
    let err = refused
        .invoke(json!({}), &five_minutes())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Permanent.CdfAuthentication", "{err}");
    assert!(!err.to_string().contains("not-the-secret"), "{err}");
}

/// An `EnvSource` that panics the first time it is asked for one variable.
struct PanicsOnce {
    inner: MapEnv,
    armed: AtomicBool,
}

impl EnvSource for PanicsOnce {
    fn get(&self, name: &str) -> Option<String> {
        if name == "PANIC_HERE" && self.armed.swap(false, Ordering::SeqCst) {
            panic!("variable lookup blew up");
        }
        self.inner
            .get(name)
            .or_else(|| (name == "PANIC_HERE").then(|| "emulator-secret".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_reported_and_the_function_stays_usable() {
    let lab = Lab::start(5, None).await;
    let yaml = lab
        .config_yaml("", Some(&["Site"]))
        .replace("secret: emulator-secret", "secret: ${PANIC_HERE}");
    let env = PanicsOnce {
        inner: MapEnv::new().with(CONFIG_ENV, yaml),
        armed: AtomicBool::new(true),
    };
    let (sync, _) = function(FunctionKind::Sync, env, None);
    let err = sync.invoke(json!({}), &five_minutes()).await.unwrap_err();
    assert!(matches!(err, FunctionError::Panic(_)), "{err}");
    assert_eq!(err.error_type(), "Permanent.Internal");
    assert!(err.to_string().contains("variable lookup blew up"), "{err}");

    let summary = sync
        .invoke(json!({}), &five_minutes())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    assert_eq!(summary["streamsCaughtUp"], 1, "{summary:#}");
}
