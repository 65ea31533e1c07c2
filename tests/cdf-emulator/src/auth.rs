//! OAuth2 client-credentials token endpoint and Bearer validation of API calls.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::{AppState, lock};

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// Credentials from `Authorization: Basic` (RFC 6749 §2.3.1: form-encoded id and secret).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> String {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()
            .and_then(|v| v.into_iter().next())
            .map_or_else(|| s.to_string(), |(_, v)| v)
    };
    Some((unescape(id), unescape(secret)))
}

/// `POST /oauth2/token`: form body (or JSON) client-credentials grant; scope, audience and
/// resource are accepted and ignored.
pub async fn token(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body)
        .ok()
        .filter(|m: &HashMap<String, String>| !m.is_empty())
        .or_else(|| {
            serde_json::from_slice::<HashMap<String, Value>>(&body)
                .ok()
                .map(|m| {
                    m.into_iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                        .collect()
                })
        })
        .unwrap_or_default();
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type `{other}` is not supported; use client_credentials"),
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "missing grant_type",
            );
        }
    }
    let (id, secret) = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => match basic_credentials(&headers) {
            Some(c) => c,
            None => {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client credentials missing: send client_id and client_secret in the form body or as HTTP Basic",
                );
            }
        },
    };
    if id != st.client_id {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id",
        );
    }
    if secret != st.client_secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client secret does not match",
        );
    }
    let token = format!("emu_{:032x}", rand::rng().random::<u128>());
    let ttl_ms = st.token_ttl_ms();
    lock(&st.tokens).insert(token.clone(), st.clock.now_ms().saturating_add(ttl_ms));
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": (ttl_ms / 1000).max(1),
    }))
    .into_response()
}

/// Checks the Bearer token; `Err` carries the 401 to answer.
pub fn check_bearer(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("Unauthorized: missing Authorization header"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("Unauthorized: expected `Authorization: Bearer <token>`")
        })?;
    let expiry = lock(&st.tokens).get(token).copied();
    match expiry {
        None => Err(ApiError::unauthorized("Unauthorized: unknown access token")),
        Some(exp) if st.clock.now_ms() >= exp => Err(ApiError::unauthorized(
            "Unauthorized: access token has expired",
        )),
        Some(_) => Ok(()),
    }
}

/// Middleware for `/api/v1/projects/{project}/...`: 401 without a valid token, then 403 for
/// any project other than the emulated one.
pub async fn require_project_access(
    State(st): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(rest) = req.uri().path().strip_prefix("/api/v1/projects/") else {
        return next.run(req).await;
    };
    if let Err(e) = check_bearer(&st, req.headers()) {
        return e.into_response();
    }
    let project = rest.split('/').next().unwrap_or("");
    let project = percent_decode(project);
    if project != st.project {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Forbidden: no access to project `{project}`"),
        )
        .into_response();
    }
    next.run(req).await
}

/// Bearer-only middleware for API paths outside a project (token inspection).
pub async fn require_token(State(st): State<AppState>, req: Request, next: Next) -> Response {
    match check_bearer(&st, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn percent_decode(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={}", s.replace('+', "%2B")))
        .ok()
        .and_then(|v| v.into_iter().next())
        .map_or_else(|| s.to_string(), |(_, v)| v)
}

/// `GET /api/v1/token/inspect`: what SDKs call to explain a 401/403.
pub async fn inspect(State(st): State<AppState>) -> Json<Value> {
    let all = json!({"all": {}});
    let acls = [
        "dataModelsAcl",
        "dataModelInstancesAcl",
        "rawAcl",
        "extractionPipelinesAcl",
        "extractionRunsAcl",
        "extractionConfigsAcl",
    ];
    let capabilities: Vec<Value> = acls
        .iter()
        .map(|acl| {
            json!({ *acl: {"actions": ["READ", "WRITE", "LIST"], "scope": all}, "projectScope": {"projects": [st.project]} })
        })
        .collect();
    Json(json!({
        "subject": st.client_id,
        "projects": [{"projectUrlName": st.project, "groups": [1]}],
        "capabilities": capabilities,
    }))
}
