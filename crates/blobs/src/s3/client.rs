//! The HTTP side of the S3 backend: where requests go (endpoint, path or virtual-host style), signing,
//! timeouts, retries with backoff, and turning failures into typed errors.
//!
//! Why retries live here: every operation the store sends is safe to repeat (part and blob keys are
//! written with the same bytes, deletes and aborts are idempotent, a repeated CreateMultipartUpload
//! only leaves an empty upload that purging removes), so a refused connection, a timeout, a 500 or a
//! 503 SlowDown is retried with exponential backoff before anyone hears of it. What still fails is
//! `Unreachable` (the engine cannot be reached or keeps failing: `blobs::Error::Unavailable`, a 503 to
//! clients) or `Status` (the engine answered no: access denied, no such bucket: a storage error).

use std::io;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::settings::S3Settings;
use super::sign::{SignedParts, Signer, UNSIGNED_PAYLOAD, canonical_query, sha256_hex, uri_encode};
use super::time::Utc;
use super::xml;
use crate::ByteStream;

/// The most of an error or listing body read into memory.
const MAX_XML_BODY: usize = 8 << 20;

/// A failed S3 request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum S3Error {
    /// The endpoint could not be reached, timed out, or kept answering 5xx through every retry.
    #[error("S3 {op}: the endpoint is unavailable: {cause}")]
    Unreachable { op: &'static str, cause: String },
    /// The endpoint answered with an error.
    #[error("S3 {op}: {status} {code}: {message}")]
    Status {
        op: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// The answer could not be understood.
    #[error("S3 {op}: {detail}")]
    Protocol { op: &'static str, detail: String },
}

impl From<S3Error> for crate::Error {
    fn from(e: S3Error) -> crate::Error {
        match e {
            S3Error::Unreachable { .. } => crate::Error::Unavailable(Box::new(e)),
            S3Error::Status { status, .. } if status >= 500 => {
                crate::Error::Unavailable(Box::new(e))
            }
            _ => crate::Error::Io(io::Error::other(e)),
        }
    }
}

/// One request to the bucket.
pub(crate) struct Call<'a> {
    /// The operation's name, for errors and logs.
    pub op: &'static str,
    pub method: Method,
    /// The object's full key, or `None` for the bucket itself.
    pub key: Option<&'a str>,
    pub query: Vec<(String, String)>,
    /// Extra headers (all signed).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Sign the body's SHA-256 (small XML bodies) rather than sending it unsigned (part data).
    pub hash_body: bool,
}

impl<'a> Call<'a> {
    pub fn new(op: &'static str, method: Method, key: Option<&'a str>) -> Call<'a> {
        Call {
            op,
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
            hash_body: true,
        }
    }

    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: Bytes, hash: bool) -> Self {
        self.body = body;
        self.hash_body = hash;
        self
    }
}

/// Where the bucket is and how to address it.
#[derive(Clone, Debug)]
struct Endpoint {
    scheme: &'static str,
    /// `host[:port]` of the endpoint (without the bucket).
    authority: String,
    bucket: String,
    path_style: bool,
}

impl Endpoint {
    fn new(s: &S3Settings) -> Result<Endpoint, S3Error> {
        let bad = |detail: String| S3Error::Protocol {
            op: "configure",
            detail,
        };
        let default_scheme = if s.secure { "https" } else { "http" };
        let (scheme, rest) = match &s.endpoint {
            None => (default_scheme, format!("s3.{}.amazonaws.com", s.region)),
            Some(e) => match e.split_once("://") {
                Some(("http", rest)) => ("http", rest.to_string()),
                Some(("https", rest)) => ("https", rest.to_string()),
                Some((other, _)) => {
                    return Err(bad(format!("regionendpoint: unknown scheme {other}")));
                }
                None => (default_scheme, e.clone()),
            },
        };
        let authority = rest.trim_end_matches('/').to_string();
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(bad(format!(
                "regionendpoint: {authority:?} is not host[:port] (a path or user in the URL is not supported)"
            )));
        }
        Ok(Endpoint {
            scheme,
            authority,
            bucket: s.bucket.clone(),
            path_style: s.path_style,
        })
    }

    /// The host the request goes to, and its path (URI-encoded).
    fn locate(&self, key: Option<&str>) -> (String, String) {
        let key = key.map(|k| uri_encode(k, true)).unwrap_or_default();
        if self.path_style {
            let path = if key.is_empty() {
                format!("/{}", uri_encode(&self.bucket, false))
            } else {
                format!("/{}/{key}", uri_encode(&self.bucket, false))
            };
            (self.authority.clone(), path)
        } else {
            (
                format!("{}.{}", self.bucket, self.authority),
                format!("/{key}"),
            )
        }
    }
}

/// A response whose status is a success (2xx, or 206 for ranges).
pub(crate) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    /// How long the body may go without a byte before it is given up.
    idle: Duration,
}

