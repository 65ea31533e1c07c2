//! Decoding of the JSON examples of the API contract, plus the awkward corners it names.

use serde_json::{Value, json};

use super::*;

const VIEW: &str = r#"{
  "space": "plant_schema", "externalId": "Pump", "version": "2",
  "name": "Pump", "description": "Rotating equipment",
  "createdTime": 1735689600000, "lastUpdatedTime": 1735689600000,
  "writable": true, "queryable": true, "usedFor": "node", "isGlobal": false,
  "implements": [{"type": "view", "space": "plant_schema", "externalId": "Equipment", "version": "1"}],
  "filter": {"hasData": [{"type": "container", "space": "plant_schema", "externalId": "PumpC"}]},
  "mappedContainers": [{"type": "container", "space": "plant_schema", "externalId": "PumpC"}],
  "someFutureKey": {"nested": true},
  "properties": {
    "tag":        {"container": {"type":"container","space":"plant_schema","externalId":"PumpC"}, "containerPropertyIdentifier": "tag",
                   "type": {"type": "text", "list": false, "collation": "ucs_basic"}, "nullable": false, "immutable": false,
                   "autoIncrement": false, "name": "tag", "constraintState": {"nullability": "current"}},
    "ratedKw":    {"container": {"type":"container","space":"plant_schema","externalId":"PumpC"}, "containerPropertyIdentifier": "ratedKw",
                   "type": {"type": "float64", "list": false, "unit": {"externalId": "power:kilowatt"}}, "nullable": true,
                   "immutable": false, "autoIncrement": false, "constraintState": {}},
    "site":       {"container": {"type":"container","space":"plant_schema","externalId":"PumpC"}, "containerPropertyIdentifier": "site",
                   "type": {"type": "direct", "list": false, "source": {"type":"view","space":"plant_schema","externalId":"Site","version":"1"}},
                   "nullable": true, "immutable": false, "autoIncrement": false, "constraintState": {}},
    "status":     {"container": {"type":"container","space":"plant_schema","externalId":"PumpC"}, "containerPropertyIdentifier": "status",
                   "type": {"type": "enum", "values": {"running": {"name": "Running"}, "stopped": {}, "unknown": {}}, "unknownValue": "unknown"},
                   "nullable": true, "immutable": false, "autoIncrement": false, "constraintState": {}},
    "workOrders": {"connectionType": "multi_edge_connection", "type": {"space": "plant_schema", "externalId": "Pump.workOrders"},
                   "source": {"type":"view","space":"plant_schema","externalId":"WorkOrder","version":"1"},
                   "edgeSource": {"type":"view","space":"plant_schema","externalId":"PumpWorkOrderEdge","version":"1"},
                   "direction": "outwards", "name": "workOrders"},
    "alarms":     {"connectionType": "multi_reverse_direct_relation",
                   "source": {"type":"view","space":"plant_schema","externalId":"Alarm","version":"1"},
                   "through": {"source": {"type":"view","space":"plant_schema","externalId":"Alarm","version":"1"}, "identifier": "pump"},
                   "targetsList": false}
  }
}"#;

#[test]
fn contract_view_example_decodes() {
    let view: ViewDefinition = serde_json::from_str(VIEW).unwrap();
    assert_eq!(
        view.reference(),
        ViewReference::new("plant_schema", "Pump", "2")
    );
    assert_eq!(view.used_for, UsedFor::Node);
    assert_eq!(
        view.implements,
        vec![ViewReference::new("plant_schema", "Equipment", "1")]
    );
    assert_eq!(
        view.mapped_containers,
        vec![ContainerReference::new("plant_schema", "PumpC")]
    );
    assert_eq!(view.properties.len(), 6);
    let mapped: Vec<&str> = view.mapped_properties().map(|(n, _)| n.as_str()).collect();
    assert_eq!(mapped, ["ratedKw", "site", "status", "tag"]);

    let ViewProperty::Mapped(tag) = &view.properties["tag"] else {
        panic!("tag is mapped")
    };
    assert!(!tag.nullable);
    assert_eq!(tag.container_property_identifier, "tag");
    assert_eq!(
        tag.constraint_state
            .as_ref()
            .unwrap()
            .nullability
            .as_deref(),
        Some("current")
    );
    assert!(matches!(tag.property_type.kind, PropertyKind::Text { .. }));

    let ViewProperty::EdgeConnection(edge) = &view.properties["workOrders"] else {
        panic!("workOrders is an edge connection")
    };
    assert_eq!(
        edge.connection_type,
        EdgeConnectionType::MultiEdgeConnection
    );
    assert_eq!(
        edge.edge_type,
        NodeReference::new("plant_schema", "Pump.workOrders")
    );
    assert_eq!(
        edge.edge_source,
        Some(ViewReference::new("plant_schema", "PumpWorkOrderEdge", "1"))
    );
    assert_eq!(edge.direction, EdgeDirection::Outwards);

    let ViewProperty::ReverseDirectRelation(alarms) = &view.properties["alarms"] else {
        panic!("alarms is a reverse direct relation")
    };
    assert_eq!(alarms.through.identifier, "pump");
    assert_eq!(
        alarms.through.source,
        SourceReference::View(ViewReference::new("plant_schema", "Alarm", "1"))
    );
}

