//! The invocation payload: what a scheduled or manual invocation asks the function to do.
//!
//! Three shapes arrive:
//! - an EventBridge event (a scheduled rule's `Scheduled Event`, or any event routed to the
//!   function): recognised by its `detail-type` and `source` keys; its `detail` object, if
//!   not empty, holds the options below;
//! - an EventBridge Scheduler (ScheduleV2) target input: the schedule's `Input` JSON as is,
//!   which is the options object (often `{}`);
//! - a manual invocation (console, `aws lambda invoke`, `cargo lambda invoke`): the options
//!   object, or no payload at all.
//!
//! Options (camelCase, all optional): `views`, `resync`, `dryRun`, `maintenance`,
//! `timeBudgetSeconds`, and the steps of a snapshot run split into units ([`FanOutStep`]:
//! `plan`, `unit`, `finalize` with `outcomes`). A key this function does not know, or one that belongs to the other
//! function, is an error naming it: a mistyped option must not silently run a full sync.
//!
//! The runtime hands the function a [`Payload`], which accepts any JSON document and notes the
//! first key that appears twice in an object (`{"dryRun": true, "dryRun": false}`): a plain
//! `serde_json::Value` would keep the last one silently. Since nothing valid can fail to
//! deserialize into it, every refusal, duplicate keys included, is this crate's
//! `Permanent.InvalidRequest` rather than the runtime's own deserialization error. (Text that
//! is not JSON never reaches the function: Lambda's Invoke API refuses it.)

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::FunctionKind;
use crate::job::ViewSelection;
use crate::snapshot::units::UnitOutcome;

/// Option keys and the functions that accept them.
const OPTION_KEYS: [(&str, &[FunctionKind]); 9] = [
    ("views", &[FunctionKind::Sync, FunctionKind::Snapshot]),
    ("resync", &[FunctionKind::Sync]),
    ("dryRun", &[FunctionKind::Sync]),
    ("maintenance", &[FunctionKind::Snapshot]),
    (
        "timeBudgetSeconds",
        &[FunctionKind::Sync, FunctionKind::Snapshot],
    ),
    ("plan", &[FunctionKind::Snapshot]),
    ("unit", &[FunctionKind::Snapshot]),
    ("finalize", &[FunctionKind::Snapshot]),
    ("outcomes", &[FunctionKind::Snapshot]),
];

/// The longest budget a payload may ask for: Lambda's maximum timeout.
const MAX_TIME_BUDGET: Duration = Duration::from_secs(900);

/// What started the invocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Trigger {
    /// A payload without an EventBridge envelope: a manual invocation or a ScheduleV2 input.
    #[default]
    Direct,
    /// An EventBridge event.
    EventBridge {
        /// `detail-type`, e.g. `Scheduled Event`.
        detail_type: String,
        /// `source`, e.g. `aws.events` or `aws.scheduler`.
        source: String,
        /// `resources`: the rule or schedule ARNs that matched.
        resources: Vec<String>,
        /// `time`: when the event was emitted, as sent.
        time: Option<String>,
    },
}

/// The options of one invocation, validated for the function that received them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// What started the invocation (logged with its summary).
    pub trigger: Trigger,
    /// The views to work on (externalIds, or model-qualified `<space>:<model>/<version>:<view>`).
    pub(crate) selection: ViewSelection,
    /// Streams (stream keys or view externalIds) to restart with a full backfill.
    pub(crate) resync: Vec<String>,
    /// Plan only: resolve models and streams, read and write no data.
    pub dry_run: bool,
    /// Snapshot function: run table maintenance after publishing (`None`: as configured).
    pub(crate) maintenance: Option<bool>,
    /// Shortens the invocation's deadline to at most this long from its start (sync: the
    /// run; snapshot: the maintenance that follows publishing).
    pub(crate) time_budget: Option<Duration>,
    /// Snapshot function: one step of a run split into units; `None` for a whole run.
    pub(crate) fan_out: Option<FanOutStep>,
}

/// One step of a snapshot run split into units, as a Step Functions state machine (or any
/// caller) invokes the snapshot function for it.
#[derive(Debug, Clone, PartialEq)]
pub enum FanOutStep {
    /// `{"plan": true}`: list the units of the configured (or `views`) views, most stale
    /// first; publishes nothing.
    Plan,
    /// `{"unit": "<id>"}`: run exactly that unit of the current plan.
    Unit(String),
    /// `{"finalize": true, "outcomes": [...]}`: the catalog, one run report over the units'
    /// outcomes (when given) and maintenance (unless `maintenance: false`).
    Finalize {
        /// What each unit did, as the map collected it.
        outcomes: Option<Vec<UnitOutcome>>,
    },
}

