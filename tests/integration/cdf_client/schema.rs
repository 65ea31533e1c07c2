//! Data models and views listed, resolved and decoded, and the headers that identify the
//! client to CDF (and not to the token endpoint).

use std::collections::BTreeSet;
use std::time::Duration;

use cdf_s3_replicator::cdf::dto::{
    DataModelId, EdgeDirection, NodeReference, PropertyKind, SyncMode, ViewId, ViewProperty,
};
use cdf_s3_replicator::cdf::{DataModelListQuery, SDK_ID};
use serde_json::{Value, json};

use super::{APP_NAME, SYNC_PATH, flow_view, pump_sync, pump_view, setup, view_json};

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
