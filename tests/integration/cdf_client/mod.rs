//! The CDF client against the project's CDF emulator: auth, headers, retries, sync,
//! RAW and extraction pipelines, with faults injected through the emulator's control API.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cdf_emulator::{Control, Emulator, EmulatorConfig, FaultSpec, THREE_DAYS};
use cdf_s3_replicator::cdf::dto::{
    DataModelId, EdgeDirection, ExtpipeConfigWrite, ExtpipeRunStatus, ExtpipeRunWrite, Filter,
    Instance, InstanceType, NodeReference, PropertyKind, RawRowQuery, RawRowWrite, SyncExpression,
    SyncMode, SyncRequest, SyncSelect, ViewId, ViewProperty, ViewReference,
};
use cdf_s3_replicator::cdf::{
    CdfClient, CdfError, ClientCredentials, ClientSettings, DataModelListQuery, RetryPolicy,
    SDK_ID, Secret,
};
use serde_json::{Value, json};

const SYNC_PATH: &str = "/models/instances/sync";
const APP_NAME: &str = "cdf-client-tests";

// ---- fixtures ----

struct Setup {
    emu: Emulator,
    client: CdfClient,
}

impl Setup {
    fn ctl(&self) -> Control {
        self.emu.control()
    }

    /// Requests the emulator received on `path` (token endpoint included) so far.
    fn requests_to(&self, path_suffix: &str) -> usize {
        self.ctl()
            .request_log()
            .iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .count()
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(60),
    }
}

fn settings_for(emu: &Emulator, secret: &str) -> ClientSettings {
    let mut settings = ClientSettings::new(
        emu.base_url(),
        emu.project(),
        ClientCredentials {
            token_url: emu.token_url(),
            client_id: "emulator-client".into(),
            client_secret: Secret::new(secret),
            scopes: vec!["https://api.cognitedata.com/.default".into()],
            audience: None,
            resource: None,
        },
    );
    settings.app_name = APP_NAME.into();
    settings.timeout = Duration::from_secs(10);
    settings.retry = fast_retries();
    settings
}

async fn setup() -> Setup {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    seed_schema(&emu.control());
    let client = CdfClient::new(settings_for(&emu, "emulator-secret")).unwrap();
    Setup { emu, client }
}

fn pump_view() -> ViewReference {
    ViewReference::new("schema", "Pump", "1")
}

fn flow_view() -> ViewReference {
    ViewReference::new("schema", "Flow", "1")
}

fn view_json(view: &ViewReference) -> Value {
    serde_json::to_value(view).unwrap()
}

fn seed_schema(ctl: &Control) {
    let mapped = |prop: &str| {
        json!({"container": {"type": "container", "space": "schema", "externalId": "PumpC"},
               "containerPropertyIdentifier": prop})
    };
    ctl.apply_schema(json!({
        "spaces": [{"space": "schema"}, {"space": "data"}],
        "containers": [
            {"space": "schema", "externalId": "PumpC", "usedFor": "node", "properties": {
                "tag": {"type": {"type": "text"}, "nullable": false},
                "count64": {"type": {"type": "int64"}},
                "ratedKw": {"type": {"type": "float64"}},
                "site": {"type": {"type": "direct"}},
                "aliases": {"type": {"type": "text", "list": true}}
            }},
            {"space": "schema", "externalId": "FlowC", "usedFor": "edge", "properties": {
                "rate": {"type": {"type": "float64"}}
            }}
        ],
        "views": [
            {"space": "schema", "externalId": "Equipment", "version": "1", "properties": {
                "tag": mapped("tag")
            }},
            {"space": "schema", "externalId": "Pump", "version": "1",
             "implements": [{"type": "view", "space": "schema", "externalId": "Equipment", "version": "1"}],
             "properties": {
                "count64": mapped("count64"),
                "ratedKw": mapped("ratedKw"),
                "site": mapped("site"),
                "aliases": mapped("aliases"),
                "flows": {"connectionType": "multi_edge_connection",
                          "type": {"space": "schema", "externalId": "Pump.flows"},
                          "source": view_json(&pump_view()),
                          "edgeSource": view_json(&flow_view())}
            }},
            {"space": "schema", "externalId": "Flow", "version": "1", "properties": {
                "rate": {"container": {"type": "container", "space": "schema", "externalId": "FlowC"},
                         "containerPropertyIdentifier": "rate"}
            }}
        ]
    }))
    .unwrap();
}

fn pump(xid: &str, props: Value) -> Value {
    json!({"instanceType": "node", "space": "data", "externalId": xid,
           "sources": [{"source": view_json(&pump_view()), "properties": props}]})
}

fn flow(xid: &str, start: &str, end: &str, rate: f64) -> Value {
    json!({"instanceType": "edge", "space": "data", "externalId": xid,
           "type": {"space": "schema", "externalId": "Pump.flows"},
           "startNode": {"space": "data", "externalId": start},
           "endNode": {"space": "data", "externalId": end},
           "sources": [{"source": view_json(&flow_view()), "properties": {"rate": rate}}]})
}

fn pump_name(i: usize) -> String {
    format!("p{i:03}")
}

