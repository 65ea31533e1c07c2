//! The HTTP core shared by every endpoint: URL building, headers, bearer token, retries and
//! turning responses into values or typed errors.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::auth::{AccessToken, ClientCredentialsFetcher, TokenCache};
use super::error::{
    ApiError, body_snippet, is_cursor_expired_message, is_invalid_cursor_message, parse_error_body,
};
use super::path::encode_segment;
use super::retry::{
    Idempotency, TransportFailure, is_retryable_status, is_retryable_transport, parse_retry_after,
};
use super::settings::{CDF_API_VERSION, SDK_ID};
use super::{CdfError, ClientSettings, RetryPolicy};
use crate::job::Interrupt;

const REQUEST_ID_HEADER: &str = "x-request-id";
const AUTO_RETRYABLE_HEADER: &str = "cdf-is-auto-retryable";

/// A client for one CDF project. Cheap to clone: clones share the connection pool and the
/// token cache.
///
/// A handle may be bound to a deadline ([`CdfClient::with_deadline`]): then no call made
/// through it waits past that instant, whether for an answer, a token, a backoff or a
/// server's `Retry-After`. A job hands its CDF calls a handle bound to its run's deadline, so
/// a throttled or slow CDF ends the run on time instead of holding it (in Lambda, until the
/// function timeout kills it). A handle may also watch an operator's interrupt
/// ([`CdfClient::with_interrupt`]): once it is raised, the handle's calls end as if its
/// deadline had come.
#[derive(Clone)]
pub struct CdfClient {
    inner: Arc<ClientInner>,
    /// The instant no call of this handle waits past; `None` leaves calls to the retry policy
    /// and the HTTP timeout alone.
    deadline: Option<Instant>,
    /// Ends the handle's calls like its deadline, when raised.
    interrupt: Option<&'static Interrupt>,
}

struct ClientInner {
    http: reqwest::Client,
    /// `<base>/api/v1/projects/<project>`, without a trailing slash.
    api_base: String,
    /// The identity provider's token endpoint, as configured.
    token_url: String,
    #[expect(dead_code, reason = "kept in the Debug output of the value")]
    project: String,
    /// Headers for CDF calls only; the token endpoint never sees them.
    cdf_headers: HeaderMap,
    tokens: TokenCache<ClientCredentialsFetcher>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for CdfClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdfClient")
            .field("api_base", &self.inner.api_base)
            .field("deadline", &self.deadline)
            .field("interrupt", &self.interrupt.map(Interrupt::is_raised))
            .finish_non_exhaustive()
    }
}

/// One logical API call; the retry loop may send it several times.
pub(crate) struct ApiRequest {
    pub(crate) method: Method,
    /// Relative to the project base, starting with `/`, user segments already encoded.
    pub(crate) path: String,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Option<Bytes>,
    pub(crate) idempotency: Idempotency,
}

impl ApiRequest {
    pub(crate) fn get(path: String) -> Self {
        Self {
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
            idempotency: Idempotency::Idempotent,
        }
    }

    pub(crate) fn post(path: String, body: &impl Serialize) -> Result<Self, CdfError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            CdfError::InvalidRequest(format!("request body for POST {path} is not JSON: {e}"))
        })?;
        Ok(Self {
            method: Method::POST,
            path,
            query: Vec::new(),
            body: Some(Bytes::from(body)),
            idempotency: Idempotency::Idempotent,
        })
    }

    pub(crate) fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    pub(crate) fn non_idempotent(mut self) -> Self {
        self.idempotency = Idempotency::NonIdempotent;
        self
    }

    fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Why one attempt failed, with what the retry loop needs to decide.
struct AttemptFailure {
    error: CdfError,
    retryable: bool,
    retry_after: Option<Duration>,
    status: Option<u16>,
    request_id: Option<String>,
    /// Set when CDF answered 401 to this token.
    rejected_token: Option<AccessToken>,
}

impl AttemptFailure {
    fn from_error(error: CdfError) -> Self {
        Self {
            retryable: error.is_retryable(),
            status: error.status(),
            error,
            retry_after: None,
            request_id: None,
            rejected_token: None,
        }
    }
}

