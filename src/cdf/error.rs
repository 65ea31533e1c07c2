//! The error type of every CDF call, and parsing of CDF error bodies.
//!
//! Text that a server sent back (error messages, body snippets, OAuth error descriptions)
//! can quote the request, and with it a credential: a RAW name, a key or a query string
//! holding the client secret or a token. Such text passes through [`redact`] both when it is
//! parsed and when an error is displayed, so no known secret value reaches a message.

use serde_json::Value;

use crate::secret::redact;

/// Bytes of a response body kept in errors and logs; enough to recognise the payload.
const BODY_SNIPPET_CHARS: usize = 200;
/// Longest raw-text error message kept from a non-JSON error body.
const RAW_MESSAGE_CHARS: usize = 1000;

/// A failed CDF call.
#[derive(Debug, thiserror::Error)]
pub enum CdfError {
    /// CDF answered with an error status (other than the two cursor errors below).
    #[error("{0}")]
    Api(Box<ApiError>),

    /// The sync cursor is older than the cursor lifetime (3 days). The caller must drop its
    /// cursors and start a new backfill; retrying the same cursor never helps.
    #[error(
        "sync cursor has expired; start a new sync without cursors (request id {})",
        request_id.as_deref().unwrap_or("-")
    )]
    CursorExpired {
        /// The `x-request-id` of the rejecting response, for support tickets.
        request_id: Option<String>,
    },

    /// The cursor was rejected as malformed, foreign or made for a different query.
    #[error(
        "cursor was rejected as invalid; start a new sync without cursors (request id {})",
        request_id.as_deref().unwrap_or("-")
    )]
    InvalidCursor {
        /// The `x-request-id` of the rejecting response, for support tickets.
        request_id: Option<String>,
    },

    /// The identity provider refused to issue a token, or could not be reached.
    #[error(
        "token request to {token_url} failed{}: {}{}",
        status.map(|s| format!(" with HTTP {s}")).unwrap_or_default(),
        redact(error),
        description.as_deref().map(|d| format!(" ({})", redact(d))).unwrap_or_default()
    )]
    Auth {
        /// The token endpoint that was called.
        token_url: String,
        /// The HTTP status of the answer; `None` when no answer came.
        status: Option<u16>,
        /// The RFC 6749 `error` code (e.g. `invalid_client`) or a short local description.
        error: String,
        /// The RFC 6749 `error_description`, when the provider sent one.
        description: Option<String>,
        /// Whether a later attempt may succeed (no answer, throttling, 5xx).
        retryable: bool,
        /// The HTTP client's error, when the request got no usable answer.
        #[source]
        source: Option<reqwest::Error>,
    },

    /// The request never got an HTTP status: connect failure, timeout, dropped connection.
    #[error("{endpoint}: transport failure: {source}")]
    Transport {
        /// `METHOD /path` relative to the project base URL.
        endpoint: String,
        /// Whether resending can help: always after a failed connect; after a timeout or a broken
        /// connection only for idempotent calls.
        retryable: bool,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },

    /// A success response whose body is not the JSON this client expects.
    #[error(
        "{endpoint}: unexpected response body ({}); body starts with: {}",
        redact(&source.to_string()),
        redact(body_snippet)
    )]
    Decode {
        /// `METHOD /path` relative to the project base URL.
        endpoint: String,
        /// The start of the body, with known secrets redacted.
        body_snippet: String,
        /// Why the body did not decode.
        #[source]
        source: serde_json::Error,
    },

    /// A success response that is valid JSON but lacks what the call promised.
    #[error("{endpoint}: unexpected response: {}", redact(reason))]
    UnexpectedResponse {
        /// `METHOD /path` relative to the project base URL.
        endpoint: String,
        /// What the body lacks or gets wrong.
        reason: String,
    },

    /// The request could not be built from the given arguments (e.g. an empty RAW key).
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// The settings given to `CdfClient::new` are unusable.
    #[error("invalid CDF client setting `{field}`: {reason}")]
    InvalidSettings {
        /// The setting's name, e.g. `base_url` or `credentials.token_url`.
        field: &'static str,
        /// Why the value cannot be used.
        reason: String,
    },

    /// The deadline of the handle the call was made with came first: an attempt was still
    /// waiting for an answer, or the wait before the next retry (backoff or the server's
    /// `Retry-After`) would have ended after it. Nothing is wrong with the request; a later
    /// run makes it again.
    #[error(
        "{endpoint}: stopped at the run's deadline {}{}",
        match attempts { 0 => "before the first attempt".to_owned(), 1 => "after 1 attempt".to_owned(), n => format!("after {n} attempts") },
        last.as_ref().map(|e| format!("; the last one failed: {e}")).unwrap_or_default()
    )]
    DeadlineReached {
        /// `METHOD /path` relative to the project base URL.
        endpoint: String,
        /// Attempts started, the abandoned one included.
        attempts: u32,
        /// The failure of the last attempt that got an answer, if one did.
        #[source]
        last: Option<Box<CdfError>>,
    },

    /// Every allowed attempt failed with a retryable error; `last` is the final failure.
    #[error("giving up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// Attempts made, the first one included.
        attempts: u32,
        /// The failure of the final attempt.
        #[source]
        last: Box<CdfError>,
    },
}

