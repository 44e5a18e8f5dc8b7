//! The serving loop behind [`serve`](crate::serve): accepts connections up to the cap, gives each its own
//! task (TLS handshake, then HTTP/1 or HTTP/2 through hyper), enforces the [`Limits`], and shuts down in
//! bounded time.
//!
//! Why not `axum::serve`: it has no header-read timeout, idle timeout, connection cap or TLS. The loop is
//! small, and every limit is visible here:
//! - the accept loop only accepts: a handshake, however slow, runs on the connection's task, bounded by
//!   `handshake_timeout`;
//! - at `max_connections` the connection quiet longest (no request in flight: never sent a whole head,
//!   or waiting for its next request) is closed to make room for the one just accepted (`shed.rs`);
//!   when every connection has a request in flight, the loop holds the new one and stops accepting
//!   until a connection ends (so at most `max_connections + 1` are open);
//! - each connection is served by hyper with the header-read timeout, wrapped so that writes stall out
//!   ([`StallIo`]), request bodies stall out or are cut when slower than the minimum rate ([`StallBody`]), and a watcher closes it once idle;
//! - on shutdown the listener is dropped (new connections are refused), every connection is asked to
//!   finish gracefully (in-flight requests complete, idle keep-alive connections close), and whatever is
//!   still running after `drain_timeout` is cut off. An upload cut off this way is simply not recorded:
//!   the client resumes it from the last recorded offset, even after a restart.
//!
//! Plain-TCP connections are served through [`SendfileIo`], so that HTTP/1 blob downloads are sent
//! with `sendfile(2)` (see `sendfile.rs`); hyper is therefore kept on its vectored write strategy.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::shed::{Open, Registered};
use super::spec_errors::SpecErrors;
use super::stall::{MinRate, StallBody, StallIo};
use crate::limits::{Activity, Limits, Tracked};
use crate::sendfile::{FileSink, SendfileIo};
use crate::tls::TlsAcceptor;

/// How the server treats connections: its limits, TLS, and whether HTTP/2 is offered.
#[derive(Clone, Debug)]
pub struct ServeSettings {
    pub limits: Limits,
    /// `None`: plain HTTP.
    pub tls: Option<TlsAcceptor>,
    /// HTTP/2 next to HTTP/1.1: through ALPN with TLS, by prior knowledge (h2c) without. registry:2's
    /// `http.http2.disabled` turns it off.
    pub http2: bool,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            limits: Limits::default(),
            tls: None,
            http2: true,
        }
    }
}

/// What every connection task shares.
struct Shared {
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
}

/// After an accept error that is not the client's (out of file descriptors, most likely), wait this long
/// before accepting again rather than spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a keep-alive connection asked to make room may take to close gracefully (an HTTP/1 one
/// closes at once; an HTTP/2 one says GOAWAY first) before it is cut.
const SHED_GRACE: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeSettings,
) -> io::Result<()> {
    let limits = options.limits.clone();
    let shared = Arc::new(Shared {
        router,
        builder: builder(&options),
        tls: options.tls,
        limits: limits.clone(),
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(Open::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let mut at_cap = false;

    loop {
        // Reap finished connections, so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                at_cap = false;
                slot
            }
            Err(_) => {
                if !at_cap {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached: connections without a request in flight are closed \
                         to make room, oldest first; when none is, new connections wait"
                    );
                    at_cap = true;
                }
                match make_room(&slots, &open, shutdown.as_mut()).await {
                    Some(slot) => slot,
                    None => break,
                }
            }
        };
        // Registry traffic is request/response with small heads: Nagle's delay only adds latency.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let (activity, registered) = open.register();
        connections.spawn(connection(
            tcp,
            peer,
            (registered, slot),
            activity,
            Arc::clone(&shared),
            stop_rx.clone(),
        ));
    }

    // Stop accepting: from here new connections are refused by the kernel.
    drop(listener);
    let _ = stop_tx.send(true);
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            connections = open,
            "waiting for requests in flight to finish"
        );
    }
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            drain_timeout_s = limits.drain_timeout.as_secs_f64(),
            "requests still running after the drain timeout: closing their connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// At the cap: a slot for the connection just accepted, made by asking the connection quiet longest to
/// close, or, when every connection has a request in flight, waited for (until one ends, or becomes
/// quiet and can be asked). `None` on shutdown.
async fn make_room<F: Future<Output = ()>>(
    slots: &Arc<Semaphore>,
    open: &Open,
    mut shutdown: Pin<&mut F>,
) -> Option<OwnedSemaphorePermit> {
    let mut asked = false;
    loop {
        // Registered, and the wish to be told announced, before looking: a connection that becomes
        // quiet (or refuses) after the look wakes this loop, one that did before is seen by the look.
        let mut changed = pin!(open.quiet().notify().notified());
        changed.as_mut().enable();
        if !asked {
            open.quiet().set_waiting(true);
            asked = open.shed_one();
        }
        // Told of every connection becoming quiet only while there was none to ask (a refusal is told
        // regardless).
        open.quiet().set_waiting(!asked);
        tokio::select! {
            biased;
            slot = Arc::clone(slots).acquire_owned() => {
                open.quiet().set_waiting(false);
                // Never closed; if it were, there would be nothing left to serve with.
                return slot.ok();
            }
            // A connection became quiet, or the one asked had begun a request and refused: look again.
            _ = changed => asked = false,
            _ = &mut shutdown => {
                open.quiet().set_waiting(false);
                return None;
            }
        }
    }
}

