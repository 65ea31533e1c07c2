//! `template.yaml` against the metrics the code emits.
//!
//! CloudWatch accepts any metric name in an alarm or a dashboard and then shows nothing, so a
//! renamed or misspelt metric would go unnoticed until the day it matters. These tests read
//! the template as CloudFormation does (short tags such as `!Sub` and `!Ref` included) and
//! hold every custom metric it names to [`metric_names`] of the function its `Function`
//! dimension points at, and the dashboard to showing every metric the code emits.

use std::collections::BTreeSet;

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

use super::{DIMENSION, FunctionKind, NAMESPACE, metric_names};

const TEMPLATE: &str = include_str!("../../../template.yaml");
const DASHBOARD: &str = "ReplicationDashboard";
/// Timeouts put into the dashboard body in place of the parameters: not the defaults, so a
/// hard-coded 900000 cannot pass for "the timeout in ms".
const SYNC_TIMEOUT_S: u64 = 123;
const SNAPSHOT_TIMEOUT_S: u64 = 456;

fn template() -> Yaml {
    serde_yaml_ng::from_str(TEMPLATE).expect("template.yaml is YAML")
}

/// The argument of an intrinsic function in either spelling: `!Sub x` or `{Fn::Sub: x}`
/// (`!Ref x` or `{Ref: x}`).
fn intrinsic<'a>(value: &'a Yaml, name: &str) -> Option<&'a Yaml> {
    match value {
        Yaml::Tagged(tagged) if tagged.tag == name => Some(&tagged.value),
        Yaml::Mapping(map) if map.len() == 1 => {
            let long = if name == "Ref" {
                "Ref".to_owned()
            } else {
                format!("Fn::{name}")
            };
            map.get(long.as_str())
        }
        _ => None,
    }
}

/// The function a metric belongs to, from the logical id its dimension refers to.
fn function_of_resource(logical_id: &str) -> Option<FunctionKind> {
    match logical_id {
        "SyncFunction" => Some(FunctionKind::Sync),
        "SnapshotFunction" => Some(FunctionKind::Snapshot),
        _ => None,
    }
}

/// One metric a dashboard widget or an alarm refers to.
#[derive(Debug, Clone)]
struct MetricRef {
    /// Widget title or alarm logical id, for the failure messages.
    place: String,
    namespace: String,
    name: String,
    /// (dimension name, logical id of the function the value refers to)
    dimensions: Vec<(String, String)>,
    stat: Option<String>,
}

impl MetricRef {
    fn function(&self) -> Option<FunctionKind> {
        match self.dimensions.as_slice() {
            [(_, target)] => function_of_resource(target),
            _ => None,
        }
    }
}

/// The dashboard body as CloudFormation would hand it to CloudWatch, with the timeouts set to
/// [`SYNC_TIMEOUT_S`] and [`SNAPSHOT_TIMEOUT_S`]; the other `${...}` stay, all inside strings.
fn dashboard_body() -> Json {
    let template = template();
    let dashboard = &template["Resources"][DASHBOARD];
    assert_eq!(dashboard["Type"], "AWS::CloudWatch::Dashboard");
    let body = intrinsic(&dashboard["Properties"]["DashboardBody"], "Sub")
        .and_then(Yaml::as_str)
        .expect("DashboardBody is a Fn::Sub of a string");
    let body = body
        .replace("${SyncTimeoutSeconds}", &SYNC_TIMEOUT_S.to_string())
        .replace("${SnapshotTimeoutSeconds}", &SNAPSHOT_TIMEOUT_S.to_string());
    serde_json::from_str(&body).expect("DashboardBody is JSON")
}

fn metric_widgets(body: &Json) -> Vec<&Json> {
    body["widgets"]
        .as_array()
        .expect("widgets")
        .iter()
        .filter(|w| w["type"] == "metric")
        .collect()
}

/// `${SyncFunction}` → `SyncFunction`; anything else is not a function reference.
fn sub_reference(text: &str) -> String {
    text.strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text)
        .to_owned()
}

