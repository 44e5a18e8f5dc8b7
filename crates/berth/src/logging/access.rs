//! The access log's text line, written here rather than through a tracing event (see `berth_http::access`):
//! the same bytes the text subscriber writes for the access event, at a fraction of the cost.
//!
//! Why: a request's line went through tracing's event dispatch, the subscriber's filter, its formatter and
//! the field visitor, ~16% of the instructions of a cached manifest HEAD (callgrind,
//! bench/results/2026-11-23-profile.md). Here it is the timestamp, eleven `name=value` pairs appended
//! to a per-thread buffer, the static fields, and one hand-over to the log's writer.
//!
//! What stays true: the line is byte for byte what the subscriber writes (the test below formats the same
//! records both ways through the subscriber `init` builds), the log's filter still decides whether it is
//! written (`accesslog.disabled`, `RUST_LOG`), and any line this writer cannot reproduce exactly is
//! declined and goes through tracing: inside a span (the subscriber would add the span's context), with
//! colours or caller locations (`init` does not install it then), or under a filter with span or field
//! directives (likewise).

use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;

use berth_http::access::{AccessLog, AccessRecord, TARGET};
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use super::escape::push_escaped;
use super::fields::decimal;
use super::with_fields;
use crate::config::log::LogFormat;

/// Writes the text access line to `writer`, timestamped by `timer` (the subscriber's own two).
pub struct TextAccessLog<W, T> {
    writer: W,
    timer: T,
    /// The static fields as they end every text line (` key=value ...`), and the newline.
    suffix: String,
}

impl<W, T> TextAccessLog<W, T> {
    pub fn new(writer: W, timer: T, fields: &[(String, String)]) -> Self {
        TextAccessLog {
            writer,
            timer,
            suffix: with_fields("", fields, LogFormat::Text),
        }
    }
}

