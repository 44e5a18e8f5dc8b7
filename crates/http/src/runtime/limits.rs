//! The limits that keep one client, or many idle ones, from exhausting the server, and the small pieces
//! [`serve`](crate::serve) enforces them with.
//!
//! What each limit defends against:
//! - `header_read_timeout`: a client that sends its request head a byte at a time (slowloris). hyper
//!   enforces it for HTTP/1, and starts the clock again whenever a keep-alive connection waits for its next
//!   request, so an idle HTTP/1 connection is closed after the shorter of this and `idle_timeout`.
//! - `idle_timeout`: connections that hold a slot without asking anything. A connection with no request in
//!   flight for this long is closed (HTTP/1 and HTTP/2, whatever bytes it trickles, pings included); before
//!   its first request it gets only the shorter of this and `header_read_timeout`, because a connection that
//!   has not managed to send one request head by then is not a client being slow to come back.
//! - `stall_timeout`: a request whose client stops sending its body, or stops reading the response, without
//!   closing (a stalled upload, a "slow read"). The body read fails (the registry then records nothing of
//!   the chunk, so the upload stays resumable), or the connection is closed.
//! - `handshake_timeout`: a TLS handshake that never completes. Handshakes run on the connection's own
//!   task, never on the accept loop, so a slow one delays nobody else.
//! - `max_connections`: the total. At the cap the server stops accepting; new connections wait in the
//!   kernel's backlog until a slot frees (as Go's `LimitListener`), rather than being refused outright.
//! - `max_http2_streams`: concurrent requests on one HTTP/2 connection.
//! - `drain_timeout`: after a shutdown signal, how long requests in flight may take before their
//!   connections are cut (registry:2's `http.draintimeout`).
//!
//! The cap on concurrent uploads is not here: it is the registry's (`registry::Settings`), because only the
//! registry knows when an upload is streaming bytes in.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// Every connection-level limit of the server. [`Limits::default`] is what berth runs with unless
/// configured otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub stall_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_connections: usize,
    pub max_http2_streams: u32,
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Clients send their heads at once; 20 s covers a very slow link, and makes a slowloris
            // client cost a new connection every 20 s per slot.
            header_read_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            // Longer than any pause of a healthy client between two packets of a body.
            stall_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            // Below the common default of 1024 open files, leaving room for blob files and the database.
            max_connections: 512,
            max_http2_streams: 100,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Requests in flight on one connection, watched to close the connection once it has been idle too long.
///
/// Counted with atomics, and the watcher woken only when the count falls to zero: a request costs two
/// atomic updates and a clock read, and the watcher's timer is set once per idle period, not per request.
/// (A `watch` channel of the counts woke the watcher at the start and the end of every request and set a
/// new timer each time: ~6% of a cached manifest HEAD's instructions, callgrind.)
#[derive(Clone, Debug)]
pub(crate) struct Activity {
    shared: Arc<Counts>,
}

#[derive(Debug)]
struct Counts {
    in_flight: AtomicUsize,
    /// Whether any request has begun: until one has, the connection gets the shorter first limit.
    begun: AtomicBool,
    /// When the connection last had no request left in flight, in nanoseconds since `base`.
    idle_since: AtomicU64,
    base: Instant,
    /// Woken when the count falls to zero.
    ended: Notify,
}

/// One request in flight: counted from the moment its head was read until its response has been sent (or
/// abandoned), whatever way that ends.
#[derive(Debug)]
pub(crate) struct InFlight {
    counts: Arc<Counts>,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            shared: Arc::new(Counts {
                in_flight: AtomicUsize::new(0),
                begun: AtomicBool::new(false),
                idle_since: AtomicU64::new(0),
                base: Instant::now(),
                ended: Notify::new(),
            }),
        }
    }

    pub fn begin(&self) -> InFlight {
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        self.shared.begun.store(true, Ordering::Release);
        InFlight {
            counts: Arc::clone(&self.shared),
        }
    }

    /// Completes once the connection has had no request in flight for `idle` (`first` before its first
    /// request). Never completes while a request is in flight.
    pub fn idle(
        &self,
        first: Duration,
        idle: Duration,
    ) -> impl Future<Output = ()> + Send + 'static {
        let counts = Arc::clone(&self.shared);
        async move {
            let mut deadline = Instant::now() + first;
            loop {
                tokio::time::sleep_until(deadline).await;
                // A request in flight holds the connection open: wait for the count to fall to zero. A
                // fall between the check and the wait is not missed: `notify_one` leaves a permit.
                while counts.in_flight.load(Ordering::Acquire) > 0 {
                    counts.ended.notified().await;
                }
                if !counts.begun.load(Ordering::Acquire) {
                    return;
                }
                let since = Duration::from_nanos(counts.idle_since.load(Ordering::Acquire));
                deadline = counts.base + since + idle;
                if deadline <= Instant::now() {
                    return;
                }
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let counts = &self.counts;
        // Stored before the count falls, so that a watcher seeing zero also sees when it fell (the
        // largest time wins when requests end at once).
        let now = u64::try_from(counts.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        counts.idle_since.fetch_max(now, Ordering::AcqRel);
        if counts.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            counts.ended.notify_one();
        }
    }
}

