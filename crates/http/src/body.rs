//! Request bodies, as the registry takes them: a [`ByteStream`] of bounded chunks, never collected whole
//! (manifests excepted, and only up to the configured limit).
//!
//! The stream is checked against the request's `Content-Length` as it flows: hyper enforces the length on a
//! real connection, but nothing else does (a body handed to the router in-process, a proxy that lies), and
//! a short body must never become a short blob. When the client is at fault (a body shorter or longer than
//! declared, a connection that broke mid-body), the stream fails and the fault is recorded beside it in a
//! [`BodyFault`]; the handler then answers with that fault rather than with whatever the storage layers made
//! of the failed read, so the client gets a 400-class answer naming its own mistake.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use axum::body::{Body, BodyDataStream};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use registry::{ByteStream, Error};

/// What went wrong on the client's side of a body, if anything.
///
/// A std `Mutex`: it is locked only to store or take the fault, never across an `.await`.
#[derive(Clone, Default)]
pub struct BodyFault(Arc<Mutex<Option<Error>>>);

impl BodyFault {
    fn record(&self, e: Error) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
    }

    fn take(&self) -> Option<Error> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }

    /// The outcome of an operation that read the body: the client's fault wins over the error the
    /// operation reported for it.
    pub fn overrule<T>(&self, outcome: Result<T, Error>) -> Result<T, Error> {
        match outcome {
            Err(e) => Err(self.take().unwrap_or(e)),
            ok => ok,
        }
    }
}

/// The body as a [`ByteStream`] checked against `declared` (the request's Content-Length).
pub fn stream(body: Body, declared: Option<u64>) -> (ByteStream, BodyFault) {
    let fault = BodyFault::default();
    let checked = Checked {
        inner: body.into_data_stream(),
        declared,
        seen: 0,
        fault: fault.clone(),
        done: false,
    };
    (Box::pin(checked), fault)
}

/// Reads a whole (small) body, refusing more than `limit` bytes with `ManifestTooLarge`. Only
/// `limit + 1` bytes are ever held, whatever the client sends.
pub async fn read_limited(body: Body, declared: Option<u64>, limit: usize) -> Result<Bytes, Error> {
    if let Some(size) = declared.filter(|&d| d > limit as u64) {
        return Err(Error::ManifestTooLarge { size, limit });
    }
    let (mut stream, fault) = stream(body, declared);
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = fault.overrule(chunk.map_err(Error::internal))?;
        buf.extend_from_slice(&chunk);
        if buf.len() > limit {
            return Err(Error::ManifestTooLarge {
                size: buf.len() as u64,
                limit,
            });
        }
    }
    Ok(buf.freeze())
}

struct Checked {
    inner: BodyDataStream,
    declared: Option<u64>,
    seen: u64,
    fault: BodyFault,
    done: bool,
}

impl Checked {
    fn fail(&mut self, fault: Error, kind: io::ErrorKind) -> Poll<Option<io::Result<Bytes>>> {
        let err = io::Error::new(kind, fault.to_string());
        self.fault.record(fault);
        self.done = true;
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for Checked {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match ready!(self.inner.poll_next_unpin(cx)) {
            Some(Ok(bytes)) => {
                self.seen += bytes.len() as u64;
                match self.declared {
                    Some(declared) if self.seen > declared => {
                        let fault = Error::SizeInvalid(format!(
                            "the body is longer than its Content-Length of {declared} bytes"
                        ));
                        self.fail(fault, io::ErrorKind::InvalidData)
                    }
                    _ => Poll::Ready(Some(Ok(bytes))),
                }
            }
            Some(Err(e)) => {
                let fault =
                    Error::BlobUploadInvalid(format!("reading the request body failed: {e}"));
                self.fail(fault, io::ErrorKind::ConnectionAborted)
            }
            None => match self.declared {
                Some(declared) if self.seen < declared => {
                    let fault = Error::SizeInvalid(format!(
                        "the body ended after {} of the {declared} bytes its Content-Length declared",
                        self.seen
                    ));
                    self.fail(fault, io::ErrorKind::UnexpectedEof)
                }
                _ => {
                    self.done = true;
                    Poll::Ready(None)
                }
            },
        }
    }
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
    async fn passes_a_body_of_the_declared_length() {
        let (mut s, fault) = stream(Body::from("hello"), Some(5));
        assert_eq!(drain(&mut s).await, (5, None));
        assert!(fault.take().is_none());
        let (mut s, _) = stream(Body::from("no length"), None);
        assert_eq!(drain(&mut s).await, (9, None));
    }

    #[tokio::test]
    async fn a_short_body_fails_and_blames_the_client() {
        let (mut s, fault) = stream(Body::from("hel"), Some(5));
        assert_eq!(drain(&mut s).await.1, Some(io::ErrorKind::UnexpectedEof));
        let outcome: Result<(), Error> = fault.overrule(Err(Error::internal("storage saw EOF")));
        assert!(matches!(outcome, Err(Error::SizeInvalid(_))));
    }

    #[tokio::test]
    async fn a_long_body_fails_and_blames_the_client() {
        let (mut s, fault) = stream(Body::from("hello world"), Some(5));
        assert_eq!(drain(&mut s).await.1, Some(io::ErrorKind::InvalidData));
        assert!(matches!(fault.take(), Some(Error::SizeInvalid(_))));
    }

    #[tokio::test]
    async fn a_broken_body_is_an_invalid_upload() {
        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("connection reset")),
        ]);
        let (mut s, fault) = stream(Body::from_stream(broken), None);
        assert_eq!(
            drain(&mut s).await,
            (3, Some(io::ErrorKind::ConnectionAborted))
        );
        assert!(matches!(fault.take(), Some(Error::BlobUploadInvalid(_))));
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
        assert!(matches!(
            read_limited(Body::from("123"), Some(4), 5).await,
            Err(Error::SizeInvalid(_))
        ));
    }
}
