//! What every response gets, whatever produced it: the API version header, an `X-Request-Id`, and one log
//! line per request (method, route, path, repository, status, bytes in and out, user, user agent,
//! duration, request id; see [`access`](crate::access)), written when the response body is done; and,
//! while a trace is recorded, the request's span ([`trace`](crate::trace)), which ends with that line. It
//! wraps the whole router (fallback included), so no handler can forget it.
//!
//! The request id is made here and put in the request's extensions before any handler runs, so that an
//! internal error can be logged with it and name it to the client; the same id is in the log line, which
//! is how an operator finds the cause behind a client's 500. It needs to be unique, not secret, so it is
//! not a random UUID (a `getrandom` system call per request, a measurable share of a manifest GET): see
//! [`next_request_id`].

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::header::USER_AGENT;
use axum::http::{HeaderValue, Method, Uri};
use axum::response::Response;
use http_body::Body as _;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::access::AccessRecord;
use crate::counted::Counted;
use crate::headers::{API_VERSION, REQUEST_ID, value};
use crate::metrics::http::endpoint_kind;

/// The id of the request being served (in the request's extensions): its text on the stack, so that the
/// handlers and the error responses that name it copy 33 bytes rather than allocate a string each.
#[derive(Clone, Copy, Debug)]
pub struct RequestId(Option<IdText>);

impl RequestId {
    /// The id of `req`, or empty outside the middleware (a handler called directly in a test).
    pub fn of(req: &Request) -> RequestId {
        req.extensions()
            .get::<RequestId>()
            .copied()
            .unwrap_or(RequestId(None))
    }

    /// [`RequestId::of`] a request taken apart.
    pub fn of_parts(parts: &axum::http::request::Parts) -> RequestId {
        parts
            .extensions
            .get::<RequestId>()
            .copied()
            .unwrap_or(RequestId(None))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref().map_or("", IdText::as_str)
    }
}

impl Deref for RequestId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request context as a layer (`Router::layer(RequestContextLayer)`).
///
/// A service of its own rather than `axum::middleware::from_fn`: that wraps each call in a boxed clone of
/// the inner service, a `Next`, and two more boxed futures, a visible share of a small request's cost;
/// here a request costs one boxed future.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestContextLayer;

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> RequestContext<S> {
        RequestContext { inner }
    }
}

/// The service of [`RequestContextLayer`] around `S`.
#[derive(Clone, Debug)]
pub struct RequestContext<S> {
    inner: S,
}

impl<S> Service<Request> for RequestContext<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let (req, line) = begin(req);
        // Called here, on the service that was polled ready; only the response is awaited. Both in the
        // request's span (a no-op when none is recorded).
        let response = line.span.in_scope(|| self.inner.call(req));
        let span = line.span.clone();
        Box::pin(async move {
            let resp = response.instrument(span).await?;
            Ok(finish(resp, line))
        })
    }
}

/// Gives the request its id and starts its access line.
fn begin(mut req: Request) -> (Request, AccessLine) {
    let id = next_request_id();
    req.extensions_mut().insert(RequestId(Some(id)));
    let span =
        crate::trace::request_span(req.method(), req.uri().path(), req.headers(), id.as_str());
    // What the line needs of the request, kept without copying: a method, URI or header value clone
    // shares the request head's buffer (the line used to copy five strings per request).
    let mut line = AccessLine {
        request_id: id,
        method: req.method().clone(),
        uri: req.uri().clone(),
        repository: None,
        user_agent: req.headers().get(USER_AGENT).cloned(),
        user: String::new(),
        status: 0,
        counts: None,
        started: Instant::now(),
        span,
    };
    // A request without a body (every GET and HEAD) has no bytes to count: it is not wrapped.
    if req.body().is_end_stream() {
        return (req, line);
    }
    let counts = line.counts().clone();
    let req = req.map(|body| {
        Counted::wrap(
            body,
            move |n| {
                counts.received.fetch_add(n, Ordering::Relaxed);
            },
            None,
        )
    });
    (req, line)
}

/// Adds the id and version headers to the response, and has its access line written once its body is
/// done.
fn finish(mut resp: Response, mut line: AccessLine) -> Response {
    // Set by the auth middleware on requests it allowed for an authenticated user.
    if let Some(u) = resp.extensions().get::<AuthenticatedUser>() {
        line.user = u.0.clone();
    }
    // Nothing reads it after this layer: taken rather than copied.
    line.repository = resp.extensions_mut().remove::<Repository>().map(|r| r.0);
    line.status = resp.status().as_u16();
    crate::trace::record_status(&line.span, line.status);

    let headers = resp.headers_mut();
    headers.insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    headers.insert(REQUEST_ID, line.request_id.header_value());
    // The line is written when the response body ends (or the client goes away), so that it can tell the
    // bytes sent and the whole duration of a streamed blob. A body that is already over (a HEAD, a 202, most
    // errors) is logged now, without wrapping it.
    if resp.body().is_end_stream() {
        drop(SentThen { line });
        return resp;
    }
    let counts = line.counts().clone();
    resp.map(|body| {
        Counted::wrap(
            body,
            move |n| {
                counts.sent.fetch_add(n, Ordering::Relaxed);
            },
            Some(Box::new(SentThen { line })),
        )
    })
}

