//! The SAM template (`template.yaml`) as written: IAM scopes, schedules and concurrency, and
//! how both binaries are built from the workspace.

use std::path::Path;

use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

use super::{event, repo_root};

fn template() -> Yaml {
    let path = repo_root().join("template.yaml");
    let text = std::fs::read_to_string(&path).expect("template.yaml");
    serde_yaml_ng::from_str(&text).expect("template.yaml is YAML")
}

/// A CloudFormation value as text: plain strings, and `!Sub`/`Fn::Sub` templates as written.
fn text_of(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Tagged(tagged) if tagged.tag == "Sub" => match &tagged.value {
            Yaml::String(s) => Some(s.clone()),
            Yaml::Sequence(items) => items.first().and_then(text_of),
            _ => None,
        },
        Yaml::Mapping(map) if map.len() == 1 => map.get("Fn::Sub").and_then(|v| match v {
            Yaml::String(s) => Some(s.clone()),
            Yaml::Sequence(items) => items.first().and_then(text_of),
            _ => None,
        }),
        _ => None,
    }
}

fn one_or_many(value: Option<&Yaml>) -> Vec<Yaml> {
    match value {
        Some(Yaml::Sequence(items)) => items.clone(),
        Some(other) => vec![other.clone()],
        None => Vec::new(),
    }
}

/// Every IAM statement in the template: roles' inline policies, standalone policies and
/// the inline statements of SAM functions.
fn iam_statements(template: &Yaml) -> Vec<(String, Yaml)> {
    let mut statements = Vec::new();
    let Some(Yaml::Mapping(resources)) = template.get("Resources") else {
        panic!("template has no Resources");
    };
    for (name, resource) in resources {
        let name = name.as_str().unwrap_or_default().to_owned();
        let properties = &resource["Properties"];
        let mut documents = Vec::new();
        for policy in one_or_many(properties.get("Policies")) {
            if let Some(document) = policy.get("PolicyDocument") {
                documents.push(document.clone());
            } else if policy.get("Statement").is_some() {
                documents.push(policy.clone());
            }
        }
        if let Some(document) = properties.get("PolicyDocument") {
            documents.push(document.clone());
        }
        for document in documents {
            for statement in one_or_many(document.get("Statement")) {
                for branch in conditional_branches(statement) {
                    statements.push((name.clone(), branch));
                }
            }
        }
    }
    statements
}

/// Both outcomes of `!If [condition, a, b]` (leaving out `!Ref AWS::NoValue`), or the value.
fn conditional_branches(value: Yaml) -> Vec<Yaml> {
    match value {
        Yaml::Tagged(tagged) if tagged.tag == "If" => match tagged.value {
            Yaml::Sequence(items) if items.len() == 3 => items
                .into_iter()
                .skip(1)
                .flat_map(conditional_branches)
                .collect(),
            other => panic!("malformed !If: {other:?}"),
        },
        Yaml::Tagged(tagged) if tagged.tag == "Ref" && tagged.value == "AWS::NoValue" => Vec::new(),
        other => vec![other],
    }
}

