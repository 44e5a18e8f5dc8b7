//! `berth serve`: loads the configuration, opens the stores, binds, announces, serves until SIGTERM or
//! SIGINT, then drains the requests in flight.
//!
//! The single stdout line `berth listening on http://<ip:port> (data: <root>)` is an interface: scripts and
//! the end-to-end tests read the bound address from it (with port 0 in the configuration it is the only
//! way to learn the port), so it is printed once the socket is bound, and flushed at once.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use blobs::fs::FsBlobStore;
use metadata::sqlite::SqliteStore;
use registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::{self, Config};

/// How long requests in flight may run on after a shutdown signal before berth exits regardless (a
/// client stalled mid-upload must not keep the process alive forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    let text = config_path
        .map(|p| {
            std::fs::read_to_string(p)
                .with_context(|| format!("reading the configuration file {}", p.display()))
        })
        .transpose()?;
    let env: HashMap<String, String> = std::env::vars().collect();
    let (config, unknown) =
        config::load(text.as_deref(), &env).with_context(|| match config_path {
            Some(p) => format!("configuration {}", p.display()),
            None => "configuration from the environment".to_string(),
        })?;
    for key in unknown {
        tracing::warn!(key = %key, "configuration key not supported by berth; ignored");
    }

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.root)
        .with_context(|| format!("creating the data directory {}", config.root.display()))?;
    let root = std::path::absolute(&config.root)
        .with_context(|| format!("resolving the data directory {}", config.root.display()))?;
    let blobs = FsBlobStore::open(&root)
        .with_context(|| format!("opening the blob store in {}", root.display()))?;
    let db = root.join("metadata.sqlite");
    let meta = SqliteStore::open(&db)
        .with_context(|| format!("opening the metadata database {}", db.display()))?;
    let registry = Registry::new(
        Arc::new(blobs),
        Arc::new(meta),
        registry::Config {
            delete_enabled: config.delete_enabled,
            ..registry::Config::default()
        },
    );

    // Authentication is set up before binding, so a bad htpasswd line or key file stops the start.
    let authority = auth::Authority::new(&config.auth)
        .context("setting up authentication")?
        .map(Arc::new);
    if authority.is_none() {
        tracing::warn!("no auth configured: anyone who can reach berth may pull, push and delete");
    }

    // Handlers first, so a signal sent as soon as the line below is read is already ours to handle.
    let signals = Signals::install().context("installing signal handlers")?;
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    announce(&format!(
        "berth listening on http://{bound} (data: {})",
        root.display()
    ))?;
    tracing::info!(addr = %bound, data = %root.display(), delete_enabled = config.delete_enabled, "serving");

    let stop = Arc::new(Notify::new());
    let router = berth_http::router_with_auth(registry, authority);
    let server = berth_http::serve(listener, router, {
        let stop = stop.clone();
        async move { stop.notified().await }
    });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.context("serving"),
        signal = signals.wait() => {
            tracing::info!(signal, "shutting down: draining requests in flight");
            // notify_one keeps a permit if the server is not waiting yet, so the stop is never lost.
            stop.notify_one();
        }
    }
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(result) => result.context("serving")?,
        Err(_) => tracing::warn!(
            timeout_s = DRAIN_TIMEOUT.as_secs(),
            "requests still running after the drain timeout; exiting anyway"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Prints the one stdout line and flushes it: stdout is a pipe under a test harness, hence buffered.
fn announce(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to stdout")?;
    out.flush().context("flushing stdout")
}

/// SIGTERM and SIGINT, registered when created (not when first awaited).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for either signal; returns its name.
    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
