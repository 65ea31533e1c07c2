//! Extraction pipelines: configuration by latest and by revision, runs posted once with long
//! messages shortened.

use cdf_emulator::FaultSpec;
use cdf_s3_replicator::cdf::CdfError;
use cdf_s3_replicator::cdf::dto::{ExtpipeConfigWrite, ExtpipeRunStatus, ExtpipeRunWrite};
use serde_json::{Value, json};

use super::setup;

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
