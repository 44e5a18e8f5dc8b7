//! The spans of a trace (OpenTelemetry, issue 23): their one `tracing` target, and the span of a storage
//! call.
//!
//! The layers open plain `tracing` spans under [`TARGET`], at `info`: the HTTP layer one per request,
//! the pull-through cache's client one per upstream request, the timing decorators of
//! [`instrumented`](crate::instrumented) one per blob store and metadata call. None of these crates knows
//! OpenTelemetry; the binary decides what listens. When no exporter is configured its log filter turns
//! [`TARGET`] off, so each of these spans costs the check of a cached callsite interest and is never
//! built (and the storage decorators, which open them, are not even installed unless metrics are).
//! When one is, only the OpenTelemetry layer sees them: the log lines never show them.
//!
//! Field names follow OpenTelemetry's conventions where one exists (`http.request.method`,
//! `http.response.status_code`, `db.operation.name`); `otel.name` and `otel.kind` name the span and its
//! kind for the exporter.

use tracing::Span;

use crate::instrumented::StorageOp;

/// The target of every span meant for a trace. A target of its own, so that a log filter (`RUST_LOG`,
/// `log.level`) decides nothing about traces and a trace exporter adds no log line.
pub const TARGET: &str = "berth::spans";

/// The span of one storage call, a child of the current span; none outside one (the background jobs'
/// calls would each make a trace of a single span) or when nothing listens.
pub fn storage(op: StorageOp) -> Span {
    if !tracing::span_enabled!(target: TARGET, tracing::Level::INFO) || Span::current().is_none() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "storage",
        otel.name = %format_args!("{} {}", op.store, op.operation),
        otel.kind = "internal",
        db.system.name = op.backend,
        db.operation.name = op.operation,
        berth.store = op.store,
        otel.status_code = tracing::field::Empty,
    )
}

/// Marks `span` failed (the call returned an error).
pub fn failed(span: &Span) {
    span.record("otel.status_code", "error");
}