fn seed_pumps(ctl: &Control, range: std::ops::Range<usize>) {
    let items: Vec<Value> = range
        .map(|i| pump(&pump_name(i), json!({"tag": format!("T{i}"), "count64": i})))
        .collect();
    ctl.apply_instances(json!({ "items": items })).unwrap();
}

fn delete_pump(ctl: &Control, xid: &str) {
    ctl.delete_instances(
        json!({"items": [{"instanceType": "node", "space": "data", "externalId": xid}]}),
    )
    .unwrap();
}

fn pump_sync(mode: SyncMode, limit: u32) -> SyncRequest {
    SyncRequest::single(
        "pumps",
        SyncExpression::nodes(Some(Filter::has_data_view(pump_view())), limit, mode),
        SyncSelect::all_of(pump_view()),
    )
}

/// Follows the cursor until a short page, as the sync engine does; returns every item in
/// arrival order, the number of calls and the last cursor.
async fn drain(
    client: &CdfClient,
    request: &SyncRequest,
    cursor: Option<String>,
) -> (Vec<Instance>, usize, Option<String>) {
    let limit = request.with["pumps"].limit as usize;
    let mut cursor = cursor;
    let mut items = Vec::new();
    let mut calls = 0;
    loop {
        let req = request.clone().with_cursor("pumps", cursor.clone());
        let mut page = client.sync(&req).await.unwrap();
        calls += 1;
        let got = page.take_items("pumps");
        let short = got.len() < limit;
        items.extend(got);
        cursor = Some(
            page.cursor_of("pumps")
                .expect("a cursor on every page")
                .to_owned(),
        );
        if short {
            return (items, calls, cursor);
        }
    }
}

fn xids(items: &[Instance]) -> Vec<String> {
    items.iter().map(|i| i.external_id.clone()).collect()
}

fn expected_pumps(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(pump_name).collect()
}

// ---- schema and headers ----

#[tokio::test]
async fn data_models_and_views_are_listed_resolved_and_decoded() {
    let s = setup().await;
    let model = |version: &str, views: Vec<Value>| json!({"dataModels": [{"space": "schema", "externalId": "Plant", "version": version, "views": views}]});
    // "9" is created after "10": the newest by createdTime is "9", not the larger string.
    s.ctl()
        .apply_schema(model("10", vec![view_json(&pump_view())]))
        .unwrap();
    s.ctl().advance_clock(Duration::from_secs(5));
    s.ctl()
        .apply_schema(model(
            "9",
            vec![view_json(&pump_view()), view_json(&flow_view())],
        ))
        .unwrap();

    let latest = s
        .client
        .resolve_data_model("schema", "Plant", None, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.version, "9");
    assert_eq!(latest.view_references(), vec![pump_view(), flow_view()]);
    let pinned = s
        .client
        .resolve_data_model("schema", "Plant", Some("10"), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pinned.view_references(), vec![pump_view()]);
    assert!(
        s.client
            .resolve_data_model("schema", "Nope", None, false)
            .await
            .unwrap()
            .is_none()
    );

    let all = s
        .client
        .list_data_models(&DataModelListQuery {
            all_versions: true,
            limit: Some(1),
            ..DataModelListQuery::default()
        })
        .await
        .unwrap();
    let versions: BTreeSet<&str> = all.iter().map(|m| m.version.as_str()).collect();
    assert_eq!(versions, BTreeSet::from(["10", "9"]));
    let newest = s
        .client
        .list_data_models(&DataModelListQuery::default())
        .await
        .unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].version, "9");

    let inline = s
        .client
        .retrieve_data_models(
            &[DataModelId::new("schema", "Plant", Some("9".into()))],
            true,
        )
        .await
        .unwrap();
    assert_eq!(inline.len(), 1);
    assert_eq!(inline[0].view_references(), vec![pump_view(), flow_view()]);

    let views = s
        .client
        .retrieve_views(&[
            pump_view().to_id(),
            ViewId {
                space: "schema".into(),
                external_id: "Missing".into(),
                version: Some("1".into()),
            },
        ])
        .await
        .unwrap();
    assert_eq!(views.len(), 1, "unknown ids are left out");
    let pump = &views[0];
    assert_eq!(pump.reference(), pump_view());
    // Inherited from Equipment.
    let ViewProperty::Mapped(tag) = &pump.properties["tag"] else {
        panic!("tag is mapped: {:?}", pump.properties["tag"])
    };
    assert!(matches!(tag.property_type.kind, PropertyKind::Text { .. }));
    let ViewProperty::Mapped(aliases) = &pump.properties["aliases"] else {
        panic!()
    };
    assert!(aliases.property_type.list);
    let ViewProperty::Mapped(count) = &pump.properties["count64"] else {
        panic!()
    };
    assert_eq!(count.property_type.kind, PropertyKind::Int64);
    let ViewProperty::EdgeConnection(flows) = &pump.properties["flows"] else {
        panic!("flows is an edge connection")
    };
    assert_eq!(flows.edge_type, NodeReference::new("schema", "Pump.flows"));
    assert_eq!(flows.edge_source, Some(flow_view()));
    assert_eq!(flows.direction, EdgeDirection::Outwards);

    // 150 ids are sent as two byids requests of at most 100.
    s.ctl().clear_request_log();
    let many: Vec<ViewId> = (0..150)
        .map(|i| ViewId {
            space: "schema".into(),
            external_id: format!("V{i}"),
            version: Some("1".into()),
        })
        .collect();
    assert!(s.client.retrieve_views(&many).await.unwrap().is_empty());
    let byids: Vec<_> = s
        .ctl()
        .request_log()
        .into_iter()
        .filter(|r| r.path.ends_with("/models/views/byids"))
        .collect();
    assert_eq!(byids.len(), 2);
    assert!(
        byids
            .iter()
            .all(|r| r.query.as_deref() == Some("includeInheritedProperties=true"))
    );
}

