//! The CDF error envelope and the request extractors that turn malformed input into it,
//! so no handler ever answers a bad request with anything but `{"error":{...}}`.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An error answered with the CDF envelope `{"error":{"code","message",...}}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Identifier objects that were not found (envelope key `missing`).
    pub missing: Vec<Value>,
    /// Identifier objects that already exist (envelope key `duplicated`).
    pub duplicated: Vec<Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            missing: Vec::new(),
            duplicated: Vec::new(),
            headers: Vec::new(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn with_missing(mut self, missing: Vec<Value>) -> Self {
        self.missing = missing;
        self
    }
    pub fn with_duplicated(mut self, duplicated: Vec<Value>) -> Self {
        self.duplicated = duplicated;
        self
    }

    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.status.as_u16(), "message": self.message});
        if !self.missing.is_empty() {
            error["missing"] = Value::Array(self.missing.clone());
        }
        if !self.duplicated.is_empty() {
            error["duplicated"] = Value::Array(self.duplicated.clone());
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Deserializes a JSON value into `T`, naming the path of the offending field on failure.
pub fn from_value<T: DeserializeOwned>(value: Value, what: &str) -> ApiResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("Invalid {what}: {}", e.inner()))
        } else {
            ApiError::bad_request(format!("Invalid {what} at `{path}`: {}", e.inner()))
        }
    })
}

/// Parses request bytes as JSON into `T`, with CDF-style 400 messages.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // Any depth CDF accepts: json properties nest thousands of levels (see `deep`).
    de.disable_recursion_limit();
    let value: T = serde_path_to_error::deserialize(serde_stacker::Deserializer::new(&mut de))
        .map_err(|e| {
            let path = e.path().to_string();
            if path == "." || path.is_empty() {
                ApiError::bad_request(format!("Invalid JSON request body: {}", e.inner()))
            } else {
                ApiError::bad_request(format!(
                    "Invalid JSON request body at `{path}`: {}",
                    e.inner()
                ))
            }
        })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON request body: {e}")))?;
    Ok(value)
}

/// JSON body extractor whose rejections are CDF envelopes.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("Could not read request body: {e}")))?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "Request body is empty; expected JSON",
            ));
        }
        from_slice(&bytes).map(ApiJson)
    }
}

/// Query-string extractor whose rejections are CDF envelopes.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| ApiError::bad_request(format!("Invalid query parameters: {e}")))
    }
}

/// Path-parameter extractor (each segment percent-decoded on its own) with envelope rejections.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::bad_request(format!("Invalid path parameter: {e}")))
    }
}

/// Query-string booleans, accepted case-insensitively (`true`, `True`, `TRUE`): some SDK
/// versions send Python's spelling.
pub fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let s: Option<String> = serde::Deserialize::deserialize(d)?;
    match s.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(None),
        Some("true") | Some("1") => Ok(Some(true)),
        Some("false") | Some("0") => Ok(Some(false)),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected true or false, got `{other}`"
        ))),
    }
}
