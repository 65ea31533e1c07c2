//! `POST /models/instances/list`.

use super::client::ApiRequest;
use super::dto::{ListRequest, ListResponse, MAX_LIST_LIMIT};
use super::{CdfClient, CdfError};

impl CdfClient {
    /// One page of the instances that match a filter now. A read: transient failures are
    /// retried like any other read.
    pub async fn list_instances(&self, request: &ListRequest) -> Result<ListResponse, CdfError> {
        if request.limit == 0 || request.limit > MAX_LIST_LIMIT {
            return Err(CdfError::InvalidRequest(format!(
                "list has limit {}, expected 1..={MAX_LIST_LIMIT}",
                request.limit
            )));
        }
        let http_request = ApiRequest::post("/models/instances/list".to_owned(), request)?;
        self.send_json(&http_request).await
    }
}
