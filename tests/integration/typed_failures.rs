//! Failures keep their type to the edge: each permanent cause comes out of the Lambda
//! functions as `Permanent.<Cause>` (a retry cannot help), a transient one as
//! `Retryable.RunIncomplete`, and the EMF line counts them by cause. And the plan is resolved
//! once per invocation: the emulator's request log counts the model and view requests.

use std::time::{Duration, SystemTime};

use cdf_emulator::FaultSpec;
use cdf_emulator::sample_model::MODEL;
use cdf_s3_replicator::config::MapEnv;
use cdf_s3_replicator::job::JobInputs;
use cdf_s3_replicator::jobs::{self, PublishOptions};
use cdf_s3_replicator::lambda::config_source::{CONFIG_ENV, ConfigSource};
use cdf_s3_replicator::lambda::logging::LogControl;
use cdf_s3_replicator::lambda::metrics::MemorySink;
use cdf_s3_replicator::lambda::{Function, FunctionKind, FunctionSetup, Invocation};
use cdf_s3_replicator::sync::SyncOptions;
use s3_fault_proxy::{FaultKind, FaultRule, S3Op};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::time::Instant;

use crate::support::{Lab, lab_behind_proxy};

fn function(kind: FunctionKind, yaml: String) -> (Function, Arc<MemorySink>) {
    let metrics = Arc::new(MemorySink::default());
    let env = MapEnv::new().with(CONFIG_ENV, yaml);
    let function = Function::new(FunctionSetup {
        kind,
        name: format!("test-{}", kind.default_name()),
        config_source: ConfigSource::from_env(&env),
        env: Box::new(env),
        secrets: None,
        metrics: metrics.clone(),
        logs: LogControl::detached(),
    });
    (function, metrics)
}

fn five_minutes() -> Invocation {
    Invocation {
        request_id: "req-typed-failures".into(),
        deadline: SystemTime::now() + Duration::from_secs(300),
    }
}

/// The error type of one invocation (`ok` when it succeeded) and its EMF line.
async fn outcome(kind: FunctionKind, yaml: String, payload: Value) -> (String, Option<Value>) {
    let (function, metrics) = function(kind, yaml);
    let error_type = match function.invoke(payload, &five_minutes()).await {
        Ok(_) => "ok".to_owned(),
        Err(error) => {
            eprintln!("{kind} invocation failed: {error}");
            error.error_type()
        }
    };
    let emf = metrics
        .lines()
        .last()
        .map(|line| serde_json::from_str(line).expect("EMF is JSON"));
    (error_type, emf)
}