/// Why a payload was refused. Never retryable: the same payload fails the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    /// The offending key (`detail.views[2]`, `dryRun`), or `None` for the payload as a whole.
    pub(crate) key: Option<String>,
    pub(crate) message: String,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "invocation payload key `{key}`: {}", self.message),
            None => write!(f, "invocation payload: {}", self.message),
        }
    }
}

impl std::error::Error for PayloadError {}

impl PayloadError {
    fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

/// An invocation payload as received: the JSON document, and the path of the first key that
/// appeared more than once in one of its objects.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    value: Value,
    duplicate_key: Option<String>,
}

impl Payload {
    #[cfg(test)]
    /// Reads a payload from JSON text (what the runtime does with the request body).
    pub(crate) fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The document (with a duplicated key, its last value).
    pub(crate) fn value(&self) -> &Value {
        &self.value
    }

    /// The first key that appeared twice in one object (`detail.dryRun`), if any.
    pub(crate) fn duplicate_key(&self) -> Option<&str> {
        self.duplicate_key.as_deref()
    }
}

/// A document built in code has no duplicate keys.
impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self {
            value,
            duplicate_key: None,
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let duplicate = RefCell::new(None);
        let value = StrictValue {
            path: String::new(),
            duplicate: &duplicate,
        }
        .deserialize(deserializer)?;
        Ok(Self {
            value,
            duplicate_key: duplicate.into_inner(),
        })
    }
}

/// Deserializes any JSON value like `Value` does, recording the path of the first duplicate
/// object key instead of letting the last one win.
struct StrictValue<'a> {
    path: String,
    duplicate: &'a RefCell<Option<String>>,
}

impl StrictValue<'_> {
    fn child(&self, path: String) -> Self {
        StrictValue {
            path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity; `Value` turns them into null the same way.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) =
            seq.next_element_seed(self.child(format!("{}[{}]", self.path, items.len())))?
        {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            let value = map.next_value_seed(self.child(path.clone()))?;
            if object.insert(key, value).is_some() {
                self.duplicate.borrow_mut().get_or_insert(path);
            }
        }
        Ok(Value::Object(object))
    }
}

/// Parses a payload as received by `function`: [`parse_request`], after refusing a key that
/// appeared twice (which of its values was meant is unknown).
pub fn parse_payload(function: FunctionKind, payload: &Payload) -> Result<Request, PayloadError> {
    if let Some(key) = payload.duplicate_key() {
        return Err(PayloadError::at(
            key,
            "appears more than once in its object; give each option once",
        ));
    }
    parse_request(function, payload.value())
}

/// Parses the payload received by `function`.
pub fn parse_request(function: FunctionKind, payload: &Value) -> Result<Request, PayloadError> {
    match payload {
        Value::Null => Ok(Request::default()),
        Value::Object(map) if is_eventbridge_envelope(map) => parse_eventbridge(function, map),
        Value::Object(map) => parse_options(function, map, ""),
        other => Err(PayloadError {
            key: None,
            message: format!(
                "expected a JSON object (or no payload), got {}",
                json_kind(other)
            ),
        }),
    }
}

/// EventBridge always sends both keys; an options object never has them.
fn is_eventbridge_envelope(map: &Map<String, Value>) -> bool {
    map.contains_key("detail-type") && map.contains_key("source")
}

fn parse_eventbridge(
    function: FunctionKind,
    envelope: &Map<String, Value>,
) -> Result<Request, PayloadError> {
    let text = |key: &str| -> Result<Option<String>, PayloadError> {
        match envelope.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(PayloadError::at(
                key,
                format!("expected a string, got {}", json_kind(other)),
            )),
        }
    };
    let resources = match envelope.get("resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => string_list(value, "resources", true)?,
    };
    let trigger = Trigger::EventBridge {
        detail_type: text("detail-type")?.unwrap_or_default(),
        source: text("source")?.unwrap_or_default(),
        resources,
        time: text("time")?,
    };
    let mut request = match envelope.get("detail") {
        None | Some(Value::Null) => Request::default(),
        Some(Value::Object(detail)) => parse_options(function, detail, "detail.")?,
        Some(other) => {
            return Err(PayloadError::at(
                "detail",
                format!("expected an object of options, got {}", json_kind(other)),
            ));
        }
    };
    request.trigger = trigger;
    Ok(request)
}

