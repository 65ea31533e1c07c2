//! `POST /models/instances/aggregate` and `POST /models/instances/byids`.

use super::client::ApiRequest;
use super::dto::{
    AggregateRequest, AggregateResponse, ByIdsRequest, ByIdsResponse, MAX_BYIDS_ITEMS,
};
use super::{CdfClient, CdfError};

impl CdfClient {
    /// The count an aggregate request asks for. A read: retried like any other read.
    pub async fn count_instances(&self, request: &AggregateRequest) -> Result<u64, CdfError> {
        let http_request = ApiRequest::post("/models/instances/aggregate".to_owned(), request)?;
        let answer: AggregateResponse = self.send_json(&http_request).await?;
        answer.count().ok_or_else(|| {
            CdfError::InvalidRequest(
                "the aggregate answer carried no count for the request".to_owned(),
            )
        })
    }

    /// The current state of the named instances that exist. A read: retried like any other.
    pub async fn instances_by_ids(
        &self,
        request: &ByIdsRequest,
    ) -> Result<ByIdsResponse, CdfError> {
        if request.items.is_empty() || request.items.len() > MAX_BYIDS_ITEMS {
            return Err(CdfError::InvalidRequest(format!(
                "byids names {} instances, expected 1..={MAX_BYIDS_ITEMS}",
                request.items.len()
            )));
        }
        let http_request = ApiRequest::post("/models/instances/byids".to_owned(), request)?;
        self.send_json(&http_request).await
    }
}