#[test]
fn view_without_optional_fields_and_with_unknown_kinds_decodes() {
    let view: ViewDefinition = serde_json::from_value(json!({
        "space": "s", "externalId": "V", "version": "1",
        "createdTime": 1, "lastUpdatedTime": 2,
        "writable": false, "queryable": true, "usedFor": "hologram", "isGlobal": false,
        "properties": {
            "p": {"container": {"type":"container","space":"s","externalId":"C"},
                  "containerPropertyIdentifier": "p", "type": {"type": "int64"}},
            "v": {"container": {"space":"s","externalId":"C"},
                  "containerPropertyIdentifier": "v", "type": {"type": "vector3d", "dims": 3}},
            "e": {"connectionType": "single_edge_connection",
                  "type": {"space": "s", "externalId": "T"},
                  "source": {"type":"view","space":"s","externalId":"W","version":"1"}},
            "x": {"connectionType": "teleport_connection", "source": {}}
        }
    }))
    .unwrap();
    assert!(view.mapped_containers.is_empty());
    assert!(view.implements.is_empty());
    assert_eq!(view.used_for, UsedFor::Unknown);
    let ViewProperty::Mapped(p) = &view.properties["p"] else {
        panic!()
    };
    assert!(p.nullable, "nullable defaults to true");
    assert!(p.constraint_state.is_none());
    assert!(!p.property_type.list);
    let ViewProperty::Mapped(v) = &view.properties["v"] else {
        panic!()
    };
    assert_eq!(
        v.property_type.kind,
        PropertyKind::Unknown("vector3d".into())
    );
    let ViewProperty::EdgeConnection(e) = &view.properties["e"] else {
        panic!()
    };
    assert_eq!(e.direction, EdgeDirection::Outwards);
    assert_eq!(e.edge_source, None);
    assert!(matches!(
        view.properties["x"],
        ViewProperty::UnknownConnection(_)
    ));
}

#[test]
fn bad_mapped_property_names_what_is_missing() {
    let err = serde_json::from_value::<ViewDefinition>(json!({
        "space": "s", "externalId": "V", "version": "1", "createdTime": 1, "lastUpdatedTime": 2,
        "properties": {"p": {"containerPropertyIdentifier": "p", "type": {"type": "int64"}}}
    }))
    .unwrap_err();
    assert!(err.to_string().contains("container"), "{err}");
}

#[test]
fn contract_data_model_example_decodes_with_references_and_inline_views() {
    let model: DataModel = serde_json::from_value(json!({
      "space": "plant_schema", "externalId": "PlantModel", "version": "3",
      "name": "Plant model", "description": "Pumps and work orders",
      "createdTime": 1735689600000_i64, "lastUpdatedTime": 1736899200000_i64, "isGlobal": false,
      "views": [
        {"type": "view", "space": "plant_schema", "externalId": "Pump", "version": "2"},
        {"type": "view", "space": "plant_schema", "externalId": "WorkOrder", "version": "1"}
      ]
    }))
    .unwrap();
    assert_eq!(
        model.view_references(),
        vec![
            ViewReference::new("plant_schema", "Pump", "2"),
            ViewReference::new("plant_schema", "WorkOrder", "1"),
        ]
    );

    let view: Value = serde_json::from_str(VIEW).unwrap();
    let inline: DataModel = serde_json::from_value(json!({
        "space": "plant_schema", "externalId": "PlantModel", "version": "3",
        "createdTime": 1, "lastUpdatedTime": 2, "isGlobal": false, "views": [view]
    }))
    .unwrap();
    match &inline.views[0] {
        DataModelView::Inline(v) => assert_eq!(v.properties.len(), 6),
        other => panic!("expected an inline view, got {other:?}"),
    }
    let bare: DataModel = serde_json::from_value(json!({
        "space": "s", "externalId": "M", "version": "1", "createdTime": 1, "lastUpdatedTime": 2
    }))
    .unwrap();
    assert!(bare.views.is_empty());
}

