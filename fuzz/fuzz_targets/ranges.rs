//! `berth_http::headers`: `Range` (blob reads), `Content-Range` (upload chunks) and `Content-Length`, and
//! `registry::ByteRange::resolve`, which turns a parsed range into bytes of a blob.
//!
//! The input is an 8-byte blob size (little-endian; 0 when shorter) and the header's value. Checked: no
//! panic; a range that parses prints back (`bytes=a-b`, `a-b`) as one that parses to itself; a resolved
//! range is non-empty, inside the blob and inside what was asked; a refused `Content-Range` or
//! `Content-Length` is the client's error (BLOB_UPLOAD_INVALID, SIZE_INVALID) with a short message,
//! whatever its length.

#![no_main]

use berth_http::headers::{content_length, parse_blob_range, parse_content_range, upload_range};
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use registry::{ByteRange, Error};

/// The longest error message a header may produce: the value is clipped to 256 characters, each at most
/// 10 bytes once escaped.
const MAX_MESSAGE: usize = 256 * 10 + 64;

fuzz_target!(|data: &[u8]| {
    let (size, value) = match data.split_first_chunk::<8>() {
        Some((size, rest)) => (u64::from_le_bytes(*size), rest),
        None => (0, data),
    };

    if let Ok(header) = HeaderValue::from_bytes(value) {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, header);
        match content_length(&headers) {
            Ok(Some(n)) => {
                // Digits only (leading zeros allowed), and their value.
                assert!(value.iter().all(u8::is_ascii_digit), "{value:?}");
                let digits = std::str::from_utf8(value).unwrap_or_default();
                assert_eq!(digits.parse::<u64>().ok(), Some(n));
            }
            Ok(None) => panic!("a Content-Length header read as none"),
            Err(Error::SizeInvalid(m)) => assert!(m.len() <= MAX_MESSAGE, "{} bytes", m.len()),
            Err(e) => panic!("{e:?}"),
        }
    }

    let Ok(raw) = std::str::from_utf8(value) else {
        return;
    };

    if let Some(range) = parse_blob_range(raw) {
        let written = match range {
            ByteRange::FromTo(a, b) => {
                assert!(a <= b, "{raw:?}");
                format!("bytes={a}-{b}")
            }
            ByteRange::From(a) => format!("bytes={a}-"),
            ByteRange::Last(n) => format!("bytes=-{n}"),
        };
        assert_eq!(
            parse_blob_range(&written),
            Some(range),
            "{raw:?} -> {written:?}"
        );
        match range.resolve(size) {
            Ok(bytes) => {
                assert!(
                    bytes.start < bytes.end && bytes.end <= size,
                    "{range:?} in {size}: {bytes:?}"
                );
                match range {
                    ByteRange::FromTo(a, b) => assert!(bytes.start == a && bytes.end - 1 <= b),
                    ByteRange::From(a) => assert_eq!(bytes, a..size),
                    ByteRange::Last(n) => {
                        assert!(bytes.end == size && bytes.end - bytes.start <= n)
                    }
                }
            }
            Err(Error::RangeNotSatisfiable { size: s }) => assert_eq!(s, size),
            Err(e) => panic!("{e:?}"),
        }
    }

    match parse_content_range(raw) {
        Ok((start, end)) => {
            assert!(start <= end, "{raw:?}");
            assert_eq!(
                parse_content_range(&format!("{start}-{end}")).ok(),
                Some((start, end))
            );
            assert_eq!(
                parse_content_range(&format!("bytes {start}-{end}/*")).ok(),
                Some((start, end))
            );
        }
        Err(Error::BlobUploadInvalid(m)) => assert!(m.len() <= MAX_MESSAGE, "{} bytes", m.len()),
        Err(e) => panic!("{e:?}"),
    }

    let header = upload_range(size);
    let text = header.to_str().expect("visible ASCII");
    assert_eq!(text, format!("0-{}", size.saturating_sub(1)));
});
