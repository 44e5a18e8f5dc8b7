//! The headers the API speaks: names the `http` crate does not define, and parsers for the request
//! headers whose grammar the registry depends on (`Range`, `Content-Range`, `Content-Length`).
//!
//! Parsers are strict on purpose: a header that does not parse is an error the client sees, never a
//! silently ignored header (which would turn a ranged read into a whole-blob read, or a chunk at the wrong
//! offset into corruption caught only at the digest check).

use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use bytes::Bytes;
use oci::Digest;
use registry::{ByteRange, Error};

use crate::endpoint::clip;

pub use axum::http::header::RANGE as RANGE_NAME;

pub const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
pub const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
pub const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A header value built from our own data (digests, validated names, numbers), which is always visible
/// ASCII. Should that ever not hold, the header is sent empty and the fact logged, rather than failing a
/// response that is otherwise right.
pub fn value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "header value is not visible ASCII; sent empty");
        HeaderValue::from_static("")
    })
}

/// `Docker-Content-Digest: <digest>` and `ETag: "<digest>"` from one buffer: the digest's value is a
/// slice of the ETag's, with no formatting pass (they were two `format!`s of the digest per read).
pub fn digest_and_etag(digest: &Digest) -> (HeaderValue, HeaderValue) {
    let (algorithm, hex) = (digest.algorithm().as_str(), digest.hex());
    let mut etag = Vec::with_capacity(algorithm.len() + hex.len() + 3);
    etag.push(b'"');
    etag.extend_from_slice(algorithm.as_bytes());
    etag.push(b':');
    etag.extend_from_slice(hex.as_bytes());
    etag.push(b'"');
    let etag = Bytes::from(etag);
    let quoted = etag.slice(1..etag.len() - 1);
    // A digest is validated lowercase hex after a known algorithm: always a visible-ASCII value.
    let header = |b: Bytes| {
        HeaderValue::from_maybe_shared(b).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "digest header is not visible ASCII; sent empty");
            HeaderValue::from_static("")
        })
    };
    (header(quoted), header(etag))
}

/// The `Range` of an upload holding `offset` bytes: `0-<offset-1>`. With no bytes yet registry:2 sends
/// `0-0`, and clients (containerd among them) parse that, so berth does the same.
pub fn upload_range(offset: u64) -> HeaderValue {
    value(format!("0-{}", offset.saturating_sub(1)))
}

/// A request's `Range: bytes=a-b | bytes=a- | bytes=-n`. `None` for anything else, including several
/// ranges, which berth does not serve (the caller answers 416).
pub fn parse_blob_range(raw: &str) -> Option<ByteRange> {
    let spec = raw.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    match (start.trim(), end.trim()) {
        ("", n) => Some(ByteRange::Last(number(n)?)),
        (a, "") => Some(ByteRange::From(number(a)?)),
        (a, b) => {
            let (a, b) = (number(a)?, number(b)?);
            (a <= b).then_some(ByteRange::FromTo(a, b))
        }
    }
}

/// A decimal number of bytes. `u64::from_str` alone would also take a leading `+`, which no header
/// grammar here allows.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// An upload chunk's `Content-Range: start-end` (inclusive). Also accepted: a `bytes ` or `bytes=` unit
/// prefix and a `/total` suffix, which some clients send, when the total is `*` or a number the range
/// fits in (RFC 9110's grammar); anything else after the range is refused.
pub fn parse_content_range(raw: &str) -> Result<(u64, u64), Error> {
    let bad = || Error::BlobUploadInvalid(format!("malformed Content-Range {:?}", clip(raw)));
    let mut spec = raw.trim();
    for prefix in ["bytes ", "bytes="] {
        if let Some(rest) = spec.strip_prefix(prefix) {
            spec = rest.trim_start();
        }
    }
    let (spec, total) = match spec.split_once('/') {
        Some((range, total)) => (range, Some(total)),
        None => (spec, None),
    };
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let start = number(start.trim()).ok_or_else(bad)?;
    let end = number(end.trim()).ok_or_else(bad)?;
    if end < start {
        return Err(bad());
    }
    match total {
        None | Some("*") => {}
        Some(total) => match number(total) {
            Some(total) if total > end => {}
            _ => return Err(bad()),
        },
    }
    Ok((start, end))
}

