//! End-to-end tests of the `berth` binary: the real server on `127.0.0.1:0` over a temporary directory,
//! driven by real clients (skopeo, podman, buildah) and by raw HTTP, with images the tests build themselves.
//! Nothing here reaches the network beyond the loopback interface.
//!
//! One test binary (rather than one per file) so cargo links it once; nextest still runs each test in its
//! own process, and `.config/nextest.toml` keeps the heavy ones from running all at once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod harness;

mod adopt;
mod api;
mod audit;
mod auth;
mod buildah;
mod config;
mod containerd;
mod crash;
mod curl;
mod deploy;
mod docker;
mod full;
mod gc;
mod image;
mod import_oci;
mod limits;
mod metrics;
mod notify;
mod otel;
mod outage;
mod podman;
mod proxy;
mod quotas;
mod registry3;
mod replicas;
mod replication;
mod retention;
mod scrub;
mod shutdown;
mod skopeo;
mod startup;
mod tags;
mod tls;
mod ui;