/// An error status from CDF with the details of the error envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// `METHOD /path` relative to the project base URL.
    pub endpoint: String,
    /// The HTTP status. This is the truth; `code` is whatever the body claimed.
    pub status: u16,
    /// The `code` of the error body, if it had one; usually equal to `status`.
    pub code: Option<i64>,
    /// The error message with known secrets redacted; the status's reason phrase when the body had
    /// none.
    pub message: String,
    /// The `x-request-id` response header, for support tickets.
    pub request_id: Option<String>,
    /// Identifier objects listed under `missing`; empty when the body had none.
    pub(crate) missing: Vec<Value>,
    /// Identifier objects listed under `duplicated`; empty when the body had none.
    pub duplicated: Vec<Value>,
    /// Whether the retry policy considered this status transient.
    pub retryable: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed with HTTP {}: {} (request id {})",
            self.endpoint,
            self.status,
            redact(&self.message),
            self.request_id.as_deref().unwrap_or("-")
        )?;
        if !self.missing.is_empty() {
            let missing = Value::Array(self.missing.clone()).to_string();
            write!(f, "; missing: {}", redact(&missing))?;
        }
        if !self.duplicated.is_empty() {
            let duplicated = Value::Array(self.duplicated.clone()).to_string();
            write!(f, "; duplicated: {}", redact(&duplicated))?;
        }
        Ok(())
    }
}

impl CdfError {
    /// The error that ended the call, looking through `RetriesExhausted`.
    pub(crate) fn root(&self) -> &CdfError {
        match self {
            CdfError::RetriesExhausted { last, .. } => last.root(),
            other => other,
        }
    }

    /// The HTTP status from CDF or the identity provider, if one was received.
    pub fn status(&self) -> Option<u16> {
        match self.root() {
            CdfError::Api(api) => Some(api.status),
            CdfError::CursorExpired { .. } | CdfError::InvalidCursor { .. } => Some(400),
            CdfError::Auth { status, .. } => *status,
            _ => None,
        }
    }

    /// The `x-request-id` of the failing response, for support tickets.
    pub fn request_id(&self) -> Option<&str> {
        match self.root() {
            CdfError::Api(api) => api.request_id.as_deref(),
            CdfError::CursorExpired { request_id } | CdfError::InvalidCursor { request_id } => {
                request_id.as_deref()
            }
            _ => None,
        }
    }

    /// Whether the failure was transient, i.e. the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self.root() {
            CdfError::Api(api) => api.retryable,
            CdfError::Auth { retryable, .. } | CdfError::Transport { retryable, .. } => *retryable,
            CdfError::DeadlineReached { .. } => true,
            _ => false,
        }
    }

    /// True when the run's deadline ended the call ([`CdfError::DeadlineReached`]): the
    /// caller stops where it is, as when it finds the deadline near between two calls.
    pub fn is_deadline_reached(&self) -> bool {
        matches!(self.root(), CdfError::DeadlineReached { .. })
    }

    /// True for HTTP 404 from CDF.
    pub fn is_not_found(&self) -> bool {
        matches!(self.root(), CdfError::Api(api) if api.status == 404)
    }

    /// True for any 4xx from CDF (cursor errors included). Extraction-pipeline config reads
    /// use this to tell "no remote config" apart from an outage.
    pub fn is_client_error(&self) -> bool {
        self.status().is_some_and(|s| (400..500).contains(&s))
            && !matches!(self.root(), CdfError::Auth { .. })
    }

    /// True when the sync cursors must be dropped and a new backfill started.
    pub fn requires_resync(&self) -> bool {
        matches!(
            self.root(),
            CdfError::CursorExpired { .. } | CdfError::InvalidCursor { .. }
        )
    }
}

/// The fields recovered from an error response body.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ErrorBody {
    pub(crate) code: Option<i64>,
    pub(crate) message: String,
    pub(crate) missing: Vec<Value>,
    pub(crate) duplicated: Vec<Value>,
}