#[test]
fn template_grants_no_wildcard_s3_or_secrets_manager_access() {
    let template = template();
    let statements = iam_statements(&template);
    let mut checked = 0;
    for (resource, statement) in &statements {
        let actions: Vec<String> = one_or_many(statement.get("Action"))
            .iter()
            .filter_map(text_of)
            .collect();
        assert!(
            !actions.is_empty(),
            "{resource}: statement without actions: {statement:?}"
        );
        let guarded = actions.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == "*" || a.starts_with("s3:") || a.starts_with("secretsmanager:")
        });
        if !guarded {
            continue;
        }
        checked += 1;
        for action in &actions {
            assert!(
                !matches!(action.as_str(), "*" | "s3:*" | "secretsmanager:*"),
                "{resource}: wildcard action {action}"
            );
        }
        assert!(
            statement.get("NotResource").is_none(),
            "{resource}: NotResource with {actions:?}"
        );
        let resources = one_or_many(statement.get("Resource"));
        assert!(
            !resources.is_empty(),
            "{resource}: {actions:?} without Resource"
        );
        for target in &resources {
            let Some(text) = text_of(target) else {
                // !Ref of a parameter (the secret ARN): never a wildcard by construction.
                continue;
            };
            assert_ne!(text, "*", "{resource}: {actions:?} on every resource");
            assert!(
                !text.starts_with("arn:aws:s3:::*") && !text.contains(":secret:*"),
                "{resource}: {actions:?} on {text}"
            );
            if actions.iter().any(|a| a.starts_with("s3:")) {
                assert!(
                    text.starts_with("arn:${AWS::Partition}:s3:::${Bucket}")
                        || text.starts_with("arn:aws:s3:::${Bucket}"),
                    "{resource}: S3 access outside the bucket: {text}"
                );
                if text.contains('/') {
                    // The whole prefix, or one layer of it (`raw/`, `publish/`, `catalog/`,
                    // the snapshot's work area `_work/`).
                    let layer = text.split_once("/${Prefix}").map(|(_, rest)| rest);
                    assert!(
                        matches!(
                            layer,
                            Some("*" | "raw/*" | "publish/*" | "catalog/*" | "_work/*")
                        ),
                        "{resource}: object access not limited to the prefix: {text}"
                    );
                }
            }
        }
        if actions.iter().any(|a| a == "s3:ListBucket") {
            let condition = statement
                .get("Condition")
                .unwrap_or_else(|| panic!("{resource}: ListBucket without a prefix condition"));
            let rendered = format!("{condition:?}");
            assert!(
                rendered.contains("s3:prefix"),
                "{resource}: ListBucket not limited to the prefix: {rendered}"
            );
        }
    }
    assert!(
        checked >= 3,
        "only {checked} S3/Secrets Manager statements found"
    );
}

#[test]
fn template_schedules_never_retry_and_sync_runs_alone() {
    let template = template();
    let resources = &template["Resources"];
    let sync = &resources["SyncFunction"]["Properties"];
    // One sync at a time, unless the deployer turns the reservation off (ReservedConcurrency).
    let reserved = format!("{:?}", sync["ReservedConcurrentExecutions"]);
    assert!(
        reserved.contains("If")
            && reserved.contains("ReservesConcurrency")
            && reserved.contains("Number(1)"),
        "{reserved}"
    );
    for (function, event_file) in [
        ("SyncFunction", "sync-schedule-v2.json"),
        ("SnapshotFunction", "snapshot-schedule-v2.json"),
    ] {
        let properties = &resources[function]["Properties"];
        assert_eq!(
            properties["Metadata"],
            Yaml::Null,
            "Metadata belongs next to Properties"
        );
        assert_eq!(
            resources[function]["Metadata"]["BuildMethod"],
            Yaml::from("rust-cargolambda")
        );
        assert_eq!(
            properties["EventInvokeConfig"]["MaximumRetryAttempts"],
            Yaml::from(0),
            "{function}: asynchronous invocations are not retried"
        );
        let Some(Yaml::Mapping(events)) = properties.get("Events") else {
            panic!("{function} has no Events");
        };
        let schedules: Vec<&Yaml> = events
            .values()
            .filter(|e| e["Type"] == "ScheduleV2")
            .collect();
        assert_eq!(schedules.len(), 1, "{function}: one schedule");
        let schedule = &schedules[0]["Properties"];
        assert_eq!(
            schedule["RetryPolicy"]["MaximumRetryAttempts"],
            Yaml::from(0),
            "{function}: the scheduler does not retry"
        );
        let input: Value = serde_json::from_str(
            schedule["Input"]
                .as_str()
                .expect("schedule Input is JSON text"),
        )
        .expect("schedule Input is JSON");
        assert_eq!(
            input,
            event(event_file),
            "events/{event_file} is what the {function} schedule sends"
        );
    }
}

#[test]
fn template_builds_both_binaries_from_the_workspace() {
    let template = template();
    for (function, binary) in [
        ("SyncFunction", "cdf-s3-sync"),
        ("SnapshotFunction", "cdf-s3-snapshot"),
    ] {
        let resource = &template["Resources"][function];
        assert_eq!(resource["Properties"]["CodeUri"], Yaml::from("."));
        assert_eq!(
            resource["Metadata"]["BuildProperties"]["Binary"],
            Yaml::from(binary)
        );
        let manifest = repo_root()
            .join("functions")
            .join(binary.trim_start_matches("cdf-s3-"))
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).expect("function manifest");
        assert!(
            text.contains(&format!("name = \"{binary}\"")),
            "{}",
            manifest.display()
        );
    }
    assert!(Path::new(&repo_root().join("samconfig.toml")).exists());
}