/// A request id: 32 hex digits, like the simple form of a UUID. The first 16 are random, drawn once per
/// process, so ids of different processes (replicas, restarts) do not collide; the last 16 are a
/// counter passed through a bijective mix keyed by that draw, so ids are unique within the process
/// without telling how many requests it served.
/// A fresh request id, for an answer made outside the middleware (`runtime::spec_errors`).
pub(crate) fn new_request_id() -> String {
    next_request_id().as_str().to_string()
}

fn next_request_id() -> IdText {
    // Process-wide on purpose: an id generator, like the random number generator a UUID would use.
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (prefix, key) = *KEY.get_or_init(|| {
        let r = uuid::Uuid::new_v4().as_u64_pair();
        (r.0, r.1)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut text = [0u8; 32];
    hex16(prefix, &mut text[..16]);
    hex16(mix(n ^ key), &mut text[16..]);
    IdText(text)
}

/// `v` as 16 lowercase hex digits into `out` (16 bytes), without the formatting machinery.
fn hex16(v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate() {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// A request id's text, on the stack: the log line and the response header are made from it.
#[derive(Clone, Copy)]
struct IdText([u8; 32]);

impl fmt::Debug for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl IdText {
    fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into it (`hex16`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    fn header_value(&self) -> HeaderValue {
        value(self.as_str().to_string())
    }
}

/// SplitMix64's finaliser: a bijection of u64, so distinct counters give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The user a response was served to, set on the response by the auth middleware, for the access log.
#[derive(Clone, Debug)]
pub struct AuthenticatedUser(pub String);

/// The repository a request addressed, set on the response by the dispatcher (which parsed the path).
#[derive(Clone, Debug)]
pub struct Repository(pub oci::RepoName);

/// Everything the access log says of one request.
struct AccessLine {
    request_id: IdText,
    method: Method,
    uri: Uri,
    repository: Option<oci::RepoName>,
    user_agent: Option<HeaderValue>,
    user: String,
    status: u16,
    /// Made when a body is counted: a request and response without one (a HEAD) need none.
    counts: Option<Arc<Counts>>,
    started: Instant,
    /// The request's span (`Span::none()` unless a trace is recorded): it ends when this is dropped,
    /// after the line is written.
    span: tracing::Span,
}

impl AccessLine {
    fn counts(&mut self) -> &Arc<Counts> {
        self.counts.get_or_insert_with(Arc::default)
    }
}

/// The body bytes of a request, in and out, counted as they pass.
#[derive(Default)]
struct Counts {
    received: AtomicU64,
    sent: AtomicU64,
}

/// Writes the access line when dropped: when the response body is done.
struct SentThen {
    line: AccessLine,
}

impl Drop for SentThen {
    fn drop(&mut self) {
        let l = &self.line;
        let path = l.uri.path();
        let query = crate::access::masked_query(l.uri.query().unwrap_or_default());
        AccessRecord {
            request_id: l.request_id.as_str(),
            method: l.method.as_str(),
            route: endpoint_kind(path),
            path,
            query: &query,
            repository: l.repository.as_ref().map_or("", |r| r.as_str()),
            status: l.status,
            bytes_in: l
                .counts
                .as_ref()
                .map_or(0, |c| c.received.load(Ordering::Relaxed)),
            bytes_out: l
                .counts
                .as_ref()
                .map_or(0, |c| c.sent.load(Ordering::Relaxed)),
            user: &l.user,
            // As before: a header that is not visible ASCII is logged empty.
            user_agent: l
                .user_agent
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
            duration: l.started.elapsed(),
        }
        .log();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn request_ids_are_unique_and_shaped_like_uuids() {
        let ids: Vec<String> = (0..10_000)
            .map(|_| next_request_id().as_str().to_string())
            .collect();
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{id}"
            );
        }
        // One process, one prefix; consecutive ids do not look consecutive.
        assert!(ids.iter().all(|id| id[..16] == ids[0][..16]));
        assert!(!ids.windows(2).all(|w| w[0] < w[1]), "ids count up");
    }

    #[test]
    fn the_request_id_is_that_of_the_extensions() {
        let mut req = Request::new(axum::body::Body::empty());
        assert_eq!(&*RequestId::of(&req), "");
        let id = next_request_id();
        req.extensions_mut().insert(RequestId(Some(id)));
        assert_eq!(&*RequestId::of(&req), id.as_str());
        assert_eq!(RequestId::of(&req).to_string(), id.as_str());
    }

    #[test]
    fn hex_digits_are_those_of_format() {
        for v in [0, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef, 1 << 63] {
            let mut out = [0u8; 16];
            hex16(v, &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), format!("{v:016x}"));
        }
    }
}
