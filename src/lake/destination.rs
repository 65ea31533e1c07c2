//! Where the lake lives (an S3 bucket and prefix, or a local directory) and how delta-rs and
//! object_store must be configured to write there safely.
//!
//! Commits on S3 rely on S3 conditional writes: delta-rs' default log store writes each
//! `_delta_log/<version>.json` with `PutMode::Create`, which object_store sends as
//! `If-None-Match: *`. Two writers racing for one version therefore cannot both win, without
//! a DynamoDB lock and without the unsafe copy-and-rename fallback. The storage options below
//! pin that behaviour so that stray environment variables (`AWS_CONDITIONAL_PUT=disabled`,
//! `AWS_S3_ALLOW_UNSAFE_RENAME=true`, `AWS_S3_LOCKING_PROVIDER`) cannot weaken it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Once;

use deltalake::logstore::ObjectStoreRef;
use url::Url;

use super::error::{LakeError, LakeResult};
use super::layout::{self, InstanceKind, ModelRef, PublishPaths, ViewFolder};

/// Storage option that makes object_store send `If-None-Match: *` for create-only puts.
pub(crate) const S3_CONDITIONAL_PUT_KEY: &str = "AWS_CONDITIONAL_PUT";
/// Value of [`S3_CONDITIONAL_PUT_KEY`]: HTTP precondition headers (ETag based).
pub(crate) const S3_CONDITIONAL_PUT_VALUE: &str = "etag";
/// Storage option that would let delta-rs commit by copy-and-rename without any protection.
pub(crate) const S3_ALLOW_UNSAFE_RENAME_KEY: &str = "AWS_S3_ALLOW_UNSAFE_RENAME";

/// object_store's per-request timeout (the whole request, connect to last byte).
pub(crate) const S3_REQUEST_TIMEOUT_KEY: &str = "timeout";

/// Static S3 credentials, only for setups that configure them explicitly.
///
/// Without them nothing credential-related is passed on, so the default AWS chain applies:
/// environment, shared profile, web identity, and the ECS / Lambda / EC2 role.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// AWS access key id.
    pub(crate) access_key_id: String,
    /// AWS secret access key.
    pub(crate) secret_access_key: String,
    /// Optional session token of temporary credentials.
    pub(crate) session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    // Secrets must never reach logs, and derived Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// An S3 (or S3-compatible) bucket and key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Destination {
    bucket: String,
    prefix: String,
    region: Option<String>,
    endpoint_url: Option<String>,
    allow_http: bool,
    request_timeout: Option<std::time::Duration>,
    credentials: Option<StaticCredentials>,
}

impl S3Destination {
    /// A bucket and prefix. The prefix is normalized to `""` or `"a/b/"`.
    pub fn new(bucket: impl Into<String>, prefix: &str) -> LakeResult<Self> {
        let bucket = bucket.into();
        let bucket_ok = !bucket.is_empty()
            && bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        if !bucket_ok {
            return Err(LakeError::InvalidDestination {
                field: "bucket",
                value: bucket,
                reason:
                    "expected a bucket name (letters, digits, '-', '.', '_'), not a URL or path"
                        .into(),
            });
        }
        Ok(S3Destination {
            bucket,
            prefix: normalize_prefix(prefix)?,
            region: None,
            endpoint_url: None,
            allow_http: false,
            request_timeout: None,
            credentials: None,
        })
    }

    /// The AWS region; without it the default chain (for example `AWS_REGION`) decides.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The endpoint of an S3-compatible store, for example `http://127.0.0.1:5000`.
    pub fn with_endpoint_url(mut self, endpoint_url: impl Into<String>) -> LakeResult<Self> {
        let endpoint_url = endpoint_url.into();
        let parsed = Url::parse(&endpoint_url).map_err(|e| LakeError::InvalidDestination {
            field: "endpoint-url",
            value: endpoint_url.clone(),
            reason: format!("expected an http(s) URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LakeError::InvalidDestination {
                field: "endpoint-url",
                value: endpoint_url,
                reason: "expected an http:// or https:// URL".into(),
            });
        }
        self.endpoint_url = Some(endpoint_url.trim_end_matches('/').to_string());
        Ok(self)
    }

    /// Allow plain-HTTP endpoints (local S3-compatible servers).
    pub fn with_allow_http(mut self, allow_http: bool) -> Self {
        self.allow_http = allow_http;
        self
    }

    /// Abandon (and retry) an S3 request after this long instead of the client default.
    pub(crate) fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Use these credentials instead of the default AWS chain.
    pub(crate) fn with_static_credentials(mut self, credentials: StaticCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The bucket.
    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    #[cfg(test)]
    /// The normalized prefix: `""` or `"a/b/"`.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object key of `relative` (a layout path) in the bucket.
    pub(crate) fn object_key(&self, relative: &str) -> String {
        format!("{}{}", self.prefix, relative.trim_start_matches('/'))
    }
}

/// A local directory, for development, demos and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDestination {
    root: PathBuf,
}

