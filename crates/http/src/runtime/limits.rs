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
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
