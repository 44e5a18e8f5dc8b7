//! The spec's error body for the requests hyper refuses before berth sees them.
//!
//! hyper answers a request it cannot parse (a raw non-UTF-8 byte in the path, a bad or duplicate
//! `Content-Length`, a header line too long) with a bare `400 Bad Request` (or `431`) and no body, no
//! request id and no API-version header, then closes the connection; it has no hook for that answer.
//! [`SpecErrors`] wraps the connection and replaces such an answer, as it is written, with the spec's
//! JSON error (`UNSUPPORTED`, a message saying what was wrong, a request id, the API-version header).
//!
//! How it tells hyper's answer from berth's: only the *first* bytes written on a connection are looked
//! at (the start of a response head, never a body: a blob that begins with the same text can never be
//! mistaken for one), and every response berth itself makes carries the API-version header, which
//! hyper's canned answers never do. A parse error on a later request of a kept-alive connection is left
//! as hyper writes it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::headers::API_VERSION;

/// The connection, replacing hyper's own error answer if it is the first thing written.
pub(crate) struct SpecErrors<T> {
    inner: T,
    /// Nothing written yet: the next write starts the first response head.
    first: bool,
    /// The replacement being written, and how much of it is out; with the length hyper asked to write.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<T> SpecErrors<T> {
    pub(crate) fn new(inner: T) -> Self {
        SpecErrors {
            inner,
            first: true,
            replacing: None,
        }
    }
}

/// The spec's answer in place of hyper's bare `head`, when it is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head.get(..head.len().min(1024))?).ok()?;
    let status_line = text.split("\r\n").next()?;
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
    let message = match status.get(..3)? {
        "400" => {
            "the request could not be parsed as HTTP (a malformed request line, path or header)"
        }
        "431" => "the request's header is too large",
        _ => return None,
    };
    if text.to_ascii_lowercase().contains(API_VERSION.as_str()) {
        return None;
    }
    let id = crate::middleware::new_request_id();
    let body = serde_json::json!({
        "errors": [{ "code": "UNSUPPORTED", "message": message, "detail": null }]
    })
    .to_string();
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{}: registry/2.0\r\n\
             x-request-id: {id}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            API_VERSION.as_str(),
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for SpecErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> SpecErrors<T> {
    /// Writes what remains of the replacement; then says hyper's `asked` bytes were written.
    fn poll_replacing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, sent, asked)) = self.replacing.as_mut() {
            if *sent == bytes.len() {
                let asked = *asked;
                self.replacing = None;
                return Poll::Ready(Ok(asked));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        Poll::Ready(Ok(0))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SpecErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_some() {
            return this.poll_replacing(cx);
        }
        if this.first && !buf.is_empty() {
            this.first = false;
            if let Some(bytes) = replacement(buf) {
                this.replacing = Some((bytes, 0, buf.len()));
                return this.poll_replacing(cx);
            }
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_some() || this.first {
            // The first response head (hyper's canned answers have no body): looked at as one buffer.
            let Some(first) = bufs.iter().find(|b| !b.is_empty()) else {
                return Poll::Ready(Ok(0));
            };
            return Pin::new(this).poll_write(cx, first);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bare_answers_are_replaced() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(replacement(bare).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert!(out.contains("docker-distribution-api-version: registry/2.0\r\n"));
        assert!(out.contains("x-request-id: "));
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["errors"][0]["code"], "UNSUPPORTED");
        assert!(out.contains(&format!("content-length: {}\r\n", body.len())));
        assert!(replacement(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n").is_some());
        // berth's own 400 (it carries the version header), other statuses, bodies: left alone.
        let own =
            b"HTTP/1.1 400 Bad Request\r\nDocker-Distribution-API-Version: registry/2.0\r\n\r\n";
        assert!(replacement(own).is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
        assert!(replacement(b"\x89PNG").is_none());
    }

    #[tokio::test]
    async fn the_replacement_is_written_and_hyper_told_its_bytes_went() {
        use tokio::io::AsyncWriteExt;
        let (client, server) = tokio::io::duplex(64);
        let mut wrapped = SpecErrors::new(server);
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut out = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut out)
                .await
                .unwrap();
            out
        });
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let n = Pin::new(&mut wrapped).write(bare).await.unwrap();
        assert_eq!(n, bare.len(), "hyper is told its own bytes went");
        // Later writes pass through untouched, even one that looks like an answer.
        wrapped.write_all(bare).await.unwrap();
        wrapped.shutdown().await.unwrap();
        drop(wrapped);
        let out = String::from_utf8(reader.await.unwrap()).unwrap();
        assert!(out.contains("\"UNSUPPORTED\""), "{out}");
        assert!(out.ends_with("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"));
    }
}
