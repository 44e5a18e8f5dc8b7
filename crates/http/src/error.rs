//! Every failure a client can see, as the spec's error body `{"errors":[{code,message,detail}]}`.
//!
//! The registry reports outcomes as [`registry::Error`] variants; [`status_and_code`] maps each to its HTTP
//! status and spec code in one exhaustive `match`, so a new variant cannot be added without deciding how it
//! looks on the wire. The statuses follow registry:2, which clients are written against.
//!
//! The spec allows only its fourteen codes in a 4xx body, and three outcomes have no code of their own:
//! - `RangeNotSatisfiable` (416) is answered with SIZE_INVALID: the range asked for does not fit the
//!   blob's length;
//! - `UploadOutOfOrder` (416) with BLOB_UPLOAD_INVALID: the chunk is not a valid continuation;
//! - `ManifestTooLarge` (413) with MANIFEST_INVALID.
//!
//! A path that names no endpoint is answered 404 with UNSUPPORTED (the API has no such operation).
//! A 500 is a bug or a failing backend: its cause is logged with the request id and never sent; the
//! client gets code UNKNOWN (as registry:2; the spec's list binds 4xx bodies only) and the request id.

use axum::http::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use registry::Error;
use serde_json::{Value, json};

/// A failed request: a registry outcome, or a path that names nothing; plus any headers the failing
/// handler knows belong on the response (an out-of-order chunk's `Location`).
#[derive(Debug)]
pub struct ApiError {
    kind: Kind,
    // A Vec rather than a HeaderMap keeps the error small: it is on every handler's return path.
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug)]
enum Kind {
    Registry(Error),
    NoSuchEndpoint,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError {
            kind: Kind::Registry(e),
            headers: Vec::new(),
        }
    }
}

impl ApiError {
    /// A path under no endpoint of the API (404).
    pub fn no_such_endpoint() -> ApiError {
        ApiError {
            kind: Kind::NoSuchEndpoint,
            headers: Vec::new(),
        }
    }

    /// The registry error behind this one, if any.
    pub fn registry_error(&self) -> Option<&Error> {
        match &self.kind {
            Kind::Registry(e) => Some(e),
            Kind::NoSuchEndpoint => None,
        }
    }

    /// Adds a header to the error response.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match &self.kind {
            Kind::Registry(e) => status_and_code(e),
            Kind::NoSuchEndpoint => (StatusCode::NOT_FOUND, "UNSUPPORTED"),
        }
    }

    /// The response, with `request_id` in the body of a 500. Internal causes are logged here, once.
    pub fn into_response(self, request_id: &str) -> Response {
        let (status, code) = self.status_and_code();
        let mut headers: HeaderMap = self.headers.into_iter().collect();
        let (message, detail) = match self.kind {
            Kind::NoSuchEndpoint => (
                "no such endpoint in the registry API".to_string(),
                Value::Null,
            ),
            Kind::Registry(Error::Internal(cause)) => {
                tracing::error!(request_id, cause = %chain(cause.as_ref()), "internal error");
                (
                    "internal server error".to_string(),
                    json!({ "request_id": request_id }),
                )
            }
            Kind::Registry(e) => {
                extra_headers(&e, &mut headers);
                (e.to_string(), detail(&e))
            }
        };
        let body = json!({ "errors": [{ "code": code, "message": message, "detail": detail }] });
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        (status, headers, body.to_string()).into_response()
    }
}

/// `Retry-After` of a 429: long enough for an upload or two to finish, short enough for a pusher to
/// carry on promptly.
const RETRY_AFTER_SECONDS: &str = "5";

