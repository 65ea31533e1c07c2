//! RAW databases, tables and rows. Every name and key is percent-encoded as one path
//! segment, so keys such as `a/b` or `%2F` address exactly that row.

use serde::Serialize;

use super::client::ApiRequest;
use super::dto::{ItemsPage, ItemsRef, RawName, RawRow, RawRowPage, RawRowQuery, RawRowWrite};
use super::path::encode_segment;
use super::{CdfClient, CdfError};

/// Rows per insert request (the API maximum).
pub(crate) const RAW_INSERT_CHUNK: usize = 10_000;
/// Keys per delete request.
const RAW_DELETE_CHUNK: usize = 1_000;
/// Names per create/delete request of databases and tables.
const RAW_NAMES_CHUNK: usize = 1_000;
/// Page size used when reading all rows, databases or tables.
const RAW_LIST_PAGE: u32 = 1_000;

#[derive(Serialize)]
struct DeleteDatabasesBody<'a> {
    items: &'a [RawName],
    recursive: bool,
}

#[derive(Serialize)]
struct RowKey<'a> {
    key: &'a str,
}

fn names(values: &[&str]) -> Vec<RawName> {
    values
        .iter()
        .map(|name| RawName {
            name: (*name).to_owned(),
        })
        .collect()
}

fn db_path(db: &str) -> Result<String, CdfError> {
    Ok(format!(
        "/raw/dbs/{}",
        encode_segment("RAW database name", db)?
    ))
}

fn table_path(db: &str, table: &str) -> Result<String, CdfError> {
    Ok(format!(
        "{}/tables/{}",
        db_path(db)?,
        encode_segment("RAW table name", table)?
    ))
}

/// The value of the `columns` query parameter: `,` alone asks for keys only.
fn columns_param(columns: &[String]) -> String {
    if columns.is_empty() {
        ",".to_owned()
    } else {
        columns.join(",")
    }
}

impl CdfClient {
    /// Upserts rows, creating the database and table when missing (`ensureParent=true`).
    /// Sent in chunks of `RAW_INSERT_CHUNK`; a failure part-way leaves earlier chunks
    /// written, which is safe because inserts are idempotent.
    pub async fn insert_rows(
        &self,
        db: &str,
        table: &str,
        rows: &[RawRowWrite],
    ) -> Result<(), CdfError> {
        let path = format!("{}/rows", table_path(db, table)?);
        for chunk in rows.chunks(RAW_INSERT_CHUNK) {
            let request = ApiRequest::post(path.clone(), &ItemsRef { items: chunk })?
                .query("ensureParent", true);
            self.send_ignoring_body(&request).await?;
        }
        Ok(())
    }