#[tokio::test]
async fn identifying_headers_are_sent_to_cdf_but_not_to_the_token_endpoint() {
    let s = setup().await;
    s.client
        .sync(&pump_sync(SyncMode::OnePhase, 10))
        .await
        .unwrap();
    let log = s.ctl().request_log();
    let sync = log.iter().find(|r| r.path.ends_with(SYNC_PATH)).unwrap();
    assert_eq!(sync.header("x-cdp-app"), Some(APP_NAME));
    assert_eq!(sync.header("x-cdp-sdk"), Some(SDK_ID));
    assert!(SDK_ID.starts_with("cdf-s3-replicator/"));
    assert_eq!(sync.header("cdf-version"), Some("20230101"));
    assert_eq!(sync.header("authorization"), Some("Bearer <redacted>"));
    assert_eq!(sync.header("user-agent"), Some(SDK_ID));
    assert_eq!(sync.header("content-type"), Some("application/json"));
    assert_eq!(sync.header("accept"), Some("application/json"));
    let token = log.iter().find(|r| r.path == "/oauth2/token").unwrap();
    assert_eq!(token.header("x-cdp-app"), None);
    assert_eq!(token.header("authorization"), None);
    assert_eq!(
        token.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
}

// ---- sync ----

#[tokio::test]
async fn two_phase_backfill_then_streaming_changes_and_deletes() {
    let s = setup().await;
    seed_pumps(&s.ctl(), 0..25);
    let request = pump_sync(SyncMode::TwoPhase, 10);

    let (backfill, calls, cursor) = drain(&s.client, &request, None).await;
    assert_eq!(calls, 3, "pages of 10, 10 and 5");
    assert_eq!(xids(&backfill), expected_pumps(0..25));
    assert!(backfill.iter().all(|i| i.version == 1 && !i.is_deleted()));
    let p7 = backfill[7].view_properties(&pump_view()).unwrap();
    assert_eq!(p7["tag"], json!("T7"));
    assert_eq!(p7["count64"], json!(7));

    // Caught up: an empty page still hands out a cursor.
    let (none, _, cursor) = drain(&s.client, &request, cursor).await;
    assert!(none.is_empty());

    // Streaming: an update, a create, a delete and an int64 beyond 2^53.
    s.ctl()
        .apply_instances(json!({"items": [
            pump("p003", json!({"tag": "changed", "count64": 9007199254740993_i64})),
            pump("p100", json!({"tag": "new", "aliases": ["a", "b"]})),
        ]}))
        .unwrap();
    delete_pump(&s.ctl(), "p005");
    let (changes, _, cursor) = drain(&s.client, &request, cursor).await;
    let by_xid: BTreeMap<&str, &Instance> = changes
        .iter()
        .map(|i| (i.external_id.as_str(), i))
        .collect();
    assert_eq!(changes.len(), 3, "{:?}", xids(&changes));
    assert_eq!(
        by_xid.keys().copied().collect::<Vec<_>>(),
        ["p003", "p005", "p100"]
    );
    let p3 = by_xid["p003"];
    assert_eq!(p3.version, 2);
    let p3_values = p3.view_properties(&pump_view()).unwrap();
    assert_eq!(p3_values["count64"].as_i64(), Some(9_007_199_254_740_993));
    assert_eq!(p3_values["tag"], json!("changed"));
    assert!(by_xid["p005"].is_deleted());
    assert!(!by_xid["p100"].is_deleted());
    assert_eq!(
        by_xid["p100"].view_properties(&pump_view()).unwrap()["aliases"],
        json!(["a", "b"])
    );

    // Nothing more.
    let (rest, _, _) = drain(&s.client, &request, cursor).await;
    assert!(rest.is_empty(), "{:?}", xids(&rest));
}

#[tokio::test]
async fn edges_of_a_connection_sync_with_edge_source_properties_and_typing() {
    let s = setup().await;
    seed_pumps(&s.ctl(), 0..3);
    s.ctl()
        .apply_instances(json!({"items": [
            flow("f1", "p000", "p001", 1.5),
            flow("f2", "p001", "p002", 2.5),
        ]}))
        .unwrap();
    let mut request = SyncRequest::single(
        "flows",
        SyncExpression::edges(
            Some(Filter::edge_type(&NodeReference::new(
                "schema",
                "Pump.flows",
            ))),
            100,
            SyncMode::OnePhase,
        ),
        SyncSelect::all_of(flow_view()),
    );
    request.include_typing = true;
    let mut response = s.client.sync(&request).await.unwrap();
    let typing = response.typing.take().expect("typing was requested");
    let rate = &typing["flows"]["schema"]["Flow/1"]["rate"];
    assert!(matches!(
        rate.property_type.kind,
        PropertyKind::Float64 { .. }
    ));
    let edges = response.take_items("flows");
    assert_eq!(xids(&edges), ["f1", "f2"]);
    let f1 = &edges[0];
    assert_eq!(f1.instance_type, InstanceType::Edge);
    assert_eq!(f1.r#type, Some(NodeReference::new("schema", "Pump.flows")));
    assert_eq!(f1.start_node, Some(NodeReference::new("data", "p000")));
    assert_eq!(f1.end_node, Some(NodeReference::new("data", "p001")));
    assert_eq!(
        f1.view_properties(&flow_view()).unwrap()["rate"],
        json!(1.5)
    );

    // Deleting a node removes its edges: both tombstones arrive.
    delete_pump(&s.ctl(), "p001");
    let cursor = response.cursor_of("flows").unwrap().to_owned();
    let mut next = s
        .client
        .sync(&request.clone().with_cursor("flows", Some(cursor)))
        .await
        .unwrap();
    let deleted = next.take_items("flows");
    assert_eq!(xids(&deleted), ["f1", "f2"]);
    assert!(deleted.iter().all(Instance::is_deleted));
}

#[tokio::test]
async fn expired_cursor_is_reported_not_retried_and_can_be_accepted_on_request() {
    let s = setup().await;
    seed_pumps(&s.ctl(), 0..3);
    let request = pump_sync(SyncMode::OnePhase, 10);
    let (_, _, cursor) = drain(&s.client, &request, None).await;
    // Beyond the cursor lifetime; this also outlives the access token, which the client
    // replaces after the 401.
    s.ctl().advance_clock(THREE_DAYS + Duration::from_secs(1));
    s.ctl().clear_request_log();

    let err = s
        .client
        .sync(&request.clone().with_cursor("pumps", cursor.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CdfError::CursorExpired {
                request_id: Some(_)
            }
        ),
        "{err:?}"
    );
    assert!(err.requires_resync());
    assert_eq!(
        s.requests_to(SYNC_PATH),
        2,
        "one 401, one expired-cursor 400"
    );
    assert_eq!(s.requests_to("/oauth2/token"), 1);

    let mut accepting = request.clone().with_cursor("pumps", cursor);
    accepting.allow_expired_cursors_and_accept_missed_deletes = true;
    let page = s.client.sync(&accepting).await.unwrap();
    assert!(page.items_of("pumps").is_empty());

    // Starting over without a cursor backfills everything again.
    let (again, _, _) = drain(&s.client, &request, None).await;
    assert_eq!(xids(&again), expected_pumps(0..3));
}

#[tokio::test]
async fn garbage_cursor_is_an_invalid_cursor_error() {
    let s = setup().await;
    let request =
        pump_sync(SyncMode::OnePhase, 10).with_cursor("pumps", Some("not-a-cursor".into()));
    let err = s.client.sync(&request).await.unwrap_err();
    assert!(matches!(err, CdfError::InvalidCursor { .. }), "{err:?}");
    assert_eq!(s.requests_to(SYNC_PATH), 1, "never retried");
}

#[tokio::test]
async fn out_of_range_limit_is_rejected_before_sending() {
    let s = setup().await;
    let err = s
        .client
        .sync(&pump_sync(SyncMode::OnePhase, 2001))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pumps") && err.to_string().contains("2001"));
    assert_eq!(s.requests_to(SYNC_PATH), 0);
}

// ---- retries ----

#[tokio::test]
async fn throttling_and_server_error_storms_lose_and_duplicate_nothing() {
    let s = setup().await;
    seed_pumps(&s.ctl(), 0..45);
    let request = pump_sync(SyncMode::TwoPhase, 10);
    let ctl = s.ctl();
    // The faults each page call meets before it gets through.
    let plan: Vec<Vec<FaultSpec>> = vec![
        vec![FaultSpec::status(SYNC_PATH, 429, 3)],
        vec![
            FaultSpec::status(SYNC_PATH, 503, 2),
            FaultSpec::status(SYNC_PATH, 500, 1),
        ],
        vec![
            FaultSpec::status(SYNC_PATH, 502, 1),
            FaultSpec::status(SYNC_PATH, 504, 1),
            FaultSpec::status(SYNC_PATH, 408, 1),
        ],
        vec![FaultSpec::status(SYNC_PATH, 400, 2).with_header("cdf-is-auto-retryable", "true")],
        vec![FaultSpec::status(SYNC_PATH, 429, 7)],
    ];
    let mut cursor = None;
    let mut items = Vec::new();
    for faults in plan {
        for fault in faults {
            ctl.add_fault(fault);
        }
        let mut page = s
            .client
            .sync(&request.clone().with_cursor("pumps", cursor))
            .await
            .unwrap();
        assert!(ctl.faults().is_empty(), "every fault fired");
        items.extend(page.take_items("pumps"));
        cursor = page.cursor_of("pumps").map(str::to_owned);
    }
    let unique: BTreeSet<&str> = items.iter().map(|i| i.external_id.as_str()).collect();
    assert_eq!(unique.len(), items.len(), "no duplicates");
    assert_eq!(xids(&items), expected_pumps(0..45));
    assert_eq!(s.requests_to(SYNC_PATH), 5 + 3 + 3 + 3 + 2 + 7);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let s = setup().await;
    seed_pumps(&s.ctl(), 0..2);
    s.ctl()
        .add_fault(FaultSpec::status(SYNC_PATH, 429, 1).with_retry_after(1));
    let started = Instant::now();
    let (items, _, _) = drain(&s.client, &pump_sync(SyncMode::OnePhase, 10), None).await;
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited only {:?}",
        started.elapsed()
    );
    assert_eq!(xids(&items), expected_pumps(0..2));
}

#[tokio::test]
async fn retry_after_is_capped_by_the_policy() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    seed_schema(&emu.control());
    let mut settings = settings_for(&emu, "emulator-secret");
    settings.retry.max_retry_after = Duration::from_millis(50);
    let client = CdfClient::new(settings).unwrap();
    emu.control()
        .add_fault(FaultSpec::status(SYNC_PATH, 503, 1).with_retry_after(3600));
    // Uncapped, the client would wait the server's hour; the bound only tells the two apart
    // (the cap's value itself is checked in `cdf::retry`), it does not time the request.
    tokio::time::timeout(
        Duration::from_secs(300),
        client.sync(&pump_sync(SyncMode::OnePhase, 10)),
    )
    .await
    .expect("the 3600 s Retry-After is capped at 50 ms")
    .unwrap();
}

