//! What the stall timeout and the minimum body rate are enforced with (see [`super::limits`] for what
//! each defends against): a timer armed only while something waits on the client, the request body that
//! fails when the client stalls or drips ([`StallBody`]), and the connection whose writes fail when the
//! peer reads nothing ([`StallIo`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::limits::Limits;

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