/// The request's `Content-Length`, if it sent one.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let Some(v) = headers.get(CONTENT_LENGTH) else {
        return Ok(None);
    };
    v.to_str().ok().and_then(number).map(Some).ok_or_else(|| {
        let shown = String::from_utf8_lossy(v.as_bytes());
        Error::SizeInvalid(format!("malformed Content-Length {:?}", clip(&shown)))
    })
}

/// A request header as text, if present and visible ASCII.
pub fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use oci::DigestAlgorithm;

    use super::*;

    #[test]
    fn digest_and_etag_are_those_of_the_digest() {
        for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let d = Digest::of(algorithm, b"manifest");
            let (digest, etag) = digest_and_etag(&d);
            assert_eq!(digest, d.to_string().as_str());
            assert_eq!(etag, format!("\"{d}\"").as_str());
        }
    }

    #[test]
    fn blob_ranges() {
        let cases: &[(&str, Option<ByteRange>)] = &[
            ("bytes=0-9", Some(ByteRange::FromTo(0, 9))),
            ("bytes=5-5", Some(ByteRange::FromTo(5, 5))),
            ("bytes=10-", Some(ByteRange::From(10))),
            ("bytes=-3", Some(ByteRange::Last(3))),
            (" bytes=1-2 ", Some(ByteRange::FromTo(1, 2))),
            ("bytes=9-0", None),
            ("bytes=0-1,3-4", None),
            ("bytes=-", None),
            ("bytes=a-b", None),
            ("bytes=+1-2", None),
            ("bytes 0-9", None),
            ("items=0-9", None),
            ("0-9", None),
            ("bytes=99999999999999999999-", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_blob_range(raw), *want, "{raw:?}");
        }
    }

    #[test]
    fn content_ranges() {
        let ok: &[(&str, (u64, u64))] = &[
            ("0-99", (0, 99)),
            ("bytes 100-199", (100, 199)),
            ("bytes=5-5", (5, 5)),
            ("bytes 0-9/10", (0, 9)),
            ("0-9/*", (0, 9)),
        ];
        for (raw, want) in ok {
            assert_eq!(parse_content_range(raw).ok(), Some(*want), "{raw:?}");
        }
        for raw in [
            "",
            "-",
            "5-",
            "-5",
            "9-0",
            "a-b",
            "0-+1",
            "bytes */10",
            // The total must hold the range, and be a number or `*`.
            "0-4/1",
            "0-4/4",
            "bytes 5-9/*garbage",
            "5-9/ten",
            "5-9/",
        ] {
            assert!(
                matches!(parse_content_range(raw), Err(Error::BlobUploadInvalid(_))),
                "{raw:?}"
            );
        }
    }

    /// Found by the `ranges` fuzz target (fuzz/corpus/ranges/long-content-range: 205 bytes, control
    /// characters around a dash, made a 1,076-byte message): a malformed value was echoed whole in the
    /// error, so a client could make the error body as large as the header limit. Echoes are clipped to
    /// 256 characters, as the endpoint parser's are: at most 10 bytes each once escaped.
    #[test]
    fn malformed_values_are_echoed_clipped() {
        let bound = 256 * 10 + 64;
        // The found value's shape, ten times longer.
        let found = format!("{}-{}1", "\u{18}".repeat(1090), "\u{4}".repeat(670));
        for raw in [
            found,
            "x".repeat(100_000),
            format!("0-{}", "9".repeat(50_000)),
        ] {
            match parse_content_range(&raw) {
                Err(Error::BlobUploadInvalid(m)) => assert!(m.len() <= bound, "{} bytes", m.len()),
                other => panic!("{other:?}"),
            }
        }
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_LENGTH,
            HeaderValue::try_from("7".repeat(100_000)).unwrap(),
        );
        match content_length(&h) {
            Err(Error::SizeInvalid(m)) => assert!(m.len() <= bound, "{} bytes", m.len()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn upload_ranges_follow_registry2() {
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(1), "0-0");
        assert_eq!(upload_range(100), "0-99");
    }

    #[test]
    fn content_lengths() {
        let mut h = HeaderMap::new();
        assert!(matches!(content_length(&h), Ok(None)));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("42"));
        assert!(matches!(content_length(&h), Ok(Some(42))));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("-1"));
        assert!(matches!(content_length(&h), Err(Error::SizeInvalid(_))));
    }
}