impl LocalDestination {
    /// A directory; relative paths are resolved against the current directory.
    pub fn new(root: impl AsRef<Path>) -> LakeResult<Self> {
        let root = root.as_ref();
        let root = std::path::absolute(root).map_err(|source| LakeError::LocalIo {
            path: root.display().to_string(),
            source,
        })?;
        Ok(LocalDestination { root })
    }

    /// The absolute root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Where the raw and publish layers are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An S3 bucket (or S3-compatible store) and prefix.
    S3(S3Destination),
    /// A local directory.
    Local(LocalDestination),
}

impl Destination {
    /// The URL of a directory (a Delta table root) at `relative`, with a trailing slash:
    /// `s3://bucket/prefix/<relative>/` or `file:///abs/<relative>/`.
    pub(crate) fn directory_url(&self, relative: &str) -> LakeResult<Url> {
        let relative = relative.trim_matches('/');
        let url = match self {
            Destination::S3(s3) if relative.is_empty() => {
                format!("s3://{}/{}", s3.bucket, s3.prefix)
            }
            Destination::S3(s3) => {
                format!("s3://{}/{}{}/", s3.bucket, s3.prefix, relative)
            }
            Destination::Local(local) => {
                let path = local.root.join(relative);
                let url = Url::from_directory_path(&path).map_err(|()| {
                    LakeError::InvalidDestination {
                        field: "path",
                        value: path.display().to_string(),
                        reason: "expected an absolute local directory".into(),
                    }
                })?;
                return Ok(url);
            }
        };
        Url::parse(&url).map_err(|e| LakeError::InvalidDestination {
            field: "bucket/prefix",
            value: url.clone(),
            reason: format!("does not form a valid URL: {e}"),
        })
    }

    /// The URL of the destination root (the prefix itself).
    pub(crate) fn root_url(&self) -> LakeResult<Url> {
        self.directory_url("")
    }

    /// The URL of the raw Delta table of one view and instance kind.
    pub fn raw_table_url(
        &self,
        model: &ModelRef,
        view: &ViewFolder,
        kind: InstanceKind,
    ) -> LakeResult<Url> {
        self.directory_url(&layout::raw_table_path(model, view, kind))
    }

    /// The URL of a view's quarantine (rejected-rows) Delta table.
    pub(crate) fn rejected_table_url(
        &self,
        model: &ModelRef,
        view: &ViewFolder,
    ) -> LakeResult<Url> {
        self.directory_url(&layout::rejected_table_path(model, view))
    }

    /// The publish-layer paths of one view, relative to [`Destination::object_store`].
    pub fn publish_paths(&self, model: &ModelRef, view: &ViewFolder) -> PublishPaths {
        layout::publish_paths(model, view)
    }

    /// The storage options delta-rs and object_store need for this destination.
    ///
    /// S3: region / endpoint / allow-http only when configured, static credentials only when
    /// configured, plus the conditional-put settings described in the module docs.
    pub(crate) fn storage_options(&self) -> HashMap<String, String> {
        let mut options = HashMap::new();
        if let Destination::S3(s3) = self {
            options.insert(
                S3_CONDITIONAL_PUT_KEY.to_string(),
                S3_CONDITIONAL_PUT_VALUE.to_string(),
            );
            options.insert(S3_ALLOW_UNSAFE_RENAME_KEY.to_string(), "false".to_string());
            if let Some(region) = &s3.region {
                options.insert("AWS_REGION".to_string(), region.clone());
            }
            if let Some(endpoint) = &s3.endpoint_url {
                options.insert("AWS_ENDPOINT_URL".to_string(), endpoint.clone());
            }
            if s3.allow_http {
                options.insert("AWS_ALLOW_HTTP".to_string(), "true".to_string());
            }
            if let Some(timeout) = s3.request_timeout {
                options.insert(
                    S3_REQUEST_TIMEOUT_KEY.to_string(),
                    format!("{}ms", timeout.as_millis()),
                );
            }
            if let Some(credentials) = &s3.credentials {
                options.insert(
                    "AWS_ACCESS_KEY_ID".to_string(),
                    credentials.access_key_id.clone(),
                );
                options.insert(
                    "AWS_SECRET_ACCESS_KEY".to_string(),
                    credentials.secret_access_key.clone(),
                );
                if let Some(token) = &credentials.session_token {
                    options.insert("AWS_SESSION_TOKEN".to_string(), token.clone());
                }
            }
        }
        options
    }

    /// An object store rooted at the destination prefix, configured exactly like the Delta
    /// tables (same credentials chain, endpoint and conditional puts). The publish layer
    /// writes its files through it, using [`PublishPaths`] as keys.
    pub fn object_store(&self) -> LakeResult<ObjectStoreRef> {
        register_storage_handlers();
        let url = self.root_url()?;
        if let Destination::Local(local) = self {
            std::fs::create_dir_all(&local.root).map_err(|source| LakeError::LocalIo {
                path: local.root.display().to_string(),
                source,
            })?;
        }
        deltalake::logstore::store_for(&url, self.storage_options())
            .map_err(|e| LakeError::delta(&url, "opening the object store", e))
    }
}