    /// One row, or `None` when CDF answers 404 (missing row, table or database).
    pub async fn retrieve_row(
        &self,
        db: &str,
        table: &str,
        key: &str,
    ) -> Result<Option<RawRow>, CdfError> {
        let path = format!(
            "{}/rows/{}",
            table_path(db, table)?,
            encode_segment("RAW row key", key)?
        );
        match self.send_json(&ApiRequest::get(path)).await {
            Ok(row) => Ok(Some(row)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// One page of rows. Pass the returned `next_cursor` back in `query.cursor` for the next.
    pub async fn list_rows_page(
        &self,
        db: &str,
        table: &str,
        query: &RawRowQuery,
    ) -> Result<RawRowPage, CdfError> {
        let mut request = ApiRequest::get(format!("{}/rows", table_path(db, table)?));
        if let Some(limit) = query.limit {
            request = request.query("limit", limit);
        }
        if let Some(cursor) = &query.cursor {
            request = request.query("cursor", cursor);
        }
        if let Some(columns) = &query.columns {
            request = request.query("columns", columns_param(columns));
        }
        if let Some(min) = query.min_last_updated_time {
            request = request.query("minLastUpdatedTime", min);
        }
        if let Some(max) = query.max_last_updated_time {
            request = request.query("maxLastUpdatedTime", max);
        }
        self.send_json(&request).await
    }

    /// Every row of a table, following cursors to the end. `columns` as in `RawRowQuery`.
    pub async fn list_all_rows(
        &self,
        db: &str,
        table: &str,
        columns: Option<Vec<String>>,
    ) -> Result<Vec<RawRow>, CdfError> {
        let mut query = RawRowQuery {
            limit: Some(RAW_LIST_PAGE),
            columns,
            ..RawRowQuery::default()
        };
        let mut rows = Vec::new();
        loop {
            let page = self.list_rows_page(db, table, &query).await?;
            rows.extend(page.items);
            match page.next_cursor {
                Some(next) if !next.is_empty() => query.cursor = Some(next),
                _ => return Ok(rows),
            }
        }
    }

    /// Deletes rows by key; keys that do not exist are ignored by CDF.
    pub async fn delete_rows(&self, db: &str, table: &str, keys: &[&str]) -> Result<(), CdfError> {
        let path = format!("{}/rows/delete", table_path(db, table)?);
        for chunk in keys.chunks(RAW_DELETE_CHUNK) {
            let items: Vec<RowKey<'_>> = chunk.iter().map(|key| RowKey { key }).collect();
            let request = ApiRequest::post(path.clone(), &ItemsRef { items: &items })?;
            self.send_ignoring_body(&request).await?;
        }
        Ok(())
    }

    /// All database names.
    pub async fn list_databases(&self) -> Result<Vec<String>, CdfError> {
        self.list_names("/raw/dbs".to_owned()).await
    }

    /// Creates databases. An existing one makes CDF answer 400 with `duplicated`.
    pub async fn create_databases(&self, dbs: &[&str]) -> Result<(), CdfError> {
        for chunk in names(dbs).chunks(RAW_NAMES_CHUNK) {
            let request = ApiRequest::post("/raw/dbs".to_owned(), &ItemsRef { items: chunk })?
                .non_idempotent();
            self.send_ignoring_body(&request).await?;
        }
        Ok(())
    }

    /// Deletes databases; with `recursive` also their tables.
    pub async fn delete_databases(&self, dbs: &[&str], recursive: bool) -> Result<(), CdfError> {
        for chunk in names(dbs).chunks(RAW_NAMES_CHUNK) {
            let body = DeleteDatabasesBody {
                items: chunk,
                recursive,
            };
            let request = ApiRequest::post("/raw/dbs/delete".to_owned(), &body)?;
            self.send_ignoring_body(&request).await?;
        }
        Ok(())
    }

    /// All table names of a database.
    pub async fn list_tables(&self, db: &str) -> Result<Vec<String>, CdfError> {
        self.list_names(format!("{}/tables", db_path(db)?)).await
    }

    /// Creates tables; `ensure_parent` also creates a missing database.
    pub async fn create_tables(
        &self,
        db: &str,
        tables: &[&str],
        ensure_parent: bool,
    ) -> Result<(), CdfError> {
        let path = format!("{}/tables", db_path(db)?);
        for chunk in names(tables).chunks(RAW_NAMES_CHUNK) {
            let request = ApiRequest::post(path.clone(), &ItemsRef { items: chunk })?
                .query("ensureParent", ensure_parent)
                .non_idempotent();
            self.send_ignoring_body(&request).await?;
        }
        Ok(())
    }

    /// Deletes tables of a database, with their rows.
    pub async fn delete_tables(&self, db: &str, tables: &[&str]) -> Result<(), CdfError> {
        let path = format!("{}/tables/delete", db_path(db)?);
        for chunk in names(tables).chunks(RAW_NAMES_CHUNK) {
            let request = ApiRequest::post(path.clone(), &ItemsRef { items: chunk })?;
            self.send_ignoring_body(&request).await?;
        }
        Ok(())
    }

    async fn list_names(&self, path: String) -> Result<Vec<String>, CdfError> {
        let mut result = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut request = ApiRequest::get(path.clone()).query("limit", RAW_LIST_PAGE);
            if let Some(cursor) = &cursor {
                request = request.query("cursor", cursor);
            }
            let page: ItemsPage<RawName> = self.send_json(&request).await?;
            result.extend(page.items.into_iter().map(|n| n.name));
            match page.next_cursor {
                Some(next) if !next.is_empty() => cursor = Some(next),
                _ => return Ok(result),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_every_user_segment() {
        assert_eq!(
            table_path("db/1", "t 1").unwrap(),
            "/raw/dbs/db%2F1/tables/t%201"
        );
        assert!(table_path("", "t").is_err());
        assert!(table_path("db", "..").is_err());
    }

    #[test]
    fn columns_parameter_covers_keys_only_and_named_columns() {
        assert_eq!(columns_param(&[]), ",");
        assert_eq!(columns_param(&["a".into(), "b".into()]), "a,b");
    }
}
