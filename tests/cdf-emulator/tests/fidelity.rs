//! The emulator accepts what CDF accepts and refuses what CDF refuses: property
//! identifiers, timestamp range, number ranges and float32 storage, deeply nested json.

mod common;

use common::*;
use serde_json::{Value, json};

fn msg(r: &Resp) -> String {
    r.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn container_with(property: &str) -> Value {
    json!({"containers": [{"space": "schema", "externalId": "C", "usedFor": "node",
        "properties": {property: {"type": {"type": "text"}}}}]})
}

/// CDF's pattern `^[a-zA-Z][a-zA-Z0-9_]{0,253}[a-zA-Z0-9]?$` and its reserved container
/// property names are enforced, with CDF's 400 envelope naming the identifier.
#[tokio::test]
async fn container_property_identifiers_follow_cdf() {
    let h = start().await;
    let longest_ok = format!("a{}", "b".repeat(254));
    let ends_in_underscore = format!("a{}_", "b".repeat(252));
    for good in [
        "a",
        "Name",
        "name",
        "Version",
        "version",
        "a_b_1",
        "trailing_",
        longest_ok.as_str(),
        ends_in_underscore.as_str(),
    ] {
        let r = h
            .post(
                "/models/containers",
                json!({"items": container_with(good)["containers"]}),
            )
            .await;
        assert_eq!(r.status, 200, "`{good}` is valid in CDF: {}", r.body);
    }
    let too_long = format!("a{}", "b".repeat(255));
    let long_underscore = format!("a{}_", "b".repeat(253));
    for bad in [
        "a.b",
        "with space",
        "größe",
        "1abc",
        "_abc",
        "a-b",
        "",
        too_long.as_str(),
        long_underscore.as_str(),
    ] {
        let r = h
            .post(
                "/models/containers",
                json!({"items": container_with(bad)["containers"]}),
            )
            .await;
        assert_eq!(r.status, 400, "`{bad}` must be refused: {}", r.body);
        assert_eq!(r.body["error"]["code"], 400, "{}", r.body);
        assert!(
            msg(&r).contains("invalid property identifier"),
            "{bad}: {}",
            msg(&r)
        );
    }
    for reserved in [
        "space",
        "externalId",
        "createdTime",
        "lastUpdatedTime",
        "deletedTime",
        "edge_id",
        "node_id",
        "project_id",
        "property_group",
        "seq",
        "tg_table_name",
        "extensions",
    ] {
        let r = h
            .post(
                "/models/containers",
                json!({"items": container_with(reserved)["containers"]}),
            )
            .await;
        assert_eq!(r.status, 400, "`{reserved}` is reserved: {}", r.body);
        assert!(
            msg(&r).contains("reserved") && msg(&r).contains(reserved),
            "{}",
            msg(&r)
        );
    }
}

/// View property identifiers follow the same pattern (they need not equal the container
/// property they map, and reserved names are a container rule only).
#[tokio::test]
async fn view_property_identifiers_follow_cdf() {
    let h = start().await;
    h.ok(
        "/models/containers",
        json!({"items": container_with("tag")["containers"]}),
    )
    .await;
    let view = |id: &str| {
        json!({"items": [{"space": "schema", "externalId": "V", "version": "1", "properties": {
            id: {"container": {"type": "container", "space": "schema", "externalId": "C"},
                 "containerPropertyIdentifier": "tag"}}}]})
    };
    for good in ["Tag", "tag_2", "externalId"] {
        let r = h.post("/models/views", view(good)).await;
        assert_eq!(r.status, 200, "`{good}`: {}", r.body);
        h.ok(
            "/models/views/delete",
            json!({"items": [{"space": "schema", "externalId": "V", "version": "1"}]}),
        )
        .await;
    }
    for bad in ["a.b", "with space", "ünï", "9lives"] {
        let r = h.post("/models/views", view(bad)).await;
        assert_eq!(r.status, 400, "`{bad}`: {}", r.body);
        assert!(
            msg(&r).contains("invalid property identifier") && msg(&r).contains(bad),
            "{}",
            msg(&r)
        );
    }
}

/// Years 0001–9999 after conversion to UTC, as CDF stores them: an offset that pushes a
/// value out is refused instead of served with a 5-digit year.
#[tokio::test]
async fn timestamps_outside_years_1_to_9999_are_refused() {
    let h = start().await;
    seed_schema(&h.ctl());
    for bad in [
        "9999-12-31T23:30:00-01:00",
        "0001-01-01T00:30:00+01:00",
        "10000-01-01T00:00:00Z",
        "0000-12-31T23:59:59Z",
    ] {
        let r = h
            .post(
                "/models/instances",
                json!({"items": [pump("t", json!({"tag": "t", "at": bad}))]}),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(
            msg(&r).contains("timestamp") && msg(&r).contains("at"),
            "{}",
            msg(&r)
        );
    }
    for (good, served) in [
        ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999+00:00"),
        ("9999-12-31T22:30:00-01:00", "9999-12-31T23:30:00.000+00:00"),
        ("0001-01-01T00:30:00+00:30", "0001-01-01T00:00:00.000+00:00"),
    ] {
        h.ok(
            "/models/instances",
            json!({"items": [pump("t", json!({"tag": "t", "at": good}))]}),
        )
        .await;
        let page = h.sync(pump_sync("onePhase", 10, None)).await;
        let props = &page["items"]["pumps"][0]["properties"]["schema"]["Pump/1"];
        assert_eq!(props["at"], served, "{good}");
    }
}

/// int32, int64 and float32 values beyond their type's range are refused with a 400 that
/// says so; float32 values are served as CDF stores them, rounded to 32 bits.
#[tokio::test]
async fn numbers_follow_their_type_range_and_float32_is_stored_as_f32() {
    let h = start().await;
    seed_schema(&h.ctl());
    for (prop, bad) in [
        ("count32", "2147483648"),
        ("count32", "-2147483649"),
        ("count64", "9223372036854775808"),
        ("count64", "-9223372036854775809"),
        ("count64", "100000000000000000000"),
        ("f32", "3.5e38"),
        ("f32", "-1e39"),
    ] {
        let body: Value = serde_json::from_str(&format!(
            r#"{{"items":[{{"instanceType":"node","space":"data","externalId":"n",
               "sources":[{{"source":{},"properties":{{"tag":"t","{prop}":{bad}}}}}]}}]}}"#,
            pump_view()
        ))
        .unwrap();
        let r = h.post("/models/instances", body).await;
        assert_eq!(r.status, 400, "{prop}={bad}: {}", r.body);
        assert!(
            msg(&r).contains(prop) && msg(&r).contains("out of range"),
            "{prop}={bad}: {}",
            msg(&r)
        );
    }
    let cases = [
        ("count32", json!(i32::MIN), json!(i32::MIN)),
        ("count64", json!(i64::MAX), json!(i64::MAX)),
        ("count64", json!(i64::MIN), json!(i64::MIN)),
        ("f32", json!(0.1), json!(0.1)),
        ("f32", json!(5), json!(5)),
        ("f32", json!(0.123456789), json!(0.12345679)),
        ("f32", json!(16_777_217.0), json!(16_777_216.0)),
        ("f32", json!(3.4028235e38), json!(3.4028235e38)),
        ("f32", json!(1e-50), json!(0.0)),
    ];
    for (prop, written, served) in cases {
        h.ok(
            "/models/instances",
            json!({"items": [pump("n", json!({"tag": "t", prop: written}))]}),
        )
        .await;
        let page = h.sync(pump_sync("onePhase", 10, None)).await;
        let props = &page["items"]["pumps"][0]["properties"]["schema"]["Pump/1"];
        assert_eq!(props[prop], served, "{prop}={written}");
    }
}

