//! Logging as the `log` section asks: level, text or JSON lines on stderr, static fields on every line, the
//! access log on or off. `RUST_LOG`, when set, chooses the levels instead of `log.level`.
//!
//! Lines go through [`writer`]: buffered and written to stderr by a thread of its own, so a request does
//! not pay a system call for its access-log line. Text lines' fields are written by [`fields`], the
//! default formatter's text at a fraction of its cost, and their timestamp by [`clock`], likewise.
//! The access log's line, one per request, skips tracing's event machinery altogether where it can: see
//! [`access`].
//!
//! Traces (`crate::telemetry`) are a layer beside the log's, installed only when exported.
//!
//! Static fields (`log.fields`, registry:2's logrus fields) are added by wrapping the event formatter
//! rather than by a span: a span entered on the main thread would not be current on the runtime's
//! worker threads, where almost every line is written.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use opentelemetry_sdk::trace::Tracer;
use registry::spans::TARGET as SPAN_TARGET;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::log::{LogConfig, LogFormat};

mod access;
#[cfg(test)]
mod captured;
mod clock;
mod escape;
mod fields;
pub(crate) mod writer;

/// Where the HTTP layer writes its one line per request, at `info`: `accesslog.disabled` turns that target
/// down to warnings.
const ACCESS_LOG_TARGET: &str = berth_http::access::TARGET;

/// Sets up the global subscriber per `log`, with an OpenTelemetry layer for `traces` when they are
/// exported (`crate::telemetry`). Called once, before anything logs.
///
/// The spans meant for a trace (target `registry::spans::TARGET`) are off in the filter unless traces are
/// exported, so when they are not, every one of them is refused by its callsite's cached interest and
/// the subscriber is exactly the log's. When they are, only the OpenTelemetry layer sees them (and the
/// warnings and errors logged inside them, as span events): the log's lines never show them.
pub fn init(log: &LogConfig, traces: Option<Tracer>) {
    let (filter, directives) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => (EnvFilter::new(&spec), spec),
        _ => (EnvFilter::new(log.level.as_str()), String::new()),
    };
    let filter = if log.access_log {
        filter
    } else {
        match format!("{ACCESS_LOG_TARGET}=warn").parse() {
            Ok(directive) => filter.add_directive(directive),
            Err(_) => filter,
        }
    };
    let spans = if traces.is_some() { "info" } else { "off" };
    let filter = match format!("{SPAN_TARGET}={spans}").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let writer = writer::install();
    match log.formatter {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal();
            let layer = text_layer(writer.clone(), clock::Rfc3339Micros, log, ansi);
            install(layer, filter, traces);
            // The access line written directly, where it can be the subscriber's line byte for byte:
            // without colours and caller locations, and under a filter of targets and levels only (a
            // `[...]` directive filters on spans or fields, which only the subscriber can tell).
            if !ansi && !log.report_caller && !directives.contains('[') {
                let direct = access::TextAccessLog::new(writer, clock::Rfc3339Micros, &log.fields);
                berth_http::access::install(Box::new(direct));
            }
        }
        LogFormat::Json => {
            let fields = log.fields.clone();
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_file(log.report_caller)
                .with_line_number(log.report_caller)
                .json()
                .flatten_event(true)
                .map_event_format(|f| WithFields::new(f, fields, LogFormat::Json));
            install(layer, filter, traces);
        }
    }
}

/// Makes the subscriber of the log's `layer` under `filter` the global one; with `traces`, the
/// OpenTelemetry layer beside it, each seeing only its own spans.
fn install<L>(layer: L, filter: EnvFilter, traces: Option<Tracer>)
where
    L: Layer<Registry> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry();
    match traces {
        // What `tracing_subscriber::fmt().with_env_filter(filter)` builds.
        None => registry.with(layer).with(filter).init(),
        Some(tracer) => registry
            .with(layer.with_filter(filter_fn(|m| m.target() != SPAN_TARGET)))
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    // What the spans' own fields say is enough: no source files, threads or targets,
                    // and no clock read at every enter and exit for busy and idle times.
                    .with_location(false)
                    .with_threads(false)
                    .with_target(false)
                    .with_tracked_inactivity(false)
                    .with_filter(filter_fn(|m| {
                        m.target() == SPAN_TARGET || (m.is_event() && *m.level() <= Level::WARN)
                    })),
            )
            .with(filter)
            .init(),
    }
}

