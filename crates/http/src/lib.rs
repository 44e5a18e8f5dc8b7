//! The HTTP face of berth: the OCI Distribution API over the [`Registry`].
//!
//! One wildcard route takes every `/v2/...` request; [`Endpoint::parse`] turns its method, path and query
//! into a typed endpoint (repository names contain slashes, so the path is read from the right), and a
//! handler per resource group calls one registry operation and writes the spec's headers. Failures become
//! the spec's error body in [`error`], through one exhaustive table. No business rule lives here: what is
//! allowed and what exists is the registry's decision.
//!
//! Request bodies stream into the registry as [`registry::ByteStream`] (see [`body`]); response bodies stream
//! out of it. Only manifests are read whole, up to the registry's size limit.

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::Router;
use registry::Registry;
use tokio::net::TcpListener;

pub mod access;
pub mod audit;
pub mod auth;
pub mod body;
mod counted;
pub mod endpoint;
pub mod error;
mod handlers;
pub mod headers;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod notify;
mod runtime;
pub mod site;
pub mod trace;
pub mod ui;

pub use endpoint::Endpoint;
pub use error::ApiError;
pub use runtime::server::ServeSettings;
pub use runtime::{limits, sendfile, tls};

/// The application: the `/v2/` API over `registry`, with request ids, logging and the version header on
/// every response.
pub fn router(registry: Registry) -> Router {
    router_with_auth(registry, None)
}

/// [`router`], with every request first authenticated and authorized by `authority` when there is one
/// (see [`auth`]); `None` leaves the registry open, as registry:2 without `auth`.
pub fn router_with_auth(registry: Registry, authority: Option<Arc<::auth::Authority>>) -> Router {
    // Every request reaches the dispatcher, which reads the raw path itself and answers the spec's 404
    // outside `/v2/` (`Endpoint::parse`). A fallback rather than routes: routes for `/v2/{*rest}` made
    // axum match the path, percent-decode the rest into a parameter and record the matched route, on
    // every request, for a dispatcher that reads none of it.
    // Who asked, for the events a request causes: inside the auth middleware, which names the user.
    let origin = axum::middleware::from_fn_with_state(registry.clone(), notify::origin);
    // The audit log's scope (when `audit::install` put a handle on the requests): outside the auth
    // middleware, which records refusals; inside the request context, for the request id.
    let app = match authority {
        None => Router::new().fallback(handlers::dispatch).layer(origin),
        // The guarded dispatcher routes only on the parse the middleware authorized (see `auth`). The
        // middleware sits inside the request context, so refusals carry the request id and version
        // header too.
        Some(authority) => Router::new()
            .fallback(handlers::dispatch_authorized)
            .layer(origin)
            .layer(axum::middleware::from_fn_with_state(
                authority,
                auth::authorize,
            )),
    };
    app.layer(audit::ScopeLayer(audit::Via::Api))
        .layer(middleware::RequestContextLayer)
        .with_state(registry)
}

/// Serves `router` on an already-bound `listener` with the default [`ServeSettings`] (plain HTTP, the
/// default [`limits::Limits`]) until `shutdown` completes; see [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, router, shutdown, ServeSettings::default()).await
}

/// Serves `router` on an already-bound `listener` until `shutdown` completes, then stops accepting, lets
/// the requests in flight finish within the drain timeout, and returns. Taking the listener (rather than
/// an address) lets callers bind port 0 and learn the real port before serving. The loop itself, and how
/// each limit is enforced, is in `server.rs`.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeSettings,
) -> io::Result<()> {
    runtime::server::run(listener, router, shutdown, options).await
}
