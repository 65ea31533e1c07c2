//! Tokens: refreshed once when one expires mid-stream, shared by concurrent calls, a second
//! 401 returned, token-endpoint outages retried and bad secrets typed.

use cdf_emulator::FaultSpec;
use cdf_s3_replicator::cdf::dto::SyncMode;
use cdf_s3_replicator::cdf::{CdfClient, CdfError};

use super::{SYNC_PATH, drain, expected_pumps, pump_sync, seed_pumps, settings_for, setup, xids};

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
