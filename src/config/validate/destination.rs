//! `destination`: exactly one of an S3 bucket or a local directory.

use std::path::PathBuf;

use url::Url;

use std::time::Duration;

use super::values::{duration, optional_text, required_text};
use crate::config::error::{Issues, join};
use crate::config::identifiers::check_bucket;
use crate::config::model::{DestinationFile, S3File, Text};
use crate::config::settings::GlueCatalogSettings;
use crate::config::settings::{
    Destination, LocalDestination, S3Destination, StaticS3Credentials, defaults,
};

pub(super) fn destination(file: Option<&DestinationFile>, issues: &mut Issues) -> Destination {
    let placeholder = Destination::Local(LocalDestination {
        path: PathBuf::new(),
    });
    let Some(file) = file else {
        issues.push(
            "destination",
            "required section is missing; expected `s3` (bucket, prefix, region) or `local` \
             (path)",
        );
        return placeholder;
    };
    match (&file.s3, &file.local) {
        (Some(_), Some(_)) => {
            issues.push(
                "destination",
                "both `s3` and `local` are given; expected exactly one destination",
            );
            placeholder
        }
        (None, None) => {
            issues.push(
                "destination",
                "no destination given; expected exactly one of `s3` or `local`",
            );
            placeholder
        }
        (Some(s3), None) => Destination::S3(s3_destination(s3, issues)),
        (None, Some(local)) => {
            let path = required_text(local.path.as_ref(), "destination.local.path", issues)
                .unwrap_or_default();
            Destination::Local(LocalDestination {
                path: PathBuf::from(path),
            })
        }
    }
}

fn s3_destination(file: &S3File, issues: &mut Issues) -> S3Destination {
    let p = |key: &str| join("destination.s3", key);
    let endpoint_url = optional_text(file.endpoint_url.as_ref());
    let allow_http = file.allow_http.unwrap_or(false);
    if let Some(endpoint) = &endpoint_url {
        check_endpoint(endpoint, allow_http, &p("endpoint-url"), issues);
    }

    let bucket = required_text(file.bucket.as_ref(), &p("bucket"), issues).unwrap_or_default();
    if !bucket.is_empty()
        && let Err(expected) = check_bucket(&bucket, endpoint_url.is_none())
    {
        issues.push(p("bucket"), format!("{bucket:?}: {expected}"));
    }

    let prefix = match file.prefix.as_ref() {
        None => String::new(),
        Some(Text(raw)) => normalize_prefix(raw).unwrap_or_else(|expected| {
            issues.push(p("prefix"), format!("{raw:?}: {expected}"));
            String::new()
        }),
    };

    let region = optional_text(file.region.as_ref());
    if let Some(region) = &region
        && region.contains(char::is_whitespace)
    {
        issues.push(
            p("region"),
            format!("{region:?}: expected a region name such as us-east-1"),
        );
    }

    let access_key_id = optional_text(file.access_key_id.as_ref());
    let secret_access_key = file
        .secret_access_key
        .as_ref()
        .filter(|s| !s.expose().trim().is_empty());
    let credentials = match (access_key_id, secret_access_key) {
        (Some(access_key_id), Some(secret)) => Some(StaticS3Credentials {
            access_key_id,
            secret_access_key: secret.clone(),
        }),
        (None, None) => None,
        (Some(_), None) => {
            issues.push(
                p("secret-access-key"),
                "missing while access-key-id is set; give both static keys or neither (then \
                 the default AWS credential chain is used)",
            );
            None
        }
        (None, Some(_)) => {
            issues.push(
                p("access-key-id"),
                "missing while secret-access-key is set; give both static keys or neither \
                 (then the default AWS credential chain is used)",
            );
            None
        }
    };

    let request_timeout = duration(
        file.request_timeout.as_ref(),
        &p("request-timeout"),
        defaults::S3_REQUEST_TIMEOUT,
        Duration::from_secs(1),
        Some(Duration::from_secs(900)),
        issues,
    );

    S3Destination {
        bucket,
        prefix,
        region,
        endpoint_url: endpoint_url.map(|e| e.trim_end_matches('/').to_string()),
        allow_http,
        request_timeout,
        credentials,
    }
}

/// Reports an endpoint that is not an http(s) URL, or plain http without `allow-http`.
fn check_endpoint(endpoint: &str, allow_http: bool, path: &str, issues: &mut Issues) {
    match Url::parse(endpoint) {
        Err(err) => issues.push(
            path,
            format!("{endpoint:?} is not a URL ({err}); expected e.g. https://s3.example.com"),
        ),
        Ok(url) => match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => issues.push(
                path,
                format!(
                    "{endpoint:?} uses plain http; set `destination.s3.allow-http: true` to allow it"
                ),
            ),
            other => issues.push(
                path,
                format!("{endpoint:?} has scheme `{other}`; expected http(s)"),
            ),
        },
    }
}

/// `destination.catalog.glue`: only with an S3 destination (Glue table locations are
/// `s3://` URLs), with a database name Athena accepts.
pub(super) fn catalog(
    file: Option<&DestinationFile>,
    destination: &Destination,
    issues: &mut Issues,
) -> Option<GlueCatalogSettings> {
    let catalog = file?.catalog.as_ref()?;
    let Some(glue) = &catalog.glue else {
        issues.push(
            "destination.catalog",
            "expected `glue` (database) under `catalog`, or no `catalog` block",
        );
        return None;
    };
    let allow_http = match destination {
        Destination::S3(s3) => s3.allow_http,
        Destination::Local(_) => {
            issues.push(
                "destination.catalog",
                "the Glue Data Catalog needs an S3 destination (`destination.s3`): table \
                 locations must be s3:// URLs; remove `catalog` for a local directory",
            );
            return None;
        }
    };
    let database = required_text(
        glue.database.as_ref(),
        "destination.catalog.glue.database",
        issues,
    )?;
    if let Err(expected) = check_glue_database(&database) {
        issues.push(
            "destination.catalog.glue.database",
            format!("{database:?}: {expected}"),
        );
        return None;
    }
    let endpoint_url = optional_text(glue.endpoint_url.as_ref());
    if let Some(endpoint) = &endpoint_url {
        check_endpoint(
            endpoint,
            allow_http,
            "destination.catalog.glue.endpoint-url",
            issues,
        );
    }
    Some(GlueCatalogSettings {
        database,
        endpoint_url: endpoint_url.map(|e| e.trim_end_matches('/').to_string()),
    })
}

/// Athena reads database names of lower-case letters, digits and `_` only; Glue allows up
/// to 255 characters.
pub(crate) fn check_glue_database(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(
            "expected an existing Glue database name of 1 to 255 lower-case letters, digits \
             and `_` (the names Athena can query)"
                .to_string(),
        )
    }
}

/// `""`, `/`, `a`, `/a/b/` -> `""`, `""`, `a/`, `a/b/`.
pub(crate) fn normalize_prefix(raw: &str) -> Result<String, String> {
    if raw.starts_with("s3://") {
        return Err(
            "expected a key prefix such as `cdf-data/`, not an s3:// URL; the bucket goes into \
             `bucket`"
                .to_string(),
        );
    }
    let body = raw.trim_start_matches('/').trim_end_matches('/');
    if body.is_empty() {
        return Ok(String::new());
    }
    if body.split('/').any(|seg| seg.is_empty()) {
        return Err("expected a key prefix without empty segments (`//`)".to_string());
    }
    if body.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("expected a key prefix without `.` or `..` segments".to_string());
    }
    Ok(format!("{body}/"))
}