fn parse_options(
    function: FunctionKind,
    options: &Map<String, Value>,
    prefix: &str,
) -> Result<Request, PayloadError> {
    let mut request = Request::default();
    let mut steps = FanOutOptions::default();
    for (key, value) in options {
        let path = format!("{prefix}{key}");
        check_accepted(function, key, &path)?;
        match key.as_str() {
            "views" | "resync" if value.is_null() => {}
            "views" => {
                let views = string_list(value, &path, false)?;
                if views.is_empty() {
                    return Err(PayloadError::at(
                        path,
                        "expected at least one view externalId; leave `views` out to run every configured view",
                    ));
                }
                request.selection = ViewSelection::of(&views)
                    .map_err(|error| PayloadError::at(path, error.to_string()))?;
            }
            "resync" => request.resync = string_list(value, &path, false)?,
            "dryRun" => request.dry_run = optional_bool(value, &path)?.unwrap_or(false),
            "maintenance" => request.maintenance = optional_bool(value, &path)?,
            "timeBudgetSeconds" => request.time_budget = time_budget(value, &path)?,
            "plan" => steps.plan = optional_bool(value, &path)?.unwrap_or(false),
            "finalize" => steps.finalize = optional_bool(value, &path)?.unwrap_or(false),
            "unit" if value.is_null() => {}
            "unit" => steps.unit = Some(unit_id(value, &path)?),
            "outcomes" if value.is_null() => {}
            "outcomes" => steps.outcomes = Some(outcomes(value, &path)?),
            // `check_accepted` refused every other key.
            _ => {}
        }
    }
    request.fan_out = steps.into_step(&request, prefix)?;
    Ok(request)
}

impl FanOutStep {
    /// The step for the invocation's log line (the outcomes counted, not listed).
    pub(crate) fn describe(&self) -> String {
        match self {
            FanOutStep::Plan => "plan".to_owned(),
            FanOutStep::Unit(id) => format!("unit {id}"),
            FanOutStep::Finalize { outcomes: None } => "finalize".to_owned(),
            FanOutStep::Finalize {
                outcomes: Some(outcomes),
            } => format!("finalize ({} unit outcomes)", outcomes.len()),
        }
    }
}

/// The fan-out keys of one payload, before they are checked against each other.
#[derive(Default)]
struct FanOutOptions {
    plan: bool,
    unit: Option<String>,
    finalize: bool,
    outcomes: Option<Vec<UnitOutcome>>,
}

impl FanOutOptions {
    /// The one step asked for, refusing combinations that mean nothing: two steps at once,
    /// outcomes without finalize, and options a step would silently ignore.
    fn into_step(
        self,
        request: &Request,
        prefix: &str,
    ) -> Result<Option<FanOutStep>, PayloadError> {
        let at =
            |key: &str, message: &str| Err(PayloadError::at(format!("{prefix}{key}"), message));
        let asked = [self.plan, self.unit.is_some(), self.finalize];
        if asked.iter().filter(|&&a| a).count() > 1 {
            let key = if self.finalize { "finalize" } else { "unit" };
            return at(
                key,
                "`plan`, `unit` and `finalize` are separate steps of a run split into units; give one per invocation",
            );
        }
        if self.outcomes.is_some() && !self.finalize {
            return at("outcomes", "goes with `finalize: true` only");
        }
        if self.unit.is_some() && !request.selection.is_all() {
            return at("views", "a unit names its view already; leave `views` out");
        }
        if (self.plan || self.unit.is_some()) && request.maintenance.is_some() {
            return at(
                "maintenance",
                "only the `finalize` step (or a whole run) maintains the raw tables",
            );
        }
        Ok(if self.plan {
            Some(FanOutStep::Plan)
        } else if let Some(unit) = self.unit {
            Some(FanOutStep::Unit(unit))
        } else if self.finalize {
            Some(FanOutStep::Finalize {
                outcomes: self.outcomes,
            })
        } else {
            None
        })
    }
}

