//! Request ids, the request log tests assert on, gzip request bodies, and envelopes for
//! router-level 404/405 answers.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::{AppState, REQUEST_LOG_CAP, lock};

/// One request as the emulator received it. The `authorization` header is kept with its
/// scheme only (`Bearer <redacted>`), never the credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lower-case header names.
    pub headers: BTreeMap<String, String>,
    /// Response status; `None` while in flight or when the connection was dropped.
    pub status: Option<u16>,
}

impl RequestRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

fn redact(name: &str, value: &str) -> String {
    if name == AUTHORIZATION.as_str() {
        let scheme = value.split_whitespace().next().unwrap_or("");
        format!("{scheme} <redacted>")
    } else {
        value.to_string()
    }
}

/// Outermost middleware: assigns `x-request-id`, records the request and its status.
/// Marks a response whose body must reach the client as it is, even when it is an error that
/// is not JSON (a fault imitating a proxy's HTML page).
#[derive(Clone, Copy, Debug)]
pub struct VerbatimBody;

pub async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let n = st.request_ids.fetch_add(1, Ordering::Relaxed) + 1;
    let request_id = format!("emu-{n:012x}");
    if !req.uri().path().starts_with("/__emulator") {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    redact(k.as_str(), v.to_str().unwrap_or("<binary>")),
                )
            })
            .collect();
        let record = RequestRecord {
            request_id: request_id.clone(),
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            headers,
            status: None,
        };
        let mut log = lock(&st.log);
        if log.len() >= REQUEST_LOG_CAP {
            log.pop_front();
        }
        log.push_back(record);
    }
    let mut response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let verbatim = response.extensions().get::<VerbatimBody>().is_some();
    if !is_json && !verbatim && (status.is_client_error() || status.is_server_error()) {
        // Router-level and extractor rejections come as plain text; wrap them in the envelope.
        let message = match status {
            StatusCode::NOT_FOUND => "Not found: no such API endpoint in the emulator".to_string(),
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed for this endpoint".to_string(),
            _ => {
                let (_, body) = response.into_parts();
                let text = axum::body::to_bytes(body, 64 * 1024)
                    .await
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&text).trim().to_string();
                if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    text
                }
            }
        };
        response = ApiError::new(status, message).into_response();
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    {
        let mut log = lock(&st.log);
        if let Some(r) = log.iter_mut().rev().find(|r| r.request_id == request_id) {
            r.status = Some(status.as_u16());
        }
    }
    response
}

/// Inflates gzip request bodies (the Python SDK gzips every JSON body by default).
pub async fn gunzip(req: Request, next: Next) -> Response {
    let gzipped = req
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzipped {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::server::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("Could not read request body: {e}"))
                .into_response();
        }
    };
    let mut inflated = Vec::with_capacity(bytes.len() * 4);
    if let Err(e) = flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut inflated) {
        return ApiError::bad_request(format!("Request body is not valid gzip: {e}"))
            .into_response();
    }
    parts.headers.remove(CONTENT_ENCODING);
    parts.headers.remove(CONTENT_LENGTH);
    next.run(Request::from_parts(parts, Body::from(inflated)))
        .await
}
