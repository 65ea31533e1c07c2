//! Percent-encoding of user-controlled URL path segments (project, RAW db/table/row key).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::CdfError;

/// Everything but the RFC 3986 unreserved characters is escaped, `/` and `%` included, so a
/// RAW key like `a/b` stays one segment and `%2F` arrives at CDF as the literal text `%2F`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Encodes one path segment taken from user data.
///
/// `what` names the value in the error (e.g. "RAW row key"). Empty segments and the dot
/// segments `.` and `..` are rejected: URL normalisation would silently turn them into a
/// different path, and no encoding survives that normalisation.
pub(crate) fn encode_segment(what: &str, value: &str) -> Result<String, CdfError> {
    if value.is_empty() {
        return Err(CdfError::InvalidRequest(format!(
            "{what} must not be empty"
        )));
    }
    if value == "." || value == ".." {
        return Err(CdfError::InvalidRequest(format!(
            "{what} `{value}` cannot be addressed in a URL path"
        )));
    }
    Ok(utf8_percent_encode(value, SEGMENT).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_raw_keys_are_encoded_as_one_segment() {
        let cases = [
            ("a/b", "a%2Fb"),
            ("with space", "with%20space"),
            ("ø✓ unicode", "%C3%B8%E2%9C%93%20unicode"),
            ("%2F", "%252F"),
            ("plain-key_1.2~x", "plain-key_1.2~x"),
            ("?#&=+", "%3F%23%26%3D%2B"),
            ("...", "..."),
            ("a.b", "a.b"),
        ];
        for (raw, encoded) in cases {
            assert_eq!(encode_segment("key", raw).unwrap(), encoded, "{raw}");
        }
    }

    #[test]
    fn encoded_segments_survive_url_parsing_unchanged() {
        for raw in ["a/b", "with space", "ø✓ unicode", "%2F", "..a", "\\x"] {
            let encoded = encode_segment("key", raw).unwrap();
            let url = url::Url::parse(&format!("http://h/rows/{encoded}")).unwrap();
            let last = url.path_segments().unwrap().next_back().unwrap().to_owned();
            assert_eq!(last, encoded, "{raw}");
            let decoded = percent_encoding::percent_decode_str(&last)
                .decode_utf8()
                .unwrap();
            assert_eq!(decoded, raw);
        }
    }

    #[test]
    fn empty_and_dot_segments_are_rejected_with_the_value_named() {
        let err = encode_segment("RAW row key", "").unwrap_err().to_string();
        assert!(err.contains("RAW row key"), "{err}");
        for dots in [".", ".."] {
            let err = encode_segment("RAW table", dots).unwrap_err().to_string();
            assert!(err.contains("RAW table") && err.contains(dots), "{err}");
        }
    }
}