/// hyper's connection builder with the limits applied.
fn builder(options: &ServeSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.limits.header_read_timeout)
        .keep_alive(true)
        // Body buffers are queued and handed to the connection as they are, never copied into hyper's
        // own buffer: `SendfileIo` recognises a zero-copy body's placeholders by their address.
        .writev(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.limits.max_http2_streams);
    if options.http2 {
        builder
    } else {
        builder.http1_only()
    }
}

/// Errors of one incoming connection that say nothing about the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection, from handshake to close. When the task ends, `_slot` leaves the open connections,
/// then frees its place under the cap (in that order: a connection whose place is taken again must not
/// be found and asked to make room a second time).
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    _slot: (Registered, OwnedSemaphorePermit),
    activity: Activity,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(tls) = shared.tls.clone() else {
        let sink = FileSink::default();
        let io = SendfileIo::new(tcp, sink.clone());
        return http(io, peer, &shared, activity, stop, Some(sink)).await;
    };
    let handshake = tokio::time::timeout(shared.limits.handshake_timeout, tls.accept(tcp));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        // A handshake is not a request in flight: nothing to wait for on shutdown, nothing lost when
        // closed to make room.
        _ = stop.wait_for(|stopping| *stopping) => return,
        _ = activity.shed_requested() => {
            tracing::debug!(%peer, "closing a connection in its TLS handshake to make room");
            return;
        }
    };
    // TLS encrypts every byte in user space: nothing to send from a file directly.
    http(stream, peer, &shared, activity, stop, None).await
}

/// Serves HTTP on an established (possibly TLS) connection until it closes, goes idle, or the server
/// stops. `sink`: the connection is a [`SendfileIo`] sharing it, so HTTP/1 requests may send files.
async fn http<I>(
    io: I,
    peer: SocketAddr,
    shared: &Shared,
    activity: Activity,
    mut stop: watch::Receiver<bool>,
    sink: Option<FileSink>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &shared.limits;
    let service = ConnectionService {
        router: shared.router.clone(),
        peer,
        activity: activity.clone(),
        stall_timeout: limits.stall_timeout,
        min_rate: MinRate::of(limits),
        sink,
    };
    let io = TokioIo::new(SpecErrors::new(StallIo::new(io, limits.stall_timeout)));
    let mut conn = pin!(shared.builder.serve_connection(io, service));
    let first = limits.header_read_timeout.min(limits.idle_timeout);
    let mut idle = pin!(activity.idle(first, limits.idle_timeout));
    let mut closing = false;
    let mut cut = pin!(tokio::time::sleep(Duration::MAX));
    let mut shed = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|stopping| *stopping), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = &mut idle, if !closing => {
                tracing::debug!(%peer, "closing an idle connection");
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            // Also while closing for idleness: the accept loop waits for this slot, and a graceful
            // close can take long (a slowloris head, an HTTP/2 client that does not answer GOAWAY).
            _ = activity.shed_requested(), if !shed => {
                // Checked on this task, the only one that begins requests: no request can begin
                // between the check and the close.
                if !activity.is_quiet() {
                    activity.refuse_shed();
                    continue;
                }
                if !activity.has_begun() || closing {
                    // No response was ever written (hyper's graceful shutdown would wait for a head
                    // already begun, which is what a slowloris sends), or the close has begun and
                    // had its chance to finish: nothing to wait for.
                    tracing::debug!(%peer, "closing a quiet connection at once to make room");
                    return;
                }
                tracing::debug!(%peer, "closing an idle keep-alive connection to make room");
                conn.as_mut().graceful_shutdown();
                closing = true;
                shed = true;
                cut.as_mut().reset(tokio::time::Instant::now() + SHED_GRACE);
            }
            _ = &mut cut, if shed => return,
        }
    }
}

/// The router as hyper calls it on one connection: requests are counted while in flight (for the idle
/// watcher), their bodies time out when stalled, and the connection's [`FileSink`] is available to
/// handlers for HTTP/1 requests on plain TCP.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    /// Put on each request, for the events' client address (`crate::notify`).
    peer: SocketAddr,
    activity: Activity,
    stall_timeout: Duration,
    min_rate: Option<MinRate>,
    sink: Option<FileSink>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Tracked<Body>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let (stall, min_rate) = (self.stall_timeout, self.min_rate);
        let mut req = req.map(|body| StallBody::new(body, stall, min_rate));
        req.extensions_mut()
            .insert(crate::notify::PeerAddr(self.peer));
        // HTTP/2 writes its own frames around body data: only HTTP/1 bodies go to the socket as they are.
        if let Some(sink) = &self.sink
            && matches!(req.version(), Version::HTTP_10 | Version::HTTP_11)
        {
            req.extensions_mut().insert(sink.clone());
        }
        let router = self.router.clone();
        Box::pin(async move {
            let resp = router.oneshot(req).await?;
            Ok(resp.map(|body| Tracked::new(body, in_flight)))
        })
    }
}
