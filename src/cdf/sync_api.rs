//! `POST /models/instances/sync`.

use super::client::ApiRequest;
use super::dto::{SyncRequest, SyncResponse};
use super::{CdfClient, CdfError};

/// Largest page CDF serves per result set.
pub(crate) const MAX_SYNC_LIMIT: u32 = 2000;

impl CdfClient {
    /// One sync call. The caller owns the cursors: store `next_cursor` after every call,
    /// empty pages included.
    ///
    /// Sync is a read, so transient failures are retried. An expired or rejected cursor is
    /// never retried: it comes back as `CdfError::CursorExpired` / `CdfError::InvalidCursor`
    /// and the caller must start again without cursors.
    pub async fn sync(&self, request: &SyncRequest) -> Result<SyncResponse, CdfError> {
        for (name, expression) in &request.with {
            if expression.limit == 0 || expression.limit > MAX_SYNC_LIMIT {
                return Err(CdfError::InvalidRequest(format!(
                    "sync result set `{name}` has limit {}, expected 1..={MAX_SYNC_LIMIT}",
                    expression.limit
                )));
            }
        }
        let http_request = ApiRequest::post("/models/instances/sync".to_owned(), request)?;
        self.send_json(&http_request).await
    }
}
