//! Migrating from the Python replicator: its README's `config.yaml`, stored whole in the
//! extraction pipeline as that README says, runs the sync function of the SAM template's
//! `type: remote` bootstrap; and a run report CDF refuses for a missing capability says
//! which capability.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cdf_emulator::sample_model::{self, DATA_SPACE, MODEL, SCHEMA_SPACE};
use cdf_emulator::{EmulatorConfig, FaultSpec};
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::lambda::config_source::{CONFIG_ENV, ConfigSource};
use cdf_s3_replicator::lambda::logging::LogControl;
use cdf_s3_replicator::lambda::metrics::MemorySink;
use cdf_s3_replicator::lambda::{Function, FunctionKind, FunctionSetup, Invocation};
use serde_json::{Value, json};

use crate::remote_config::template_bootstrap;
use crate::support::{Lab, Lake, LogCapture};

const PUMPS: usize = 6;
const PIPELINE: &str = "replicator";
/// The stack's state table, as the template passes it (`CDF_S3_STATE_TABLE`).
const STACK_STATE_TABLE: &str = "cdf-migration";
/// The state database of the Python replicator's runtime secret (`COGNITE_STATE_DB`).
const PYTHON_STATE_DB: &str = "python_state";

/// The Python README's `config.yaml`, verbatim.
fn python_config() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config/readme-config.yaml");
    std::fs::read_to_string(path).expect("the Python README's config.yaml fixture")
}

/// The emulator serves the models the Python README's example names: `CustomerModel` in
/// `analytics-space` (the sample plant model under that name, latest version) and version
/// "2" of `TestModel` in `test-space` with `CustomerView`, `OrderView` and `ProductView`.
fn seed_the_readme_models(lab: &Lab) {
    let rehome = |value: Value| -> Value {
        let text = value
            .to_string()
            .replace(&format!("\"{SCHEMA_SPACE}\""), "\"analytics-space\"")
            .replace(&format!("\"{DATA_SPACE}\""), "\"analytics-data\"")
            .replace(&format!("\"{MODEL}\""), "\"CustomerModel\"");
        serde_json::from_str(&text).expect("JSON")
    };
    let control = lab.emulator.control();
    control
        .apply_schema(rehome(sample_model::schema()))
        .expect("CustomerModel");
    control
        .apply_instances(rehome(sample_model::initial_instances(PUMPS)))
        .expect("CustomerModel instances");

    let views = ["CustomerView", "OrderView", "ProductView"];
    let container = |view: &str| format!("{}C", view.trim_end_matches("View"));
    let view_ref = |view: &str| json!({"type": "view", "space": "test-space", "externalId": view, "version": "1"});
    let properties = json!({
        "name": {"type": {"type": "text"}, "nullable": false},
        "amount": {"type": {"type": "float64"}},
    });
    control
        .apply_schema(json!({
            "spaces": [{"space": "test-space"}, {"space": "test-data"}],
            "containers": views.iter().map(|view| json!({
                "space": "test-space", "externalId": container(view),
                "properties": properties, "usedFor": "node",
            })).collect::<Vec<_>>(),
            "views": views.iter().map(|view| json!({
                "space": "test-space", "externalId": view, "version": "1",
                "properties": {
                    "name": {"container": {"type": "container", "space": "test-space", "externalId": container(view)}, "containerPropertyIdentifier": "name"},
                    "amount": {"container": {"type": "container", "space": "test-space", "externalId": container(view)}, "containerPropertyIdentifier": "amount"},
                },
            })).collect::<Vec<_>>(),
            "dataModels": [{
                "space": "test-space", "externalId": "TestModel", "version": "2",
                "views": views.iter().map(|view| view_ref(view)).collect::<Vec<_>>(),
            }],
        }))
        .expect("TestModel");
    let items: Vec<Value> = views
        .iter()
        .flat_map(|view| {
            (0..3).map(move |i| {
                json!({
                    "instanceType": "node", "space": "test-data",
                    "externalId": format!("{view}-{i}"),
                    "sources": [{"source": view_ref(view), "properties": {"name": format!("{view} {i}"), "amount": i as f64 * 1.5}}],
                })
            })
        })
        .collect();
    control
        .apply_instances(json!({"items": items}))
        .expect("TestModel instances");
}

