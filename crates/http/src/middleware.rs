//! What every response gets, whatever produced it: the API version header, an `X-Request-Id`, and one log
//! line per request (method, route, path, repository, status, bytes in and out, user, user agent,
//! duration, request id), written when the response body is done. It wraps the whole router (fallback included), so no handler can forget it.
//!
//! The request id is made here and put in the request's extensions before any handler runs, so that an
//! internal error can be logged with it and name it to the client; the same id is in the log line, which
//! is how an operator finds the cause behind a client's 500. It needs to be unique, not secret, so it is
//! not a random UUID (a `getrandom` system call per request, a measurable share of a manifest GET): see
//! [`next_request_id`].

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::USER_AGENT;
use axum::middleware::Next;
use axum::response::Response;

use crate::counted::Counted;
use crate::headers::{API_VERSION, REQUEST_ID, value};
use crate::metrics::http::endpoint_kind;

/// The id of the request being served (in the request's extensions).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id of `req`, or empty outside the middleware (a handler called directly in a test).
    pub fn of(req: &Request) -> String {
        req.extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default()
    }
}

pub async fn request_context(mut req: Request, next: Next) -> Response {
    let id = next_request_id();
    req.extensions_mut().insert(RequestId(id.clone()));
    let path = req.uri().path();
    let mut line = AccessLine {
        request_id: id.clone(),
        method: req.method().to_string(),
        route: endpoint_kind(path),
        path: path.to_string(),
        repository: String::new(),
        user_agent: req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        user: String::new(),
        status: 0,
        received: Arc::new(AtomicU64::new(0)),
        started: Instant::now(),
    };
    let received = line.received.clone();
    let req = req.map(|body| {
        Counted::wrap(
            body,
            move |n| {
                received.fetch_add(n, Ordering::Relaxed);
            },
            None,
        )
    });

    let mut resp = next.run(req).await;
    // Set by the auth middleware on requests it allowed for an authenticated user.
    if let Some(u) = resp.extensions().get::<crate::auth::AuthenticatedUser>() {
        line.user = u.0.clone();
    }
    if let Some(r) = resp.extensions().get::<Repository>() {
        line.repository = r.0.to_string();
    }
    line.status = resp.status().as_u16();

    let headers = resp.headers_mut();
    headers.insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    headers.insert(REQUEST_ID, value(id));
    // The line is written when the response body ends (or the client goes away), so that it can tell the
    // bytes sent and the whole duration of a streamed blob.
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    resp.map(|body| {
        Counted::wrap(
            body,
            move |n| {
                counter.fetch_add(n, Ordering::Relaxed);
            },
            Some(Box::new(SentThen { sent, line })),
        )
    })
}

/// A request id: 32 hex digits, like the simple form of a UUID. The first 16 are random, drawn once per
/// process, so ids of different processes (replicas, restarts) do not collide; the last 16 are a
/// counter passed through a bijective mix keyed by that draw, so ids are unique within the process
/// without telling how many requests it served.
fn next_request_id() -> String {
    // Process-wide on purpose: an id generator, like the random number generator a UUID would use.
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (prefix, key) = *KEY.get_or_init(|| {
        let r = uuid::Uuid::new_v4().as_u64_pair();
        (r.0, r.1)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:016x}{:016x}", mix(n ^ key))
}

/// SplitMix64's finaliser: a bijection of u64, so distinct counters give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The repository a request addressed, set on the response by the dispatcher (which parsed the path).
#[derive(Clone, Debug)]
pub struct Repository(pub oci::RepoName);

/// Everything the access log says of one request.
struct AccessLine {
    request_id: String,
    method: String,
    route: &'static str,
    path: String,
    repository: String,
    user_agent: String,
    user: String,
    status: u16,
    received: Arc<AtomicU64>,
    started: Instant,
}

/// Writes the access line, with the bytes the response body sent, when the body is done.
struct SentThen {
    sent: Arc<AtomicU64>,
    line: AccessLine,
}

impl Drop for SentThen {
    fn drop(&mut self) {
        let l = &self.line;
        tracing::info!(
            request_id = %l.request_id,
            method = %l.method,
            route = %l.route,
            path = %l.path,
            repository = %l.repository,
            status = l.status,
            bytes_in = l.received.load(Ordering::Relaxed),
            bytes_out = self.sent.load(Ordering::Relaxed),
            user = %l.user,
            user_agent = %l.user_agent,
            duration_ms = %format_args!("{:.1}", l.started.elapsed().as_secs_f64() * 1000.0),
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn request_ids_are_unique_and_shaped_like_uuids() {
        let ids: Vec<String> = (0..10_000).map(|_| next_request_id()).collect();
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
}
