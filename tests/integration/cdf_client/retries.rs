//! Retries: throttling and server-error storms, `Retry-After`, the attempt budget, dropped
//! connections, truncated and non-JSON bodies, an unreachable CDF.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cdf_emulator::{Emulator, EmulatorConfig, FaultSpec};
use cdf_s3_replicator::cdf::dto::SyncMode;
use cdf_s3_replicator::cdf::{CdfClient, CdfError};
use serde_json::Value;

use super::{
    SYNC_PATH, drain, expected_pumps, pump_sync, seed_pumps, seed_schema, settings_for, setup, xids,
};

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