impl Response {
    /// The body, read whole as text (bounded: listings and small XML answers only).
    pub async fn text(self, op: &'static str) -> Result<String, S3Error> {
        read_text(self.body, op).await
    }

    /// The body as a stream of chunks. A body that stalls for longer than the request timeout fails
    /// with `TimedOut`, so a stuck engine cannot hold a pull (and its client) forever.
    pub fn stream(self) -> ByteStream {
        let idle = self.idle;
        let body = self.body.into_data_stream();
        Box::pin(stream::unfold(Some(body), move |state| async move {
            let mut body = state?;
            match tokio::time::timeout(idle, body.next()).await {
                Ok(None) => None,
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                Ok(Some(Err(e))) => Some((Err(io::Error::other(e)), None)),
                Err(_) => {
                    let e = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("S3 sent no data for {idle:?}"),
                    );
                    Some((Err(e), None))
                }
            }
        }))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn read_text(body: Incoming, op: &'static str) -> Result<String, S3Error> {
    let collected = Limited::new(body, MAX_XML_BODY)
        .collect()
        .await
        .map_err(|e| S3Error::Unreachable {
            op,
            cause: format!("reading the response: {e}"),
        })?;
    String::from_utf8(collected.to_bytes().to_vec()).map_err(|_| S3Error::Protocol {
        op,
        detail: "response is not UTF-8".into(),
    })
}

/// A signing HTTP client for one bucket. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub(crate) struct Client {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: Endpoint,
    signer: Signer,
    session_token: Option<String>,
    timeout: Duration,
    attempts: u32,
}

impl Client {
    pub fn new(settings: &S3Settings) -> Result<Client, S3Error> {
        let endpoint = Endpoint::new(settings)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let tls = tls_config();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Client {
            http,
            endpoint,
            signer: Signer::new(&settings.access_key, &settings.secret_key, &settings.region),
            session_token: settings.session_token.clone(),
            timeout: settings.request_timeout,
            attempts: settings.attempts.max(1),
        })
    }

    /// Sends `call`, retrying transient failures; returns the response if its status is a success,
    /// else the error S3 gave.
    pub async fn send(&self, call: &Call<'_>) -> Result<Response, S3Error> {
        let mut last = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            match self.attempt(call).await {
                Attempt::Done(result) => return result,
                Attempt::Transient(cause) => {
                    tracing::debug!(op = call.op, attempt, %cause, "S3 request failed; retrying");
                    last = cause;
                }
            }
        }
        Err(S3Error::Unreachable {
            op: call.op,
            cause: last,
        })
    }

    async fn attempt(&self, call: &Call<'_>) -> Attempt {
        let request = match self.request(call) {
            Ok(r) => r,
            Err(e) => return Attempt::Done(Err(e)),
        };
        // Long enough to send the body at 1 MiB/s on top of the usual wait for an answer.
        let timeout = self.timeout + Duration::from_secs(call.body.len() as u64 >> 20);
        let response = match tokio::time::timeout(timeout, self.http.request(request)).await {
            Err(_) => return Attempt::Transient(format!("no answer within {timeout:?}")),
            Ok(Err(e)) => return Attempt::Transient(error_chain(&e)),
            Ok(Ok(r)) => r,
        };
        let (head, body) = response.into_parts();
        if head.status.is_success() {
            return Attempt::Done(Ok(Response {
                status: head.status,
                headers: head.headers,
                body,
                idle: self.timeout,
            }));
        }
        // The body of an error is small XML (none for HEAD).
        let text = tokio::time::timeout(self.timeout, read_text(body, call.op))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let code = xml::text(&text, "Code").unwrap_or_else(|| default_code(head.status));
        let message = xml::text(&text, "Message").unwrap_or_default();
        let status = head.status.as_u16();
        if matches!(status, 500 | 502 | 503 | 504) || code == "SlowDown" {
            return Attempt::Transient(format!("{status} {code}: {message}"));
        }
        Attempt::Done(Err(S3Error::Status {
            op: call.op,
            status,
            code,
            message,
        }))
    }

    fn request(&self, call: &Call<'_>) -> Result<hyper::Request<Full<Bytes>>, S3Error> {
        let (host, path) = self.endpoint.locate(call.key);
        let now = Utc::from_system(SystemTime::now());
        let payload = if call.hash_body {
            sha256_hex(&call.body)
        } else {
            UNSIGNED_PAYLOAD.to_string()
        };
        let mut headers = call.headers.clone();
        headers.push(("host".into(), host.clone()));
        headers.push(("x-amz-date".into(), now.amz_date()));
        headers.push(("x-amz-content-sha256".into(), payload.clone()));
        if let Some(token) = &self.session_token {
            headers.push(("x-amz-security-token".into(), token.clone()));
        }
        let authorization = self.signer.authorization(
            &SignedParts {
                method: call.method.as_str(),
                path: &path,
                query: &call.query,
                headers: &headers,
                payload_hash: &payload,
            },
            &now,
        );
        let query = canonical_query(&call.query);
        let uri = if query.is_empty() {
            format!("{}://{host}{path}", self.endpoint.scheme)
        } else {
            format!("{}://{host}{path}?{query}", self.endpoint.scheme)
        };
        let mut builder = hyper::Request::builder()
            .method(call.method.clone())
            .uri(uri);
        for (name, value) in &headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .header("authorization", authorization)
            .body(Full::new(call.body.clone()))
            .map_err(|e| S3Error::Protocol {
                op: call.op,
                detail: format!("building the request: {e}"),
            })
    }

    /// A presigned GET URL of `key`, valid for `expires`.
    pub fn presigned_get(&self, key: &str, expires: Duration) -> String {
        let (host, path) = self.endpoint.locate(Some(key));
        let now = Utc::from_system(SystemTime::now());
        let params = self
            .signer
            .presign(&host, &path, &[], &now, expires.as_secs().max(1));
        format!(
            "{}://{host}{path}?{}",
            self.endpoint.scheme,
            canonical_query(&params)
        )
    }

    /// `x-amz-copy-source` for `key` in this bucket.
    pub fn copy_source(&self, key: &str) -> String {
        format!("/{}/{}", self.endpoint.bucket, uri_encode(key, true))
    }
}

