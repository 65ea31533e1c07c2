//! Spaces, containers, views and data models.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn views_resolve_types_inheritance_and_are_immutable() {
    let h = start().await;
    seed_schema(&h.ctl());
    let child = json!({"space": "schema", "externalId": "BigPump", "version": "1",
        "implements": [pump_view()],
        "properties": {"tag": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "tag", "name": "Tag"}}});
    let r = h
        .ok("/models/views", json!({"items": [child.clone()]}))
        .await;
    let v = &r["items"][0];
    assert_eq!(
        v["properties"]["ratedKw"]["type"]["type"], "float64",
        "inherited and typed from the container"
    );
    assert_eq!(v["properties"]["tag"]["name"], "Tag");
    assert_eq!(v["usedFor"], "node");
    assert_eq!(v["mappedContainers"][0]["externalId"], "PumpC");
    assert_eq!(
        v["properties"]["flows"]["connectionType"],
        "multi_edge_connection"
    );
    // Identical re-apply is a no-op; a changed definition under the same version is refused.
    let again = h
        .ok("/models/views", json!({"items": [child.clone()]}))
        .await;
    assert_eq!(again["items"][0]["createdTime"], v["createdTime"]);
    let mut changed = child.clone();
    changed["properties"]["extra"] = json!({"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "extra"});
    assert_eq!(
        h.post("/models/views", json!({"items": [changed]}))
            .await
            .status,
        400
    );

    let own = h
        .ok(
            "/models/views/byids?includeInheritedProperties=false",
            json!({"items": [{"space": "schema", "externalId": "BigPump"}]}),
        )
        .await;
    assert_eq!(own["items"][0]["properties"].as_object().unwrap().len(), 1);
    let listed = h.get("/models/views?space=schema&limit=1").await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert!(listed.body["nextCursor"].is_string());

    let bad = h
        .post("/models/views", json!({"items": [{"space": "schema", "externalId": "Bad", "version": "1",
            "properties": {"x": {"container": {"space": "schema", "externalId": "PumpC"}, "containerPropertyIdentifier": "nope"}}}]}))
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nope")
    );
}

