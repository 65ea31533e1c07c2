//! The OAuth2 client-credentials grant (RFC 6749 §4.4) against the configured token URL.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::token_cache::{FetchedToken, TokenFetcher};
use crate::cdf::error::body_snippet;
use crate::cdf::{CdfError, ClientCredentials, Secret};

/// Lifetime assumed when the identity provider leaves out `expires_in`. Short enough that a
/// token is renewed well before a typical one-hour expiry; a 401 forces a refresh anyway.
const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(300);

/// Longest lifetime believed. A provider that claims more (or sends a nonsense number) still
/// gets its token renewed daily, and the cache never computes an expiry past the clock's range.
const MAX_EXPIRES_IN: Duration = Duration::from_secs(24 * 3600);

pub(crate) struct ClientCredentialsFetcher {
    http: reqwest::Client,
    credentials: ClientCredentials,
}

impl ClientCredentialsFetcher {
    pub(crate) fn new(http: reqwest::Client, credentials: ClientCredentials) -> Self {
        Self { http, credentials }
    }
}

impl TokenFetcher for ClientCredentialsFetcher {
    async fn fetch(&self) -> Result<FetchedToken, CdfError> {
        let token_url = &self.credentials.token_url;
        let mut form = self.credentials.form_fields();
        let scope = self.credentials.scope_field();
        if let Some(scope) = scope.as_deref() {
            form.push(("scope", scope));
        }
        let transport_error = |source: reqwest::Error| CdfError::Auth {
            token_url: token_url.clone(),
            status: None,
            error: "token endpoint unreachable".into(),
            description: None,
            retryable: !source.is_builder() && !source.is_redirect(),
            source: Some(source),
        };
        let response = self
            .http
            .post(token_url.as_str())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport_error)?;
        parse_token_response(token_url, status, &body)
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<Value>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_uri: Option<String>,
}

/// Turns a token-endpoint response into a token or a typed `Auth` error.
///
/// The body of a success response is never copied into an error: it may hold a token.
pub(crate) fn parse_token_response(
    token_url: &str,
    status: u16,
    body: &[u8],
) -> Result<FetchedToken, CdfError> {
    let auth_error = |error: String, description: Option<String>, retryable: bool| CdfError::Auth {
        token_url: token_url.to_owned(),
        status: Some(status),
        error,
        description,
        retryable,
        source: None,
    };
    if !(200..300).contains(&status) {
        let retryable = status == 408 || status == 429 || status >= 500;
        return Err(match serde_json::from_slice::<OAuthErrorBody>(body) {
            Ok(oauth) => {
                let description = match (oauth.error_description, oauth.error_uri) {
                    (Some(d), Some(uri)) => Some(format!("{d}; see {uri}")),
                    (d, uri) => d.or(uri),
                };
                auth_error(oauth.error, description, retryable)
            }
            Err(_) => auth_error(
                "token request rejected".into(),
                Some(body_snippet(body)).filter(|s| !s.is_empty()),
                retryable,
            ),
        });
    }
    let parsed: TokenBody = serde_json::from_slice(body).map_err(|e| {
        auth_error(
            "token response is not the expected JSON".into(),
            Some(e.to_string()),
            false,
        )
    })?;
    let access_token = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| auth_error("token response has no access_token".into(), None, false))?;
    let expires_in = match parsed.expires_in {
        None | Some(Value::Null) => DEFAULT_EXPIRES_IN,
        Some(value) => parse_expires_in(&value).ok_or_else(|| {
            auth_error(
                "token response has an unusable expires_in".into(),
                Some(format!(
                    "expected seconds as a number or string, got {value}"
                )),
                false,
            )
        })?,
    };
    Ok(FetchedToken {
        access_token: Secret::new(access_token),
        expires_in,
    })
}

/// `expires_in` in seconds, given as a JSON number or a numeric string.
fn parse_expires_in(value: &Value) -> Option<Duration> {
    let seconds = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if seconds.is_finite() && seconds >= 0.0 {
        Some(Duration::try_from_secs_f64(seconds).map_or(MAX_EXPIRES_IN, |d| d.min(MAX_EXPIRES_IN)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://idp/token";

    #[test]
    fn numeric_and_string_expires_in_are_accepted() {
        for body in [
            r#"{"access_token":"t","token_type":"Bearer","expires_in":3600,"ext_expires_in":1}"#,
            r#"{"access_token":"t","expires_in":"3600"}"#,
            r#"{"access_token":"t","expires_in":3600.0}"#,
        ] {
            let token = parse_token_response(URL, 200, body.as_bytes()).unwrap();
            assert_eq!(token.access_token.expose(), "t");
            assert_eq!(token.expires_in, Duration::from_secs(3600), "{body}");
        }
    }

    #[test]
    fn absurd_expires_in_is_capped_at_a_day() {
        for body in [
            r#"{"access_token":"t","expires_in":1e19}"#,
            r#"{"access_token":"t","expires_in":"1e300"}"#,
            r#"{"access_token":"t","expires_in":18446744073709551615}"#,
        ] {
            let token = parse_token_response(URL, 200, body.as_bytes()).unwrap();
            assert_eq!(token.expires_in, MAX_EXPIRES_IN, "{body}");
        }
    }

    #[test]
    fn missing_expires_in_uses_the_default() {
        let token = parse_token_response(URL, 200, br#"{"access_token":"t"}"#).unwrap();
        assert_eq!(token.expires_in, DEFAULT_EXPIRES_IN);
    }

    #[test]
    fn bad_expires_in_is_an_auth_error() {
        let err = parse_token_response(URL, 200, br#"{"access_token":"t","expires_in":"soon"}"#)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("expires_in") && text.contains("soon"),
            "{text}"
        );
        assert!(matches!(
            err,
            CdfError::Auth {
                retryable: false,
                ..
            }
        ));
    }

    #[test]
    fn rfc6749_errors_are_typed() {
        let err = parse_token_response(
            URL,
            401,
            br#"{"error":"invalid_client","error_description":"client secret does not match"}"#,
        )
        .unwrap_err();
        match &err {
            CdfError::Auth {
                status,
                error,
                description,
                retryable,
                ..
            } => {
                assert_eq!(*status, Some(401));
                assert_eq!(error, "invalid_client");
                assert_eq!(description.as_deref(), Some("client secret does not match"));
                assert!(!retryable);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("invalid_client"));
    }

    #[test]
    fn server_errors_from_the_idp_are_retryable() {
        let err = parse_token_response(URL, 503, b"<html>down</html>").unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("down"));
    }

    #[test]
    fn success_body_is_never_echoed_into_errors() {
        let err =
            parse_token_response(URL, 200, br#"{"access_token":"SECRET-TOKEN","expires_in":"#)
                .unwrap_err();
        assert!(!err.to_string().contains("SECRET-TOKEN"));
        assert!(!format!("{err:?}").contains("SECRET-TOKEN"));
        let err = parse_token_response(URL, 200, br#"{"token":"SECRET-TOKEN"}"#).unwrap_err();
        assert!(!err.to_string().contains("SECRET-TOKEN"));
    }
}
