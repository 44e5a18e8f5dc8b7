//! The text format's fields, written as `tracing-subscriber`'s default formatter writes them, without its
//! cost for plain `name=value` fields.
//!
//! Why: the default visitor paints every field name and `=` through `nu-ansi-term` even when colours are
//! off, and formats each field with a three-argument `write!`. With the access log's eleven fields that
//! was ~10% of the instructions of a cached manifest GET (callgrind, bench/results/2026-11-23-profile.md).
//! Here a plain field is `write_str(name)`, `=`, and its value's `Debug`, which is the same text; anything
//! else (the message, errors with their sources, `r#` names, `log.` fields, any field when colours are
//! on) is handed to the default visitor itself, so the output stays byte for byte the default's.
//!
//! One difference, on purpose: every value's control characters are escaped ([`super::escape`]), so that
//! a client's text (a user name, a tag) can never end the line and forge another. The default visitor
//! writes `%` values raw, and escapes only some control characters, in messages and errors only. Lines
//! without control characters are unchanged.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

use super::escape::Escaped;

/// The text format's [`FormatFields`] (see the module comment).
#[derive(Clone, Copy, Debug, Default)]
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = TextVisitor {
            plain: !writer.has_ansi_escapes(),
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct TextVisitor<'a> {
    writer: Writer<'a>,
    /// No colour codes: the fast path writes what the default visitor would.
    plain: bool,
    /// No field written yet (the next one is not preceded by a space).
    is_empty: bool,
    result: fmt::Result,
}

