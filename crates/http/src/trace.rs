//! Each request a span of a trace (OpenTelemetry, issue 23): made by the request context
//! ([`middleware`](crate::middleware)) with the request's id, method and route, its status recorded when
//! the answer is ready, and closed when the response body ends (with the access line), so that it covers
//! a streamed blob whole. Handlers, storage calls and the pull-through cache's upstream requests open
//! their spans inside it.
//!
//! An incoming W3C `traceparent` makes the request's span a child of the caller's, as registry:3's
//! otelhttp handler does. This crate knows no OpenTelemetry: the binary, when it exports traces, installs
//! the function that reads the context from the headers ([`install_parent_extractor`]). When nothing
//! exports, the span's target is off in the log filter, so a request pays one check of a cached callsite
//! interest and no span is built (`registry::spans`).

use std::sync::OnceLock;

use axum::http::{HeaderMap, Method};
use registry::spans::TARGET;
use tracing::Span;

/// Sets a request span's parent from the context its headers carry (`traceparent`, `tracestate`).
pub type ParentExtractor = fn(&HeaderMap, &Span);

/// Process-wide, set once at start like the tracing subscriber that makes the spans it sets up.
static EXTRACTOR: OnceLock<ParentExtractor> = OnceLock::new();

/// Has every request span continue the trace its request's headers name. Once per process: false if one
/// was installed already.
pub fn install_parent_extractor(extract: ParentExtractor) -> bool {
    EXTRACTOR.set(extract).is_ok()
}

/// The span of a request: `Span::none()` unless a trace is being recorded.
pub(crate) fn request_span(method: &Method, path: &str, headers: &HeaderMap, id: &str) -> Span {
    if !tracing::span_enabled!(target: TARGET, tracing::Level::INFO) {
        return Span::none();
    }
    let route = route(path);
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = route,
        url.path = path,
        request_id = id,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    // Before the span is entered: its parent is fixed when it starts.
    if let Some(extract) = EXTRACTOR.get() {
        extract(headers, &span);
    }
    span
}

/// Records the status of the answer on a request's span.
pub(crate) fn record_status(span: &Span, status: u16) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// The route of a path, as OpenTelemetry's `http.route`: the API's path template, without the names.
fn route(path: &str) -> &'static str {
    match crate::metrics::http::endpoint_kind(path) {
        "base" => "/v2/",
        "catalog" => "/v2/_catalog",
        "tags" => "/v2/{name}/tags/list",
        "manifest" => "/v2/{name}/manifests/{reference}",
        "blob_upload" => "/v2/{name}/blobs/uploads/",
        "blob" => "/v2/{name}/blobs/{digest}",
        "referrers" => "/v2/{name}/referrers/{digest}",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates() {
        let cases = [
            ("/v2/", "/v2/"),
            ("/v2/_catalog", "/v2/_catalog"),
            ("/v2/a/b/tags/list", "/v2/{name}/tags/list"),
            ("/v2/a/manifests/latest", "/v2/{name}/manifests/{reference}"),
            ("/v2/a/blobs/uploads/", "/v2/{name}/blobs/uploads/"),
            ("/v2/a/blobs/uploads/123", "/v2/{name}/blobs/uploads/"),
            ("/v2/a/blobs/sha256:00", "/v2/{name}/blobs/{digest}"),
            ("/v2/a/referrers/sha256:00", "/v2/{name}/referrers/{digest}"),
            ("/ui/", "other"),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), want, "{path}");
        }
    }
}