fn with_model(yaml: &str, model: &str) -> String {
    yaml.replace(
        &format!("external_id: {MODEL}\n"),
        &format!("external_id: {model}\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_permanent_cause_is_its_own_lambda_error_type() {
    let lab = Lab::start(5, None).await;
    let yaml = lab.config_yaml("", None);

    // A configured model CDF does not have.
    let (error_type, emf) = outcome(
        FunctionKind::Sync,
        with_model(&yaml, "NoSuchModel"),
        json!({}),
    )
    .await;
    assert_eq!(error_type, "Permanent.ModelNotFound");
    let emf = emf.expect("a run that planned emits metrics");
    assert_eq!(emf["FailuresPermanent"], 1.0, "{emf}");
    assert_eq!(emf["FailuresRetryable"], 0.0, "{emf}");
    assert_eq!(emf["FailuresModelNotFound"], 1.0, "{emf}");

    // A configured view the model lacks (the other views still sync).
    let (error_type, emf) = outcome(
        FunctionKind::Sync,
        lab.config_yaml("", Some(&["Pump", "Turbine"])),
        json!({}),
    )
    .await;
    assert_eq!(error_type, "Permanent.ViewNotFound");
    let emf = emf.expect("metrics");
    assert_eq!(emf["FailuresViewNotFound"], 1.0, "{emf}");
    assert!(
        emf["Rows"].as_f64().unwrap_or(0.0) > 0.0,
        "Pump synced: {emf}"
    );

    // A payload that names a view no stream serves, for either function.
    for kind in [FunctionKind::Sync, FunctionKind::Snapshot] {
        let (error_type, _) = outcome(kind, yaml.clone(), json!({"views": ["Turbine"]})).await;
        assert_eq!(error_type, "Permanent.InvalidRequest", "{kind}");
    }

    // CDF refuses the model request for good (a missing capability).
    lab.emulator
        .control()
        .add_fault(FaultSpec::status("/models/datamodels/byids", 403, 1));
    let (error_type, _) = outcome(FunctionKind::Sync, yaml.clone(), json!({})).await;
    lab.emulator.control().clear_faults();
    assert_eq!(error_type, "Permanent.CdfRejected");

    // Several permanent causes at once: still permanent, with no single cause to name.
    let mixed = lab.config_yaml("", Some(&["Pump", "Turbine"])).replace(
        "data_models:\n",
        "data_models:\n      - external_id: NoSuchModel\n",
    );
    let (error_type, emf) = outcome(FunctionKind::Sync, mixed, json!({})).await;
    assert_eq!(error_type, "Permanent.RunFailed");
    let emf = emf.expect("metrics");
    assert_eq!(emf["FailuresPermanent"], 2.0, "{emf}");

    // Transient: CDF answers 503 to every attempt of the sync requests.
    let yaml_one_retry = yaml.replace(
        "  extraction-pipeline:",
        "  max-retries: 1\n  extraction-pipeline:",
    );
    lab.emulator
        .control()
        .add_fault(FaultSpec::status("/models/instances/sync", 503, 10_000));
    let (error_type, emf) = outcome(FunctionKind::Sync, yaml_one_retry, json!({})).await;
    lab.emulator.control().clear_faults();
    assert_eq!(error_type, "Retryable.RunIncomplete");
    let emf = emf.expect("metrics");
    assert!(emf["FailuresCdfUnavailable"].as_f64() >= Some(1.0), "{emf}");
    assert_eq!(emf["FailuresPermanent"], 0.0, "{emf}");

    // Everything configured exists and CDF answers: success.
    let (error_type, _) = outcome(FunctionKind::Sync, yaml.clone(), json!({})).await;
    assert_eq!(error_type, "ok");
}

/// The lake refusing access (an S3 403) is permanent: the role lacks a permission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_that_refuses_access_is_a_permanent_failure() {
    let Some((lab, proxy)) = lab_behind_proxy(3, 7).await else {
        return;
    };
    proxy.inject(FaultRule::times(S3Op::Get, FaultKind::AccessDenied, 1000));
    proxy.inject(FaultRule::times(S3Op::List, FaultKind::AccessDenied, 1000));
    let (error_type, emf) = outcome(FunctionKind::Sync, lab.config_yaml("", None), json!({})).await;
    assert_eq!(error_type, "Permanent.LakeAccessDenied", "{emf:?}");
    let emf = emf.expect("metrics");
    assert!(
        emf["FailuresLakeAccessDenied"].as_f64() >= Some(1.0),
        "{emf}"
    );
    assert_eq!(emf["FailuresRetryable"], 0.0, "{emf}");

    proxy.clear();
    let (error_type, _) = outcome(FunctionKind::Sync, lab.config_yaml("", None), json!({})).await;
    assert_eq!(
        error_type, "ok",
        "with access back, the same invocation succeeds"
    );
}

/// Model and view requests the emulator answered since the log was cleared.
fn model_requests(lab: &Lab) -> (usize, usize) {
    let log = lab.emulator.control().request_log();
    let count = |path: &str| log.iter().filter(|r| r.path.ends_with(path)).count();
    (
        count("/models/datamodels/byids") + count("/models/datamodels"),
        count("/models/views/byids"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_resolves_the_models_once() {
    let lab = Lab::start(5, None).await;
    let yaml = lab.config_yaml("", None);
    // One model, whose views are fetched in one request and whose edge sources in another:
    // that is what one plan costs.
    let context = lab.context("").await;
    lab.emulator.control().clear_request_log();
    let plan = jobs::plan(&context).await;
    assert!(plan.problems().is_empty(), "{:?}", plan.problems());
    let (models_per_plan, views_per_plan) = model_requests(&lab);
    assert_eq!(
        models_per_plan, 1,
        "one request for the one configured model"
    );
    assert!(views_per_plan >= 1);

    // The sync function: one plan.
    let (sync, _) = function(FunctionKind::Sync, yaml.clone());
    lab.emulator.control().clear_request_log();
    sync.invoke(json!({}), &five_minutes()).await.expect("sync");
    assert_eq!(model_requests(&lab), (models_per_plan, views_per_plan));

    // The snapshot function runs the snapshot and maintenance on one plan.
    let (snapshot, _) = function(FunctionKind::Snapshot, yaml.clone());
    lab.emulator.control().clear_request_log();
    let response = snapshot
        .invoke(json!({}), &five_minutes())
        .await
        .expect("snapshot");
    assert!(response["maintenance"]["tablesTotal"].as_u64() > Some(0));
    assert_eq!(model_requests(&lab), (models_per_plan, views_per_plan));

    // A cycle of the long-running CLI: sync, snapshot and maintenance on one plan.
    lab.emulator.control().clear_request_log();
    let inputs = JobInputs::until(Instant::now() + Duration::from_secs(300));
    let (sync_options, publish_inputs, publish_options) = (
        SyncOptions::default(),
        JobInputs::everything(),
        PublishOptions::everything(),
    );
    let (synced, published) = jobs::cycle(
        &context,
        (&inputs, &sync_options),
        Some((&publish_inputs, &publish_options)),
    )
    .await;
    assert!(synced.is_success(), "{synced:#?}");
    assert!(published.expect("published").is_success());
    assert_eq!(model_requests(&lab), (models_per_plan, views_per_plan));
}
