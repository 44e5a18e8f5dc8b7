//! The upstream's requests in a trace (OpenTelemetry, issue 23): each logical request (the token dance
//! and redirects included) is a client span under the span of whatever asked, a pull through the cache
//! mostly, and every request sent carries that span's context (W3C `traceparent`) so the upstream's own
//! spans join the same trace.
//!
//! This crate knows no OpenTelemetry: the binary, when it exports traces, installs the function that
//! writes a span's context into headers ([`install_context_injector`]). Without it nothing is added and
//! no span is looked up, and the spans themselves are disabled by the log filter (`registry::spans`).

use std::sync::OnceLock;

use hyper::header::HeaderMap;
use hyper::{Method, Uri};
use tracing::Span;

/// Writes the context of a span into a request's headers (`traceparent`, `tracestate`).
pub type ContextInjector = fn(&Span, &mut HeaderMap);

/// Process-wide, set once at start like the tracing subscriber whose spans it reads.
static INJECTOR: OnceLock<ContextInjector> = OnceLock::new();

/// Has every upstream request carry the current span's context. Once per process: false if one was
/// installed already.
pub fn install_context_injector(inject: ContextInjector) -> bool {
    INJECTOR.set(inject).is_ok()
}

/// Adds the current span's context to `headers`, when an injector is installed and a span is current.
pub(crate) fn inject(headers: &mut HeaderMap) {
    if let Some(inject) = INJECTOR.get() {
        let span = Span::current();
        if !span.is_none() {
            inject(&span, headers);
        }
    }
}

/// The client span of one logical request of `method` on `uri`.
pub(crate) fn request_span(method: &Method, uri: &Uri) -> Span {
    tracing::info_span!(
        target: registry::spans::TARGET,
        "upstream",
        otel.name = %format_args!("upstream {method}"),
        otel.kind = "client",
        http.request.method = %method,
        server.address = uri.host().unwrap_or_default(),
        url.full = %uri,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}