#[test]
fn contract_node_edge_and_tombstone_examples_decode() {
    let node: Instance = serde_json::from_value(json!({
      "instanceType": "node",
      "space": "plant_data", "externalId": "pump-17", "version": 4,
      "type": {"space": "plant_schema", "externalId": "PumpType"},
      "createdTime": 1735689600123_i64, "lastUpdatedTime": 1736899200456_i64,
      "newTopLevelKey": [1, 2, 3],
      "properties": {
        "plant_schema": {
          "Pump/2": {
            "tag": "P-17A", "ratedKw": 75.5, "status": "running",
            "site": {"space": "plant_data", "externalId": "site-oslo"},
            "commissionedAt": "2019-05-01T08:30:00.000+00:00",
            "serviceDate": "2024-03-15",
            "extra": {"vendor": {"name": "Acme"}, "tags": ["a", "b"]},
            "aliases": ["P17A", "PUMP-17"]
          }
        }
      }
    }))
    .unwrap();
    assert_eq!(node.instance_type, InstanceType::Node);
    assert_eq!(node.version, 4);
    assert_eq!(
        node.r#type,
        Some(NodeReference::new("plant_schema", "PumpType"))
    );
    assert!(!node.is_deleted());
    let pump = node
        .view_properties(&ViewReference::new("plant_schema", "Pump", "2"))
        .unwrap();
    assert_eq!(pump["ratedKw"], json!(75.5));
    assert_eq!(pump["aliases"], json!(["P17A", "PUMP-17"]));
    assert_eq!(
        pump["site"],
        json!({"space": "plant_data", "externalId": "site-oslo"})
    );

    let edge: Instance = serde_json::from_value(json!({
      "instanceType": "edge",
      "space": "plant_data", "externalId": "pump-17--wo-991", "version": 1,
      "type": {"space": "plant_schema", "externalId": "Pump.workOrders"},
      "startNode": {"space": "plant_data", "externalId": "pump-17"},
      "endNode": {"space": "plant_data", "externalId": "wo-991"},
      "createdTime": 1736899200456_i64, "lastUpdatedTime": 1736899200456_i64,
      "properties": {"plant_schema": {"PumpWorkOrderEdge/1": {"linkedBy": "planner"}}}
    }))
    .unwrap();
    assert_eq!(edge.instance_type, InstanceType::Edge);
    assert_eq!(
        edge.start_node,
        Some(NodeReference::new("plant_data", "pump-17"))
    );
    assert_eq!(
        edge.end_node,
        Some(NodeReference::new("plant_data", "wo-991"))
    );
    assert_eq!(
        edge.properties_at("plant_schema", "PumpWorkOrderEdge/1")
            .unwrap()["linkedBy"],
        json!("planner")
    );

    let tombstone: Instance = serde_json::from_value(json!({
        "instanceType": "node", "space": "plant_data", "externalId": "pump-03", "version": 7,
        "createdTime": 1735000000000_i64, "lastUpdatedTime": 1737000000000_i64,
        "deletedTime": 1737000000000_i64, "properties": {}
    }))
    .unwrap();
    assert!(tombstone.is_deleted());
    assert_eq!(tombstone.deleted_time, Some(1737000000000));
    assert!(tombstone.properties.is_empty());
    assert_eq!(tombstone.r#type, None);
}

#[test]
fn missing_or_null_type_and_properties_are_accepted() {
    for body in [
        r#"{"instanceType":"node","space":"s","externalId":"a","version":1,"createdTime":1,"lastUpdatedTime":1}"#,
        r#"{"instanceType":"node","space":"s","externalId":"a","version":1,"createdTime":1,"lastUpdatedTime":1,"type":null,"properties":null,"deletedTime":null}"#,
    ] {
        let node: Instance = serde_json::from_str(body).unwrap();
        assert_eq!(node.r#type, None);
        assert!(node.properties.is_empty());
        assert!(!node.is_deleted());
    }
}

#[test]
fn int64_beyond_two_to_the_53_is_exact_and_floats_round_trip() {
    let body = br#"{"instanceType":"node","space":"s","externalId":"big","version":1,
        "createdTime":1,"lastUpdatedTime":1,
        "properties":{"s":{"V/1":{"big":9007199254740993,"min":-9223372036854775808,
        "max":9223372036854775807,"f":0.1,"tiny":5e-324,"nul":null}}}}"#;
    let node: Instance = serde_json::from_slice(body).unwrap();
    let values = node.properties_at("s", "V/1").unwrap();
    assert_eq!(values["big"].as_i64(), Some(9_007_199_254_740_993));
    assert_eq!(values["big"].to_string(), "9007199254740993");
    assert_eq!(values["min"].as_i64(), Some(i64::MIN));
    assert_eq!(values["max"].as_i64(), Some(i64::MAX));
    assert_eq!(values["f"].as_f64(), Some(0.1));
    assert_eq!(values["tiny"].as_f64(), Some(5e-324));
    assert_eq!(values["nul"], Value::Null);
    assert!(!values.contains_key("absent"));
}

#[test]
fn contract_sync_request_example_serialises_exactly() {
    let pump = ViewReference::new("plant_schema", "Pump", "2");
    let mut pumps = SyncExpression::nodes(
        Some(Filter::And(vec![
            Filter::has_data_view(pump.clone()),
            Filter::in_space(InstanceType::Node, "plant_data"),
        ])),
        1000,
        SyncMode::OnePhase,
    );
    pumps.skip_already_deleted = Some(true);
    let mut edges = SyncExpression::edges(
        Some(Filter::edge_type(&NodeReference::new(
            "plant_schema",
            "Pump.workOrders",
        ))),
        1000,
        SyncMode::TwoPhase,
    );
    edges.backfill_sort = vec![SyncSort {
        property: vec!["edge".into(), "externalId".into()],
        direction: SortDirection::Ascending,
        nulls_first: false,
    }];
    let mut request = SyncRequest::single("pumps", pumps, SyncSelect::all_of(pump));
    request.with.insert("workOrderEdges".into(), edges);
    request.select.insert(
        "workOrderEdges".into(),
        SyncSelect {
            sources: vec![SelectSource {
                source: ViewReference::new("plant_schema", "PumpWorkOrderEdge", "1"),
                properties: vec!["linkedBy".into()],
                target_units: Vec::new(),
            }],
        },
    );
    request = request
        .with_cursor("pumps", Some("c1".into()))
        .with_cursor("workOrderEdges", Some("c2".into()));

    let expected = json!({
      "with": {
        "pumps": {
          "nodes": {
            "filter": {"and": [
              {"hasData": [{"type":"view","space":"plant_schema","externalId":"Pump","version":"2"}]},
              {"equals": {"property": ["node","space"], "value": "plant_data"}}
            ]}
          },
          "limit": 1000,
          "mode": "onePhase",
          "skipAlreadyDeleted": true
        },
        "workOrderEdges": {
          "edges": {"filter": {"equals": {"property": ["edge","type"], "value": {"space":"plant_schema","externalId":"Pump.workOrders"}}}},
          "limit": 1000,
          "mode": "twoPhase",
          "backfillSort": [{"property": ["edge","externalId"], "direction": "ascending", "nullsFirst": false}]
        }
      },
      "select": {
        "pumps": {"sources": [{"source": {"type":"view","space":"plant_schema","externalId":"Pump","version":"2"}, "properties": ["*"]}]},
        "workOrderEdges": {"sources": [{"source": {"type":"view","space":"plant_schema","externalId":"PumpWorkOrderEdge","version":"1"}, "properties": ["linkedBy"]}]}
      },
      "cursors": {"pumps": "c1", "workOrderEdges": "c2"},
      "includeTyping": false,
      "allowExpiredCursorsAndAcceptMissedDeletes": false
    });
    assert_eq!(serde_json::to_value(&request).unwrap(), expected);

    let first_call = request.with_cursor("pumps", None);
    let body = serde_json::to_value(&first_call).unwrap();
    assert_eq!(body["cursors"], json!({"workOrderEdges": "c2"}));
    let mut no_backfill = SyncRequest::single(
        "n",
        SyncExpression::nodes(None, 100, SyncMode::NoBackfill),
        SyncSelect::default(),
    );
    no_backfill.parameters.insert("p".into(), json!(1));
    assert_eq!(
        serde_json::to_value(&no_backfill).unwrap(),
        json!({"with": {"n": {"nodes": {}, "limit": 100, "mode": "noBackfill"}},
               "select": {"n": {}}, "parameters": {"p": 1},
               "includeTyping": false, "allowExpiredCursorsAndAcceptMissedDeletes": false})
    );
}

#[test]
fn contract_sync_response_example_decodes_with_typing() {
    let body = br#"{
      "items": {
        "pumps": [ {"instanceType":"node","space":"plant_data","externalId":"pump-17","version":4,
                    "createdTime": 1, "lastUpdatedTime": 2,
                    "properties": {"plant_schema": {"Pump/2": {"ratedKw": 75.5}}}} ],
        "workOrderEdges": []
      },
      "nextCursor": {"pumps": "Z0FBQUFBQm...", "workOrderEdges": "Z0FBQUFBQn..."},
      "typing": {
        "pumps": {"plant_schema": {"Pump/2": {
          "ratedKw": {"nullable": true, "immutable": false, "autoIncrement": false,
                      "type": {"type": "float64", "list": false, "unit": {"externalId": "power:kilowatt"}}}
        }}}
      },
      "debugNotices": []
    }"#;
    let mut response: SyncResponse = serde_json::from_slice(body).unwrap();
    assert_eq!(response.items_of("pumps").len(), 1);
    assert!(response.items_of("workOrderEdges").is_empty());
    assert!(response.items_of("absent").is_empty());
    assert_eq!(response.cursor_of("pumps"), Some("Z0FBQUFBQm..."));
    assert_eq!(response.cursor_of("workOrderEdges"), Some("Z0FBQUFBQn..."));
    let typing = response.typing.as_ref().unwrap();
    let rated = &typing["pumps"]["plant_schema"]["Pump/2"]["ratedKw"];
    assert!(rated.nullable);
    assert!(matches!(
        rated.property_type.kind,
        PropertyKind::Float64 { unit: Some(_) }
    ));
    let pumps = response.take_items("pumps");
    assert_eq!(pumps[0].external_id, "pump-17");
    assert!(response.items_of("pumps").is_empty());
}