/// A json value nested 5,000 levels deep (10,000 bytes, within CDF's limits) is accepted,
/// stored and served as written, and the emulator keeps serving the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_accepted_and_served() {
    let h = start().await;
    seed_schema(&h.ctl());
    let depth = 5_000;
    let deep = format!(r#"{{"d":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
    let template = json!({"items": [
        pump("deep", json!({"tag": "deep", "extra": "@DEEP@"})),
        pump("flat", json!({"tag": "flat", "extra": {"k": 1}})),
    ]})
    .to_string();
    let body = template.replace(r#""@DEEP@""#, &deep);
    let url = h.url("/models/instances");
    let resp = h
        .http
        .post(&url)
        .bearer_auth(&h.token)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(status, 200, "{}", resp.text().await.unwrap());
    // Writing the same value again is a no-op (compared without overflowing).
    let again = h
        .http
        .post(&url)
        .bearer_auth(&h.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);

    let text = h
        .http
        .post(h.url("/models/instances/sync"))
        .bearer_auth(&h.token)
        .json(&pump_sync("onePhase", 10, None))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!(r#""extra":{deep}"#)),
        "deep value served as written"
    );
    assert!(
        text.contains(r#""extra":{"k":1}"#),
        "{}",
        &text[..200.min(text.len())]
    );
    assert_eq!(
        text.matches(r#""version":1"#).count(),
        2,
        "the no-op write kept version 1"
    );

    // The in-process truth holds the whole value too (not a null cut off at 128 levels).
    // Comparing and dropping a deep `Value` recurses, so the check runs on a large stack.
    let ctl = h.ctl();
    let expected = format!(r#""extra":{deep}"#);
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let view = cdf_emulator::ViewId::new("schema", "Pump", "1");
            let live = ctl
                .live_instances_matching(cdf_emulator::InstanceKind::Node, None, &[view])
                .unwrap();
            let truth = serde_json::to_string(&live).unwrap();
            assert!(truth.contains(&expected), "truth holds the deep value");
        })
        .unwrap()
        .join()
        .unwrap();

    // Too large for CDF's json limit: refused with a 400, not a crash.
    let too_big = format!(r#"{{"d":{}{}}}"#, "[".repeat(30_000), "]".repeat(30_000));
    let body = template.replace(r#""@DEEP@""#, &too_big);
    let resp = h
        .http
        .post(&url)
        .bearer_auth(&h.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // Dropping the emulator with the deep value stored does not overflow either.
    drop(h);
}