/// The sync function's environment as the template sets it, with the Python replicator's
/// runtime secret (its `COGNITE_*` keys) and the role's credentials.
fn function_env(
    lab: &Lab,
    client_secret: &str,
    bootstrap: &str,
    endpoint: &str,
    bucket: &str,
) -> MapEnv {
    MapEnv::new()
        .with(CONFIG_ENV, bootstrap)
        .with("COGNITE_BASE_URL", lab.emulator.base_url())
        .with("COGNITE_PROJECT", lab.emulator.project())
        .with("COGNITE_TOKEN_URL", lab.emulator.token_url())
        .with("COGNITE_CLIENT_ID", "migration-client")
        .with("COGNITE_CLIENT_SECRET", client_secret)
        .with(
            "COGNITE_TOKEN_SCOPES",
            format!("{}/.default", lab.emulator.base_url()),
        )
        .with("COGNITE_EXTRACTION_PIPELINE", PIPELINE)
        .with("COGNITE_STATE_DB", PYTHON_STATE_DB)
        .with("COGNITE_STATE_TABLE", "data_modeling_state")
        .with("AWS_S3_BUCKET", bucket)
        .with("S3_PREFIX", "cdf-data/")
        .with("AWS_ENDPOINT_URL_S3", endpoint)
        .with("CDF_S3_STATE_TABLE", STACK_STATE_TABLE)
        .with("AWS_REGION", "us-east-1")
}

fn sync_function(env: MapEnv) -> Function {
    let config_source = ConfigSource::from_env(&env);
    Function::new(FunctionSetup {
        kind: FunctionKind::Sync,
        name: "test-migration".into(),
        env: Box::new(env),
        config_source,
        secrets: None,
        metrics: Arc::new(MemorySink::default()),
        logs: LogControl::detached(),
    })
}

fn invocation() -> Invocation {
    Invocation {
        request_id: format!("req-{:012x}", rand::random::<u64>() >> 16),
        deadline: SystemTime::now() + Duration::from_secs(300),
    }
}

/// Log lines (JSON) whose message contains `needle`.
fn lines_with<'a>(logs: &'a str, needle: &str) -> Vec<&'a str> {
    logs.lines().filter(|line| line.contains(needle)).collect()
}