/// The text subscriber without traces: the one the direct access line is tested against.
#[cfg(test)]
fn text_subscriber<W, T>(
    filter: EnvFilter,
    writer: W,
    timer: T,
    log: &LogConfig,
    ansi: bool,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    T: FormatTime + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(text_layer(writer, timer, log, ansi))
        .with(filter)
}

/// The log's text lines: `init`'s layer.
fn text_layer<S, W, T>(writer: W, timer: T, log: &LogConfig, ansi: bool) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    T: FormatTime + Send + Sync + 'static,
{
    let fields = log.fields.clone();
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_file(log.report_caller)
        .with_line_number(log.report_caller)
        .with_ansi(ansi)
        .fmt_fields(fields::TextFields)
        .with_timer(timer)
        .map_event_format(|f| WithFields::new(f, fields, LogFormat::Text))
}

/// Logging for a start that failed before the configuration could be read: text at `info` (or per
/// `RUST_LOG`).
pub fn init_default() {
    init(&LogConfig::default(), None);
}

/// An event formatter that appends the static fields to every line of `inner`.
struct WithFields<F> {
    inner: F,
    fields: Vec<(String, String)>,
    format: LogFormat,
}

impl<F> WithFields<F> {
    fn new(inner: F, fields: Vec<(String, String)>, format: LogFormat) -> WithFields<F> {
        WithFields {
            inner,
            fields,
            format,
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithFields<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.fields.is_empty() {
            return self.inner.format_event(ctx, writer, event);
        }
        // The line is formatted apart (without colour codes) so the fields can go before its end.
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&with_fields(&line, &self.fields, self.format))
    }
}

/// `line` (one formatted event, ending in a newline) with `fields` added: as `key=value` pairs at the end
/// of a text line, as members of a JSON line's object.
fn with_fields(line: &str, fields: &[(String, String)], format: LogFormat) -> String {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let mut out = String::with_capacity(line.len() + 32 * fields.len());
    match format {
        LogFormat::Json => match body.strip_suffix('}') {
            Some(open) => {
                out.push_str(open);
                for (k, v) in fields {
                    let _ = write!(out, ",{}:{}", json_string(k), json_string(v));
                }
                out.push('}');
            }
            // Not an object: nothing to add members to.
            None => out.push_str(body),
        },
        LogFormat::Text => {
            out.push_str(body);
            for (k, v) in fields {
                let _ = write!(out, " {k}={}", text_value(v));
            }
        }
    }
    out.push('\n');
    out
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A value as tracing's text format writes one: bare when it is one word, quoted otherwise.
fn text_value(v: &str) -> String {
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<(String, String)> {
        vec![
            ("service".into(), "registry".into()),
            ("env".into(), "two words".into()),
        ]
    }

    #[test]
    fn json_lines_get_members() {
        let line = "{\"timestamp\":\"t\",\"level\":\"INFO\",\"message\":\"hi\"}\n";
        let out = with_fields(line, &fields(), LogFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["message"], "hi");
        assert_eq!(v["service"], "registry");
        assert_eq!(v["env"], "two words");
        assert!(out.ends_with("}\n") && out.matches('\n').count() == 1);
        // Quotes and backslashes in a value stay valid JSON.
        let tricky = vec![("k".to_string(), "a\"b\\c".to_string())];
        let v: serde_json::Value =
            serde_json::from_str(&with_fields(line, &tricky, LogFormat::Json)).unwrap();
        assert_eq!(v["k"], "a\"b\\c");
    }

    #[test]
    fn text_lines_get_pairs_at_the_end() {
        let out = with_fields(
            "2024-01-01T00:00:00Z  INFO berth: serving addr=1\n",
            &fields(),
            LogFormat::Text,
        );
        assert_eq!(
            out,
            "2024-01-01T00:00:00Z  INFO berth: serving addr=1 service=registry env=\"two words\"\n"
        );
    }
}
