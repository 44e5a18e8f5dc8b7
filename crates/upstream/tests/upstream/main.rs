//! `HttpUpstream` against real servers on 127.0.0.1: a berth registry as the upstream (open, with
//! htpasswd, over TLS), the testkit's fault proxy in front of it when a test needs failures or a bearer
//! gate, and the testkit's token server. Nothing is mocked: every byte crosses a socket.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod auth;
mod blobs;
mod exec;
mod faults;
mod harness;
mod manifests;
mod referrers;
mod tags;
mod tls;
