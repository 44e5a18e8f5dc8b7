//! What every response gets, whatever produced it: the API version header, an `X-Request-Id`, and one log
//! line. It wraps the whole router (fallback included), so no handler can forget it.
//!
//! The request id is made here and put in the request's extensions before any handler runs, so that an
//! internal error can be logged with it and name it to the client; the same id is in the log line, which
//! is how an operator finds the cause behind a client's 500.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::headers::{API_VERSION, REQUEST_ID, value};

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
    let id = uuid::Uuid::new_v4().simple().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();

    let mut resp = next.run(req).await;
    // Set by the auth middleware on requests it allowed for an authenticated user.
    let user = resp
        .extensions()
        .get::<crate::auth::AuthenticatedUser>()
        .map(|u| u.0.clone())
        .unwrap_or_default();

    let headers = resp.headers_mut();
    headers.insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    headers.insert(REQUEST_ID, value(id.clone()));
    tracing::info!(
        request_id = %id,
        %method,
        path = %path,
        status = resp.status().as_u16(),
        user = %user,
        // Time to the response head: a streamed body goes on after this line.
        elapsed_ms = %format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    resp
}