enum Attempt {
    Done(Result<Response, S3Error>),
    Transient(String),
}

/// 100 ms, 200 ms, 400 ms ... up to 3 s, with up to a quarter more at random so that replicas retrying
/// at once spread out.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(100u64 << attempt.min(5)).min(Duration::from_secs(3));
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

fn default_code(status: StatusCode) -> String {
    match status {
        StatusCode::NOT_FOUND => "NotFound".into(),
        StatusCode::FORBIDDEN => "AccessDenied".into(),
        s => s.canonical_reason().unwrap_or("Error").replace(' ', ""),
    }
}

/// The error and its causes in one line (hyper's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// rustls with the operating system's trust store (private CAs installed there work). A machine
/// without any CA certificates can still talk plain HTTP, so their absence is only logged.
fn tls_config() -> tokio_rustls::rustls::ClientConfig {
    use hyper_rustls::ConfigBuilderExt;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    match ClientConfig::builder().with_native_roots() {
        Ok(builder) => builder.with_no_client_auth(),
        Err(e) => {
            tracing::warn!(error = %e, "no CA certificates found: HTTPS to S3 will fail");
            ClientConfig::builder()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: Option<&str>, path_style: bool, secure: bool) -> S3Settings {
        let mut s = S3Settings::for_test_server("http://x", "eu-west-1", "bkt", "a", "s", "");
        s.endpoint = endpoint.map(str::to_string);
        s.path_style = path_style;
        s.secure = secure;
        s
    }

    #[test]
    fn addressing_styles() {
        let e = Endpoint::new(&settings(Some("http://127.0.0.1:3900/"), true, true)).ok();
        let e = e.unwrap_or_else(|| panic!("endpoint"));
        assert_eq!(e.scheme, "http", "the URL's scheme wins over secure");
        assert_eq!(
            e.locate(Some("root/blobs/a b")),
            (
                "127.0.0.1:3900".to_string(),
                "/bkt/root/blobs/a%20b".to_string()
            )
        );
        assert_eq!(e.locate(None).1, "/bkt");

        let e = Endpoint::new(&settings(None, false, true)).ok();
        let e = e.unwrap_or_else(|| panic!("endpoint"));
        assert_eq!(e.scheme, "https");
        assert_eq!(
            e.locate(Some("k")),
            (
                "bkt.s3.eu-west-1.amazonaws.com".to_string(),
                "/k".to_string()
            )
        );
        assert_eq!(e.locate(None).1, "/");

        let e = Endpoint::new(&settings(Some("minio:9000"), true, false)).ok();
        assert_eq!(
            e.map(|e| (e.scheme, e.authority)),
            Some(("http", "minio:9000".to_string()))
        );
        for bad in ["ftp://x", "http://x/path", "http://user@x", "https://"] {
            assert!(
                Endpoint::new(&settings(Some(bad), true, true)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(
            backoff(1) >= Duration::from_millis(200) && backoff(1) < Duration::from_millis(260)
        );
        assert!(backoff(30) <= Duration::from_millis(3750));
    }

    #[test]
    fn unreachable_and_server_errors_are_unavailable() {
        let unreachable = S3Error::Unreachable {
            op: "get",
            cause: "refused".into(),
        };
        assert!(matches!(
            crate::Error::from(unreachable),
            crate::Error::Unavailable(_)
        ));
        let status = |status| S3Error::Status {
            op: "get",
            status,
            code: "X".into(),
            message: String::new(),
        };
        assert!(matches!(
            crate::Error::from(status(503)),
            crate::Error::Unavailable(_)
        ));
        assert!(matches!(
            crate::Error::from(status(403)),
            crate::Error::Io(_)
        ));
    }
}
