//! Extraction pipelines: remote configuration and run reports.

use super::client::ApiRequest;
use super::dto::{
    ExtpipeConfig, ExtpipeConfigWrite, ExtpipeRun, ExtpipeRunStatus, ExtpipeRunWrite, Items,
    ItemsRef,
};
use super::error::truncate_chars;
use super::{CdfClient, CdfError};

/// Longest run message CDF accepts.
pub(crate) const MAX_RUN_MESSAGE_CHARS: usize = 1000;

/// What `POST /extpipes/runs` needs beyond the capabilities of reading the data: CDF checks
/// both, so a 403 means the service principal lacks one of them.
pub(crate) const RUN_REPORT_CAPABILITIES: &str =
    "extractionRunsAcl:WRITE on the extraction pipeline and datasetsAcl:READ on its data set";

impl CdfClient {
    /// The pipeline's configuration: the latest revision, or `revision` when given.
    ///
    /// An unknown pipeline or one without any revision is a 4xx from CDF and comes back as
    /// an error for which `CdfError::is_client_error()` is true (the emulator uses 404,
    /// which also makes `is_not_found()` true). Callers that treat "no remote config" as a
    /// normal state check that; 5xx and transport failures are retried and then returned.
    pub async fn get_extpipe_config(
        &self,
        external_id: &str,
        revision: Option<i64>,
    ) -> Result<ExtpipeConfig, CdfError> {
        let mut request =
            ApiRequest::get("/extpipes/config".to_owned()).query("externalId", external_id);
        if let Some(revision) = revision {
            request = request.query("revision", revision);
        }
        self.send_json(&request).await
    }

    /// Stores a new configuration revision. Not idempotent: at most one retry, and only
    /// when the first attempt cannot have reached CDF or CDF answered 5xx.
    pub async fn post_extpipe_config(
        &self,
        config: &ExtpipeConfigWrite,
    ) -> Result<ExtpipeConfig, CdfError> {
        let request = ApiRequest::post("/extpipes/config".to_owned(), config)?.non_idempotent();
        self.send_json(&request).await
    }

    /// Reports the outcome of one invocation to `pipeline`, if one is configured. A report
    /// that cannot be delivered is logged, never an error: the data work it describes is
    /// already done.
    pub(crate) async fn report_invocation(
        &self,
        pipeline: Option<&str>,
        success: bool,
        message: String,
    ) {
        let Some(pipeline) = pipeline else { return };
        let status = if success {
            ExtpipeRunStatus::Success
        } else {
            ExtpipeRunStatus::Failure
        };
        let run = ExtpipeRunWrite::new(pipeline, status, Some(message));
        if let Err(error) = self.post_extpipe_run(&run).await {
            if error.status() == Some(403) {
                tracing::warn!(
                    pipeline,
                    %error,
                    "could not report the run to the extraction pipeline: CDF refused it \
                     (HTTP 403); the service principal needs {RUN_REPORT_CAPABILITIES}"
                );
            } else {
                tracing::warn!(pipeline, %error, "could not report the run to the extraction pipeline");
            }
        }
    }

    /// Reports one run (success, failure or a `seen` heartbeat). Messages longer than
    /// `MAX_RUN_MESSAGE_CHARS` are cut and end in "...". Not idempotent, retried like
    /// `post_extpipe_config`; a lost heartbeat is acceptable, a duplicated failure is not.
    pub async fn post_extpipe_run(&self, run: &ExtpipeRunWrite) -> Result<ExtpipeRun, CdfError> {
        let mut run = run.clone();
        run.message = run
            .message
            .map(|m| truncate_chars(&m, MAX_RUN_MESSAGE_CHARS));
        let body = ItemsRef {
            items: std::slice::from_ref(&run),
        };
        let request = ApiRequest::post("/extpipes/runs".to_owned(), &body)?.non_idempotent();
        let created: Items<ExtpipeRun> = self.send_json(&request).await?;
        created
            .items
            .into_iter()
            .next()
            .ok_or_else(|| CdfError::UnexpectedResponse {
                endpoint: "POST /extpipes/runs".to_owned(),
                reason: format!(
                    "the run for extraction pipeline `{}` was accepted but no item came back",
                    run.external_id
                ),
            })
    }
}