/// The Python README's example `config.yaml`, unedited, stored as the pipeline's
/// configuration: the template's bootstrap loads it and the sync commits every stream of
/// both of its models. Only the function's own values point at the emulator and the lake
/// (the bootstrap adds the S3 server's endpoint, as `cargo lambda watch` against a test
/// server would).
#[tokio::test(flavor = "current_thread")]
async fn the_python_readme_config_as_the_remote_configuration_syncs() {
    let Some(lake) = Lake::s3().await else { return };
    let Lake::S3 { endpoint, bucket } = lake.clone() else {
        unreachable!("an S3 lake")
    };
    let client_secret = format!("cs-{:032x}", rand::random::<u128>());
    let emulator = EmulatorConfig {
        client_id: "migration-client".into(),
        client_secret: client_secret.clone(),
        ..EmulatorConfig::default()
    };
    let lab = Lab::start_with(emulator, 1, Some(lake)).await;
    seed_the_readme_models(&lab);
    let control = lab.emulator.control();
    control
        .set_extpipe_config(PIPELINE, &python_config())
        .expect("the Python config.yaml stored in the extraction pipeline");

    let (bootstrap, _) = template_bootstrap();
    let s3 = "destination:\n  s3:\n";
    assert!(bootstrap.contains(s3), "{bootstrap}");
    let bootstrap = bootstrap.replacen(
        s3,
        &format!("{s3}    endpoint-url: ${{AWS_ENDPOINT_URL_S3}}\n    allow-http: true\n"),
        1,
    );
    let function = sync_function(function_env(
        &lab,
        &client_secret,
        &bootstrap,
        &endpoint,
        &bucket,
    ));

    let capture = LogCapture::default();
    let guard = tracing::subscriber::set_default(capture.subscriber());
    let summary = function.invoke(json!({}), &invocation()).await;
    drop(guard);
    let summary = summary.unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));

    // Five streams of CustomerModel (the sample plant model), three of TestModel.
    let streams = summary["streams"].as_array().expect("streams");
    let of = |model: &str| {
        streams
            .iter()
            .filter(|s| s["stream"].as_str().is_some_and(|k| k.starts_with(model)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of("analytics-space/CustomerModel/1/").len(),
        5,
        "{summary:#}"
    );
    assert_eq!(of("test-space/TestModel/2/").len(), 3, "{summary:#}");
    assert_eq!(summary["streamsTotal"], 8, "{summary:#}");
    assert_eq!(summary["streamsCaughtUp"], 8, "{summary:#}");
    assert_eq!(summary["streamsFailed"], 0, "{summary:#}");
    for stream in streams {
        assert!(
            stream["rows"].as_u64() > Some(0) && stream["commits"].as_u64() > Some(0),
            "every stream committed rows: {stream:#}"
        );
    }
    let pumps = streams
        .iter()
        .find(|s| s["stream"] == "analytics-space/CustomerModel/1/Pump/nodes")
        .unwrap_or_else(|| panic!("no Pump nodes stream: {summary:#}"));
    assert_eq!(pumps["rows"].as_u64(), Some(PUMPS as u64), "{pumps:#}");

    // The state rows are in the function's own state store: the database of the Python
    // replicator's runtime secret, the stack's table.
    let rows = control
        .raw_rows(PYTHON_STATE_DB, STACK_STATE_TABLE)
        .expect("state rows");
    assert_eq!(rows.len(), 8, "{rows:#?}");
    let runs = control.extpipe_runs(PIPELINE);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "success", "{runs:#?}");

    // One INFO line says the repeated sections were ignored; no secret in any line.
    let logs = capture.text();
    let ignored = lines_with(
        &logs,
        "sections repeat the function's own values and were ignored",
    );
    assert_eq!(ignored.len(), 1, "{logs}");
    assert!(ignored[0].contains("\"level\":\"INFO\""), "{}", ignored[0]);
    assert!(
        ignored[0].contains("`cognite` and `destination`"),
        "{}",
        ignored[0]
    );
    assert!(!logs.contains(&client_secret), "a secret in the logs");
}

/// A run report that CDF refuses with 403 is a warning, not a failure, and the warning
/// names the capabilities the service principal lacks.
#[tokio::test(flavor = "current_thread")]
async fn a_run_report_refused_for_a_capability_names_it() {
    let lab = Lab::start(3, None).await;
    let control = lab.emulator.control();
    control.add_fault(FaultSpec::status("/extpipes/runs", 403, 1));
    let function = sync_function(MapEnv::new().with(CONFIG_ENV, lab.config_yaml("", None)));

    let capture = LogCapture::default();
    let guard = tracing::subscriber::set_default(capture.subscriber());
    let summary = function.invoke(json!({}), &invocation()).await;
    drop(guard);
    let summary = summary.unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
    assert_eq!(summary["streamsFailed"], 0, "{summary:#}");
    assert!(control.extpipe_runs(PIPELINE).is_empty());

    let logs = capture.text();
    let warnings = lines_with(&logs, "could not report the run to the extraction pipeline");
    assert_eq!(warnings.len(), 1, "{logs}");
    let warning = warnings[0];
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
    assert!(
        warning.contains("extractionRunsAcl:WRITE on the extraction pipeline and datasetsAcl:READ on its data set"),
        "{warning}"
    );
}