fn unit_id(value: &Value, path: &str) -> Result<String, PayloadError> {
    match value {
        Value::String(id) if !id.trim().is_empty() => Ok(id.clone()),
        other => Err(PayloadError::at(
            path,
            format!(
                "expected a unit id from the plan (`view:<space>:<model>/<version>:<view>`), got {}",
                json_kind(other)
            ),
        )),
    }
}

fn outcomes(value: &Value, path: &str) -> Result<Vec<UnitOutcome>, PayloadError> {
    let Value::Array(items) = value else {
        return Err(PayloadError::at(
            path,
            format!(
                "expected the list of unit outcomes, got {}",
                json_kind(value)
            ),
        ));
    };
    items
        .iter()
        .enumerate()
        // What a map collects for a child execution that failed instead of reporting is no
        // outcome: its unit counts as one without an outcome, which fails the run.
        .filter(|(_, item)| match item {
            Value::Null => false,
            Value::Object(fields) => fields.contains_key("unit"),
            _ => true,
        })
        .map(|(i, item)| {
            serde_json::from_value(item.clone()).map_err(|e| {
                PayloadError::at(
                    format!("{path}[{i}]"),
                    format!("expected a unit outcome (`unit`, `success`, ...): {e}"),
                )
            })
        })
        .collect()
}

/// Refuses a key that no function knows, or that belongs to the other function.
fn check_accepted(function: FunctionKind, key: &str, path: &str) -> Result<(), PayloadError> {
    let Some((_, accepted_by)) = OPTION_KEYS.iter().find(|(name, _)| *name == key) else {
        return Err(PayloadError::at(
            path,
            format!(
                "unknown option; the {function} function accepts {}",
                accepted_keys(function)
            ),
        ));
    };
    if accepted_by.contains(&function) {
        return Ok(());
    }
    let owners: Vec<String> = accepted_by.iter().map(ToString::to_string).collect();
    Err(PayloadError::at(
        path,
        format!(
            "applies to the {} function, not to {function}; the {function} function accepts {}",
            owners.join(" and "),
            accepted_keys(function)
        ),
    ))
}