thread_local! {
    /// The line being formatted, kept per thread so that a line allocates nothing once it has grown.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<W, T> AccessLog for TextAccessLog<W, T>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    T: FormatTime + Send + Sync + 'static,
{
    fn write(&self, record: &AccessRecord<'_>) -> bool {
        if !tracing::enabled!(target: TARGET, Level::INFO) {
            // Filtered out, as the event would be.
            return true;
        }
        if !tracing::Span::current().is_none() {
            return false;
        }
        LINE.with(|line| {
            // Never re-entered (nothing called while formatting logs); were it, the line goes through tracing.
            let Ok(mut line) = line.try_borrow_mut() else {
                return false;
            };
            line.clear();
            if self.format(record, &mut line).is_err() {
                return false;
            }
            // As the subscriber does, a line that cannot be written is dropped, not retried.
            let _ = self.writer.make_writer().write_all(line.as_bytes());
            true
        })
    }
}

impl<W, T: FormatTime> TextAccessLog<W, T> {
    /// The line as tracing-subscriber's full text format writes the event of `AccessRecord::emit`:
    /// `<time> <level, padded to 5> <target>: <message> <fields>`, then the static fields.
    fn format(&self, r: &AccessRecord<'_>, line: &mut String) -> fmt::Result {
        self.timer.format_time(&mut Writer::new(line))?;
        line.push_str("  INFO ");
        line.push_str(TARGET);
        line.push_str(": request");
        let text = [
            ("request_id", r.request_id),
            ("method", r.method),
            ("route", r.route),
            ("path", r.path),
            ("query", r.query),
            ("repository", r.repository),
        ];
        for (name, value) in text {
            pair(line, name, value);
        }
        let mut digits = [0u8; 20];
        let numbers = [
            ("status", u64::from(r.status)),
            ("bytes_in", r.bytes_in),
            ("bytes_out", r.bytes_out),
        ];
        for (name, value) in numbers {
            pair(line, name, decimal(value, &mut digits));
        }
        pair(line, "user", r.user);
        pair(line, "user_agent", r.user_agent);
        // `duration_ms`'s text (`<ms>.<tenth>`) from its digits, without the formatting machinery.
        let tenths = r.duration_tenths_ms();
        line.push_str(" duration_ms=");
        line.push_str(decimal(tenths / 10, &mut digits));
        line.push('.');
        line.push_str(decimal(tenths % 10, &mut digits));
        line.push_str(&self.suffix);
        Ok(())
    }
}

/// ` name=value`: a field the subscriber writes through `Display` (`%`), which adds nothing around it
/// but the escapes of control characters (`logging::escape`, as `TextFields` writes every value).
fn pair(line: &mut String, name: &str, value: &str) {
    line.push(' ');
    line.push_str(name);
    line.push('=');
    push_escaped(line, value);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tracing_subscriber::EnvFilter;

    use super::*;
    use crate::config::log::LogConfig;
    use crate::logging::captured::Captured;

    /// A timer that writes the same instant every time, so the two lines can be compared whole.
    #[derive(Clone, Copy)]
    struct Fixed;

    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-11-23T09:00:00.123456Z")
        }
    }

    fn records() -> Vec<AccessRecord<'static>> {
        let base = AccessRecord {
            request_id: "5508654085cf4e301c353c34f4ceb3c4",
            method: "GET",
            route: "manifest",
            path: "/v2/bench/hot/manifests/latest",
            query: "",
            repository: "bench/hot",
            status: 200,
            bytes_in: 0,
            bytes_out: 1234,
            user: "",
            user_agent: "containerd/2.0.0",
            duration: Duration::from_micros(1_250),
        };
        // Durations whose tenths round, carry into the milliseconds, or are zero.
        let durations = [0, 49_999, 50_000, 999_950, 1_000_000, 12_345_678_901];
        let mut records: Vec<AccessRecord<'static>> = durations
            .into_iter()
            .map(|nanos| AccessRecord {
                duration: Duration::from_nanos(nanos),
                ..base
            })
            .collect();
        records.extend([
            base,
            AccessRecord {
                method: "PUT",
                route: "other",
                path: "/v2/a b/\"quoted\"=x",
                query: "n=1&access_token=REDACTED",
                repository: "",
                status: 500,
                bytes_in: u64::MAX,
                bytes_out: 0,
                user: "alice",
                user_agent: "",
                duration: Duration::from_secs(12_345),
                ..base
            },
            // A token's subject and a path are the client's text: escaped on both paths alike.
            AccessRecord {
                user: "dave\n2026-11-23T09:00:00.123456Z  INFO forged",
                user_agent: "x\u{1b}[2Jy",
                path: "/v2/a\rb",
                ..base
            },
        ]);
        records
    }

    /// The subscriber `init` sets up for text (no colours, no caller), writing to `out`.
    fn subscriber(out: Captured, filter: &str, fields: &[(String, String)]) -> tracing::Dispatch {
        let log = LogConfig {
            fields: fields.to_vec(),
            ..LogConfig::default()
        };
        tracing::Dispatch::new(super::super::text_subscriber(
            EnvFilter::new(filter),
            out,
            Fixed,
            &log,
            false,
        ))
    }

    #[test]
    fn lines_are_those_of_the_subscriber() {
        let static_fields = [
            vec![],
            vec![
                ("service".to_string(), "registry".to_string()),
                ("env".to_string(), "two words".to_string()),
            ],
        ];
        for fields in static_fields {
            for record in records() {
                let through_tracing = Captured::default();
                let direct = Captured::default();
                let log = TextAccessLog::new(direct.clone(), Fixed, &fields);
                tracing::dispatcher::with_default(
                    &subscriber(through_tracing.clone(), "info", &fields),
                    || {
                        record.emit();
                        assert!(log.write(&record));
                    },
                );
                let expected = through_tracing.take_text();
                assert!(expected.contains(" INFO berth_http::middleware: request "));
                assert_eq!(expected.lines().count(), 1, "{expected}");
                assert_eq!(direct.take_text(), expected);
            }
        }
    }

    #[test]
    fn the_filter_still_decides() {
        let out = Captured::default();
        let log = TextAccessLog::new(out.clone(), Fixed, &[]);
        let record = records()[6];
        // `accesslog.disabled`'s directive: taken (nothing to fall back to) and not written.
        let dispatch = subscriber(Captured::default(), "info,berth_http::middleware=warn", &[]);
        tracing::dispatcher::with_default(&dispatch, || assert!(log.write(&record)));
        assert_eq!(out.take_text(), "");
        let dispatch = subscriber(Captured::default(), "berth_http=info", &[]);
        tracing::dispatcher::with_default(&dispatch, || assert!(log.write(&record)));
        assert!(out.take_text().ends_with("duration_ms=1.3\n"));
    }

    #[test]
    fn a_line_inside_a_span_is_left_to_tracing() {
        let out = Captured::default();
        let log = TextAccessLog::new(out.clone(), Fixed, &[]);
        let dispatch = subscriber(Captured::default(), "info", &[]);
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("connection", peer = "x");
            span.in_scope(|| assert!(!log.write(&records()[6])));
            assert!(log.write(&records()[6]));
        });
        assert_eq!(out.take_text().lines().count(), 1);
    }
}