/// The metrics of one widget: `[namespace, name, dim, value, ..., {options}]`; expressions
/// (`[{"expression": ...}]`) refer to no metric by name and are left out.
fn widget_metrics(widget: &Json) -> Vec<MetricRef> {
    let place = widget["properties"]["title"]
        .as_str()
        .unwrap_or("untitled widget")
        .to_owned();
    let mut found = Vec::new();
    for entry in widget["properties"]["metrics"]
        .as_array()
        .expect("metric widget has metrics")
    {
        let parts = entry.as_array().expect("metric entry is an array");
        if parts.first().is_some_and(Json::is_object) {
            continue;
        }
        let (options, strings) = match parts.last() {
            Some(Json::Object(options)) => (Some(options), &parts[..parts.len() - 1]),
            _ => (None, &parts[..]),
        };
        let strings: Vec<&str> = strings
            .iter()
            .map(|s| s.as_str().expect("metric entry parts are strings"))
            .collect();
        // The "." shorthand ("as the line above") would make a line's meaning depend on its
        // neighbour; every line here names its metric in full.
        assert!(!strings.contains(&"."), "{place}: {strings:?}");
        assert!(
            strings.len() >= 2 && strings.len().is_multiple_of(2),
            "{place}: {strings:?}"
        );
        found.push(MetricRef {
            place: place.clone(),
            namespace: strings[0].to_owned(),
            name: strings[1].to_owned(),
            dimensions: strings[2..]
                .chunks(2)
                .map(|pair| (pair[0].to_owned(), sub_reference(pair[1])))
                .collect(),
            stat: options
                .and_then(|o| o.get("stat"))
                .and_then(Json::as_str)
                .map(str::to_owned),
        });
    }
    found
}

fn dashboard_metrics() -> Vec<MetricRef> {
    let body = dashboard_body();
    metric_widgets(&body)
        .into_iter()
        .flat_map(widget_metrics)
        .collect()
}

/// A metric of an alarm, in the `Namespace`/`MetricName`/`Dimensions` form or a metric-math
/// `Metrics[].MetricStat.Metric`.
fn alarm_metric(place: &str, metric: &Yaml) -> MetricRef {
    let dimensions = metric["Dimensions"]
        .as_sequence()
        .map(|dimensions| {
            dimensions
                .iter()
                .map(|d| {
                    let name = d["Name"].as_str().expect("dimension name").to_owned();
                    let target = intrinsic(&d["Value"], "Ref")
                        .and_then(Yaml::as_str)
                        .unwrap_or("not a !Ref")
                        .to_owned();
                    (name, target)
                })
                .collect()
        })
        .unwrap_or_default();
    MetricRef {
        place: place.to_owned(),
        namespace: metric["Namespace"].as_str().expect("namespace").to_owned(),
        name: metric["MetricName"]
            .as_str()
            .expect("metric name")
            .to_owned(),
        dimensions,
        stat: None,
    }
}

fn alarm_ids(template: &Yaml) -> Vec<String> {
    template["Resources"]
        .as_mapping()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        // An optional resource's alarm (the fan-out's state machine) exists only with it,
        // watches its AWS metrics, and cannot be on the dashboard, whose body always is.
        .filter(|(_, r)| r.get("Condition").is_none())
        .map(|(id, _)| id.as_str().expect("logical id").to_owned())
        .collect()
}

fn alarm_metrics() -> Vec<MetricRef> {
    let template = template();
    let mut found = Vec::new();
    for id in alarm_ids(&template) {
        let properties = &template["Resources"][id.as_str()]["Properties"];
        if properties.get("MetricName").is_some() {
            found.push(alarm_metric(&id, properties));
        }
        for query in properties["Metrics"].as_sequence().into_iter().flatten() {
            if let Some(metric) = query.get("MetricStat") {
                found.push(alarm_metric(&id, &metric["Metric"]));
            }
        }
    }
    found
}

/// Custom metrics carry the one dimension the code sets, pointing at a function that emits
/// the name; Lambda's own metrics carry `FunctionName` of one of the two functions.
fn assert_emitted(metrics: &[MetricRef]) {
    for metric in metrics {
        let function = metric.function();
        assert!(function.is_some(), "{metric:?}: not one function");
        let expected_dimension = match metric.namespace.as_str() {
            NAMESPACE => DIMENSION,
            "AWS/Lambda" => "FunctionName",
            other => panic!("{metric:?}: unexpected namespace {other}"),
        };
        assert_eq!(metric.dimensions[0].0, expected_dimension, "{metric:?}");
        if let (NAMESPACE, Some(function)) = (metric.namespace.as_str(), function) {
            assert!(
                metric_names(function).contains(&metric.name.as_str()),
                "{}: {} is not a metric the {function:?} function emits",
                metric.place,
                metric.name
            );
        }
    }
}