/// The one table from registry outcome to HTTP status and spec code.
pub fn status_and_code(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::BlobUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
        Error::BlobUploadInvalid(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
        Error::BlobUploadUnknown => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
        Error::DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        // 400 as registry:2: the request refers to something the client has not pushed yet.
        Error::ManifestBlobUnknown(_) => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
        Error::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
        Error::ManifestUnknown(_) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        Error::NameInvalid(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
        Error::NameUnknown(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
        Error::SizeInvalid(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID"),
        Error::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
        Error::Denied | Error::TagImmutable { .. } | Error::OverQuota(_) => {
            (StatusCode::FORBIDDEN, "DENIED")
        }
        Error::Unsupported(_) => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
        Error::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
        Error::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "SIZE_INVALID"),
        Error::UploadOutOfOrder { .. } => {
            (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID")
        }
        Error::ManifestTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID"),
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
    }
}

/// Headers an error carries by itself (those needing request context are added by the handler).
fn extra_headers(e: &Error, headers: &mut HeaderMap) {
    match e {
        Error::RangeNotSatisfiable { size } => {
            headers.insert(
                CONTENT_RANGE,
                crate::headers::value(format!("bytes */{size}")),
            );
        }
        Error::UploadOutOfOrder { offset } => {
            headers.insert(
                crate::headers::RANGE_NAME,
                crate::headers::upload_range(*offset),
            );
        }
        // The registry refuses work it has no room for (uploads over the cap): nothing of the request
        // was kept, so the same request can be sent again after this many seconds.
        Error::TooManyRequests | Error::Unavailable(_) => {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        _ => {}
    }
}

/// Structured detail for the error body, where there is something a client can act on.
fn detail(e: &Error) -> Value {
    match e {
        Error::BlobUnknown(d) | Error::ManifestBlobUnknown(d) => json!({ "digest": d }),
        Error::NameUnknown(n) => json!({ "name": n.as_str() }),
        Error::RangeNotSatisfiable { size } => json!({ "size": size }),
        Error::UploadOutOfOrder { offset } => json!({ "offset": offset }),
        Error::ManifestTooLarge { size, limit } => json!({ "size": size, "limit": limit }),
        _ => Value::Null,
    }
}

/// An error and its sources, for the log.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use oci::Digest;

    /// One sample of every variant. The match in `ordinal` has no wildcard, so a new variant fails to
    /// compile here until it is added to the table below too.
    fn ordinal(e: &Error) -> usize {
        match e {
            Error::BlobUnknown(_) => 0,
            Error::BlobUploadInvalid(_) => 1,
            Error::BlobUploadUnknown => 2,
            Error::DigestInvalid(_) => 3,
            Error::ManifestBlobUnknown(_) => 4,
            Error::ManifestInvalid(_) => 5,
            Error::ManifestUnknown(_) => 6,
            Error::NameInvalid(_) => 7,
            Error::NameUnknown(_) => 8,
            Error::SizeInvalid(_) => 9,
            Error::Unauthorized => 10,
            Error::Denied => 11,
            Error::Unsupported(_) => 12,
            Error::TooManyRequests => 13,
            Error::RangeNotSatisfiable { .. } => 14,
            Error::UploadOutOfOrder { .. } => 15,
            Error::ManifestTooLarge { .. } => 16,
            Error::Internal(_) => 17,
            Error::Unavailable(_) => 18,
            Error::TagImmutable { .. } => 19,
            Error::OverQuota(_) => 20,
        }
    }
    const VARIANTS: usize = 21;

    fn table() -> Vec<(Error, u16, &'static str)> {
        let d = Digest::sha256_of(b"x");
        vec![
            (Error::BlobUnknown(d.clone()), 404, "BLOB_UNKNOWN"),
            (
                Error::BlobUploadInvalid("x".into()),
                400,
                "BLOB_UPLOAD_INVALID",
            ),
            (Error::BlobUploadUnknown, 404, "BLOB_UPLOAD_UNKNOWN"),
            (Error::DigestInvalid("x".into()), 400, "DIGEST_INVALID"),
            (Error::ManifestBlobUnknown(d), 400, "MANIFEST_BLOB_UNKNOWN"),
            (Error::ManifestInvalid("x".into()), 400, "MANIFEST_INVALID"),
            (Error::ManifestUnknown("x".into()), 404, "MANIFEST_UNKNOWN"),
            (Error::NameInvalid("X".into()), 400, "NAME_INVALID"),
            (
                Error::NameUnknown("a/b".parse().unwrap()),
                404,
                "NAME_UNKNOWN",
            ),
            (Error::SizeInvalid("x".into()), 400, "SIZE_INVALID"),
            (Error::Unauthorized, 401, "UNAUTHORIZED"),
            (Error::Denied, 403, "DENIED"),
            (
                Error::TagImmutable {
                    repo: "a/b".parse().unwrap(),
                    tag: "v1".parse().unwrap(),
                },
                403,
                "DENIED",
            ),
            (Error::OverQuota("x".into()), 403, "DENIED"),
            (Error::Unsupported("x".into()), 405, "UNSUPPORTED"),
            (Error::TooManyRequests, 429, "TOOMANYREQUESTS"),
            (Error::Unavailable("x".into()), 503, "UNAVAILABLE"),
            (Error::RangeNotSatisfiable { size: 10 }, 416, "SIZE_INVALID"),
            (
                Error::UploadOutOfOrder { offset: 5 },
                416,
                "BLOB_UPLOAD_INVALID",
            ),
            (
                Error::ManifestTooLarge { size: 9, limit: 8 },
                413,
                "MANIFEST_INVALID",
            ),
            (
                Error::internal("disk on fire at /secret/path"),
                500,
                "UNKNOWN",
            ),
        ]
    }

    async fn body_json(resp: Response) -> Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn every_variant_has_its_status_code_and_body() {
        let rows = table();
        let mut seen: Vec<usize> = rows.iter().map(|(e, _, _)| ordinal(e)).collect();
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..VARIANTS).collect::<Vec<_>>(),
            "one row per variant"
        );

        for (e, status, code) in rows {
            let what = format!("{e:?}");
            let resp = ApiError::from(e).into_response("req-1");
            assert_eq!(resp.status().as_u16(), status, "{what}");
            assert_eq!(resp.headers()[CONTENT_TYPE], "application/json", "{what}");
            let body = body_json(resp).await;
            let err = &body["errors"][0];
            assert_eq!(err["code"], code, "{what}");
            assert!(
                err["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{what}"
            );
            assert!(err.get("detail").is_some(), "{what}");
            // The spec's code grammar: uppercase letters and underscores.
            assert!(code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause_and_carry_the_request_id() {
        let resp =
            ApiError::from(Error::internal("disk on fire at /secret/path")).into_response("req-42");
        let text = body_json(resp).await.to_string();
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("fire"), "{text}");
        assert!(text.contains("req-42"), "{text}");
    }

    #[tokio::test]
    async fn range_errors_carry_their_headers() {
        let resp = ApiError::from(Error::RangeNotSatisfiable { size: 1234 }).into_response("r");
        assert_eq!(resp.headers()[CONTENT_RANGE], "bytes */1234");

        let resp = ApiError::from(Error::UploadOutOfOrder { offset: 10 })
            .with_header(
                axum::http::header::LOCATION,
                HeaderValue::from_static("/v2/a/blobs/uploads/u"),
            )
            .into_response("r");
        assert_eq!(resp.headers()["range"], "0-9");
        assert_eq!(resp.headers()["location"], "/v2/a/blobs/uploads/u");
    }

    #[tokio::test]
    async fn unknown_paths_are_404_with_a_spec_body() {
        let resp = ApiError::no_such_endpoint().into_response("r");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(body_json(resp).await["errors"][0]["code"], "UNSUPPORTED");
    }
}