impl CdfClient {
    /// Builds a client from `settings`. The URLs, the project and the app name are checked here
    /// (`CdfError::InvalidSettings`); no request is sent and no token fetched before the first
    /// call.
    pub fn new(settings: ClientSettings) -> Result<Self, CdfError> {
        let base =
            url::Url::parse(settings.base_url.trim()).map_err(|e| CdfError::InvalidSettings {
                field: "base_url",
                reason: format!("`{}` is not a URL: {e}", settings.base_url),
            })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(CdfError::InvalidSettings {
                field: "base_url",
                reason: format!(
                    "`{}` must be an http(s) URL such as https://api.cognitedata.com",
                    settings.base_url
                ),
            });
        }
        if url::Url::parse(&settings.credentials.token_url).is_err() {
            return Err(CdfError::InvalidSettings {
                field: "credentials.token_url",
                reason: format!("`{}` is not a URL", settings.credentials.token_url),
            });
        }
        let project = encode_segment("project", &settings.project).map_err(|e| {
            CdfError::InvalidSettings {
                field: "project",
                reason: e.to_string(),
            }
        })?;
        let api_base = format!(
            "{}/api/v1/projects/{project}",
            base.as_str().trim_end_matches('/')
        );

        let http = reqwest::Client::builder()
            .user_agent(SDK_ID)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
            // CDF does not redirect; following one could carry the bearer token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CdfError::InvalidSettings {
                field: "timeout",
                reason: format!("cannot build the HTTP client: {e}"),
            })?;

        let app =
            HeaderValue::from_str(&settings.app_name).map_err(|_| CdfError::InvalidSettings {
                field: "app_name",
                reason: format!(
                    "`{}` is not a valid HTTP header value (use visible ASCII)",
                    settings.app_name
                ),
            })?;
        let mut cdf_headers = HeaderMap::new();
        cdf_headers.insert(HeaderName::from_static("x-cdp-app"), app);
        cdf_headers.insert(
            HeaderName::from_static("x-cdp-sdk"),
            HeaderValue::from_static(SDK_ID),
        );
        cdf_headers.insert(
            HeaderName::from_static("cdf-version"),
            HeaderValue::from_static(CDF_API_VERSION),
        );
        cdf_headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));

        let token_url = settings.credentials.token_url.clone();
        let tokens = TokenCache::new(ClientCredentialsFetcher::new(
            http.clone(),
            settings.credentials,
        ));
        Ok(Self {
            inner: Arc::new(ClientInner {
                http,
                api_base,
                token_url,
                project: settings.project,
                cdf_headers,
                tokens,
                retry: settings.retry,
            }),
            deadline: None,
            interrupt: None,
        })
    }

    /// A handle whose calls end by `deadline` (or by this handle's own deadline, if that is
    /// earlier): an attempt still waiting for CDF at that instant is abandoned, and a retry
    /// whose wait (backoff or `Retry-After`) would end after it is not made. Either way the
    /// call fails with [`CdfError::DeadlineReached`]. The handle shares the connection pool
    /// and the token cache with `self`.
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        Self {
            inner: self.inner.clone(),
            deadline: Some(self.deadline.map_or(deadline, |own| own.min(deadline))),
            interrupt: self.interrupt,
        }
    }

    /// A handle whose calls end, as at a deadline, once `interrupt` is raised: an attempt
    /// or backoff in progress is abandoned and no further attempt starts. Shares the
    /// connection pool and the token cache with `self`.
    pub fn with_interrupt(&self, interrupt: &'static Interrupt) -> Self {
        Self {
            inner: self.inner.clone(),
            deadline: self.deadline,
            interrupt: Some(interrupt),
        }
    }

    /// The project's API base URL, `<base>/api/v1/projects/<project>`.
    pub(crate) fn api_base(&self) -> &str {
        &self.inner.api_base
    }

    /// The identity provider's token endpoint.
    pub(crate) fn token_url(&self) -> &str {
        &self.inner.token_url
    }

    /// The instant no call of this handle waits past, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Runs `future` (one attempt, a token refresh) until this handle's deadline. `None`
    /// when the deadline came first: the future is dropped, which abandons its request.
    async fn until_deadline<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        let interruptible = async {
            match self.interrupt {
                Some(interrupt) => tokio::select! {
                    value = future => Some(value),
                    () = interrupt.raised() => None,
                },
                None => Some(future.await),
            }
        };
        match self.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, interruptible)
                .await
                .ok()
                .flatten(),
            None => interruptible.await,
        }
    }

    fn past_deadline(&self) -> bool {
        self.interrupt.is_some_and(Interrupt::is_raised)
            || self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Sends `request` and decodes a JSON success body into `T`.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        request: &ApiRequest,
    ) -> Result<T, CdfError> {
        self.send_with(request, |body| decode_json(body)).await
    }

    /// Sends `request` and ignores the success body (RAW writes answer `{}`).
    pub(crate) async fn send_ignoring_body(&self, request: &ApiRequest) -> Result<(), CdfError> {
        self.send_with(request, |_| Ok(())).await
    }

    /// The retry loop: one attempt at a time, refreshing the token once on 401 and backing
    /// off between retryable failures, never past the handle's deadline.
    async fn send_with<T>(
        &self,
        request: &ApiRequest,
        decode: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, CdfError> {
        let max_attempts = self.inner.retry.attempts_for(request.idempotency);
        let mut attempt = 0u32;
        let mut refreshed_after_401 = false;
        let mut last: Option<CdfError> = None;
        loop {
            if self.past_deadline() {
                return Err(deadline_reached(request, attempt, last));
            }
            attempt += 1;
            let mut failure = match self.until_deadline(self.attempt(request, &decode)).await {
                Some(Ok(value)) => return Ok(value),
                Some(Err(failure)) => failure,
                None => {
                    tracing::warn!(
                        method = %request.method,
                        path = %request.path,
                        attempt,
                        "CDF call abandoned: no answer before the run's deadline"
                    );
                    return Err(deadline_reached(request, attempt, last));
                }
            };

            if let Some(rejected) = failure.rejected_token.take()
                && !refreshed_after_401
            {
                refreshed_after_401 = true;
                tracing::info!(
                    method = %request.method,
                    path = %request.path,
                    request_id = failure.request_id.as_deref().unwrap_or("-"),
                    "CDF rejected the access token (401); refreshing it and retrying once"
                );
                match self
                    .until_deadline(self.inner.tokens.refresh_rejected(&rejected))
                    .await
                {
                    Some(Ok(_)) => {
                        // The 401 retry has its own budget of one.
                        attempt -= 1;
                        last = Some(failure.error);
                        continue;
                    }
                    Some(Err(error)) => failure = AttemptFailure::from_error(error),
                    None => return Err(deadline_reached(request, attempt, Some(failure.error))),
                }
            }

            if !failure.retryable {
                log_failure(request, &failure, attempt, "CDF call failed");
                return Err(failure.error);
            }
            if attempt >= max_attempts {
                log_failure(
                    request,
                    &failure,
                    attempt,
                    "CDF call failed; retries exhausted",
                );
                return Err(CdfError::RetriesExhausted {
                    attempts: attempt,
                    last: Box::new(failure.error),
                });
            }
            let delay =
                self.inner
                    .retry
                    .delay(attempt - 1, failure.retry_after, rand::random::<f64>());
            if let Some(deadline) = self.deadline
                && Instant::now() + delay >= deadline
            {
                // Waiting would only end after the deadline, and the retry after it: stop
                // now, so the time left goes to committing what the run has.
                log_failure(
                    request,
                    &failure,
                    attempt,
                    "CDF call failed; the next retry would start after the run's deadline",
                );
                return Err(deadline_reached(request, attempt, Some(failure.error)));
            }
            tracing::warn!(
                method = %request.method,
                path = %request.path,
                status = failure.status,
                request_id = failure.request_id.as_deref().unwrap_or("-"),
                attempt,
                max_attempts,
                delay_ms = delay.as_millis() as u64,
                error = %failure.error,
                "CDF call failed; retrying"
            );
            last = Some(failure.error);
            // An interrupt ends the wait; the loop's first check then ends the call.
            let _ = self.until_deadline(tokio::time::sleep(delay)).await;
        }
    }

    /// Obtains an access token now (or reuses the cached one). Callers use it to tell a
    /// refused identity from the per-stream failures it would otherwise cause one by one.
    pub(crate) async fn authenticate(&self) -> Result<(), CdfError> {
        match self.until_deadline(self.inner.tokens.token()).await {
            Some(token) => token.map(|_| ()),
            None => Err(CdfError::DeadlineReached {
                endpoint: "token request".to_owned(),
                attempts: 1,
                last: None,
            }),
        }
    }

    async fn attempt<T>(
        &self,
        request: &ApiRequest,
        decode: &impl Fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, AttemptFailure> {
        let token = self
            .inner
            .tokens
            .token()
            .await
            .map_err(AttemptFailure::from_error)?;
        let url = format!("{}{}", self.inner.api_base, request.path);
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), url)
            .headers(self.inner.cdf_headers.clone())
            .bearer_auth(token.secret.expose());
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }

        let transport = |source: reqwest::Error| {
            let retryable = is_retryable_transport(transport_failure(&source), request.idempotency);
            AttemptFailure::from_error(CdfError::Transport {
                endpoint: request.endpoint(),
                retryable,
                source,
            })
        };
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers();
        let request_id = header_text(headers, REQUEST_ID_HEADER);
        let auto_retryable = header_text(headers, AUTO_RETRYABLE_HEADER)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let retry_after = header_text(headers, header::RETRY_AFTER.as_str())
            .and_then(|v| parse_retry_after(&v, SystemTime::now()));
        let body = response.bytes().await.map_err(|source| {
            let mut failure = transport(source);
            failure.status = Some(status);
            failure.request_id = request_id.clone();
            failure
        })?;

        if (200..300).contains(&status) {
            return decode(&body).map_err(|source| {
                // A body cut short (EOF) is a transfer problem worth another try on a read;
                // a body of the wrong shape will not change on retry.
                let retryable = source.is_eof() && request.idempotency == Idempotency::Idempotent;
                AttemptFailure {
                    error: CdfError::Decode {
                        endpoint: request.endpoint(),
                        body_snippet: body_snippet(&body),
                        source,
                    },
                    retryable,
                    retry_after: None,
                    status: Some(status),
                    request_id: request_id.clone(),
                    rejected_token: None,
                }
            });
        }

        let retryable = is_retryable_status(status, auto_retryable, request.idempotency);
        Err(AttemptFailure {
            error: api_error(request, status, request_id.clone(), retryable, &body),
            retryable,
            retry_after,
            status: Some(status),
            request_id,
            rejected_token: (status == 401).then_some(token),
        })
    }
}