#[test]
fn sync_response_without_typing_and_with_null_cursor_decodes() {
    let response: SyncResponse =
        serde_json::from_slice(br#"{"items":{"a":[]},"nextCursor":{"a":null,"b":"x"}}"#).unwrap();
    assert!(response.typing.is_none());
    assert_eq!(response.cursor_of("a"), None);
    assert_eq!(response.cursor_of("b"), Some("x"));
}

#[test]
fn raw_and_extpipes_examples_decode() {
    let row: RawRow = serde_json::from_value(json!({
        "key": "state:plant_data:pumps",
        "columns": {"high": "{\"pumps\":\"Z0FB...\"}", "updatedBy": "svc-1", "n": 42, "nested": {"a": [1, 2]}},
        "lastUpdatedTime": 1737000000000_i64
    }))
    .unwrap();
    assert_eq!(row.columns["n"], json!(42));
    assert_eq!(row.last_updated_time, 1737000000000);

    let config: ExtpipeConfig = serde_json::from_value(json!({
        "externalId": "pl-dm-sync", "revision": 7, "createdTime": 1737000000000_i64,
        "description": "raise page size", "config": "sync:\n  space: plant_data\n"
    }))
    .unwrap();
    assert_eq!(config.revision, 7);
    assert_eq!(
        config.config.as_deref(),
        Some("sync:\n  space: plant_data\n")
    );

    let run: ExtpipeRun = serde_json::from_value(json!({
        "id": 123456789, "externalId": "pl-dm-sync", "status": "failure",
        "message": "sync: cursor expired; restarting backfill", "createdTime": 1737000000000_i64
    }))
    .unwrap();
    assert_eq!(run.status, ExtpipeRunStatus::Failure);
    assert_eq!(
        serde_json::to_value(ExtpipeRunWrite::new("x", ExtpipeRunStatus::Seen, None)).unwrap(),
        json!({"externalId": "x", "status": "seen"})
    );
}