/// A response body that keeps its request counted as in flight until it has been sent or dropped.
pub(crate) struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Tracked<B> {
        Tracked {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A timer armed while something waits on the client and disarmed whenever it makes progress. One
/// allocation per connection or body, reset rather than recreated.
struct StallTimer {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl StallTimer {
    fn new(limit: Duration) -> StallTimer {
        StallTimer {
            limit,
            sleep: None,
            armed: false,
        }
    }

    fn progress(&mut self) {
        self.armed = false;
    }

    /// Called when the client did not make progress: whether it has been stalled for the whole limit.
    /// Registers `cx` to be woken when the limit passes.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.limit;
        let armed = self.armed;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !armed {
            sleep.as_mut().reset(deadline);
            self.armed = true;
        }
        sleep.as_mut().poll(cx).is_ready()
    }
}

/// The error a stalled request body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no data for {0:?}")]
pub struct BodyStalled(pub Duration);

/// A request body that fails when the client sends nothing for the stall timeout while the handler waits
/// for it. A handler that is busy elsewhere (not polling the body) is never timed.
pub(crate) struct StallBody<B> {
    inner: B,
    timer: StallTimer,
}

impl<B> StallBody<B> {
    pub fn new(inner: B, limit: Duration) -> StallBody<B> {
        StallBody {
            inner,
            timer: StallTimer::new(limit),
        }
    }
}

impl<B> Body for StallBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer.progress();
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending if this.timer.stalled(cx) => {
                Poll::Ready(Some(Err(Box::new(BodyStalled(this.timer.limit)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose writes fail once the client has accepted nothing for the stall timeout (its receive
/// window stayed full): hyper then closes the connection. Reads are not timed here, since waiting for the
/// next request is normal; [`StallBody`] and the idle timeout cover the reading side.
pub(crate) struct StallIo<T> {
    inner: T,
    timer: StallTimer,
}

impl<T> StallIo<T> {
    pub fn new(inner: T, limit: Duration) -> StallIo<T> {
        StallIo {
            inner,
            timer: StallTimer::new(limit),
        }
    }

    fn check<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(r) => {
                self.timer.progress();
                Poll::Ready(r)
            }
            Poll::Pending if self.timer.stalled(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client accepted no data for {:?}", self.timer.limit),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn idle_fires_only_without_requests_in_flight() {
        let a = Activity::new();
        let first = Duration::from_secs(5);
        let idle = Duration::from_secs(30);

        // Before any request: the shorter, first limit.
        let started = Instant::now();
        a.idle(first, idle).await;
        assert_eq!(started.elapsed(), first);

        // A request in flight holds the connection open however long it takes...
        let watch = tokio::spawn(a.idle(first, idle));
        let req = a.begin();
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!watch.is_finished());
        // ...and once it ends, the idle clock starts from zero with the full limit.
        drop(req);
        let ended = Instant::now();
        watch.await.unwrap();
        assert_eq!(ended.elapsed(), idle);
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_clock_starts_again_at_the_end_of_each_request() {
        let a = Activity::new();
        let idle = Duration::from_secs(30);
        let started = Instant::now();
        let watch = tokio::spawn(a.idle(Duration::from_secs(5), idle));
        // Requests that come and go, each ending before the limit since the previous one: the
        // connection stays open until `idle` after the last of them ended.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let req = a.begin();
            tokio::time::sleep(Duration::from_secs(20)).await;
            drop(req);
            assert!(!watch.is_finished());
        }
        // Two overlapping requests: the clock starts when the later one ends.
        let one = a.begin();
        let two = a.begin();
        tokio::time::sleep(Duration::from_secs(50)).await;
        drop(one);
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(two);
        let ended = Instant::now();
        watch.await.unwrap();
        assert_eq!(ended.elapsed(), idle);
        assert_eq!(started.elapsed(), Duration::from_secs(4 * 23 + 60) + idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_coming_fails_after_the_stall_timeout() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let frames = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .map(|b| Ok::<_, io::Error>(Frame::data(b)));
        let mut body = StallBody::new(StreamBody::new(frames), Duration::from_secs(10));
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "abc");

        // Progress every 9 s keeps it alive...
        let sender = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(9)).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
            }
            // ...then silence, with the sender still open.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        for _ in 0..3 {
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), "x");
        }
        let waited = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyStalled>(), "{err}");
        assert_eq!(waited.elapsed(), Duration::from_secs(10));
        sender.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn writes_fail_when_the_peer_reads_nothing() {
        // A pipe with room for 16 bytes whose reader never reads.
        let (client, server) = tokio::io::duplex(16);
        let mut io = StallIo::new(server, Duration::from_secs(10));
        io.write_all(&[0; 16]).await.unwrap();
        let started = Instant::now();
        let err = io.write_all(&[0; 16]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        drop(client);
    }
}
