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
//! - `min_body_rate` over `body_rate_window`: a request body that keeps coming, but too slowly to be
//!   worth its place: a client dripping a byte every few seconds never trips the stall timeout, and 128
//!   of them held every upload slot (issue 21). Each window of time spent waiting for the body must bring
//!   `min_body_rate x body_rate_window` bytes, or the body read fails as a stalled one does. Only waiting
//!   counts, as for the stall timeout, so a slow disk is not blamed on the client (as Kestrel's
//!   `MinRequestBodyDataRate`, or Apache's `mod_reqtimeout` `MinRate`).
//! - `handshake_timeout`: a TLS handshake that never completes. Handshakes run on the connection's own
//!   task, never on the accept loop, so a slow one delays nobody else.
//! - `max_connections`: the total. At the cap, a new connection takes the place of the connection that
//!   has been quiet longest: one that has not completed a request head yet (silent, or dribbling it: a
//!   slowloris) or is waiting for its next request, as nginx reuses its idle keep-alive connections
//!   (`shed.rs`). A connection with a request in flight is never cut to make room; when every connection
//!   has one, new connections wait in the kernel's backlog until a slot frees (as Go's `LimitListener`).
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
    /// Bytes per second a request body must bring, over each `body_rate_window` of waiting for it; 0:
    /// no minimum.
    pub min_body_rate: u64,
    pub body_rate_window: Duration,
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
            // Far below any real link (a push over 64 kbit/s shared by three layers brings ~2.7 KiB/s),
            // far above a drip: a body must bring 30 KiB in every 30 s the server waits for it, so one
            // upload slot costs an attacker 1 KiB/s, no longer a byte every minute. The window is long
            // enough for TCP's retransmission back-off on a lossy link.
            min_body_rate: 1024,
            body_rate_window: Duration::from_secs(30),
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
    /// Told when the connection's request count falls to zero (the server's accept loop, when it waits
    /// for a connection to become quiet at the cap).
    quiet: Arc<QuietSignal>,
    /// Whether the accept loop has asked this connection to close to make room.
    shed: AtomicBool,
    /// Woken when `shed` is set.
    shed_asked: Notify,
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

/// Wakes whoever waits for some connection to have no request in flight; costs a relaxed load per
/// request end while nobody waits.
#[derive(Debug, Default)]
pub(crate) struct QuietSignal {
    waiting: AtomicBool,
    notify: Notify,
}

impl QuietSignal {
    /// Whether anyone is to be told: set before looking for a quiet connection, cleared after.
    pub fn set_waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::SeqCst);
    }

    pub fn notify(&self) -> &Notify {
        &self.notify
    }

    fn became_quiet(&self) {
        if self.waiting.load(Ordering::SeqCst) {
            self.notify.notify_waiters();
        }
    }
}

