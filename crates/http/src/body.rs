//! Request bodies, as the registry takes them: a [`ByteStream`] of bounded chunks, never collected whole
//! (manifests excepted, and only up to the configured limit).
//!
//! Who owns which rule about a body:
//! - a blob chunk's size against what it declared (Content-Length or Content-Range), and a body that
//!   breaks off: the registry (`registry::upload`), which sees every byte as it is written and answers
//!   SIZE_INVALID or BLOB_UPLOAD_INVALID itself. Here a chunk's body is only passed on, a transport failure
//!   as the stream's `io::Error` (which the blob store hands back as the source's failure);
//! - a manifest's size against its Content-Length and the size limit: [`read_limited`], since the
//!   registry receives a manifest as bytes.

use std::io;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use registry::{ByteStream, Error};

/// The body as a [`ByteStream`]. A body that cannot be read (the connection broke, a framing error)
/// ends the stream with an error of kind `ConnectionAborted`.
pub fn stream(body: Body) -> ByteStream {
    Box::pin(
        body.into_data_stream()
            .map_err(|e| io::Error::new(io::ErrorKind::ConnectionAborted, e)),
    )
}

/// Reads a whole (small) body, refusing more than `limit` bytes with `ManifestTooLarge` and a body whose
/// size is not its Content-Length (`declared`) with `SizeInvalid`. Only `limit + 1` bytes are ever held,
/// whatever the client sends.
pub async fn read_limited(body: Body, declared: Option<u64>, limit: usize) -> Result<Bytes, Error> {
    if let Some(size) = declared.filter(|&d| d > limit as u64) {
        return Err(Error::ManifestTooLarge { size, limit });
    }
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Error::BlobUploadInvalid(format!("reading the request body failed: {e}"))
        })?;
        buf.extend_from_slice(&chunk);
        if buf.len() > limit {
            return Err(Error::ManifestTooLarge {
                size: buf.len() as u64,
                limit,
            });
        }
        if let Some(declared) = declared.filter(|&d| buf.len() as u64 > d) {
            return Err(longer_than(declared));
        }
    }
    match declared {
        Some(declared) if (buf.len() as u64) < declared => Err(Error::SizeInvalid(format!(
            "the body ended after {} of the {declared} bytes its Content-Length declared",
            buf.len()
        ))),
        _ => Ok(buf.freeze()),
    }
}

fn longer_than(declared: u64) -> Error {
    Error::SizeInvalid(format!(
        "the body is longer than its Content-Length of {declared} bytes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn drain(s: &mut ByteStream) -> (u64, Option<io::ErrorKind>) {
        let mut n = 0;
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => n += b.len() as u64,
                Err(e) => return (n, Some(e.kind())),
            }
        }
        (n, None)
    }

    #[tokio::test]
    async fn a_body_passes_whole_and_a_broken_one_ends_in_an_error() {
        let mut s = stream(Body::from("hello"));
        assert_eq!(drain(&mut s).await, (5, None));
        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("connection reset")),
        ]);
        let mut s = stream(Body::from_stream(broken));
        assert_eq!(
            drain(&mut s).await,
            (3, Some(io::ErrorKind::ConnectionAborted))
        );
    }

    #[tokio::test]
    async fn read_limited_refuses_large_bodies_declared_or_not() {
        let got = read_limited(Body::from("12345"), Some(5), 5).await.unwrap();
        assert_eq!(&got[..], b"12345");
        assert!(matches!(
            read_limited(Body::from("123456"), Some(6), 5).await,
            Err(Error::ManifestTooLarge { size: 6, limit: 5 })
        ));
        assert!(matches!(
            read_limited(Body::from("123456"), None, 5).await,
            Err(Error::ManifestTooLarge { limit: 5, .. })
        ));
    }

    #[tokio::test]
    async fn read_limited_holds_a_manifest_to_its_content_length() {
        assert!(matches!(
            read_limited(Body::from("123"), Some(4), 5).await,
            Err(Error::SizeInvalid(_))
        ));
        assert!(matches!(
            read_limited(Body::from("1234"), Some(3), 5).await,
            Err(Error::SizeInvalid(_))
        ));
        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(io::Error::other("connection reset")),
        ]);
        assert!(matches!(
            read_limited(Body::from_stream(broken), None, 5).await,
            Err(Error::BlobUploadInvalid(_))
        ));
    }
}
