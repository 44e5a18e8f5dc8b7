//! Zero-copy blob downloads: plain-HTTP/1.1 blob GETs are sent with `sendfile(2)` from the blob's file to
//! the socket, as nginx does, instead of being read into memory and copied into the socket (two copies
//! and a blocking-pool hop per chunk, ~75% of the CPU of a pull; bench/results/2026-11-23-profile.md).
//!
//! hyper writes every body byte itself, so the file cannot be handed to it. Instead:
//! - each plain-TCP connection is served through a [`SendfileIo`] that shares a [`FileSink`] with the
//!   requests of that connection (an extension the connection's service inserts into HTTP/1 requests
//!   only; HTTP/2 multiplexes streams into frames hyper must write, and TLS must encrypt every byte);
//! - the blob handler answers with a [`SendfileBody`], whose data frames are *placeholders*: slices of one
//!   private zeroed region that is never read. Each frame, as it is handed to hyper, queues its file range
//!   in the sink;
//! - hyper is set to its vectored "queue" write strategy (`http1().writev(true)`), so it never copies a
//!   body buffer: it passes each as an `IoSlice` pointing at the buffer's own memory. When
//!   [`SendfileIo::poll_write_vectored`] meets a slice that lies in the placeholder region it writes the
//!   slices before it (the response head) and stops; called again with the placeholder first, it
//!   `sendfile`s that many bytes from the file range at the head of the queue instead. A partial send
//!   returns the count sent, hyper advances its buffer by it, and the next call sends the rest.
//!
//! The invariant: a client never receives a placeholder byte. A placeholder slice is only ever answered
//! by `sendfile` from the queued range whose remaining length equals the slice's; any mismatch (no range
//! queued, lengths out of step, a file cut short) fails the write, which closes the connection. Anything
//! that would buffer or copy body data between the handler and hyper would break this, so the response
//! path only ever wraps bodies frame by frame (`Counted`, `Tracked`). The write stall timeout, idle
//! timeout, graceful shutdown and connection cap are untouched: [`SendfileIo`] sits under `StallIo`, and
//! `sendfile` on the non-blocking socket returns `WouldBlock` like any write.
//!
//! While a response's file bytes go out the socket is corked (`TCP_CORK`, as nginx's `tcp_nopush`): the
//! kernel holds partial segments back, so the head leaves with the first file bytes, and the last frame of
//! the body uncorks it, which sends the tail at once. Uncorked, on Linux 6.18 a 2 MiB `sendfile` took
//! 1.0 ms against nginx's 0.77 ms (strace -c) and a single pull ran at 0.7x nginx's speed (1.9 against 2.7
//! GB/s with curl); corked, 0.77 ms and 2.5-2.9 GB/s.
//!
//! `sendfile` reads the file synchronously: from the page cache that is a page reference, not a copy;
//! a cold blob on a slow disk holds the worker for the read of at most one frame (2 MiB).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use registry::FileRange;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Size of the placeholder region, and so of the largest data frame of a [`SendfileBody`]. A frame is
/// counted as sent (access log, metrics) when hyper takes it, so this bounds how far those counts can run
/// ahead of a client that goes away mid-body; it also bounds one `sendfile` call, and so how long one call
/// can hold the worker when the file is not in the page cache (nginx's `sendfile_max_chunk` is 2 MiB
/// too). The region costs address space only: the zeroed allocation is never touched, so the kernel never
/// backs it with memory.
const REGION_LEN: usize = 2 << 20;

/// The placeholder region. Private: the only `Bytes` that point into it are a [`SendfileBody`]'s frames.
fn region() -> &'static Bytes {
    static REGION: OnceLock<Bytes> = OnceLock::new();
    REGION.get_or_init(|| Bytes::from(vec![0u8; REGION_LEN]))
}

/// Whether `slice` is (part of) a placeholder frame.
fn is_placeholder(slice: &[u8]) -> bool {
    let start = region().as_ptr() as usize;
    let at = slice.as_ptr() as usize;
    !slice.is_empty() && at >= start && at < start + REGION_LEN
}

/// Bytes sent with `sendfile` by this process, over all connections: evidence for tests and diagnostics
/// that downloads take the zero-copy path.
pub fn bytes_sent() -> u64 {
    SENT.load(Ordering::Relaxed)
}

static SENT: AtomicU64 = AtomicU64::new(0);