#[tokio::test]
async fn persistent_server_errors_exhaust_the_attempt_budget() {
    let s = setup().await;
    s.ctl().add_fault(FaultSpec::status(SYNC_PATH, 503, 100));
    let err = s
        .client
        .sync(&pump_sync(SyncMode::OnePhase, 10))
        .await
        .unwrap_err();
    match &err {
        CdfError::RetriesExhausted { attempts, last } => {
            assert_eq!(*attempts, 8);
            assert!(matches!(**last, CdfError::Api(ref api) if api.status == 503 && api.retryable));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.status(), Some(503));
    assert!(err.request_id().is_some_and(|id| id.starts_with("emu-")));
    assert_eq!(s.requests_to(SYNC_PATH), 8);
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    let s = setup().await;
    for status in [403, 404, 409, 422] {
        s.ctl().clear_request_log();
        s.ctl().add_fault(FaultSpec::status(SYNC_PATH, status, 1));
        let err = s
            .client
            .sync(&pump_sync(SyncMode::OnePhase, 10))
            .await
            .unwrap_err();
        let CdfError::Api(api) = &err else {
            panic!("unexpected {err:?}")
        };
        assert_eq!(api.status, status);
        assert_eq!(api.code, Some(i64::from(status)));
        assert!(api.message.contains("Injected fault"), "{}", api.message);
        assert!(api.request_id.is_some());
        assert!(!api.retryable);
        assert_eq!(api.endpoint, "POST /models/instances/sync");
        assert_eq!(s.requests_to(SYNC_PATH), 1, "status {status}");
    }
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let s = setup().await;
    seed_pumps(&s.ctl(), 0..12);
    s.ctl().add_fault(FaultSpec::drop_connection(SYNC_PATH, 2));
    let (items, _, _) = drain(&s.client, &pump_sync(SyncMode::TwoPhase, 5), None).await;
    assert_eq!(xids(&items), expected_pumps(0..12));
    assert!(s.ctl().faults().is_empty());
}

#[tokio::test]
async fn truncated_bodies_are_retried_and_reported_as_decode_errors_when_persistent() {
    let s = setup().await;
    seed_pumps(&s.ctl(), 0..12);
    s.ctl().add_fault(FaultSpec::truncate_body(SYNC_PATH, 2));
    let (items, _, _) = drain(&s.client, &pump_sync(SyncMode::TwoPhase, 5), None).await;
    assert_eq!(xids(&items), expected_pumps(0..12));

    s.ctl().add_fault(FaultSpec::truncate_body(SYNC_PATH, 100));
    let err = s
        .client
        .sync(&pump_sync(SyncMode::TwoPhase, 5))
        .await
        .unwrap_err();
    match err {
        CdfError::RetriesExhausted { attempts, last } => {
            assert_eq!(attempts, 8);
            match *last {
                CdfError::Decode {
                    endpoint,
                    body_snippet,
                    source,
                } => {
                    assert_eq!(endpoint, "POST /models/instances/sync");
                    assert!(body_snippet.starts_with('{'), "{body_snippet}");
                    assert!(body_snippet.chars().count() <= 200);
                    assert!(source.is_eof());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// What a load balancer in front of CDF answers when CDF is not there: HTML, not the envelope.
const GATEWAY_PAGE: &str =
    "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>";

#[tokio::test]
async fn bodies_that_are_not_json_give_typed_errors_and_retry_only_when_the_status_allows() {
    let s = setup().await;
    seed_pumps(&s.ctl(), 0..12);

    // A gateway page on 502 is a server error like any other: retried, nothing lost or doubled.
    s.ctl()
        .add_fault(FaultSpec::raw(SYNC_PATH, 502, GATEWAY_PAGE, 3));
    let (items, _, _) = drain(&s.client, &pump_sync(SyncMode::TwoPhase, 5), None).await;
    assert_eq!(xids(&items), expected_pumps(0..12));
    let failed_sync = || async {
        s.client
            .sync(&pump_sync(SyncMode::OnePhase, 10))
            .await
            .unwrap_err()
    };

    // On 400 the page becomes the error message: not retried, and readable.
    s.ctl().clear_request_log();
    s.ctl().add_fault(FaultSpec::raw(
        SYNC_PATH,
        400,
        "<html>Bad Request ø</html>",
        1,
    ));
    let err = failed_sync().await;
    let CdfError::Api(api) = &err else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(api.status, 400);
    assert_eq!(api.code, None, "{api:?}");
    assert_eq!(api.message, "<html>Bad Request ø</html>");
    assert!(!api.retryable);
    assert_eq!(s.requests_to(SYNC_PATH), 1);

    // A 200 that is not JSON (a captive portal, a misrouted host) is a decode error that names
    // the endpoint and shows the start of what came back. The body is whole, so asking again
    // would get the same page: it is not retried.
    s.ctl().clear_request_log();
    s.ctl().add_fault(FaultSpec::rewrite_body(
        SYNC_PATH,
        "{\"items\"",
        "<!doctype html>{\"items\"",
        1,
    ));
    let err = failed_sync().await;
    let CdfError::Decode {
        endpoint,
        body_snippet,
        ..
    } = err
    else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(endpoint, "POST /models/instances/sync");
    assert!(
        body_snippet.starts_with("<!doctype html>"),
        "{body_snippet}"
    );
    assert!(body_snippet.chars().count() <= 200);
    assert_eq!(s.requests_to(SYNC_PATH), 1);
    let shown = CdfError::Decode {
        endpoint,
        body_snippet,
        source: serde_json::from_str::<Value>("<").unwrap_err(),
    }
    .to_string();
    assert!(
        shown.contains("POST /models/instances/sync") && shown.contains("<!doctype html>"),
        "{shown}"
    );
}

#[tokio::test]
async fn unreachable_cdf_is_a_retryable_transport_error() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let mut settings = settings_for(&emu, "emulator-secret");
    // Nothing listens on port 9 of localhost.
    settings.base_url = "http://127.0.0.1:9".into();
    settings.retry.max_attempts = 3;
    let client = CdfClient::new(settings).unwrap();
    let err = client
        .sync(&pump_sync(SyncMode::OnePhase, 10))
        .await
        .unwrap_err();
    match &err {
        CdfError::RetriesExhausted { attempts: 3, last } => {
            assert!(
                matches!(
                    **last,
                    CdfError::Transport {
                        retryable: true,
                        ..
                    }
                ),
                "{last:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

// ---- auth ----

#[tokio::test]
async fn expired_token_mid_stream_is_refreshed_once_and_the_stream_continues() {
    let s = setup().await;
    seed_pumps(&s.ctl(), 0..20);
    let request = pump_sync(SyncMode::TwoPhase, 10);
    let first = s.client.sync(&request).await.unwrap();
    assert_eq!(xids(first.items_of("pumps")), expected_pumps(0..10));
    assert_eq!(s.requests_to("/oauth2/token"), 1, "token is cached");

    s.ctl().expire_all_tokens();
    let cursor = first.cursor_of("pumps").map(str::to_owned);
    let (rest, _, _) = drain(&s.client, &request, cursor).await;
    assert_eq!(xids(&rest), expected_pumps(10..20));
    assert_eq!(s.requests_to("/oauth2/token"), 2, "exactly one refresh");
    let statuses: Vec<Option<u16>> = s
        .ctl()
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with(SYNC_PATH))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(200), Some(401), Some(200), Some(200)]);
}

#[tokio::test]
async fn concurrent_calls_share_one_token_and_one_refresh() {
    let s = setup().await;
    seed_pumps(&s.ctl(), 0..3);
    let request = pump_sync(SyncMode::OnePhase, 10);
    let run_batch = || {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let client = s.client.clone();
            let request = request.clone();
            tasks.spawn(async move {
                client
                    .sync(&request)
                    .await
                    .map(|r| r.items_of("pumps").len())
            });
        }
        tasks
    };
    let mut tasks = run_batch();
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.unwrap().unwrap(), 3);
    }
    assert_eq!(s.requests_to("/oauth2/token"), 1);
    s.ctl().expire_all_tokens();
    let mut tasks = run_batch();
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.unwrap().unwrap(), 3);
    }
    assert_eq!(
        s.requests_to("/oauth2/token"),
        2,
        "the 401s share one refresh"
    );
}

#[tokio::test]
async fn a_second_401_after_the_refresh_is_returned() {
    let s = setup().await;
    s.client.list_databases().await.unwrap();
    s.ctl().add_fault(FaultSpec::status(SYNC_PATH, 401, 2));
    let err = s
        .client
        .sync(&pump_sync(SyncMode::OnePhase, 10))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_retryable());
    assert_eq!(s.requests_to(SYNC_PATH), 2);
    assert_eq!(s.requests_to("/oauth2/token"), 2, "one forced refresh");
}

