//! The sync endpoint: two-phase backfill then changes and deletes, edges with their edge
//! source, expired and garbage cursors, limits checked before sending.

use std::collections::BTreeMap;
use std::time::Duration;

use cdf_emulator::THREE_DAYS;
use cdf_s3_replicator::cdf::CdfError;
use cdf_s3_replicator::cdf::dto::{
    Filter, Instance, InstanceType, NodeReference, PropertyKind, SyncExpression, SyncMode,
    SyncRequest, SyncSelect,
};
use serde_json::json;

use super::{
    SYNC_PATH, delete_pump, drain, expected_pumps, flow, flow_view, pump, pump_sync, pump_view,
    seed_pumps, setup, xids,
};

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