impl Activity {
    /// The activity of a connection accepted now (a quiet one, until its first request begins).
    pub fn new(quiet: Arc<QuietSignal>) -> Activity {
        Activity {
            shared: Arc::new(Counts {
                in_flight: AtomicUsize::new(0),
                quiet,
                shed: AtomicBool::new(false),
                shed_asked: Notify::new(),
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

    /// Since when the connection has had no request in flight (since it was accepted, before its first
    /// request); `None` while one is in flight.
    pub fn quiet_since(&self) -> Option<Instant> {
        let c = &self.shared;
        if c.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if !c.begun.load(Ordering::Acquire) {
            return Some(c.base);
        }
        Some(c.base + Duration::from_nanos(c.idle_since.load(Ordering::Acquire)))
    }

    /// Whether the connection has no request in flight. Checked by the connection's own task, which is
    /// also the only one that begins requests (hyper calls the service from the connection's future, for
    /// HTTP/2 too), so the answer holds until that task polls the connection again.
    pub fn is_quiet(&self) -> bool {
        self.shared.in_flight.load(Ordering::Acquire) == 0
    }

    /// Whether a request has begun on the connection.
    pub fn has_begun(&self) -> bool {
        self.shared.begun.load(Ordering::Acquire)
    }

    /// Asks the connection to close to make room; false if it was asked already.
    pub fn ask_to_shed(&self) -> bool {
        let first = !self.shared.shed.swap(true, Ordering::AcqRel);
        if first {
            self.shared.shed_asked.notify_one();
        }
        first
    }

    /// Whether the connection was asked to close (and has not refused).
    pub fn shed_asked(&self) -> bool {
        self.shared.shed.load(Ordering::Acquire)
    }

    /// The connection refuses to close: a request began before it saw the request to.
    pub fn refuse_shed(&self) {
        self.shared.shed.store(false, Ordering::Release);
        self.shared.quiet.notify.notify_waiters();
    }

    /// Completes when the connection is asked to close to make room.
    pub async fn shed_requested(&self) {
        self.shared.shed_asked.notified().await
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
        // SeqCst, as `QuietSignal`'s flag and `quiet_since`'s load: either the accept loop's look sees
        // the count at zero, or this sees it waiting (the same instruction as AcqRel on x86).
        if counts.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            counts.ended.notify_one();
            counts.quiet.became_quiet();
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

/// The error a request body slower than the minimum rate ends with.
#[derive(Debug, thiserror::Error)]
#[error(
    "the client sent {sent} bytes in {window:?} of waiting for its body, below the minimum of {rate} \
     bytes per second (limits.minbodyrate)"
)]
pub struct BodyTooSlow {
    pub sent: u64,
    pub window: Duration,
    pub rate: u64,
}

/// The minimum rate of a request body: at least `rate` bytes per second, over each `window` of time
/// spent waiting for the client.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MinRate {
    pub rate: u64,
    pub window: Duration,
}

impl MinRate {
    /// The minimum of `limits`, `None` when it is off.
    pub fn of(limits: &Limits) -> Option<MinRate> {
        (limits.min_body_rate > 0).then_some(MinRate {
            rate: limits.min_body_rate,
            window: limits.body_rate_window,
        })
    }

    fn bytes_per_window(&self) -> u64 {
        let bytes = u128::from(self.rate) * self.window.as_millis() / 1000;
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }
}

/// How long the handler has waited on the client, for the minimum rate: windows of waiting time, each of
/// which must bring its bytes. Only waiting counts (from a poll that found nothing to the frame that
/// ends it), so a handler busy elsewhere (a slow disk, a full write pipeline: the client is then held
/// back by TCP, not slow) costs the client nothing.
struct RateWindow {
    min: MinRate,
    /// Waiting in the current window, up to `since`.
    waited: Duration,
    /// Bytes received in the current window.
    sent: u64,
    /// Since when the handler has been waiting, if it is.
    since: Option<Instant>,
}

impl RateWindow {
    /// When the current window ends if the wait goes on (`since` set).
    fn deadline(&self, since: Instant) -> Instant {
        since + self.min.window.saturating_sub(self.waited)
    }

    /// Counts a frame of `n` bytes; an error if it ended a window that fell short.
    fn frame(&mut self, n: u64, now: Instant) -> Result<(), BodyTooSlow> {
        if let Some(since) = self.since.take() {
            self.waited += now - since;
        }
        self.sent += n;
        if self.waited >= self.min.window {
            self.end_window()?;
        }
        Ok(())
    }

    /// The window is over: its bytes suffice (a new window begins) or not.
    fn end_window(&mut self) -> Result<(), BodyTooSlow> {
        if self.sent < self.min.bytes_per_window() {
            return Err(BodyTooSlow {
                sent: self.sent,
                window: self.min.window,
                rate: self.min.rate,
            });
        }
        self.waited = Duration::ZERO;
        self.sent = 0;
        Ok(())
    }
}

/// A request body that fails when the client stalls: sends nothing for the stall timeout while the
/// handler waits for it, or, with a minimum rate, brings less than the rate over a window of waiting (a
/// client dripping a byte now and then holds an upload slot as long as it likes otherwise). A handler
/// that is busy elsewhere (not polling the body) is never timed. One timer, set to whichever limit comes
/// first.
pub(crate) struct StallBody<B> {
    inner: B,
    stall: Duration,
    /// Since when the client has sent nothing while the handler waited.
    silent_since: Option<Instant>,
    rate: Option<RateWindow>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> StallBody<B> {
    pub fn new(inner: B, stall: Duration, min_rate: Option<MinRate>) -> StallBody<B> {
        StallBody {
            inner,
            stall,
            silent_since: None,
            rate: min_rate.map(|min| RateWindow {
                min,
                waited: Duration::ZERO,
                sent: 0,
                since: None,
            }),
            sleep: None,
        }
    }

    /// The handler waits: whether a limit has run out (and which), else arms the timer for the first.
    fn waiting(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Option<Box<dyn std::error::Error + Send + Sync>> {
        loop {
            let now = Instant::now();
            let silent_since = *self.silent_since.get_or_insert(now);
            let stall_at = silent_since + self.stall;
            if now >= stall_at {
                return Some(Box::new(BodyStalled(self.stall)));
            }
            let mut deadline = stall_at;
            if let Some(rate) = &mut self.rate {
                let since = *rate.since.get_or_insert(now);
                let window_at = rate.deadline(since);
                if now >= window_at {
                    rate.waited = rate.min.window;
                    rate.since = None;
                    if let Err(e) = rate.end_window() {
                        return Some(Box::new(e));
                    }
                    // A new window of waiting begins now.
                    continue;
                }
                deadline = deadline.min(window_at);
            }
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return None;
            }
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
                this.silent_since = None;
                if let (Some(rate), Some(Ok(f))) = (&mut this.rate, &frame) {
                    let n = f.data_ref().map_or(0, |d| d.len() as u64);
                    if let Err(e) = rate.frame(n, Instant::now()) {
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.waiting(cx) {
                Some(e) => Poll::Ready(Some(Err(e))),
                None => Poll::Pending,
            },
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
        let a = Activity::new(Arc::default());
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
        let a = Activity::new(Arc::default());
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
        let mut body = StallBody::new(StreamBody::new(frames), Duration::from_secs(10), None);
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

    /// A body of `frames`, each sent `every` after the previous one, then the sender open and silent.
    fn paced(
        every: Duration,
        frames: Vec<&'static [u8]>,
    ) -> impl Body<Data = Bytes, Error = io::Error> + Unpin {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        tokio::spawn(async move {
            for f in frames {
                tokio::time::sleep(every).await;
                if tx.send(Bytes::from_static(f)).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_secs(1 << 20)).await;
        });
        let frames = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .map(|b| Ok::<_, io::Error>(Frame::data(b)));
        StreamBody::new(frames)
    }

    /// Reads `body` to its first error: the bytes before it, and when it came.
    async fn read_to_error(
        mut body: impl Body<Data = Bytes, Error = Box<dyn std::error::Error + Send + Sync>> + Unpin,
    ) -> (u64, Duration, Box<dyn std::error::Error + Send + Sync>) {
        let started = Instant::now();
        let mut n = 0;
        loop {
            match body.frame().await {
                Some(Ok(f)) => n += f.into_data().map_or(0, |d| d.len() as u64),
                Some(Err(e)) => return (n, started.elapsed(), e),
                None => panic!("the body ended"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dripping_body_is_cut_at_the_end_of_its_first_window() {
        // 10 bytes a second over 10 s windows: 100 bytes per window. A byte every 2 s never stalls
        // (60 s) but brings 5 bytes a window.
        let min = MinRate {
            rate: 10,
            window: Duration::from_secs(10),
        };
        let drip = paced(Duration::from_secs(2), vec![b"x"; 1000]);
        let body = StallBody::new(drip, Duration::from_secs(60), Some(min));
        let (n, after, err) = read_to_error(body).await;
        let slow = err
            .downcast_ref::<BodyTooSlow>()
            .unwrap_or_else(|| panic!("{err}"));
        assert_eq!((slow.sent, slow.rate), (n, 10));
        assert!(n <= 5, "{n} bytes");
        assert_eq!(after, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_minimum_rate_goes_on_and_one_that_slows_down_is_cut() {
        let min = MinRate {
            rate: 10,
            window: Duration::from_secs(10),
        };
        // 60 bytes every 4 s (15 bytes a second) for 100 s, then 10 bytes every 4 s: the window that
        // ends at 110 s brings 20 or 80 bytes (whichever window the frame at 100 s falls in).
        let mut frames: Vec<&'static [u8]> = vec![&[0u8; 60]; 25];
        frames.extend(vec![&[0u8; 10] as &[u8]; 100]);
        let body = StallBody::new(
            paced(Duration::from_secs(4), frames),
            Duration::from_secs(60),
            Some(min),
        );
        let (n, after, err) = read_to_error(body).await;
        assert!(err.is::<BodyTooSlow>(), "{err}");
        assert_eq!(n, 25 * 60 + 2 * 10);
        assert_eq!(after, Duration::from_secs(110));
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_handler_spends_elsewhere_is_not_the_clients() {
        // The client has sent everything; the handler takes a frame every 20 s (a slow disk): far below
        // the rate in wall time, yet the body never waited on the client.
        let min = MinRate {
            rate: 10,
            window: Duration::from_secs(10),
        };
        let frames = futures_util::stream::iter(
            (0..20).map(|_| Ok::<_, io::Error>(Frame::data(Bytes::from_static(b"x")))),
        );
        let mut body = StallBody::new(StreamBody::new(frames), Duration::from_secs(60), Some(min));
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            body.frame().await.unwrap().unwrap();
        }
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_minimum_rate_only_silence_counts() {
        let drip = paced(Duration::from_secs(2), vec![b"x"; 100]);
        let body = StallBody::new(drip, Duration::from_secs(5), None);
        let (n, after, err) = read_to_error(body).await;
        assert!(err.is::<BodyStalled>(), "{err}");
        assert_eq!(n, 100);
        assert_eq!(after, Duration::from_secs(200 + 5));
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