#[tokio::test]
async fn token_endpoint_outage_is_retried_and_bad_secrets_are_typed_errors() {
    let s = setup().await;
    s.ctl()
        .add_fault(FaultSpec::status("/oauth2/token", 503, 2));
    assert!(s.client.list_databases().await.unwrap().is_empty());
    assert_eq!(s.requests_to("/oauth2/token"), 3);

    let bad = CdfClient::new(settings_for(&s.emu, "wrong-secret")).unwrap();
    let err = bad.list_databases().await.unwrap_err();
    match &err {
        CdfError::Auth {
            status,
            error,
            description,
            retryable,
            ..
        } => {
            assert_eq!(*status, Some(401));
            assert_eq!(error, "invalid_client");
            assert_eq!(description.as_deref(), Some("client secret does not match"));
            assert!(!retryable);
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = format!("{err} {err:?}");
    assert!(!text.contains("wrong-secret"), "{text}");
    assert!(!text.contains("emulator-secret"), "{text}");
}

// ---- RAW ----

const AWKWARD_KEYS: [&str; 4] = ["a/b", "with space", "ø✓ unicode", "%2F"];

#[tokio::test]
async fn raw_rows_round_trip_with_awkward_keys() {
    let s = setup().await;
    let (db, table) = ("state db/1", "cursors ø");
    let rows: Vec<RawRowWrite> = AWKWARD_KEYS
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let mut columns = serde_json::Map::new();
            columns.insert("high".into(), json!(format!("cursor-{i}")));
            columns.insert("n".into(), json!(i));
            columns.insert("nested".into(), json!({"big": 9007199254740993_i64}));
            RawRowWrite::new(*key, columns)
        })
        .collect();
    s.client.insert_rows(db, table, &rows).await.unwrap();

    let stored: BTreeSet<String> = s
        .ctl()
        .raw_rows(db, table)
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        stored,
        AWKWARD_KEYS.iter().map(|k| (*k).to_owned()).collect()
    );

    for (i, key) in AWKWARD_KEYS.iter().enumerate() {
        let row = s.client.retrieve_row(db, table, key).await.unwrap();
        let row = row.unwrap_or_else(|| panic!("row `{key}` not found"));
        assert_eq!(row.key, *key);
        assert_eq!(row.columns["high"], json!(format!("cursor-{i}")));
        assert_eq!(
            row.columns["nested"]["big"].as_i64(),
            Some(9_007_199_254_740_993)
        );
        assert!(row.last_updated_time > 0);
    }
    assert_eq!(
        s.client.retrieve_row(db, table, "a").await.unwrap(),
        None,
        "a missing row is None"
    );
    assert_eq!(
        s.client
            .retrieve_row("no-such-db", table, "a")
            .await
            .unwrap(),
        None
    );

    // Paging with a small limit returns every row once, in key order.
    let mut query = RawRowQuery {
        limit: Some(3),
        columns: Some(vec!["n".into()]),
        ..RawRowQuery::default()
    };
    let mut paged = Vec::new();
    loop {
        let page = s.client.list_rows_page(db, table, &query).await.unwrap();
        assert!(page.items.len() <= 3);
        paged.extend(page.items);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    let paged_keys: BTreeSet<String> = paged.iter().map(|r| r.key.clone()).collect();
    assert_eq!(paged_keys, stored);
    assert_eq!(paged.len(), 4);
    assert!(paged.iter().all(|r| r.columns.keys().eq(["n"])));

    let keys_only = s
        .client
        .list_all_rows(db, table, Some(vec![]))
        .await
        .unwrap();
    assert_eq!(keys_only.len(), 4);
    assert!(keys_only.iter().all(|r| r.columns.is_empty()));

    s.client
        .delete_rows(db, table, &["a/b", "%2F", "never-existed"])
        .await
        .unwrap();
    let remaining: BTreeSet<String> = s
        .client
        .list_all_rows(db, table, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(
        remaining,
        BTreeSet::from(["with space".to_owned(), "ø✓ unicode".to_owned()])
    );
    assert_eq!(s.client.retrieve_row(db, table, "a/b").await.unwrap(), None);
}

#[tokio::test]
async fn raw_inserts_are_chunked_at_ten_thousand_rows() {
    let s = setup().await;
    let rows: Vec<RawRowWrite> = (0..10_001)
        .map(|i| RawRowWrite::new(format!("k{i:05}"), serde_json::Map::new()))
        .collect();
    s.client.insert_rows("db", "t", &rows).await.unwrap();
    assert_eq!(s.requests_to("/rows"), 2);
    assert_eq!(s.ctl().raw_rows("db", "t").unwrap().len(), 10_001);
    let all = s
        .client
        .list_all_rows("db", "t", Some(vec![]))
        .await
        .unwrap();
    assert_eq!(all.len(), 10_001);
}

#[tokio::test]
async fn raw_databases_and_tables_are_listed_created_and_deleted() {
    let s = setup().await;
    s.client.create_databases(&["db1", "db 2"]).await.unwrap();
    s.client
        .create_tables("db1", &["t/1", "t2"], false)
        .await
        .unwrap();
    s.client.create_tables("db3", &["t"], true).await.unwrap();
    let dbs: BTreeSet<String> = s
        .client
        .list_databases()
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        dbs,
        BTreeSet::from(["db 2".to_owned(), "db1".to_owned(), "db3".to_owned()])
    );
    let tables: BTreeSet<String> = s
        .client
        .list_tables("db1")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(tables, BTreeSet::from(["t/1".to_owned(), "t2".to_owned()]));

    let err = s.client.create_databases(&["db1"]).await.unwrap_err();
    let CdfError::Api(api) = &err else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(api.status, 400);
    assert_eq!(api.duplicated, vec![json!({"name": "db1"})]);

    s.client.delete_tables("db1", &["t/1"]).await.unwrap();
    assert_eq!(s.client.list_tables("db1").await.unwrap(), ["t2"]);
    s.client
        .delete_databases(&["db1", "db 2", "db3"], true)
        .await
        .unwrap();
    assert!(s.client.list_databases().await.unwrap().is_empty());
    let err = s.client.list_tables("db1").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

// ---- extraction pipelines ----

#[tokio::test]
async fn extpipe_config_is_read_by_latest_and_by_revision() {
    let s = setup().await;
    let err = s
        .client
        .get_extpipe_config("pl-dm-sync", None)
        .await
        .unwrap_err();
    assert!(err.is_client_error() && err.is_not_found(), "{err:?}");

    let first = s
        .client
        .post_extpipe_config(&ExtpipeConfigWrite {
            external_id: "pl-dm-sync".into(),
            config: "sync:\n  page-size: 1000\n".into(),
            description: Some("first".into()),
        })
        .await
        .unwrap();
    let second = s
        .client
        .post_extpipe_config(&ExtpipeConfigWrite {
            external_id: "pl-dm-sync".into(),
            config: "sync:\n  page-size: 2000\n".into(),
            description: None,
        })
        .await
        .unwrap();
    assert_eq!(second.revision, first.revision + 1);

    let latest = s
        .client
        .get_extpipe_config("pl-dm-sync", None)
        .await
        .unwrap();
    assert_eq!(latest.revision, second.revision);
    assert_eq!(latest.config.as_deref(), Some("sync:\n  page-size: 2000\n"));
    let old = s
        .client
        .get_extpipe_config("pl-dm-sync", Some(first.revision))
        .await
        .unwrap();
    assert_eq!(old.config.as_deref(), Some("sync:\n  page-size: 1000\n"));
    assert_eq!(old.description.as_deref(), Some("first"));
    let err = s
        .client
        .get_extpipe_config("pl-dm-sync", Some(99))
        .await
        .unwrap_err();
    assert!(err.is_client_error());
}

#[tokio::test]
async fn extpipe_runs_are_posted_once_with_long_messages_shortened() {
    let s = setup().await;
    let long = "é".repeat(1500);
    let run = s
        .client
        .post_extpipe_run(&ExtpipeRunWrite::new(
            "pl-dm-sync",
            ExtpipeRunStatus::Failure,
            Some(long),
        ))
        .await
        .unwrap();
    assert_eq!(run.status, ExtpipeRunStatus::Failure);
    let stored = s.ctl().extpipe_runs("pl-dm-sync");
    assert_eq!(stored.len(), 1);
    let message = stored[0]["message"].as_str().unwrap();
    assert_eq!(message.chars().count(), 1000);
    assert!(message.ends_with("..."));
    assert_eq!(stored[0]["status"], "failure");

    // A 5xx is retried once.
    s.ctl()
        .add_fault(FaultSpec::status("/extpipes/runs", 503, 1));
    s.client
        .post_extpipe_run(&ExtpipeRunWrite::new(
            "pl-dm-sync",
            ExtpipeRunStatus::Seen,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(s.ctl().extpipe_runs("pl-dm-sync").len(), 2);

    // Two 5xx in a row exhaust the single retry.
    s.ctl().clear_request_log();
    s.ctl()
        .add_fault(FaultSpec::status("/extpipes/runs", 500, 2));
    let err = s
        .client
        .post_extpipe_run(&ExtpipeRunWrite::new(
            "pl-dm-sync",
            ExtpipeRunStatus::Success,
            None,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CdfError::RetriesExhausted { attempts: 2, .. }),
        "{err:?}"
    );
    assert_eq!(s.requests_to("/extpipes/runs"), 2);

    // Throttling and a connection dropped after sending are not retried: the run may exist.
    for fault in [
        FaultSpec::status("/extpipes/runs", 429, 1),
        FaultSpec::drop_connection("/extpipes/runs", 1),
    ] {
        s.ctl().clear_request_log();
        s.ctl().add_fault(fault);
        let err = s
            .client
            .post_extpipe_run(&ExtpipeRunWrite::new(
                "pl-dm-sync",
                ExtpipeRunStatus::Seen,
                None,
            ))
            .await
            .unwrap_err();
        assert!(!matches!(err, CdfError::RetriesExhausted { .. }), "{err:?}");
        assert_eq!(s.requests_to("/extpipes/runs"), 1, "{err:?}");
    }
    let statuses: Vec<Value> = s
        .ctl()
        .extpipe_runs("pl-dm-sync")
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("failure"), json!("seen")]);
}
