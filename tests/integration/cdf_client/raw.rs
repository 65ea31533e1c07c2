//! CDF RAW: rows with awkward keys, inserts chunked at ten thousand rows, databases and
//! tables.

use std::collections::BTreeSet;

use cdf_s3_replicator::cdf::CdfError;
use cdf_s3_replicator::cdf::dto::{RawRowQuery, RawRowWrite};
use serde_json::json;

use super::setup;

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
