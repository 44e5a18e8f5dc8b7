//! The access log's line: what it says of one request ([`AccessRecord`]), and where it goes.
//!
//! By default the line is a `tracing` event at `info`, target [`TARGET`], written by whatever subscriber
//! the process set up. A binary may [`install`] an [`AccessLog`] that writes the very same line itself:
//! tracing's event dispatch and the formatter around the line's eleven fields were ~16% of the
//! instructions of a cached manifest HEAD, the largest single cost of a small request (callgrind,
//! bench/results/2026-11-23-profile.md). An installed writer must produce byte for byte what the
//! subscriber would (berth's logging holds itself to that with a test), or decline a line, which then goes
//! through tracing as before.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

/// The target of the access-log event: the module that always wrote it, so that log filters naming it
/// (`accesslog.disabled`, `RUST_LOG=berth_http::middleware=...`) keep working.
pub const TARGET: &str = "berth_http::middleware";

/// Everything the access log says of one request, borrowed from the request and response.
#[derive(Clone, Copy, Debug)]
pub struct AccessRecord<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    /// The kind of endpoint (`manifest`, `blob`, ...), for counting by route without parsing paths.
    pub route: &'a str,
    pub path: &'a str,
    /// The query string with secrets masked ([`masked_query`]); empty when there is none.
    pub query: &'a str,
    /// Empty when the request named none.
    pub repository: &'a str,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Empty when the request was not authenticated.
    pub user: &'a str,
    /// Empty when absent or not visible ASCII.
    pub user_agent: &'a str,
    pub duration: Duration,
}

impl AccessRecord<'_> {
    /// Writes the line: through the installed [`AccessLog`] when there is one and it takes the line,
    /// otherwise as a tracing event ([`emit`](Self::emit)).
    pub fn log(&self) {
        if let Some(log) = INSTALLED.get()
            && log.write(self)
        {
            return;
        }
        self.emit();
    }

    /// The line as a tracing event at `info`, target [`TARGET`], message `request`: the definition of
    /// the line, which an installed [`AccessLog`] reproduces.
    pub fn emit(&self) {
        tracing::info!(
            target: TARGET,
            request_id = %self.request_id,
            method = %self.method,
            route = %self.route,
            path = %self.path,
            query = %self.query,
            repository = %self.repository,
            status = self.status,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            user = %self.user,
            user_agent = %self.user_agent,
            duration_ms = %self.duration_ms(),
            "request"
        );
    }

    /// The duration as the line writes it: milliseconds with one decimal.
    pub fn duration_ms(&self) -> impl fmt::Display + use<> {
        Millis(self.duration)
    }

    /// The duration in tenths of a millisecond, rounded as [`duration_ms`](Self::duration_ms) writes it
    /// (`duration_ms` is this number with a point before its last digit).
    pub fn duration_tenths_ms(&self) -> u64 {
        Millis(self.duration).tenths()
    }
}

/// Words that mark a query parameter as a secret, wherever they appear in its (decoded, lowercased)
/// name: `access_token`, `password`, `X-Amz-Signature`, `X-Amz-Credential`, `api_key`, ... The API
/// itself takes none, but clients and proxies put credentials in URLs, and a log is read by more people
/// than the registry's users.
const SECRET_WORDS: [&str; 7] = [
    "token",
    "passw",
    "secret",
    "signature",
    "credential",
    "key",
    "auth",
];

/// The query string `raw` as the access line shows it: as sent, except the value of every parameter
/// whose name holds a [secret word](SECRET_WORDS), which becomes `REDACTED`. Names are compared decoded
/// (`%74oken` is `token`), by the same decoding the endpoint parser applies. Borrowed when nothing is
/// masked, which is every request of the API.
pub fn masked_query(raw: &str) -> Cow<'_, str> {
    let secret = |key: &str| {
        let decoded = crate::endpoint::percent_decode(&key.replace('+', " "))
            .map_or_else(|| key.to_ascii_lowercase(), |k| k.to_ascii_lowercase());
        SECRET_WORDS.iter().any(|w| decoded.contains(w))
    };
    let pairs = || {
        raw.split('&')
            .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
    };
    if !pairs().any(|(k, v)| !v.is_empty() && secret(k)) {
        return Cow::Borrowed(raw);
    }
    let masked: Vec<String> = raw
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !v.is_empty() && secret(k) => format!("{k}=REDACTED"),
            _ => kv.to_string(),
        })
        .collect();
    Cow::Owned(masked.join("&"))
}

