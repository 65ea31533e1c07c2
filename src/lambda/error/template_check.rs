//! The snapshot state machine of `template.yaml` against the error types the snapshot
//! function reports.
//!
//! Step Functions matches `Retry` and `Catch` by exact error name, so a unit that fails with
//! an error type the state machine does not list is neither retried nor recorded: it fails
//! its child execution and counts against the map's tolerance. These tests hold the
//! `RunUnit` state to every type [`FunctionError::error_type`] can produce: each
//! `Retryable.*` is retried, each `Permanent.*` is caught and recorded.

use std::collections::BTreeSet;

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

use super::FunctionError;
use crate::failure::{Cause, Retry, Verdict};
use crate::lambda::event::PayloadError;

const TEMPLATE: &str = include_str!("../../../template.yaml");

/// Every error type a snapshot invocation can fail with.
fn error_types() -> BTreeSet<String> {
    let mut types = BTreeSet::new();
    let run_failed = |verdict| FunctionError::RunFailed {
        message: String::new(),
        verdict,
    };
    types.insert(run_failed(Verdict::Retryable).error_type());
    types.insert(run_failed(Verdict::Mixed).error_type());
    for cause in Cause::ALL
        .iter()
        .copied()
        .filter(|c| c.retry() == Retry::Useless)
    {
        types.insert(run_failed(Verdict::Permanent(cause)).error_type());
    }
    types.insert(FunctionError::Panic(String::new()).error_type());
    let payload = PayloadError {
        key: None,
        message: String::new(),
    };
    types.insert(FunctionError::from(payload).error_type());
    types.insert(
        FunctionError::NoTimeLeft {
            remaining_ms: 0,
            margin_ms: 0,
        }
        .error_type(),
    );
    // Loading the configuration: CDF failures by their cause (`Cause::of_cdf`), and the
    // secret (`classify`).
    for cause in [
        Cause::CdfUnavailable,
        Cause::DeadlineReached,
        Cause::CdfAuthentication,
        Cause::CdfRejected,
        Cause::InvalidConfiguration,
    ] {
        types.insert(format!("{}.{}", cause.retry(), cause.as_str()));
    }
    for cause in [
        Cause::SecretUnavailable,
        Cause::SecretAccessDenied,
        Cause::InvalidSecret,
    ] {
        types.insert(format!("{}.{}", cause.retry(), cause.as_str()));
    }
    types
}

/// The state machine definition, with every `${...}` replaced by `1` (numbers and ARNs
/// alike: only the names of errors are read).
fn definition() -> Json {
    let template: Yaml = serde_yaml_ng::from_str(TEMPLATE).expect("template.yaml is YAML");
    let property = &template["Resources"]["SnapshotStateMachine"]["Properties"]["DefinitionString"];
    let Yaml::Tagged(tagged) = property else {
        panic!("DefinitionString is a !Sub: {property:?}");
    };
    let text = tagged.value.as_str().expect("a !Sub of a string");
    let mut resolved = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        resolved.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${...}") + start;
        resolved.push('1');
        rest = &rest[end + 1..];
    }
    resolved.push_str(rest);
    serde_json::from_str(&resolved).expect("the definition is JSON")
}

fn names(list: &Json, key: &str) -> BTreeSet<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .flat_map(|entry| entry["ErrorEquals"].as_array().cloned().unwrap_or_default())
        .filter_map(|name| name.as_str().map(str::to_owned))
        .inspect(|name| assert!(!name.is_empty(), "{key}: empty error name"))
        .collect()
}

#[test]
fn the_state_machine_retries_every_retryable_and_records_every_permanent_error_type() {
    let definition = definition();
    let run_unit = &definition["States"]["Units"]["ItemProcessor"]["States"]["RunUnit"];
    let retried = names(&run_unit["Retry"], "Retry");
    let caught = names(&run_unit["Catch"], "Catch");
    let types = error_types();
    assert!(types.len() > 10, "{types:?}");
    for error_type in &types {
        if error_type.starts_with("Retryable.") {
            assert!(
                retried.contains(error_type),
                "RunUnit does not retry {error_type}"
            );
        } else {
            assert!(error_type.starts_with("Permanent."), "{error_type}");
            assert!(
                caught.contains(error_type),
                "RunUnit does not catch {error_type}"
            );
        }
    }
    // Nothing listed that the function never reports (a misspelt name matches nothing).
    for name in retried.iter().chain(&caught) {
        let external = ["Lambda.", "States.", "Sandbox."]
            .iter()
            .any(|p| name.starts_with(p));
        assert!(
            external || types.contains(name),
            "{name} is not an error type of the snapshot function"
        );
    }
    // The plan step retries the same transient types.
    let plan = names(&definition["States"]["Plan"]["Retry"], "Plan");
    for error_type in types.iter().filter(|t| t.starts_with("Retryable.")) {
        assert!(
            plan.contains(error_type),
            "Plan does not retry {error_type}"
        );
    }
}