/// Reads an error body in the order the contract prescribes: `{"error":{...}}`,
/// `{"error":"text"}`, a flat `{code, message}`, and finally the raw text. Known secret
/// values are redacted from the message and the identifier lists.
pub(crate) fn parse_error_body(body: &[u8]) -> ErrorBody {
    let mut parsed = parse_error_body_as_sent(body);
    parsed.message = redact(&parsed.message);
    for item in parsed
        .missing
        .iter_mut()
        .chain(parsed.duplicated.iter_mut())
    {
        redact_strings(item);
    }
    parsed
}

/// Redacts every string (keys are names chosen by the contract, not echoed values).
fn redact_strings(value: &mut Value) {
    match value {
        Value::String(text) => *text = redact(text),
        Value::Array(items) => items.iter_mut().for_each(redact_strings),
        Value::Object(map) => map.values_mut().for_each(redact_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn parse_error_body_as_sent(body: &[u8]) -> ErrorBody {
    if let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(body) {
        match object.remove("error") {
            Some(Value::Object(mut inner)) => return envelope_fields(&mut inner),
            Some(Value::String(message)) => {
                return ErrorBody {
                    code: object.get("code").and_then(as_code),
                    message,
                    ..ErrorBody::default()
                };
            }
            Some(other) => {
                object.insert("error".to_owned(), other);
            }
            None => {}
        }
        if object.contains_key("message") || object.contains_key("code") {
            return envelope_fields(&mut object);
        }
    }
    ErrorBody {
        message: truncate_chars(String::from_utf8_lossy(body).trim(), RAW_MESSAGE_CHARS),
        ..ErrorBody::default()
    }
}

fn envelope_fields(object: &mut serde_json::Map<String, Value>) -> ErrorBody {
    let message = match object.remove("message") {
        Some(Value::String(text)) => text,
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    ErrorBody {
        code: object.get("code").and_then(as_code),
        message,
        missing: identifier_list(object.remove("missing")),
        duplicated: identifier_list(object.remove("duplicated")),
    }
}

fn as_code(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn identifier_list(value: Option<Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(single) => vec![single],
    }
}

/// The start of a body, lossily decoded, for error messages and logs; known secret values
/// are redacted before cutting, so a cut never leaves a recognisable part of one.
pub(crate) fn body_snippet(body: &[u8]) -> String {
    // Decode at most a few bytes per char more than needed; lossy decoding copes with a cut
    // in the middle of a multi-byte sequence.
    let head = &body[..body.len().min(BODY_SNIPPET_CHARS * 8)];
    truncate_chars(&redact(&String::from_utf8_lossy(head)), BODY_SNIPPET_CHARS)
}

/// Cuts `text` to at most `max` chars, marking a cut with "...".
pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(3);
    let mut out: String = text.chars().take(keep).collect();
    out.push_str("...");
    out
}

/// Whether a 400 message is CDF's expired-cursor error. Cognite's own replicators match on
/// this text, and it is the only way to tell it apart from other bad requests.
pub(crate) fn is_cursor_expired_message(message: &str) -> bool {
    message.to_lowercase().contains("cursor has expired")
}

/// Whether a 400 message is CDF's invalid-cursor error ("Invalid cursor provided.").
pub(crate) fn is_invalid_cursor_message(message: &str) -> bool {
    message
        .trim()
        .trim_end_matches('.')
        .eq_ignore_ascii_case("invalid cursor provided")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_wrapped_envelope_with_missing_and_duplicated() {
        let body = br#"{"error":{"code":400,"message":"Invalid cursor provided.",
            "missing":[{"space":"plant_data","externalId":"nope"}],
            "duplicated":[{"name":"db1"}],"extra":1}}"#;
        let parsed = parse_error_body(body);
        assert_eq!(parsed.code, Some(400));
        assert_eq!(parsed.message, "Invalid cursor provided.");
        assert_eq!(
            parsed.missing,
            vec![json!({"space":"plant_data","externalId":"nope"})]
        );
        assert_eq!(parsed.duplicated, vec![json!({"name":"db1"})]);
    }

    #[test]
    fn parses_error_as_plain_string() {
        let parsed = parse_error_body(br#"{"error":"token expired","code":"401"}"#);
        assert_eq!(parsed.message, "token expired");
        assert_eq!(parsed.code, Some(401));
        assert!(parsed.missing.is_empty());
    }

    #[test]
    fn parses_flat_code_and_message() {
        let parsed =
            parse_error_body(br#"{"code":404,"message":"db not found","missingFields":["x"]}"#);
        assert_eq!(parsed.code, Some(404));
        assert_eq!(parsed.message, "db not found");
    }

    #[test]
    fn keeps_raw_text_for_non_json_bodies() {
        let parsed = parse_error_body(b"<html>502 Bad Gateway</html>\n");
        assert_eq!(parsed.code, None);
        assert_eq!(parsed.message, "<html>502 Bad Gateway</html>");
    }

    #[test]
    fn keeps_raw_text_for_truncated_json() {
        let body = br#"{"error":{"code":500,"mess"#;
        let parsed = parse_error_body(body);
        assert_eq!(parsed.message, r#"{"error":{"code":500,"mess"#);
        assert_eq!(parsed.code, None);
    }

    #[test]
    fn keeps_raw_text_for_json_without_error_fields() {
        let parsed = parse_error_body(br#"{"items":[]}"#);
        assert_eq!(parsed.message, r#"{"items":[]}"#);
        let parsed = parse_error_body(br#"[1,2]"#);
        assert_eq!(parsed.message, "[1,2]");
        let parsed = parse_error_body(b"");
        assert_eq!(parsed.message, "");
    }

    #[test]
    fn long_raw_bodies_are_truncated() {
        let body = "x".repeat(5000);
        let parsed = parse_error_body(body.as_bytes());
        assert_eq!(parsed.message.chars().count(), RAW_MESSAGE_CHARS);
        assert!(parsed.message.ends_with("..."));
    }

    #[test]
    fn body_snippet_is_short_and_char_safe() {
        let body = "ø".repeat(1000);
        let snippet = body_snippet(body.as_bytes());
        assert_eq!(snippet.chars().count(), BODY_SNIPPET_CHARS);
        assert!(snippet.starts_with("øø"));
        assert_eq!(body_snippet(b"{\"a\""), "{\"a\"");
    }

    #[test]
    fn echoed_secrets_and_tokens_are_redacted() {
        let secret = crate::secret::Secret::new("cs-echo-4f3a9b2c7d1e");
        let token = crate::secret::Secret::new("emu_9f8e7d6c5b4a39281706f5e4d3c2b1a0");
        let raw = secret.expose();
        let encoded: String = url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
        let body = format!(
            r#"{{"error":{{"code":400,"message":"db {raw} / {encoded} / {} unknown","missing":[{{"dbName":"{raw}"}}]}}}}"#,
            token.expose()
        );
        let parsed = parse_error_body(body.as_bytes());
        let error = CdfError::Api(Box::new(ApiError {
            endpoint: "POST /raw/dbs".into(),
            status: 400,
            code: parsed.code,
            message: parsed.message.clone(),
            request_id: None,
            missing: parsed.missing.clone(),
            duplicated: Vec::new(),
            retryable: false,
        }));
        let shown = error.to_string();
        assert!(
            !shown.contains("4f3a9b2c7d1e") && !shown.contains("9f8e7d6c"),
            "{shown}"
        );
        assert!(shown.contains("db *** / *** / *** unknown"), "{shown}");
        let snippet = body_snippet(body.as_bytes());
        assert!(!snippet.contains("4f3a9b2c7d1e"), "{snippet}");
        let auth = CdfError::Auth {
            token_url: "https://idp/token".into(),
            status: Some(401),
            error: format!("invalid_client {raw}"),
            description: Some(format!("client_secret={encoded}")),
            retryable: false,
            source: None,
        };
        assert!(!auth.to_string().contains("4f3a9b2c7d1e"), "{auth}");
    }

    #[test]
    fn cursor_messages_are_recognised() {
        assert!(is_cursor_expired_message(
            "Cursor has expired. Try again with a new cursor."
        ));
        assert!(is_cursor_expired_message("the CURSOR HAS EXPIRED"));
        assert!(!is_cursor_expired_message("Invalid cursor provided."));
        assert!(is_invalid_cursor_message("Invalid cursor provided."));
        assert!(is_invalid_cursor_message("invalid cursor provided"));
        assert!(!is_invalid_cursor_message("Cursor has expired."));
    }

    #[test]
    fn accessors_look_through_retries_exhausted() {
        let api = CdfError::Api(Box::new(ApiError {
            endpoint: "POST /models/instances/sync".into(),
            status: 503,
            code: Some(503),
            message: "busy".into(),
            request_id: Some("req-1".into()),
            missing: vec![],
            duplicated: vec![],
            retryable: true,
        }));
        let err = CdfError::RetriesExhausted {
            attempts: 8,
            last: Box::new(api),
        };
        assert_eq!(err.status(), Some(503));
        assert_eq!(err.request_id(), Some("req-1"));
        assert!(err.is_retryable());
        assert!(!err.is_client_error());
        let text = err.to_string();
        assert!(text.contains("8 attempts"), "{text}");
        assert!(text.contains("POST /models/instances/sync"), "{text}");
        assert!(text.contains("req-1"), "{text}");

        let expired = CdfError::CursorExpired { request_id: None };
        assert!(expired.requires_resync());
        assert!(expired.is_client_error());
    }
}
