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
//!
//! A request answered before its body is read whole (a full disk, a manifest over the limit, an
//! unknown session) is answered only after what is left of the body is read away, within
//! [`DRAIN_BYTES`] and [`DRAIN_TIME`] ([`keep_unread`]): a client sends the whole body before it reads
//! the answer, and a connection closed on unread bytes is reset, so without the drain the client sees
//! "broken pipe" instead of the error (Go's servers, registry:2's among them, drain too, less far).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use http_body::{Frame, SizeHint};
use registry::{ByteStream, Error};
use tokio::sync::oneshot;

/// The most of an unread body read away before the answer.
pub const DRAIN_BYTES: u64 = 16 << 20;
/// The longest an unread body is read before the answer.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The request with its body wrapped so that, dropped unfinished, the body is handed back to
/// [`Unread::drain`]. A body known to be empty is left as it is.
pub fn keep_unread(req: Request) -> (Request, Unread) {
    let (tx, rx) = oneshot::channel();
    if req.body().is_end_stream() {
        return (req, Unread(rx));
    }
    let req = req.map(|inner| {
        Body::new(Returning {
            inner: Some(inner),
            unread: Some(tx),
        })
    });
    (req, Unread(rx))
}

/// What the handler left of a request's body, once the request is dropped.
pub struct Unread(oneshot::Receiver<Body>);

impl Unread {
    /// Reads away what is left of the body, within [`DRAIN_BYTES`] and [`DRAIN_TIME`]; nothing when
    /// the body was read to its end.
    pub async fn drain(mut self) {
        let Ok(rest) = self.0.try_recv() else {
            return;
        };
        let mut rest = rest.into_data_stream();
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            let mut read = 0u64;
            while let Some(Ok(chunk)) = rest.next().await {
                read += chunk.len() as u64;
                if read > DRAIN_BYTES {
                    break;
                }
            }
        })
        .await;
    }
}

/// A body that hands itself back through `unread` when dropped before its end.
struct Returning {
    inner: Option<Body>,
    unread: Option<oneshot::Sender<Body>>,
}

impl http_body::Body for Returning {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = std::task::ready!(Pin::new(inner).poll_frame(cx));
        if !matches!(polled, Some(Ok(_))) {
            // The end, or a broken body: nothing is left to read away.
            self.inner = None;
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if let (Some(inner), Some(tx)) = (self.inner.take(), self.unread.take()) {
            let _ = tx.send(inner);
        }
    }
}

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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    /// A body of `chunks` chunks that counts those read from it.
    fn counted_body(chunks: usize, read: &Arc<AtomicUsize>) -> Body {
        let read = read.clone();
        Body::from_stream(futures_util::stream::iter((0..chunks).map(move |_| {
            read.fetch_add(1, Ordering::SeqCst);
            Ok::<_, io::Error>(Bytes::from_static(b"0123456789"))
        })))
    }

    #[tokio::test]
    async fn a_body_dropped_unread_is_read_away_and_a_read_one_is_not() {
        let read = Arc::new(AtomicUsize::new(0));
        let req = Request::new(counted_body(5, &read));
        let (req, unread) = keep_unread(req);
        // The handler reads one chunk and gives up (a write failed).
        let mut s = stream(req.into_body());
        assert_eq!(s.next().await.unwrap().unwrap().len(), 10);
        drop(s);
        assert_eq!(read.load(Ordering::SeqCst), 1);
        unread.drain().await;
        assert_eq!(read.load(Ordering::SeqCst), 5, "the rest is read away");

        // Read to its end: nothing is handed back, the size and end are the body's own.
        let req = Request::new(Body::from("hello"));
        let (req, unread) = keep_unread(req);
        assert_eq!(req.body().size_hint().exact(), Some(5));
        let mut s = stream(req.into_body());
        assert_eq!(drain(&mut s).await, (5, None));
        drop(s);
        let Unread(mut rx) = unread;
        assert!(
            rx.try_recv().is_err(),
            "a body read to its end is not handed back"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reading_away_stops_at_its_bounds() {
        // Bytes without end: the drain stops past DRAIN_BYTES.
        let read = Arc::new(AtomicUsize::new(0));
        let counter = read.clone();
        let endless = Body::from_stream(futures_util::stream::repeat_with(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, io::Error>(Bytes::from(vec![0u8; 1 << 20]))
        }));
        let (req, unread) = keep_unread(Request::new(endless));
        drop(req);
        unread.drain().await;
        assert_eq!(read.load(Ordering::SeqCst) as u64, (DRAIN_BYTES >> 20) + 1);
        // A body that stalls: the drain gives up after DRAIN_TIME.
        let stalled = Body::from_stream(futures_util::stream::pending::<io::Result<Bytes>>());
        let (req, unread) = keep_unread(Request::new(stalled));
        drop(req);
        let started = tokio::time::Instant::now();
        unread.drain().await;
        assert_eq!(started.elapsed(), DRAIN_TIME);
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
