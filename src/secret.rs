//! A credential that must never reach a log line: client secrets, access tokens, S3 keys.
//!
//! Every [`Secret`] made in this process is also remembered (the most recent
//! [`REMEMBERED_SECRETS`] of them), so that text echoed from elsewhere, such as a CDF error
//! body that quotes the request, can be cleaned with [`redact`] before it reaches an error
//! message or a log line.

use std::fmt;
use std::sync::{Mutex, PoisonError};

/// How many distinct secret values [`redact`] knows: the client secret, the S3 key and the
/// access tokens of the last hours, with room to spare.
pub(crate) const REMEMBERED_SECRETS: usize = 64;

/// Values shorter than this are not redacted: replacing a one-letter test secret would
/// garble every message, and real credentials are far longer.
pub(crate) const MIN_REDACTED_CHARS: usize = 6;

/// Process variables whose values are redacted as well: the function role's own
/// credentials and the CDF client secret when it is passed as a variable.
const PROCESS_SECRET_VARIABLES: [&str; 3] = [
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "COGNITE_CLIENT_SECRET",
];

static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn remember(value: &str) {
    if value.chars().count() < MIN_REDACTED_CHARS {
        return;
    }
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(at) = known.iter().position(|v| v == value) {
        known.remove(at);
    } else if known.len() >= REMEMBERED_SECRETS {
        known.remove(0);
    }
    known.push(value.to_owned());
}

/// `text` with every known secret value replaced by `***`: each [`Secret`] made in this
/// process and the values of `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and
/// `COGNITE_CLIENT_SECRET`, each as written, percent-encoded (as in a URL path or query) and
/// form-encoded (as in a token request body), and JSON-escaped.
pub(crate) fn redact(text: &str) -> String {
    let mut values: Vec<String> = KNOWN.lock().unwrap_or_else(PoisonError::into_inner).clone();
    values.extend(
        PROCESS_SECRET_VARIABLES
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .filter(|v| v.chars().count() >= MIN_REDACTED_CHARS),
    );
    redact_values(text, &values)
}

/// `text` with each of `values` (and its encodings) replaced by `***`.
pub(crate) fn redact_values(text: &str, values: &[String]) -> String {
    let mut out = text.to_owned();
    // Longest first, so that a secret containing another is replaced whole.
    let mut forms: Vec<String> = values.iter().flat_map(|v| encodings(v)).collect();
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    for form in forms {
        if out.contains(&form) {
            out = out.replace(&form, "***");
        }
    }
    out
}

fn encodings(value: &str) -> Vec<String> {
    let percent = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    // Unreserved characters stay as they are in most encoders.
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let unreserved = percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string();
    let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json.trim_matches('"').to_owned();
    let mut forms = vec![value.to_owned(), percent, unreserved, form, json];
    forms.sort();
    forms.dedup();
    forms
}

/// `Debug` and `Display` print `***`, so a secret cannot leak through `{:?}` of a settings
/// struct or an error message. The value is only reachable through [`Secret::expose`], which
/// makes every place that sends it easy to find in review.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential and remembers its value for [`redact`].
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        remember(&value);
        Self(value)
    }

    /// The clear text, for the one place that sends it (token request, S3 signer).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_are_redacted_raw_and_encoded() {
        let secret = Secret::new("cs-a/b+c d&e=f\"g-0123456789");
        let token = Secret::new("emu_0123456789abcdef0123456789abcdef");
        let raw = secret.expose();
        let body = format!(
            "raw {raw} path {} form {} json {} token Bearer {}",
            percent_encoding::utf8_percent_encode(raw, percent_encoding::NON_ALPHANUMERIC),
            url::form_urlencoded::byte_serialize(raw.as_bytes()).collect::<String>(),
            serde_json::to_string(raw).unwrap(),
            token.expose()
        );
        let clean = redact(&body);
        assert!(!clean.contains("0123456789"), "{clean}");
        assert!(
            clean.starts_with("raw *** path *** form *** json \"***\""),
            "{clean}"
        );
        assert_eq!(
            redact_values("nothing secret here", &[]),
            "nothing secret here"
        );
    }

    #[test]
    fn short_values_are_left_alone() {
        let _short = Secret::new("s");
        assert!(!KNOWN.lock().unwrap().iter().any(|v| v == "s"));
    }
}