#[tokio::test]
async fn data_models_versions_and_inline_views() {
    let h = start().await;
    seed_schema(&h.ctl());
    h.ok("/models/datamodels", json!({"items": [{"space": "schema", "externalId": "Plant", "version": "1", "views": [pump_view()]}]})).await;
    h.ok("/models/datamodels", json!({"items": [{"space": "schema", "externalId": "Plant", "version": "0", "views": [pump_view(), edge_view()]}]})).await;
    let latest = h.get("/models/datamodels").await.body;
    let items = latest["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["version"], "0",
        "newest by createdTime, not by version string"
    );
    assert_eq!(items[0]["views"][0]["type"], "view");
    let all = h.get("/models/datamodels?allVersions=true").await.body;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let inline = h
        .ok(
            "/models/datamodels/byids?inlineViews=true",
            json!({"items": [{"space": "schema", "externalId": "Plant", "version": "1"}]}),
        )
        .await;
    let view = &inline["items"][0]["views"][0];
    assert!(view.get("type").is_none());
    assert_eq!(view["properties"]["tag"]["type"]["type"], "text");
    let both = h
        .ok(
            "/models/datamodels/byids",
            json!({"items": [{"space": "schema", "externalId": "Plant"}]}),
        )
        .await;
    assert_eq!(both["items"].as_array().unwrap().len(), 2);
    let missing = h
        .ok(
            "/models/datamodels/byids",
            json!({"items": [{"space": "schema", "externalId": "Nope", "version": "1"}]}),
        )
        .await;
    assert_eq!(missing["items"], json!([]));
    h.ok(
        "/models/datamodels/delete",
        json!({"items": [{"space": "schema", "externalId": "Plant", "version": "1"}]}),
    )
    .await;
    assert_eq!(
        h.get("/models/datamodels?allVersions=true").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn spaces_and_containers_round_trip() {
    let h = start().await;
    let r = h
        .ok(
            "/models/spaces",
            json!({"items": [{"space": "s1", "name": "One"}]}),
        )
        .await;
    assert_eq!(r["items"][0]["name"], "One");
    assert_eq!(
        h.post("/models/spaces", json!({"items": [{"space": "1bad"}]}))
            .await
            .status,
        400
    );
    let c = h
        .ok("/models/containers", json!({"items": [{"space": "s1", "externalId": "C", "properties": {
            "t": {"type": {"type": "text", "list": true, "maxListSize": 5}},
            "d": {"type": {"type": "direct", "container": {"type": "container", "space": "s1", "externalId": "C"}}},
            "u": {"type": {"type": "float64", "unit": {"externalId": "power:kilowatt"}}},
            "f": {"type": {"type": "file"}}, "q": {"type": {"type": "sequence"}}, "b": {"type": {"type": "boolean"}, "nullable": false, "defaultValue": true}
        }}]}))
        .await;
    let props = &c["items"][0]["properties"];
    assert_eq!(
        props["t"]["type"],
        json!({"type": "text", "list": true, "maxListSize": 5, "collation": "ucs_basic"})
    );
    assert_eq!(props["u"]["type"]["unit"]["externalId"], "power:kilowatt");
    assert_eq!(props["b"]["defaultValue"], true);
    assert_eq!(c["items"][0]["usedFor"], "node");
    let byids = h
        .ok(
            "/models/containers/byids",
            json!({"items": [{"space": "s1", "externalId": "C"}]}),
        )
        .await;
    assert_eq!(byids["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        h.post("/models/spaces/delete", json!({"items": [{"space": "s1"}]}))
            .await
            .status,
        400,
        "not empty"
    );
    h.ok(
        "/models/containers/delete",
        json!({"items": [{"space": "s1", "externalId": "C"}]}),
    )
    .await;
    let d = h
        .ok("/models/spaces/delete", json!({"items": [{"space": "s1"}]}))
        .await;
    assert_eq!(d["items"][0]["space"], "s1");
    let bad = h.post("/models/containers", json!({"items": [{"space": "s1", "externalId": "C", "properties": {"x": {"type": {"type": "float128"}}}}]})).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("float128")
    );
}

#[tokio::test]
async fn views_are_deleted_by_version_or_all_versions() {
    let h = start().await;
    seed_schema(&h.ctl());
    let flow_v2 = json!({"space": "schema", "externalId": "Flow", "version": "2", "properties": {
        "rate": {"container": {"space": "schema", "externalId": "FlowC"}, "containerPropertyIdentifier": "rate"}
    }});
    h.ok("/models/views", json!({"items": [flow_v2]})).await;
    let versions = |r: &Value| {
        let mut v: Vec<String> = r["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                format!(
                    "{}/{}",
                    v["externalId"].as_str().unwrap(),
                    v["version"].as_str().unwrap()
                )
            })
            .collect();
        v.sort();
        v
    };
    let flows = json!({"items": [{"space": "schema", "externalId": "Flow"}]});
    assert_eq!(
        versions(&h.ok("/models/views/byids", flows.clone()).await),
        ["Flow/1", "Flow/2"]
    );

    // A bad item rejects the whole request and removes nothing.
    let bad = h
        .post(
            "/models/views/delete",
            json!({"items": [{"space": "schema", "externalId": "Flow", "version": "1"}, {"space": "schema"}]}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["code"], 400);
    assert_eq!(
        versions(&h.ok("/models/views/byids", flows.clone()).await),
        ["Flow/1", "Flow/2"]
    );

    let one = h
        .ok(
            "/models/views/delete",
            json!({"items": [{"space": "schema", "externalId": "Flow", "version": "1"}]}),
        )
        .await;
    assert_eq!(versions(&one), ["Flow/1"]);
    assert_eq!(
        versions(&h.ok("/models/views/byids", flows.clone()).await),
        ["Flow/2"]
    );

    let rest = h
        .ok(
            "/models/views/delete",
            json!({"items": [{"space": "schema", "externalId": "Flow"}, {"space": "schema", "externalId": "Nope", "version": "1"}]}),
        )
        .await;
    assert_eq!(versions(&rest), ["Flow/2"]);
    assert_eq!(h.ok("/models/views/byids", flows).await["items"], json!([]));
    let pump_left = h
        .ok("/models/views/byids", json!({"items": [pump_view()]}))
        .await;
    assert_eq!(versions(&pump_left), ["Pump/1"]);
}