impl TextVisitor<'_> {
    /// Lets the default visitor write one field, carrying the spacing state over. Every field handed here
    /// is one the default visitor writes (it skips only `log.` fields, which are never handed over).
    fn delegate(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        self.is_empty = false;
    }

    /// Writes ` name=<sign><text>` (no space before the first field).
    fn write_plain(&mut self, name: &str, sign: &str, text: &str) {
        let w = &mut self.writer;
        let pad = if self.is_empty { "" } else { " " };
        self.is_empty = false;
        self.result = w
            .write_str(pad)
            .and_then(|()| w.write_str(name))
            .and_then(|()| w.write_char('='))
            .and_then(|()| w.write_str(sign))
            .and_then(|()| w.write_str(text));
    }

    /// An integer field: a plain one as `sign` and the decimal digits of `magnitude`, written straight
    /// into the line; any other through `record_debug` (`value`), as tracing writes it.
    fn record_integer(
        &mut self,
        field: &Field,
        sign: &str,
        magnitude: u64,
        value: &dyn fmt::Debug,
    ) {
        if self.result.is_err() {
            return;
        }
        if !self.is_plain(field.name()) || field.name().starts_with("log.") {
            return self.record_debug(field, value);
        }
        let mut buf = [0u8; 20];
        let text = decimal(magnitude, &mut buf);
        self.write_plain(field.name(), sign, text);
    }

    /// Whether `name` is written as a plain `name=value` by the default visitor.
    fn is_plain(&self, name: &str) -> bool {
        self.plain && name != "message" && !name.starts_with("r#")
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        if field.name() == "message" {
            // As the default visitor writes a message: its text, unquoted (here escaped).
            self.delegate(|v| v.record_debug(field, &Escaped(format_args!("{value}"))));
        } else {
            // The default visitor writes a string field quoted, as its `Debug`.
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() {
            return;
        }
        // The default visitor's text for an error and its sources (coloured with colours on), from a
        // copy of the chain whose messages are escaped. Errors are rare: the copy costs nothing that
        // matters.
        let escaped = EscapedError::of(value);
        self.delegate(|v| v.record_error(field, &escaped));
    }

    // Numbers (the access line's status and byte counts) in decimal, as their `Debug` writes them.
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_integer(field, "", value, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        let sign = if value < 0 { "-" } else { "" };
        self.record_integer(field, sign, value.unsigned_abs(), &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Log metadata carried by `log` records: the default visitor skips these.
        if name.starts_with("log.") {
            return;
        }
        if !self.is_plain(name) {
            return self.delegate(|v| v.record_debug(field, &Escaped(value)));
        }
        let w = &mut self.writer;
        let pad = if self.is_empty { "" } else { " " };
        self.is_empty = false;
        self.result = w
            .write_str(pad)
            .and_then(|()| w.write_str(name))
            .and_then(|()| w.write_char('='))
            .and_then(|()| write!(w, "{:?}", Escaped(value)));
    }
}

/// A copy of an error chain with each message escaped ([`super::escape`]).
#[derive(Debug)]
struct EscapedError {
    message: String,
    source: Option<Box<EscapedError>>,
}

impl EscapedError {
    fn of(error: &(dyn std::error::Error + 'static)) -> EscapedError {
        let mut message = String::new();
        super::escape::push_escaped(&mut message, &error.to_string());
        EscapedError {
            message,
            source: error.source().map(|s| Box::new(EscapedError::of(s))),
        }
    }
}

impl fmt::Display for EscapedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EscapedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// `v` in decimal, written into the end of `buf`.
pub(super) fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[at..]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use std::io;

    use tracing_subscriber::fmt::format::DefaultFields;

    use super::*;
    use crate::logging::captured::Captured;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] io::Error);

    /// The same events through the default fields and through [`TextFields`], as text.
    fn both(ansi: bool, log: fn()) -> (String, String) {
        let default = Captured::default();
        let fast = Captured::default();
        let subscriber = |out: Captured, fields: bool| {
            let b = tracing_subscriber::fmt()
                .with_writer(out)
                .with_ansi(ansi)
                .without_time()
                .with_max_level(tracing::Level::TRACE);
            if fields {
                tracing::Dispatch::new(b.fmt_fields(TextFields).finish())
            } else {
                tracing::Dispatch::new(b.fmt_fields(DefaultFields::new()).finish())
            }
        };
        tracing::dispatcher::with_default(&subscriber(default.clone(), false), log);
        tracing::dispatcher::with_default(&subscriber(fast.clone(), true), log);
        let text = |b: Captured| b.take_text();
        (text(default), text(fast))
    }

    fn events() {
        let path = "/v2/a b/manifests/latest";
        tracing::info!(
            request_id = %"0123abcd",
            method = %"GET",
            path = %path,
            repository = %"",
            status = 200u16,
            bytes_in = 0u64,
            signed = -5i64,
            zero = 0u64,
            max = u64::MAX,
            min = i64::MIN,
            ok = true,
            ratio = 0.5f64,
            quoted = "two words",
            debug = ?Some("x"),
            duration_ms = %format_args!("{:.1}", 1.25),
            "request"
        );
        tracing::warn!(
            error = &Outer(io::Error::other("inner")) as &dyn std::error::Error,
            "failed: {}",
            42
        );
        tracing::error!(r#type = "raw", "message with \u{1b}[31m escape");
        tracing::debug!(only = 1, "");
        let span = tracing::info_span!("span", repo = "team/app", n = 3);
        span.in_scope(|| tracing::info!(inner = %"x", "in a span"));
        tracing::info!(first = 1);
    }

    #[test]
    fn text_is_that_of_the_default_fields() {
        for ansi in [false, true] {
            let (default, fast) = both(ansi, events);
            assert!(default.lines().count() >= 6, "{default}");
            assert_eq!(fast, default, "ansi {ansi}");
        }
    }

    /// A value a client chose cannot end the line or drive a terminal, whichever way it is logged: as a
    /// `%` field (a failed login's user name), a string, a `?` field, in the message, in an error.
    #[test]
    fn client_text_stays_on_its_line() {
        for ansi in [false, true] {
            let (_, fast) = both(ansi, || {
                tracing::info!(user = %"alice\n2026-12-06T00:00:00.000000Z  INFO berth: admin logged in\u{1b}[2J\r", "authentication failed");
                tracing::info!(user = "x\ny", tag = ?"a\u{1b}b", "tag {}", "v1\nforged");
                tracing::warn!(
                    error = &Outer(io::Error::other("inner\nforged")) as &dyn std::error::Error,
                    "e"
                );
                tracing::warn!(
                    error = &io::Error::other("lone\u{85}\nforged") as &dyn std::error::Error,
                    "e"
                );
            });
            assert_eq!(fast.lines().count(), 4, "ansi {ansi}: {fast}");
            assert!(!fast.contains('\r') && !fast.contains('\u{85}'), "{fast:?}");
            if !ansi {
                assert!(fast.contains(r"user=alice\n2026-12-06T00:00:00.000000Z  INFO berth: admin logged in\x1b[2J\r authentication failed") || fast.contains(r"authentication failed user=alice\n2026-12-06T00:00:00.000000Z  INFO berth: admin logged in\x1b[2J\r"), "{fast}");
                assert!(!fast.contains('\u{1b}'), "{fast:?}");
            }
        }
    }

    #[test]
    fn an_access_line_reads_as_before() {
        let (default, fast) = both(false, || {
            tracing::info!(a = %"x", b = 1u64, c = %"", "request");
        });
        assert!(fast.ends_with("request a=x b=1 c=\n"), "{fast}");
        assert_eq!(fast, default);
    }
}
