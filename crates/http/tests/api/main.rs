//! In-process tests of the router: every endpoint, header and error path, driven with
//! `tower::ServiceExt::oneshot` over real temporary storage (the fs blob store and SQLite metadata).
//! `server` also runs the real server on 127.0.0.1:0, for what only hyper does (HEAD framing, a body cut
//! off on the wire, graceful shutdown).
//!
//! The harness fails any test that sees a 500 or a response without the API version header or a request
//! id: those hold for every response, so every request checks them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod harness;

mod access_log;
mod audit;
mod auth;
mod blobs;
mod discovery;
mod health;
mod limits;
mod manifests;
mod metrics;
mod notify;
mod proxy;
mod readonly;
mod routing;
mod sendfile;
mod server;
mod site;
mod tls;
mod tls_client_auth;
mod ui;
mod ui_api;
mod ui_signin;
mod uploads;
mod usage;