/// Builds the typed error for an error status, recognising the two sync cursor errors.
fn api_error(
    request: &ApiRequest,
    status: u16,
    request_id: Option<String>,
    retryable: bool,
    body: &[u8],
) -> CdfError {
    let parsed = parse_error_body(body);
    if status == 400 && !retryable {
        if is_cursor_expired_message(&parsed.message) {
            return CdfError::CursorExpired { request_id };
        }
        if is_invalid_cursor_message(&parsed.message) {
            return CdfError::InvalidCursor { request_id };
        }
    }
    let message = if parsed.message.is_empty() {
        reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no error message")
            .to_owned()
    } else {
        parsed.message
    };
    CdfError::Api(Box::new(ApiError {
        endpoint: request.endpoint(),
        status,
        code: parsed.code,
        message,
        request_id,
        missing: parsed.missing,
        duplicated: parsed.duplicated,
        retryable,
    }))
}

/// The error of a call the deadline ended, with the failure of its last attempt, if any.
fn deadline_reached(request: &ApiRequest, attempts: u32, last: Option<CdfError>) -> CdfError {
    CdfError::DeadlineReached {
        endpoint: request.endpoint(),
        attempts,
        last: last.map(Box::new),
    }
}

fn transport_failure(error: &reqwest::Error) -> TransportFailure {
    if error.is_connect() {
        TransportFailure::Connect
    } else if error.is_timeout() {
        TransportFailure::Timeout
    } else if error.is_builder() || error.is_redirect() {
        TransportFailure::Permanent
    } else {
        TransportFailure::Interrupted
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Every failed call is logged with method, path, status and request id. A 404 is often an
/// expected answer (a missing RAW row), so it is logged at debug level only.
fn log_failure(request: &ApiRequest, failure: &AttemptFailure, attempts: u32, what: &str) {
    let status = failure.status;
    let request_id = failure.request_id.as_deref().unwrap_or("-");
    if status == Some(404) {
        tracing::debug!(
            method = %request.method, path = %request.path, status, request_id, attempts,
            error = %failure.error, "{what}"
        );
    } else {
        tracing::warn!(
            method = %request.method, path = %request.path, status, request_id, attempts,
            error = %failure.error, "{what}"
        );
    }
}

/// Decodes a JSON body of any nesting depth.
///
/// CDF stores `json` properties of up to 40,960 bytes, so a valid value can nest thousands of
/// levels deep; serde_json's default limit of 128 levels would refuse such a page on every
/// run and wedge the whole stream. The limit is lifted, and `serde_stacker` moves the
/// recursive descent onto heap-allocated stack segments whenever the current stack runs low,
/// so no depth can overflow a tokio worker's (or a Lambda's) stack. Shallow documents never
/// leave the original stack, which keeps the hot path at its usual speed. The resulting
/// values are written and dropped without recursion (see `flatten::values::write_json` and
/// `Instance`'s `Drop`).
pub(crate) fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    deserializer.disable_recursion_limit();
    let value = <T as serde::Deserialize>::deserialize(serde_stacker::Deserializer::new(
        &mut deserializer,
    ))?;
    deserializer.end()?;
    Ok(value)
}