fn accepted_keys(function: FunctionKind) -> String {
    OPTION_KEYS
        .iter()
        .filter(|(_, accepted_by)| accepted_by.contains(&function))
        .map(|(name, _)| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn string_list(
    value: &Value,
    path: &str,
    allow_empty_items: bool,
) -> Result<Vec<String>, PayloadError> {
    let Value::Array(items) = value else {
        return Err(PayloadError::at(
            path,
            format!("expected a list of strings, got {}", json_kind(value)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) if allow_empty_items || !s.trim().is_empty() => Ok(s.clone()),
            Value::String(_) => Err(PayloadError::at(
                format!("{path}[{i}]"),
                "expected a non-empty string",
            )),
            other => Err(PayloadError::at(
                format!("{path}[{i}]"),
                format!("expected a string, got {}", json_kind(other)),
            )),
        })
        .collect()
}

fn optional_bool(value: &Value, path: &str) -> Result<Option<bool>, PayloadError> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(PayloadError::at(
            path,
            format!("expected true or false, got {}", json_kind(other)),
        )),
    }
}

fn time_budget(value: &Value, path: &str) -> Result<Option<Duration>, PayloadError> {
    let seconds = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64().filter(|&s| s > 0),
        _ => None,
    };
    match seconds {
        Some(s) if Duration::from_secs(s) <= MAX_TIME_BUDGET => Ok(Some(Duration::from_secs(s))),
        _ => Err(PayloadError::at(
            path,
            format!(
                "expected a whole number of seconds from 1 to {}, got {value}",
                MAX_TIME_BUDGET.as_secs()
            ),
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sync(payload: Value) -> Result<Request, PayloadError> {
        parse_request(FunctionKind::Sync, &payload)
    }

    fn snapshot(payload: Value) -> Result<Request, PayloadError> {
        parse_request(FunctionKind::Snapshot, &payload)
    }

    fn sync_text(text: &str) -> Result<Request, PayloadError> {
        parse_payload(FunctionKind::Sync, &Payload::from_json(text).unwrap())
    }

    #[test]
    fn duplicate_keys_are_refused_naming_the_key() {
        let err = sync_text(r#"{"dryRun": true, "dryRun": false}"#).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("dryRun"));
        assert!(err.to_string().contains("more than once"), "{err}");
        // Either order: neither value wins.
        let err = sync_text(r#"{"dryRun": false, "views": ["Pump"], "dryRun": true}"#).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("dryRun"));
        let err = sync_text(
            r#"{"detail-type": "Replicate", "source": "my.app", "detail": {"views": ["A"], "views": ["B"]}}"#,
        )
        .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("detail.views"));
        let err = sync_text(r#"{"resync": [{"a": 1, "a": 2}]}"#).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("resync[0].a"));
    }

    #[test]
    fn payload_reads_every_json_document_like_value() {
        for text in [
            "null",
            "{}",
            r#"{"views": ["Pump"], "timeBudgetSeconds": 120, "dryRun": true}"#,
            r#"{"a": [1, -2, 3.5, "x", null, {"b": false}], "c": 18446744073709551615}"#,
            "[1, 2]",
            "\"text\"",
        ] {
            let payload = Payload::from_json(text).unwrap();
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(payload.value(), &value, "{text}");
            assert_eq!(payload.duplicate_key(), None, "{text}");
        }
        let request = sync_text(r#"{"views": ["Pump"], "dryRun": true}"#).unwrap();
        assert!(request.dry_run);
        // A payload that is JSON but not an options object is still this crate's error.
        assert!(sync_text("[1, 2]").unwrap_err().key.is_none());
    }

    #[test]
    fn no_payload_and_empty_object_mean_defaults() {
        assert_eq!(sync(Value::Null).unwrap(), Request::default());
        assert_eq!(sync(json!({})).unwrap(), Request::default());
    }

    #[test]
    fn manual_sync_options() {
        let request = sync(json!({
            "views": ["Pump", "Valve"], "resync": ["Pump"], "dryRun": true, "timeBudgetSeconds": 120
        }))
        .unwrap();
        assert_eq!(
            request.selection,
            ViewSelection::of(["Pump", "Valve"]).unwrap()
        );
        assert_eq!(request.resync, vec!["Pump".to_string()]);
        assert!(request.dry_run);
        assert_eq!(request.time_budget, Some(Duration::from_secs(120)));
        assert_eq!(request.trigger, Trigger::Direct);
    }

    #[test]
    fn views_may_be_model_qualified_and_a_malformed_one_is_named() {
        let request = snapshot(json!({"views": ["Pump", "plant:PlantModel/1:Valve"]})).unwrap();
        assert_eq!(
            request.selection,
            ViewSelection::of(["Pump", "plant:PlantModel/1:Valve"]).unwrap()
        );
        let err = sync(json!({"views": ["plant:Valve"]})).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("views"));
        assert!(err.message.contains("`plant:Valve`"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = sync(json!({"view": ["Pump"]})).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("view"));
        let text = err.to_string();
        assert!(
            text.contains("`view`") && text.contains("unknown option"),
            "{text}"
        );
        assert!(text.contains("`views`"), "lists what is accepted: {text}");
    }

    #[test]
    fn option_of_the_other_function_is_refused_with_a_reason() {
        let err = sync(json!({"maintenance": true})).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("maintenance"));
        assert!(err.message.contains("snapshot function"), "{err}");
        let err = snapshot(json!({"resync": ["Pump"]})).unwrap_err();
        assert!(err.message.contains("sync function"), "{err}");
        let request = snapshot(json!({"views": ["Pump"], "maintenance": false})).unwrap();
        assert_eq!(request.maintenance, Some(false));
    }

    #[test]
    fn wrong_types_name_the_key_and_index() {
        assert_eq!(
            sync(json!({"views": "Pump"})).unwrap_err().key.as_deref(),
            Some("views")
        );
        assert_eq!(
            sync(json!({"views": ["Pump", 3]}))
                .unwrap_err()
                .key
                .as_deref(),
            Some("views[1]")
        );
        assert_eq!(
            sync(json!({"views": []})).unwrap_err().key.as_deref(),
            Some("views")
        );
        assert_eq!(
            sync(json!({"dryRun": "yes"})).unwrap_err().key.as_deref(),
            Some("dryRun")
        );
        for budget in [json!(0), json!(-5), json!(1.5), json!("60"), json!(901)] {
            let err = sync(json!({ "timeBudgetSeconds": budget })).unwrap_err();
            assert_eq!(err.key.as_deref(), Some("timeBudgetSeconds"), "{budget}");
        }
        assert!(sync(json!(["views"])).unwrap_err().key.is_none());
    }

    #[test]
    fn eventbridge_scheduled_event() {
        let request = sync(json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2024-05-01T12:00:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:events:eu-west-1:123456789012:rule/sync"], "detail": {}
        }))
        .unwrap();
        assert_eq!(
            request.trigger,
            Trigger::EventBridge {
                detail_type: "Scheduled Event".into(),
                source: "aws.events".into(),
                resources: vec!["arn:aws:events:eu-west-1:123456789012:rule/sync".into()],
                time: Some("2024-05-01T12:00:00Z".into()),
            }
        );
        assert!(request.selection.is_all());
    }

    #[test]
    fn fan_out_steps_one_per_invocation() {
        assert_eq!(
            snapshot(json!({"plan": true})).unwrap().fan_out,
            Some(FanOutStep::Plan)
        );
        let plan = snapshot(json!({"plan": true, "views": ["Pump"]})).unwrap();
        assert_eq!(plan.selection, ViewSelection::of(["Pump"]).unwrap());
        assert_eq!(snapshot(json!({"plan": false})).unwrap().fan_out, None);
        assert_eq!(
            snapshot(json!({"unit": "view:s:M/1:Pump"}))
                .unwrap()
                .fan_out,
            Some(FanOutStep::Unit("view:s:M/1:Pump".into()))
        );
        let finalize = snapshot(json!({
            "finalize": true, "maintenance": false,
            "outcomes": [{"unit": "view:s:M/1:Pump", "success": true, "rows": 3}]
        }))
        .unwrap();
        match finalize.fan_out {
            Some(FanOutStep::Finalize {
                outcomes: Some(outcomes),
            }) => {
                assert_eq!(outcomes[0].unit, "view:s:M/1:Pump");
                assert_eq!(outcomes[0].rows, 3);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            snapshot(json!({"finalize": true})).unwrap().fan_out,
            Some(FanOutStep::Finalize { outcomes: None })
        );
        // A failed child execution's entry in the map's output is no outcome.
        let lenient = snapshot(json!({
            "finalize": true,
            "outcomes": [null, {"Error": "States.Timeout", "Cause": "x"}, {"unit": "a", "success": true}]
        }))
        .unwrap();
        match lenient.fan_out {
            Some(FanOutStep::Finalize {
                outcomes: Some(outcomes),
            }) => assert_eq!(outcomes.len(), 1),
            other => panic!("{other:?}"),
        }
        for (payload, key) in [
            (json!({"plan": true, "finalize": true}), "finalize"),
            (json!({"plan": true, "unit": "x"}), "unit"),
            (json!({"outcomes": []}), "outcomes"),
            (json!({"unit": "x", "views": ["Pump"]}), "views"),
            (json!({"unit": "x", "maintenance": false}), "maintenance"),
            (json!({"plan": true, "maintenance": true}), "maintenance"),
            (json!({"unit": ""}), "unit"),
            (json!({"unit": 3}), "unit"),
            (json!({"finalize": "yes"}), "finalize"),
            (
                json!({"finalize": true, "outcomes": [{"unit": "a", "success": true}, {"unit": 1}]}),
                "outcomes[1]",
            ),
            (
                json!({"finalize": true, "outcomes": [{"unit": "a", "success": true}, 3]}),
                "outcomes[1]",
            ),
        ] {
            let err = snapshot(payload.clone()).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{payload}: {err}");
        }
        assert!(
            sync(json!({"plan": true}))
                .unwrap_err()
                .message
                .contains("snapshot function")
        );
        let err = snapshot(json!({
            "detail-type": "Snapshot", "source": "my.app", "detail": {"outcomes": []}
        }))
        .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("detail.outcomes"));
    }

    #[test]
    fn eventbridge_detail_carries_options_with_prefixed_errors() {
        let envelope = |detail: Value| json!({"detail-type": "Replicate", "source": "my.app", "detail": detail});
        let request = sync(envelope(json!({"views": ["Pump"]}))).unwrap();
        assert_eq!(request.selection, ViewSelection::of(["Pump"]).unwrap());
        let err = sync(envelope(json!({"bogus": 1}))).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("detail.bogus"));
        let err = sync(envelope(json!("text"))).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("detail"));
    }
}
