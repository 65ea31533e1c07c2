//! Fault injection for tests: matching requests get an error status, extra headers,
//! latency, a dropped connection or a truncated body instead of (or before) the real answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::error::ApiError;
use crate::request_log::VerbatimBody;
use crate::state::{AppState, lock};

/// One injected fault. It matches a request whose path equals or ends with `path` (and whose
/// method equals `method`, if given) and fires `count` times (default 1).
///
/// Effects, in order: wait `delay_ms`; then `drop_connection` closes the connection without
/// an answer, or `truncate_body` answers 200 with the real body cut short (invalid JSON),
/// or `status` answers with the CDF error envelope plus `headers` (and `Retry-After` when
/// `retry_after` is set). With none of the three, the request proceeds after the delay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Seconds, sent as `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub drop_connection: bool,
    #[serde(default)]
    pub truncate_body: bool,
    /// Error message for `status` faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Serve the real response with every occurrence of `.0` in its body replaced by `.1`:
    /// a well-formed answer with wrong content (say, a value of the wrong type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_body: Option<(String, String)>,
    /// For `status` faults: answer exactly this body (as `text/html`) instead of the CDF error
    /// envelope, the way a load balancer or proxy in front of CDF does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
}

impl FaultSpec {
    /// A fault answering `status` for the next `count` matching requests.
    pub fn status(path: impl Into<String>, status: u16, count: u32) -> Self {
        FaultSpec {
            path: path.into(),
            status: Some(status),
            count: Some(count),
            ..Default::default()
        }
    }
    /// Closes the connection without answering, `count` times.
    pub fn drop_connection(path: impl Into<String>, count: u32) -> Self {
        FaultSpec {
            path: path.into(),
            drop_connection: true,
            count: Some(count),
            ..Default::default()
        }
    }
    /// Answers 200 with a truncated (invalid JSON) body, `count` times.
    pub fn truncate_body(path: impl Into<String>, count: u32) -> Self {
        FaultSpec {
            path: path.into(),
            truncate_body: true,
            count: Some(count),
            ..Default::default()
        }
    }
    /// Delays matching requests by `ms` before serving them normally, `count` times.
    pub fn delay(path: impl Into<String>, ms: u64, count: u32) -> Self {
        FaultSpec {
            path: path.into(),
            delay_ms: Some(ms),
            count: Some(count),
            ..Default::default()
        }
    }
    pub fn with_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn with_delay_ms(mut self, ms: u64) -> Self {
        self.delay_ms = Some(ms);
        self
    }

    /// Serves matching responses with `find` replaced by `replace` in the body, `count` times.
    pub fn rewrite_body(path: impl Into<String>, find: &str, replace: &str, count: u32) -> Self {
        Self {
            path: path.into(),
            count: Some(count),
            rewrite_body: Some((find.to_owned(), replace.to_owned())),
            ..Self::default()
        }
    }

    /// Answers `status` with `body` verbatim (not JSON), `count` times.
    pub fn raw(path: impl Into<String>, status: u16, body: &str, count: u32) -> Self {
        Self {
            raw_body: Some(body.to_owned()),
            ..Self::status(path, status, count)
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let path_ok = path == self.path || (!self.path.is_empty() && path.ends_with(&self.path));
        path_ok
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// Per-connection handle that lets a fault close the connection it arrived on.
#[derive(Clone, Debug, Default)]
pub struct ConnKill(pub Arc<Notify>);

/// Takes one firing of the first fault that matches, removing it once its count is used up.
fn take_fault(st: &AppState, method: &str, path: &str) -> Option<FaultSpec> {
    let mut faults = lock(&st.faults);
    let i = faults.iter().position(|f| f.matches(method, path))?;
    let remaining = faults[i].count.unwrap_or(1);
    let fired = faults[i].clone();
    if remaining <= 1 {
        faults.remove(i);
    } else {
        faults[i].count = Some(remaining - 1);
    }
    Some(fired)
}

pub async fn inject(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/__emulator") {
        return next.run(req).await;
    }
    let Some(fault) = take_fault(&st, req.method().as_str(), &path) else {
        return next.run(req).await;
    };
    if let Some(ms) = fault.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if fault.drop_connection {
        if let Some(kill) = req.extensions().get::<ConnKill>() {
            kill.0.notify_one();
            // The connection task drops this request together with the connection.
            std::future::pending::<()>().await;
        }
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "connection dropped by fault injection",
        )
        .into_response();
    }
    if let Some((find, replace)) = &fault.rewrite_body {
        let response = next.run(req).await;
        let (mut parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let rewritten = String::from_utf8_lossy(&bytes).replace(find.as_str(), replace);
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(rewritten));
    }
    if fault.truncate_body {
        let response = next.run(req).await;
        let (mut parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let cut = if bytes.len() > 1 {
            bytes.slice(..bytes.len() / 2)
        } else {
            bytes::Bytes::from_static(b"{\"items\":[")
        };
        parts.status = StatusCode::OK;
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        parts.headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Response::from_parts(parts, Body::from(cut));
    }
    let mut response = match fault.status {
        Some(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if let Some(body) = &fault.raw_body {
                let mut raw = Response::new(Body::from(body.clone()));
                *raw.status_mut() = status;
                raw.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html"),
                );
                raw.extensions_mut().insert(VerbatimBody);
                raw
            } else {
                let message = fault.message.clone().unwrap_or_else(|| {
                    format!(
                        "Injected fault: {} {}",
                        code,
                        status.canonical_reason().unwrap_or("error")
                    )
                });
                ApiError::new(status, message).into_response()
            }
        }
        None => next.run(req).await,
    };
    for (name, value) in &fault.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    if let Some(secs) = fault.retry_after {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