#[test]
fn dashboard_metrics_are_the_ones_their_function_emits() {
    let metrics = dashboard_metrics();
    assert!(metrics.len() > 30, "{}", metrics.len());
    assert_emitted(&metrics);
}

#[test]
fn alarm_metrics_are_the_ones_their_function_emits() {
    let metrics = alarm_metrics();
    assert!(metrics.iter().any(|m| m.namespace == NAMESPACE));
    assert_emitted(&metrics);
}

#[test]
fn dashboard_shows_every_metric_the_code_emits() {
    let shown: BTreeSet<(FunctionKind, String)> = dashboard_metrics()
        .iter()
        .filter(|m| m.namespace == NAMESPACE)
        .filter_map(|m| Some((m.function()?, m.name.clone())))
        .collect();
    for function in [FunctionKind::Sync, FunctionKind::Snapshot] {
        for name in metric_names(function) {
            let key = (function, name.to_owned());
            assert!(
                shown.contains(&key),
                "{function:?} {name} is not on the dashboard"
            );
        }
    }
}

#[test]
fn dashboard_shows_lambda_errors_duration_and_throttles_of_both_functions() {
    let metrics = dashboard_metrics();
    for function in ["SyncFunction", "SnapshotFunction"] {
        for (name, stat) in [
            ("Errors", "Sum"),
            ("Throttles", "Sum"),
            ("Duration", "Maximum"),
        ] {
            assert!(
                metrics.iter().any(|m| m.namespace == "AWS/Lambda"
                    && m.name == name
                    && m.dimensions == [("FunctionName".to_owned(), function.to_owned())]
                    && m.stat.as_deref() == Some(stat)),
                "{function} {name} {stat}"
            );
        }
    }
}

#[test]
fn duration_graphs_mark_their_functions_timeout_in_ms() {
    let body = dashboard_body();
    let mut marked = BTreeSet::new();
    for widget in metric_widgets(&body) {
        let durations: BTreeSet<String> = widget_metrics(widget)
            .into_iter()
            .filter(|m| m.namespace == "AWS/Lambda" && m.name == "Duration")
            .map(|m| m.dimensions[0].1.clone())
            .collect();
        let [function] = durations.iter().collect::<Vec<_>>()[..] else {
            assert!(durations.is_empty(), "one function per duration graph");
            continue;
        };
        let timeout_ms = match function.as_str() {
            "SyncFunction" => SYNC_TIMEOUT_S * 1000,
            "SnapshotFunction" => SNAPSHOT_TIMEOUT_S * 1000,
            other => panic!("{other}"),
        };
        let lines = widget["properties"]["annotations"]["horizontal"]
            .as_array()
            .expect("a duration graph has horizontal annotations");
        assert!(
            lines
                .iter()
                .any(|l| l["value"].as_u64() == Some(timeout_ms)),
            "{function}: {lines:?}"
        );
        // Durations in ms, all on the axis the timeout line is drawn against.
        for metric in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let options = metric.as_array().and_then(|m| m.last());
            assert_ne!(options.map(|o| &o["yAxis"]), Some(&Json::from("right")));
        }
        marked.insert(function.clone());
    }
    assert_eq!(
        marked,
        BTreeSet::from(["SnapshotFunction".to_owned(), "SyncFunction".to_owned()])
    );
}

#[test]
fn dashboard_lists_every_alarm_and_graphs_in_the_stacks_region() {
    let body = dashboard_body();
    for widget in metric_widgets(&body) {
        assert_eq!(widget["properties"]["region"], "${AWS::Region}", "{widget}");
    }
    let listed: BTreeSet<String> = body["widgets"]
        .as_array()
        .expect("widgets")
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| {
            w["properties"]["alarms"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|arn| arn.as_str().unwrap_or_default().to_owned())
        .collect();
    let alarms: BTreeSet<String> = alarm_ids(&template())
        .iter()
        .map(|id| format!("${{{id}.Arn}}"))
        .collect();
    assert_eq!(listed, alarms);
}