fn normalize_prefix(prefix: &str) -> LakeResult<String> {
    let segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    for segment in &segments {
        if *segment == "." || *segment == ".." || segment.chars().any(char::is_control) {
            return Err(LakeError::InvalidDestination {
                field: "prefix",
                value: prefix.to_string(),
                reason: "expected a key prefix without '.', '..' or control characters".into(),
            });
        }
    }
    if segments.is_empty() {
        Ok(String::new())
    } else {
        Ok(format!("{}/", segments.join("/")))
    }
}

/// Registers delta-rs' `s3://` / `s3a://` handlers. The `deltalake` crate does this from a
/// constructor function, but a linker may drop those, so every entry point calls this too.
pub(crate) fn register_storage_handlers() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| deltalake::aws::register_handlers(None));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalized() {
        for (raw, expected) in [
            ("", ""),
            ("/", ""),
            ("a", "a/"),
            ("/a/b/", "a/b/"),
            ("a//b", "a/b/"),
        ] {
            assert_eq!(S3Destination::new("bkt", raw).unwrap().prefix(), expected);
        }
        assert!(S3Destination::new("bkt", "a/../b").is_err());
        assert!(S3Destination::new("s3://bkt", "").is_err());
        assert!(S3Destination::new("", "").is_err());
    }

    #[test]
    fn s3_urls_and_keys_include_the_prefix() {
        let dest = Destination::S3(S3Destination::new("bkt", "lake").unwrap());
        let model = ModelRef::new("sp", "M", "1").unwrap();
        let view = ViewFolder::plain("V").unwrap();
        assert_eq!(
            dest.raw_table_url(&model, &view, InstanceKind::Nodes)
                .unwrap()
                .as_str(),
            "s3://bkt/lake/raw/sp/M/1/views/V/nodes/"
        );
        let Destination::S3(s3) = &dest else {
            unreachable!()
        };
        assert_eq!(
            s3.object_key(&dest.publish_paths(&model, &view).manifest),
            "lake/publish/sp/M/1/V/_manifest.json"
        );
        assert_eq!(dest.root_url().unwrap().as_str(), "s3://bkt/lake/");
        let bare = Destination::S3(S3Destination::new("bkt", "").unwrap());
        assert_eq!(bare.root_url().unwrap().as_str(), "s3://bkt/");
    }

    #[test]
    fn default_chain_means_no_credential_options() {
        let dest = Destination::S3(S3Destination::new("bkt", "").unwrap());
        let options = dest.storage_options();
        assert_eq!(options.get(S3_CONDITIONAL_PUT_KEY).unwrap(), "etag");
        assert_eq!(options.get(S3_ALLOW_UNSAFE_RENAME_KEY).unwrap(), "false");
        assert!(
            !options
                .keys()
                .any(|k| k.contains("KEY") || k.contains("TOKEN"))
        );
        assert!(!options.contains_key("AWS_REGION"));
    }

    #[test]
    fn configured_settings_become_options_and_secrets_stay_out_of_debug() {
        let credentials = StaticCredentials {
            access_key_id: "AKID".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("tok".into()),
        };
        let s3 = S3Destination::new("bkt", "p")
            .unwrap()
            .with_region("eu-west-1")
            .with_endpoint_url("http://127.0.0.1:9000/")
            .unwrap()
            .with_allow_http(true)
            .with_request_timeout(std::time::Duration::from_millis(2500))
            .with_static_credentials(credentials);
        let debug = format!("{s3:?}");
        assert!(
            !debug.contains("very-secret") && !debug.contains("tok\""),
            "{debug}"
        );
        let options = Destination::S3(s3).storage_options();
        assert_eq!(options["AWS_REGION"], "eu-west-1");
        assert_eq!(options["AWS_ENDPOINT_URL"], "http://127.0.0.1:9000");
        assert_eq!(options["AWS_ALLOW_HTTP"], "true");
        assert_eq!(options["AWS_SECRET_ACCESS_KEY"], "very-secret");
        assert_eq!(options["AWS_SESSION_TOKEN"], "tok");
        assert_eq!(options[S3_REQUEST_TIMEOUT_KEY], "2500ms");
        assert!(
            S3Destination::new("b", "")
                .unwrap()
                .with_endpoint_url("ftp://x")
                .is_err()
        );
    }

    #[test]
    fn local_urls_are_absolute_file_urls() {
        let dest = Destination::Local(LocalDestination::new("/tmp/lake-root").unwrap());
        assert_eq!(
            dest.directory_url("raw/a/b").unwrap().as_str(),
            "file:///tmp/lake-root/raw/a/b/"
        );
        assert!(dest.storage_options().is_empty());
    }
}