/// The file ranges a connection still has to send, in the order their placeholder frames were handed to
/// hyper (HTTP/1 writes one response at a time, in order, so frames reach the socket in that order too).
#[derive(Clone, Debug, Default)]
pub(crate) struct FileSink {
    queue: Arc<Mutex<VecDeque<Queued>>>,
}

/// One placeholder frame's file range, and whether it ends its response's body.
#[derive(Debug)]
struct Queued {
    range: FileRange,
    last: bool,
}

impl FileSink {
    fn push(&self, range: FileRange, last: bool) {
        self.lock().push_back(Queued { range, last });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        // Nothing panics while holding the lock; a poisoned queue is still a consistent queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A response body whose bytes are sent by `sendfile` from `range` (see the module docs). Only for an
/// HTTP/1 response on a connection served through a [`SendfileIo`] sharing `sink`.
pub(crate) struct SendfileBody {
    sink: FileSink,
    range: FileRange,
}

impl SendfileBody {
    pub fn new(sink: FileSink, range: FileRange) -> SendfileBody {
        SendfileBody { sink, range }
    }
}

impl http_body::Body for SendfileBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let range = &mut self.range;
        if range.len == 0 {
            return Poll::Ready(None);
        }
        // At most REGION_LEN, so it fits a usize.
        let n = range.len.min(REGION_LEN as u64) as usize;
        let frame = FileRange {
            file: Arc::clone(&range.file),
            offset: range.offset,
            len: n as u64,
        };
        range.offset += n as u64;
        range.len -= n as u64;
        let last = range.len == 0;
        // Queued as the frame is handed out: hyper writes frames in the order it gets them.
        self.sink.push(frame, last);
        Poll::Ready(Some(Ok(Frame::data(region().slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.range.len == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.range.len)
    }
}

/// A plain TCP connection whose placeholder writes become `sendfile` calls (see the module docs).
pub(crate) struct SendfileIo {
    tcp: TcpStream,
    sink: FileSink,
    /// Whether TCP_CORK is set: from the write of a head before file bytes to the last of them.
    corked: bool,
}

impl SendfileIo {
    pub fn new(tcp: TcpStream, sink: FileSink) -> SendfileIo {
        SendfileIo {
            tcp,
            sink,
            corked: false,
        }
    }

    /// Sends the `want` bytes that a placeholder slice stands for, from the range at the head of the
    /// queue; returns the count actually sent.
    fn poll_send_file(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        self.cork(true)?;
        let mut queue = self.sink.lock();
        let Some(Queued { range, last }) = queue.front_mut() else {
            return Poll::Ready(Err(out_of_step("no file range is queued")));
        };
        if range.len != want as u64 {
            return Poll::Ready(Err(out_of_step(&format!(
                "{want} placeholder bytes, {} queued",
                range.len
            ))));
        }
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                let mut offset = range.offset;
                rustix::fs::sendfile(&self.tcp, &*range.file, Some(&mut offset), want)
                    .map_err(io::Error::from)
            });
            match sent {
                // The file ends before the range does: it was cut behind our back (blobs are
                // immutable). Never let hyper fill the gap with anything else.
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the blob file ended before the bytes promised",
                    )));
                }
                Ok(n) => {
                    range.offset += n as u64;
                    range.len -= n as u64;
                    SENT.fetch_add(n as u64, Ordering::Relaxed);
                    if range.len == 0 {
                        let ends_body = *last;
                        queue.pop_front();
                        drop(queue);
                        if ends_body {
                            self.cork(false)?;
                        }
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Sets TCP_CORK to `on` unless it already is.
    fn cork(&mut self, on: bool) -> io::Result<()> {
        if self.corked != on {
            rustix::net::sockopt::set_tcp_cork(&self.tcp, on)?;
            self.corked = on;
        }
        Ok(())
    }
}

fn out_of_step(what: &str) -> io::Error {
    io::Error::other(format!("zero-copy send out of step: {what}"))
}

impl AsyncRead for SendfileIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if is_placeholder(buf) {
            return self.get_mut().poll_send_file(cx, buf.len());
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match bufs.iter().position(|b| is_placeholder(b)) {
            Some(first) if bufs[..first].iter().all(|b| b.is_empty()) => {
                self.get_mut().poll_send_file(cx, bufs[first].len())
            }
            // The real bytes before the first placeholder (the response head), corked so that they
            // leave with the file's first bytes; the caller comes back for the rest.
            Some(first) => {
                self.cork(true)?;
                Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[..first])
            }
            None => Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body;
    use http_body_util::BodyExt;
    use std::io::Write;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair: the server end wrapped in a `SendfileIo` over `sink`, and the client end.
    async fn pair(sink: &FileSink) -> (SendfileIo, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (SendfileIo::new(server, sink.clone()), client)
    }

    /// Writes `head` (what is left of it) and then `frame` as hyper does, in vectored writes that may
    /// stop anywhere, calling `after_each` after every write.
    async fn write_as_hyper(
        io: &mut SendfileIo,
        head: &mut Bytes,
        mut frame: Bytes,
        mut after_each: impl FnMut(&SendfileIo),
    ) {
        while !head.is_empty() || !frame.is_empty() {
            let slices = [IoSlice::new(head), IoSlice::new(&frame)];
            let n = io.write_vectored(&slices).await.unwrap();
            let from_head = n.min(head.len());
            *head = head.slice(from_head..);
            frame = frame.slice(n - from_head..);
            after_each(io);
        }
    }

    fn file_range(data: &[u8], offset: u64, len: u64) -> FileRange {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        FileRange {
            file: Arc::new(f),
            offset,
            len,
        }
    }

    #[tokio::test]
    async fn placeholder_frames_become_the_file_bytes_after_the_real_ones() {
        let sink = FileSink::default();
        let (mut io, mut client) = pair(&sink).await;
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 250 + 1) as u8).collect();
        let mut body = SendfileBody::new(sink.clone(), file_range(&data, 1000, 3000));
        assert_eq!(body.size_hint().exact(), Some(3000));
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(body.frame().await.is_none());
        assert_eq!(frame.len(), 3000);

        // As hyper hands them over: the head, then the body's buffer.
        let mut head = Bytes::from_static(b"head");
        write_as_hyper(&mut io, &mut head, frame, |_| {}).await;
        drop(io);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[4..], &data[1000..4000]);
        assert!(bytes_sent() >= 3000);
    }

    #[tokio::test]
    async fn the_socket_is_corked_from_the_head_to_the_last_file_byte() {
        let sink = FileSink::default();
        let (mut io, mut client) = pair(&sink).await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let len = 2 * REGION_LEN + 100;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut body = SendfileBody::new(sink.clone(), file_range(&data, 0, len as u64));
        let corked = |io: &SendfileIo| rustix::net::sockopt::tcp_cork(&io.tcp).unwrap();
        assert!(!corked(&io));

        let mut head = Bytes::from_static(b"head");
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap().into_data().unwrap();
            // Corked as soon as the head is written, until the body's very last byte.
            write_as_hyper(&mut io, &mut head, frame, |io| seen.push(corked(io))).await;
        }
        assert!(!corked(&io), "the last frame uncorks the socket");
        assert_eq!(seen.pop(), Some(false));
        assert!(!seen.is_empty() && seen.iter().all(|&c| c), "{seen:?}");
        drop(io);
        let got = reader.await.unwrap();
        assert_eq!(&got[..4], b"head");
        assert!(got[4..] == data[..], "the file's bytes, in order");
    }

    #[tokio::test]
    async fn a_placeholder_without_its_file_range_is_never_written() {
        let sink = FileSink::default();
        let (mut io, mut client) = pair(&sink).await;
        // Nothing queued.
        let stray = region().slice(..10);
        let err = io
            .write_vectored(&[IoSlice::new(&stray)])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("out of step"), "{err}");
        // Queued, but for another length.
        sink.push(file_range(b"0123456789abc", 0, 13), true);
        let err = io.write(&stray).await.unwrap_err();
        assert!(err.to_string().contains("out of step"), "{err}");
        // A file cut short of its range.
        let sink = FileSink::default();
        let (mut io2, mut client2) = pair(&sink).await;
        sink.push(file_range(b"abc", 0, 10), true);
        let err = io2.write_all(&stray).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        drop((io, io2));
        for c in [&mut client, &mut client2] {
            let mut got = Vec::new();
            c.read_to_end(&mut got).await.unwrap();
            // The cut file's three real bytes may have gone out; never a placeholder's zero.
            assert!(!got.contains(&0), "{got:?}");
        }
    }
}
