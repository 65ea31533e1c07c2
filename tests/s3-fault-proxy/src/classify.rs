//! Which S3 operation a request is, from its method, query and headers alone.

use hyper::{HeaderMap, Method};

/// The S3 operations faults can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum S3Op {
    /// `GET` of an object (including ranged reads).
    Get,
    /// `HEAD` of an object.
    Head,
    /// `GET` of a bucket: ListObjects(V2).
    List,
    /// A plain `PUT` of an object.
    Put,
    /// A `PUT` with `If-None-Match` / `If-Match`: how Delta commits land on S3.
    ConditionalPut,
    /// `POST ?uploads`: starts a multipart upload.
    CreateMultipart,
    /// `PUT ?partNumber&uploadId`: one part of a multipart upload.
    UploadPart,
    /// `POST ?uploadId`: completes a multipart upload.
    CompleteMultipart,
    /// `DELETE` of an object or an upload, or `POST ?delete`.
    Delete,
    /// Anything else (copy, bucket operations, ...).
    Other,
}

impl S3Op {
    /// Every operation, for reports.
    pub const ALL: [S3Op; 10] = [
        S3Op::Get,
        S3Op::Head,
        S3Op::List,
        S3Op::Put,
        S3Op::ConditionalPut,
        S3Op::CreateMultipart,
        S3Op::UploadPart,
        S3Op::CompleteMultipart,
        S3Op::Delete,
        S3Op::Other,
    ];

    /// Classifies a path-style request (`/<bucket>/<key>?<query>`).
    pub fn classify(method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> S3Op {
        let has = |name: &str| {
            query.is_some_and(|q| {
                q.split('&')
                    .any(|pair| pair.split('=').next() == Some(name))
            })
        };
        let key_present = path
            .trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(_, key)| !key.is_empty());
        match *method {
            Method::GET if !key_present => S3Op::List,
            Method::GET => S3Op::Get,
            Method::HEAD if key_present => S3Op::Head,
            Method::PUT if has("partNumber") && has("uploadId") => S3Op::UploadPart,
            Method::PUT if headers.contains_key("x-amz-copy-source") => S3Op::Other,
            Method::PUT
                if key_present
                    && (headers.contains_key("if-none-match")
                        || headers.contains_key("if-match")) =>
            {
                S3Op::ConditionalPut
            }
            Method::PUT if key_present => S3Op::Put,
            Method::POST if has("uploads") => S3Op::CreateMultipart,
            Method::POST if has("uploadId") => S3Op::CompleteMultipart,
            Method::POST if has("delete") => S3Op::Delete,
            Method::DELETE => S3Op::Delete,
            _ => S3Op::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: Method, path: &str, query: Option<&str>, header: Option<&str>) -> S3Op {
        let mut headers = HeaderMap::new();
        if let Some(name) = header {
            headers.insert(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                hyper::header::HeaderValue::from_static("*"),
            );
        }
        S3Op::classify(&method, path, query, &headers)
    }

    #[test]
    fn classifies_the_operations_delta_and_publish_use() {
        assert_eq!(
            op(Method::GET, "/b", Some("list-type=2&prefix=x"), None),
            S3Op::List
        );
        assert_eq!(
            op(Method::GET, "/b/", Some("list-type=2"), None),
            S3Op::List
        );
        assert_eq!(
            op(Method::GET, "/b/t/_delta_log/0.json", None, None),
            S3Op::Get
        );
        assert_eq!(op(Method::HEAD, "/b/t/x.parquet", None, None), S3Op::Head);
        assert_eq!(op(Method::PUT, "/b/t/x.parquet", None, None), S3Op::Put);
        assert_eq!(
            op(
                Method::PUT,
                "/b/t/_delta_log/1.json",
                None,
                Some("if-none-match")
            ),
            S3Op::ConditionalPut
        );
        assert_eq!(
            op(Method::POST, "/b/k", Some("uploads"), None),
            S3Op::CreateMultipart
        );
        assert_eq!(
            op(Method::PUT, "/b/k", Some("partNumber=2&uploadId=u"), None),
            S3Op::UploadPart
        );
        assert_eq!(
            op(Method::POST, "/b/k", Some("uploadId=u"), None),
            S3Op::CompleteMultipart
        );
        assert_eq!(op(Method::DELETE, "/b/k", None, None), S3Op::Delete);
        assert_eq!(op(Method::POST, "/b", Some("delete"), None), S3Op::Delete);
        assert_eq!(op(Method::PUT, "/b", None, None), S3Op::Other);
    }
}
