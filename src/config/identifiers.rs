//! CDF identifier rules and S3 bucket naming rules, checked by hand to avoid a regex engine.
//!
//! Each check returns `Err(expectation)`; the caller adds the key path and value.

const RESERVED_SPACES: [&str; 8] = [
    "space", "cdf", "dms", "pg3", "shared", "system", "node", "edge",
];

/// `^[a-zA-Z][a-zA-Z0-9_-]{0,41}[a-zA-Z0-9]?$`, not a reserved name.
pub(crate) fn check_space(space: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected a space identifier: 1-43 characters, a letter first, then \
                            letters, digits, `_` or `-`";
    let b = space.as_bytes();
    let ok = match b.split_first() {
        None => false,
        Some((first, rest)) => {
            first.is_ascii_alphabetic()
                && rest.len() <= 42
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
                // With 42 further characters, the last must come from the final class.
                && (rest.len() < 42 || rest.last().is_some_and(u8::is_ascii_alphanumeric))
        }
    };
    if !ok {
        return Err(EXPECTED.to_string());
    }
    if RESERVED_SPACES.contains(&space) {
        return Err(format!(
            "`{space}` is a reserved space name (reserved: {})",
            RESERVED_SPACES.join(", ")
        ));
    }
    Ok(())
}

/// `^[a-zA-Z]([a-zA-Z0-9_]{0,253}[a-zA-Z0-9])?$`: data models and views.
pub(crate) fn check_external_id(xid: &str) -> Result<(), String> {
    let b = xid.as_bytes();
    let ok = (1..=255).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && b.last().is_some_and(u8::is_ascii_alphanumeric);
    if ok {
        Ok(())
    } else {
        Err(
            "expected an externalId: 1-255 characters, a letter first, then letters, digits or \
             `_`, not ending in `_`"
                .to_string(),
        )
    }
}

/// `^[a-zA-Z0-9]([.a-zA-Z0-9_-]{0,41}[a-zA-Z0-9])?$`.
pub(crate) fn check_version(version: &str) -> Result<(), String> {
    let b = version.as_bytes();
    let ok = (1..=43).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(
            "expected a version: 1-43 characters of letters, digits, `.`, `_` or `-`, starting \
             and ending with a letter or digit, e.g. \"2\" or \"v1.3\""
                .to_string(),
        )
    }
}

/// S3 general-purpose bucket naming rules. The AWS-only reserved prefixes and suffixes are
/// checked only for AWS itself (`aws_rules`), since S3-compatible stores do not reserve them.
pub(crate) fn check_bucket(bucket: &str, aws_rules: bool) -> Result<(), String> {
    if let Some(rest) = bucket.strip_prefix("s3://") {
        return Err(format!(
            "expected a bare bucket name without `s3://`; write `{}` and put any path into \
             `prefix`",
            rest.split('/').next().unwrap_or_default()
        ));
    }
    if let Some(rest) = bucket.strip_prefix("arn:") {
        let name = rest.rsplit(':').next().unwrap_or_default();
        let (name, path) = name.split_once('/').unwrap_or((name, ""));
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!(" and `prefix: {path}`")
        };
        return Err(format!(
            "expected a bucket name, not an ARN; write `bucket: {name}`{prefix} (a path inside \
             the bucket goes into `prefix`)"
        ));
    }
    if let Some((name, path)) = bucket.split_once('/') {
        return Err(format!(
            "expected a bare bucket name without a path; write `bucket: {name}` and \
             `prefix: {}`",
            path.trim_matches('/')
        ));
    }
    let b = bucket.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return Err("expected a bucket name of 3-63 characters".to_string());
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-'))
    {
        return Err(
            "expected a bucket name of lowercase letters, digits, `.` and `-` only".to_string(),
        );
    }
    let edge_ok = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge_ok(b.first()) || !edge_ok(b.last()) {
        return Err("expected a bucket name that starts and ends with a letter or digit".into());
    }
    if bucket.contains("..") {
        return Err("expected a bucket name without two adjacent periods".to_string());
    }
    if bucket.split('.').count() == 4 && bucket.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Err("expected a bucket name, not an IP address".to_string());
    }
    if aws_rules {
        for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
            if bucket.starts_with(prefix) {
                return Err(format!(
                    "bucket names may not start with `{prefix}` on AWS S3"
                ));
            }
        }
        for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
            if bucket.ends_with(suffix) {
                return Err(format!(
                    "bucket names may not end with `{suffix}` on AWS S3"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces() {
        for ok in [
            "a",
            "analytics-space",
            "test_space",
            "cdf_cdm",
            "A1",
            &"a".repeat(43),
        ] {
            assert!(check_space(ok).is_ok(), "{ok}");
        }
        let mut long_dash = "a".repeat(42);
        long_dash.push('-');
        for bad in [
            "",
            "1space",
            "-a",
            "a b",
            "a.b",
            "a/b",
            &"a".repeat(44),
            long_dash.as_str(),
        ] {
            assert!(check_space(bad).is_err(), "{bad}");
        }
        assert!(
            check_space("a-").is_ok(),
            "allowed by the documented pattern"
        );
        assert!(check_space("cdf").unwrap_err().contains("reserved"));
    }

    #[test]
    fn external_ids() {
        for ok in ["A", "CustomerView", "view_2", &"a".repeat(255)] {
            assert!(check_external_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1View",
            "_View",
            "View_",
            "View-1",
            "a/b",
            &"a".repeat(256),
        ] {
            assert!(check_external_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        for ok in ["1", "2", "v2", "2024.1", "1_0-rc1", &"9".repeat(43)] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".1", "1.", "v 1", "1/2", &"9".repeat(44)] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn buckets() {
        for ok in ["my-bucket", "abc", "a.b.c", "bucket-2024"] {
            assert!(check_bucket(ok, true).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "My-Bucket",
            "my_bucket",
            "-bucket",
            "bucket-",
            "a..b",
            "192.168.1.1",
            &"a".repeat(64),
        ] {
            assert!(check_bucket(bad, true).is_err(), "{bad}");
        }
        assert!(check_bucket("xn--bucket", true).is_err());
        assert!(check_bucket("xn--bucket", false).is_ok());
        assert!(
            check_bucket("s3://my-bucket/data", true)
                .unwrap_err()
                .contains("write `my-bucket`")
        );
    }
}