/// Writes access-log lines instead of the tracing event (see the module comment).
pub trait AccessLog: Send + Sync + 'static {
    /// Writes `record`'s line, or leaves it out where the subscriber's filter would; `false` declines the
    /// line (it is then emitted as a tracing event).
    fn write(&self, record: &AccessRecord<'_>) -> bool;
}

/// The process's access-log writer. Process-wide like the tracing subscriber it stands in for.
static INSTALLED: OnceLock<Box<dyn AccessLog>> = OnceLock::new();

/// Installs the process's [`AccessLog`]; `false` if one was installed already (the first one stays).
pub fn install(log: Box<dyn AccessLog>) -> bool {
    INSTALLED.set(log).is_ok()
}

/// A duration in milliseconds with one decimal, as `{:.1}` of the float printed it, from integer
/// arithmetic: formatting a float was a visible share of the line's cost. An exact tie (a duration of
/// n.n5 ms to the nanosecond) rounds up; the float rounded those either way, by its binary error.
struct Millis(Duration);

impl Millis {
    fn tenths(&self) -> u64 {
        const TENTH: u128 = 100_000; // nanoseconds in a tenth of a millisecond
        let nanos = self.0.as_nanos();
        let (tenths, rest) = (nanos / TENTH, nanos % TENTH);
        let tenths = if rest >= TENTH / 2 {
            tenths + 1
        } else {
            tenths
        };
        // A u64 of tenths of a millisecond is 58 million years.
        u64::try_from(tenths).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = self.tenths();
        write!(f, "{}.{}", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_queries_are_masked() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let kept = [
            "".to_string(),
            "n=10&last=a%2Fb".to_string(),
            format!("mount={d}&from=team/app"),
            format!("%6Dount={d}&%66rom=x"),
            "ns=docker.io".to_string(),
            "token=".to_string(),
        ];
        for q in &kept {
            assert!(matches!(masked_query(q), Cow::Borrowed(_)), "{q}");
        }
        let masked = [
            ("access_token=abc.def&n=1", "access_token=REDACTED&n=1"),
            ("n=1&password=hunter2", "n=1&password=REDACTED"),
            ("%74oken=abc", "%74oken=REDACTED"),
            (
                "X-Amz-Signature=ff&X-Amz-Credential=AK%2F1",
                "X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED",
            ),
            (
                "API_KEY=k&last=x&Authorization=Basic%20eA",
                "API_KEY=REDACTED&last=x&Authorization=REDACTED",
            ),
        ];
        for (q, want) in masked {
            assert_eq!(masked_query(q), want);
        }
    }

    #[test]
    fn millis_print_as_the_float_did() {
        let nanos = [
            0,
            1,
            49_999,
            50_001,
            449_999,
            999_999,
            1_000_000,
            1_234_567,
            12_345_678_901,
        ];
        for n in nanos {
            let d = Duration::from_nanos(n);
            assert_eq!(
                Millis(d).to_string(),
                format!("{:.1}", d.as_secs_f64() * 1000.0),
                "{n} ns"
            );
        }
        // Exact ties round up.
        assert_eq!(Millis(Duration::from_nanos(50_000)).to_string(), "0.1");
        assert_eq!(Millis(Duration::from_nanos(250_000)).to_string(), "0.3");
        // And over a sweep of ordinary request durations (ties left out).
        for micros in (0..200_000).step_by(7).filter(|us| us % 100 != 50) {
            let d = Duration::from_micros(micros);
            assert_eq!(
                Millis(d).to_string(),
                format!("{:.1}", d.as_secs_f64() * 1000.0),
                "{micros} us"
            );
        }
    }
}
