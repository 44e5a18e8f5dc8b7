//! Test servers for pull-through tests (cargo feature `testkit`): a fault-injecting HTTP proxy to put
//! in front of an upstream registry, and a token server for the bearer-token dance.
//!
//! - [`FaultProxy`] listens on `127.0.0.1:0`, forwards to a target registry, counts requests by method
//!   and kind (manifest, blob, token, other), and can be switched at run time to answer 429 or 503, to
//!   stall, to drop the connection or stall after N body bytes, to corrupt a body byte, to send a
//!   chunked body, to redirect, to refuse connections (stopped), to negotiate `Accept` like registry:2,
//!   or to demand bearer tokens from a [`TokenServer`].
//! - [`TokenServer`] issues opaque tokens at `/token` (Docker's token API: `service` and `scope` query
//!   parameters, Basic credentials or anonymous), counts its requests, and lets the proxy check tokens.
//!
//! Both are plain HTTP/1.1 on loopback, built on hyper, and stop when dropped. Nothing here is meant for
//! production; their state lives in std mutexes (never held across an await).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod proxy;
mod token;

pub use proxy::{Fault, FaultProxy, Kind};
pub use token::{TokenField, TokenRequest, TokenServer, TokenServerConfig};

/// Boxed errors of the test servers' bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The response body of the test servers: whole, streamed from an upstream, or broken on purpose.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// A JSON error body in the distribution spec's shape.
fn spec_error(status: u16, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]});
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A running accept loop and the switch that closes every connection it accepted.
struct Server {
    accept: JoinHandle<()>,
    kill: watch::Sender<bool>,
}

impl Server {
    /// Serves `handler` on `listener` (HTTP/1.1), one task per connection.
    fn spawn<H, F>(listener: TcpListener, handler: H) -> Server
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Body>> + Send + 'static,
    {
        let (kill, killed) = watch::channel(false);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, most likely: wait rather than spin.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let handler = handler.clone();
                let mut killed = killed.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler(req).await) }
                    });
                    let conn =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    // Dropping the connection future closes the socket: that is how "stopped" and drop
                    // of the server end connections in flight.
                    tokio::select! {
                        _ = conn => {}
                        _ = killed.wait_for(|k| *k) => {}
                    }
                });
            }
        });
        Server { accept, kill }
    }

    fn stop(&self) {
        self.accept.abort();
        let _ = self.kill.send(true);
    }

    /// [`Server::stop`], and waits until the listener is closed (so its port can be bound again).
    async fn shutdown(mut self) {
        self.stop();
        let _ = (&mut self.accept).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn bind(addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
