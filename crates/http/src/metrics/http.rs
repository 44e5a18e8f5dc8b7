//! The request metrics: a middleware that counts and times every request, and counts its body bytes in
//! and out, labelled by the kind of endpoint (a bounded set, never the repository).
//!
//! Timing runs from the request head to the end of the response body, or to the moment the response is
//! dropped (the client went away), so a request that never completes still leaves its duration and its
//! in-flight count.

use std::time::Instant;

use crate::counted::Counted;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    endpoint: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

/// The request metrics. Cheap to clone (the families are shared).
#[derive(Clone)]
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    received: Family<EndpointLabels, Counter>,
    sent: Family<EndpointLabels, Counter>,
    in_flight: Gauge,
}

impl HttpMetrics {
    pub fn new(buckets: fn() -> Histogram) -> HttpMetrics {
        HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(buckets),
            received: Family::default(),
            sent: Family::default(),
            in_flight: Gauge::default(),
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "berth_http_requests",
            "HTTP requests answered, by endpoint kind, method and status",
            self.requests.clone(),
        );
        registry.register(
            "berth_http_request_duration_seconds",
            "Time from a request's head to the end of its response body",
            self.duration.clone(),
        );
        registry.register(
            "berth_http_received_bytes",
            "Request body bytes received",
            self.received.clone(),
        );
        registry.register(
            "berth_http_sent_bytes",
            "Response body bytes sent",
            self.sent.clone(),
        );
        registry.register(
            "berth_http_requests_in_flight",
            "Requests being served",
            self.in_flight.clone(),
        );
    }

    pub fn instrument(&self, app: Router) -> Router {
        app.layer(axum::middleware::from_fn_with_state(self.clone(), record))
    }
}

async fn record(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let endpoint = endpoint_kind(req.uri().path());
    let method = method_label(req.method());
    let finish = Finish::start(&m, endpoint, method);
    let received = m
        .received
        .get_or_create(&EndpointLabels { endpoint })
        .clone();
    let req = req.map(|body| {
        Counted::wrap(
            body,
            move |n| {
                received.inc_by(n);
            },
            None,
        )
    });

    let resp = next.run(req).await;

    m.requests
        .get_or_create(&RequestLabels {
            endpoint,
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    let sent = m.sent.get_or_create(&EndpointLabels { endpoint }).clone();
    resp.map(|body| {
        Counted::wrap(
            body,
            move |n| {
                sent.inc_by(n);
            },
            Some(Box::new(finish)),
        )
    })
}

/// The kind of endpoint `path` names, read from its end as `Endpoint::parse` reads it (repository names
/// contain slashes, and a configured `http.prefix` may stand before `/v2/`). One of `base`, `catalog`,
/// `tags`, `manifest`, `blob`, `blob_upload`, `referrers`, or `other` for anything outside the API.
pub fn endpoint_kind(path: &str) -> &'static str {
    let Some(at) = path.find("/v2") else {
        return "other";
    };
    let api = &path[at..];
    let api = api.strip_suffix('/').unwrap_or(api);
    if api == "/v2" {
        return "base";
    }
    if !api.starts_with("/v2/") {
        return "other";
    }
    let mut rev = api.rsplit('/');
    let last = rev.next().unwrap_or_default();
    let second = rev.next().unwrap_or_default();
    let third = rev.next().unwrap_or_default();
    match (third, second, last) {
        ("", "v2", "_catalog") => "catalog",
        (_, "tags", "list") => "tags",
        (_, "manifests", _) => "manifest",
        (_, "blobs", "uploads") | ("blobs", "uploads", _) => "blob_upload",
        (_, "blobs", _) => "blob",
        (_, "referrers", _) => "referrers",
        _ => "other",
    }
}

/// The method as a label: the API's methods by name, anything else as `other` (methods are free-form
/// tokens, so a client could otherwise mint label values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Ends a request's measurement when dropped: its duration, and its place in flight.
struct Finish {
    duration: Histogram,
    in_flight: Gauge,
    started: Instant,
}

impl Finish {
    fn start(m: &HttpMetrics, endpoint: &'static str, method: &'static str) -> Finish {
        m.in_flight.inc();
        Finish {
            duration: m
                .duration
                .get_or_create(&RouteLabels { endpoint, method })
                .clone(),
            in_flight: m.in_flight.clone(),
            started: Instant::now(),
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.duration.observe(self.started.elapsed().as_secs_f64());
        self.in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_kinds() {
        let cases = [
            ("/v2", "base"),
            ("/v2/", "base"),
            ("/v2/_catalog", "catalog"),
            ("/v2/a/b/tags/list", "tags"),
            ("/v2/a/manifests/latest", "manifest"),
            ("/v2/a/b/c/manifests/sha256:abc", "manifest"),
            ("/v2/a/blobs/sha256:abc", "blob"),
            ("/v2/a/blobs/uploads/", "blob_upload"),
            ("/v2/a/blobs/uploads", "blob_upload"),
            ("/v2/a/b/blobs/uploads/0f1e-22", "blob_upload"),
            ("/v2/a/referrers/sha256:abc", "referrers"),
            // Names that look like parts of the API are still read from the right.
            ("/v2/manifests/blobs/tags/list", "tags"),
            ("/v2/blobs/manifests/x", "manifest"),
            // A prefix before /v2/ (http.prefix).
            ("/registry/v2/a/manifests/v1", "manifest"),
            ("/registry/v2/", "base"),
            ("/", "other"),
            ("/metrics", "other"),
            ("/v2x/a", "other"),
            ("/v2/a", "other"),
        ];
        for (path, want) in cases {
            assert_eq!(endpoint_kind(path), want, "{path}");
        }
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let custom = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&custom), "other");
    }
}
