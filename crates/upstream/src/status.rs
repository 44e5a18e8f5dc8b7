//! What an upstream's final status means to the cache: the one place statuses become [`UpstreamError`]s.
//!
//! | status | outcome |
//! | --- | --- |
//! | 2xx | the response, to be read |
//! | 404 | `Ok(None)`: the upstream does not have it |
//! | 429 | `RateLimited`, with `Retry-After` (seconds or an HTTP date) when sent |
//! | 401, 403 (after the token dance) | `Denied` |
//! | 5xx | `Unavailable` |
//! | anything else (3xx left over, other 4xx) | `Protocol` |

use std::time::{Duration, SystemTime};

use hyper::header::{HeaderMap, RETRY_AFTER};
use hyper::{Response, StatusCode};
use registry::proxy::UpstreamError;

/// Sorts a final response (redirects already followed, the token dance already done).
pub(crate) fn classify<B>(
    resp: Response<B>,
    what: &str,
) -> Result<Option<Response<B>>, UpstreamError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(Some(resp));
    }
    Err(match status {
        StatusCode::NOT_FOUND => return Ok(None),
        StatusCode::TOO_MANY_REQUESTS => UpstreamError::RateLimited {
            retry_after: retry_after(resp.headers(), SystemTime::now()),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            UpstreamError::Denied(format!("{what}: the upstream answered {status}"))
        }
        s if s.is_server_error() => {
            UpstreamError::Unavailable(format!("{what}: the upstream answered {status}"))
        }
        _ => UpstreamError::Protocol(format!("{what}: unexpected status {status}")),
    })
}

/// `Retry-After` as a delay from `now`: delta-seconds or an HTTP date (a date in the past is zero).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Mon, 23 Nov 2026 03:00:00 GMT").unwrap();
        let cases: &[(Option<&str>, Option<u64>)] = &[
            (Some("120"), Some(120)),
            (Some(" 0 "), Some(0)),
            (Some("Mon, 23 Nov 2026 03:00:30 GMT"), Some(30)),
            (Some("Mon, 23 Nov 2026 02:00:00 GMT"), Some(0)),
            (Some("soon"), None),
            (Some("-5"), None),
            (None, None),
        ];
        for (value, want) in cases {
            let mut h = HeaderMap::new();
            if let Some(v) = value {
                h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(
                retry_after(&h, now),
                want.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }

    #[test]
    fn statuses() {
        let outcome = |code: u16| {
            let resp = Response::builder().status(code).body(()).unwrap();
            match classify(resp, "t") {
                Ok(Some(_)) => "ok",
                Ok(None) => "none",
                Err(UpstreamError::RateLimited { .. }) => "rate",
                Err(UpstreamError::Denied(_)) => "denied",
                Err(UpstreamError::Unavailable(_)) => "unavailable",
                Err(UpstreamError::Protocol(_)) => "protocol",
            }
        };
        let cases = [
            (200, "ok"),
            (206, "ok"),
            (404, "none"),
            (429, "rate"),
            (401, "denied"),
            (403, "denied"),
            (500, "unavailable"),
            (502, "unavailable"),
            (503, "unavailable"),
            (400, "protocol"),
            (302, "protocol"),
            (418, "protocol"),
        ];
        for (code, want) in cases {
            assert_eq!(outcome(code), want, "{code}");
        }
    }
}
