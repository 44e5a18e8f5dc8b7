//! `berth serve`: opens the stores the configuration names, starts the background jobs (health checks,
//! upload purging, the adoption of a registry:2 tree lying beside berth's data), binds, announces,
//! serves until SIGTERM or SIGINT, then drains the requests in flight.
//! Wiring only: every behaviour lives in the crate that is handed its settings here.
//!
//! The single stdout line `berth listening on http(s)://<ip:port> (data: <root>)` is an interface: scripts
//! and the end-to-end tests read the bound address from it (with port 0 in the configuration it is the
//! only way to learn the port), so it is printed once the socket is bound, and flushed at once.
//!
//! Metrics are wired only when the debug server exports them (`http.debug.prometheus`): then the stores
//! are wrapped in timing decorators and the application in the request metrics, and `/metrics` joins the
//! debug router. Without it nothing is wrapped, so an unscraped registry pays nothing for them. The same
//! decorators open a span per storage call when traces are exported (`crate::telemetry`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_http::health::{CheckSettings, Health};
use berth_http::metrics::Metrics;
use berth_http::tls::{TlsAcceptor, TlsSettings};
use blobs::BlobStore;
use blobs::fs::FsBlobStore;
use blobs::registry2::Registry2Tree;
use blobs::registry2::fallback::WithRegistry2;
use blobs::registry2::fs::FsRegistry2Tree;
use blobs::s3::{S3BlobStore, S3Settings};
use metadata::Metadata;
use metadata::postgres::PostgresStore;
use metadata::sqlite::SqliteStore;
use registry::Registry;
use registry::cached::CachedCatalog;
use registry::instrumented::{InstrumentedBlobStore, InstrumentedMetadata};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::config::storage::Driver;

/// How long requests in flight may run on after a shutdown signal, unless `http.draintimeout` says
/// otherwise (a client stalled mid-upload must not keep the process alive forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the manifest pulls noted in memory are written (see `registry::pulls`): what a crash can
/// lose of pull times, which retention's `pulledwithin` only reads in days.
const PULL_RECORDING: Duration = Duration::from_secs(10);

/// How often the quotas are measured for the metrics (pushes are checked against the database itself,
/// not against this measurement).
const QUOTA_METERING: Duration = Duration::from_secs(60);

/// Serves until a signal; `traced`: traces are exported (`crate::telemetry`), so the stores are wrapped
/// in the decorators that open a span per call.
pub fn run(config: Config, traced: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(config, traced))
}

async fn serve(config: Config, traced: bool) -> anyhow::Result<()> {
    let Stores {
        root,
        blobs,
        blobs_name,
        meta,
        metadata_name,
        registry2,
    } = open_stores(&config).await?;
    let mut blobs = blobs;
    let mut meta = meta;
    let exported = config.http.debug.addr.is_some() && config.http.debug.prometheus.is_some();
    let metrics = exported.then(Metrics::new);
    // The same decorators time the calls for the metrics and open their spans for a trace.
    if metrics.is_some() || traced {
        let observer: Arc<dyn registry::instrumented::StorageObserver> = match &metrics {
            Some(metrics) => metrics.storage_observer(),
            None => Arc::new(()),
        };
        let backend = metadata_name.trim_start_matches("metadata_");
        // Labelled with registry:2's driver name.
        blobs = Arc::new(InstrumentedBlobStore::new(
            blobs,
            blobs_name,
            Arc::clone(&observer),
        ));
        meta = InstrumentedMetadata::wrap(meta, backend, observer);
    }
    // Outside the timing decorator, so the metrics time the database, not the cache's hits.
    if config.limits.metadata_cache.enabled() {
        let cached = Arc::new(CachedCatalog::new(
            meta.catalog,
            config.limits.metadata_cache,
        ));
        // What other replicas (and this process's other roles) change is forgotten as it commits.
        let changes = meta.changes.watch().await;
        let follower = Arc::clone(&cached);
        tokio::spawn(async move { follower.follow(changes).await });
        meta.catalog = cached;
    }
    let registry = Registry::new(blobs, meta, registry_settings(&config));
    let registry = match proxy_settings(&config)? {
        Some(proxy) => registry.with_proxy(proxy, metrics.as_ref().map(Metrics::cache_observer)),
        None => registry,
    };
    let registry = match registry2 {
        Some(tree) => {
            // Serving starts at once: a request for a repository not adopted yet adopts it first.
            let registry = registry.adopting(tree);
            tokio::spawn(registry.clone().run_registry2_adoption());
            registry
        }
        None => registry,
    };
    if let Some(eviction) = config.proxy.as_ref().and_then(|p| p.eviction()) {
        tokio::spawn(registry.clone().run_cache_eviction(eviction));
    }
    let registry = registry.with_notifications(config.notifications.settings(
        registry::notify::event::SourceRecord {
            addr: format!("{}:{}", host_name(), config.http.addr.port()),
            instance_id: String::new(),
        },
    ));
    if registry.notifies() {
        let sink = upstream::notify::HttpSink::new(&format!("berth/{}", env!("CARGO_PKG_VERSION")))
            .context("setting up the notifications' HTTP client")?;
        let observer: Arc<dyn registry::notify::DeliveryObserver> = match &metrics {
            Some(metrics) => metrics.delivery_observer(),
            None => Arc::new(()),
        };
        tokio::spawn(registry.clone().run_notifications(Arc::new(sink), observer));
        tokio::spawn(registry.clone().run_pull_events());
    }
    if let Some(metrics) = &metrics {
        metrics.watch_registry(&registry);
    }
    // Opened before binding, so a file that cannot be written stops the start.
    let audit = open_audit(&config.audit)?;
    if let (Some(metrics), Some(audit)) = (&metrics, &audit) {
        metrics.watch_audit(audit);
    }
    // Certificates are loaded before binding, so a missing or mismatched file stops the start.
    let tls = match &config.http.tls {
        Some(tls) => Some(
            TlsAcceptor::new(&TlsSettings {
                certificate: tls.certificate.clone(),
                key: tls.key.clone(),
                client_cas: tls.client_cas.clone(),
                client_auth: tls.client_auth,
                minimum_version: tls.minimum_version,
                http2: !config.http.http2_disabled,
            })
            .context("setting up TLS (http.tls)")?,
        ),
        None => None,
    };

    // Authentication is set up before binding, so a bad htpasswd line or key file stops the start.
    let authority = auth::Authority::new(&config.auth)
        .context("setting up authentication")?
        .map(Arc::new);
    if authority.is_none() {
        tracing::warn!("no auth configured: anyone who can reach berth may pull, push and delete");
    }

    let health = if config.health.enabled {
        Health::start(
            registry.clone(),
            CheckSettings {
                interval: config.health.interval,
                threshold: config.health.threshold,
                storage_name: format!("storagedriver_{}", config.storage.driver_name()),
                metadata_name: metadata_name.into(),
            },
        )
        .await
    } else {
        Health::unchecked()
    };
    if let Some(purging) = config.storage.upload_purging.clone() {
        tokio::spawn(registry.clone().run_upload_purger(purging));
    }
    tokio::spawn(registry.clone().run_pull_recorder(PULL_RECORDING));
    tokio::spawn(crate::memory::run_trimmer());
    if !config.quotas.is_empty() {
        tokio::spawn(registry.clone().run_quota_meter(QUOTA_METERING));
    }
    if let Some(interval) = config.retention.interval {
        tokio::spawn(
            registry
                .clone()
                .run_retention(config.retention.rules.clone(), interval),
        );
    }
    let replications = config
        .replication
        .replications()
        .context("setting up replication's upstreams")?;
    if !replications.is_empty() {
        tokio::spawn(
            registry
                .clone()
                .run_replication(replications, config.replication.interval),
        );
    }
    if let Some(interval) = config.gc.interval {
        tokio::spawn(registry.clone().run_garbage_collector(
            interval,
            config.gc.grace,
            config.gc.delete_untagged,
        ));
    }

    // Handlers first, so a signal sent as soon as the line below is read is already ours to handle.
    let signals = Signals::install().context("installing signal handlers")?;
    let listener = bind(config.http.addr).await?;
    let debug_listener = match config.http.debug.addr {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let bound = listener.local_addr().context("reading the bound address")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    announce(&format!(
        "berth listening on {scheme}://{bound} (data: {})",
        root.display()
    ))?;
    tracing::info!(
        addr = %bound,
        data = %root.display(),
        delete_enabled = config.storage.delete_enabled,
        read_only = config.storage.read_only,
        "serving"
    );

    let drain = config.http.drain_timeout.unwrap_or(DRAIN_TIMEOUT);
    let mut limits = config.limits.server.clone();
    limits.drain_timeout = drain;
    let options = berth_http::ServeSettings {
        limits,
        tls,
        http2: config.http.serves_http2(),
    };
    let (stop, stopped) = watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    if let Some(listener) = debug_listener {
        let addr = listener.local_addr().context("reading the debug address")?;
        tracing::info!(%addr, "debug server listening");
        let mut app = berth_http::health::debug_router(health.clone());
        if let (Some(metrics), Some(path)) = (&metrics, &config.http.debug.prometheus) {
            app = app.merge(metrics.router(path));
        }
        let stopping = until_stopped();
        tokio::spawn(async move {
            if let Err(e) = berth_http::serve(listener, app, stopping).await {
                tracing::error!(error = %e, "the debug server failed");
            }
        });
    }
    let mut api = berth_http::router_with_auth(registry.clone(), authority.clone());
    if config.ui.enabled {
        // The web interface: its own routes beside the API's, under the same prefix and authority.
        api = api.merge(berth_http::ui::router(
            registry.clone(),
            authority,
            &config.http.site,
            health.clone(),
            sign_in(&config)?,
        ));
    }
    let mut app = berth_http::site::mount(api, &config.http.site, health);
    // Every request of the API and the pages carries the audit log's handle, when there is one.
    app = berth_http::audit::install(app, audit.clone());
    if let Some(metrics) = &metrics {
        // Outermost, so that every answer counts: refusals of authentication and the probes too.
        app = metrics.instrument(app);
    }
    let server = berth_http::serve_with(listener, app, until_stopped(), options);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.context("serving"),
        signal = signals.wait() => {
            tracing::info!(signal, "shutting down: draining requests in flight");
            // A watch keeps its value, so a server not yet waiting still sees the stop.
            let _ = stop.send(true);
        }
    }
    // The server bounds its own drain; this bound is the last resort should that ever hang.
    match tokio::time::timeout(drain + Duration::from_secs(5), server).await {
        Ok(result) => result.context("serving")?,
        Err(_) => tracing::warn!(
            timeout_s = drain.as_secs(),
            "requests still running after the drain timeout; exiting anyway"
        ),
    }
    if let Err(e) = registry.flush_pulls().await {
        tracing::warn!(error = %e, "recording the last manifest pulls failed");
    }
    // The last second's pull events, so a clean stop loses none.
    registry.flush_pull_events().await;
    // And the audit lines still queued.
    if let Some(audit) = audit {
        let flushed =
            tokio::task::spawn_blocking(move || audit.flush(Duration::from_secs(5))).await;
        if !matches!(flushed, Ok(true)) {
            tracing::warn!("the audit log's last lines could not be written in time");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The audit log `config` asks for, its file opened (see `berth_http::audit`).
fn open_audit(
    config: &crate::config::audit::AuditConfig,
) -> anyhow::Result<Option<berth_http::audit::Audit>> {
    use crate::config::audit::AuditPath;
    use berth_http::audit::Audit;
    let audit = match &config.path {
        None => return Ok(None),
        // Through the log's writer, so that audit lines and log lines never tear each other.
        Some(AuditPath::Stderr) => Audit::to_writer(Box::new(crate::logging::writer::lines()))
            .context("starting the audit log's writer")?,
        Some(AuditPath::File(path)) => Audit::file(path)
            .with_context(|| format!("opening the audit log (audit.path) {}", path.display()))?,
    };
    Ok(Some(audit))
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
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

/// This machine's name, for the events' `source.addr` (registry:2's `os.Hostname()`); empty if unknown.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The blob store the configuration names, and its driver's name (registry:2's, for the metrics): S3
/// (credentials, region and endpoint the file leaves out come from the AWS environment variables), or
/// the filesystem under `root`.
/// One garbage collection over the stores `config` names (`berth garbage-collect`). `None` when
/// another sweep holds the job lock.
pub fn collect_garbage(
    config: &Config,
    options: registry::gc::GcOptions,
) -> anyhow::Result<Option<registry::gc::GcReport>> {
    with_registry(config, async |registry| {
        registry
            .collect_garbage(options)
            .await
            .context("collecting garbage")
    })
}

/// One application of the retention rules over the stores `config` names (`berth retention`). `None`
/// when another run holds the job lock.
pub fn apply_retention(
    config: &Config,
    dry_run: bool,
) -> anyhow::Result<Option<registry::retention::RetentionReport>> {
    with_registry(config, async |registry| {
        registry
            .apply_retention(&config.retention.rules, dry_run)
            .await
            .context("applying the retention rules")
    })
}

/// One scrub over the stores `config` names (`berth scrub`). `None` when another scrub holds the job
/// lock.
pub fn scrub(
    config: &Config,
    options: registry::scrub::ScrubOptions,
) -> anyhow::Result<Option<registry::scrub::ScrubReport>> {
    with_registry(config, async |registry| {
        registry.scrub(options).await.context("scrubbing")
    })
}

/// Runs `job` on a registry over the stores `config` names, on a runtime of its own: the maintenance
/// commands, beside a running registry or without one.
pub fn with_registry<T>(
    config: &Config,
    job: impl AsyncFnOnce(Registry) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let stores = open_stores(config).await?;
        let registry = Registry::new(stores.blobs, stores.meta, registry_settings(config));
        // The cache's namespaces, so a job knows cached repositories from local ones (the garbage
        // collector leaves the former to eviction); nothing of the cache runs.
        let registry = match proxy_settings(config)? {
            Some(proxy) => registry.with_proxy(proxy, None),
            None => registry,
        };
        job(registry).await
    })
}

/// The pull-through cache's settings, if `config` has a cache.
fn proxy_settings(config: &Config) -> anyhow::Result<Option<registry::proxy::ProxySettings>> {
    let Some(proxy) = &config.proxy else {
        return Ok(None);
    };
    Ok(Some(registry::proxy::ProxySettings {
        namespaces: proxy
            .namespaces()
            .context("setting up the proxy's upstreams")?,
        revalidate_after: proxy.revalidate,
        eviction: proxy.eviction(),
    }))
}

/// One adoption of the registry:2 tree beside berth's layout (`berth import`). `Ok(None)` when another
/// adoption holds the job lock; an error when there is no tree to adopt.
pub fn adopt_registry2(
    config: &Config,
    options: registry::adopt::AdoptOptions,
) -> anyhow::Result<Option<registry::adopt::AdoptReport>> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let stores = open_stores(config).await?;
        let Some(tree) = stores.registry2 else {
            anyhow::bail!(
                "no registry:2 tree ({}/) under {}: nothing to import",
                blobs::registry2::TREE,
                stores.root.display()
            );
        };
        let registry = Registry::new(stores.blobs, stores.meta, registry_settings(config));
        registry
            .adopt_registry2(tree.as_ref(), options)
            .await
            .context("importing registry:2's tree")
    })
}

/// The stores the configuration names, opened, with the names their metrics and health checks use.
pub struct Stores {
    /// The local data directory, absolute (the filesystem blobs' and SQLite's home).
    pub root: std::path::PathBuf,
    /// Reads registry:2's blobs where berth's layout lacks them when `registry2` is there.
    pub blobs: Arc<dyn BlobStore>,
    /// registry:2's tree beside berth's layout (same root or bucket prefix), when there is one: what
    /// `berth import` adopts, and where `blobs` reads adopted blobs from.
    pub registry2: Option<Arc<dyn Registry2Tree>>,
    pub blobs_name: &'static str,
    pub meta: Metadata,
    pub metadata_name: &'static str,
}

/// Opens the blob store and the metadata database the configuration names (creating the data
/// directory when they live there). Shared by `serve` and the maintenance commands.
pub async fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    let configured_root = config.storage.local_root();
    std::fs::create_dir_all(configured_root)
        .with_context(|| format!("creating the data directory {}", configured_root.display()))?;
    let root = std::path::absolute(configured_root)
        .with_context(|| format!("resolving the data directory {}", configured_root.display()))?;
    let (blobs, blobs_name, tree) = open_blobs(config, &root)?;
    let registry2 = open_registry2(tree).await?;
    let blobs = match &registry2 {
        Some(tree) => Arc::new(WithRegistry2::new(blobs, Arc::clone(tree))) as Arc<dyn BlobStore>,
        None => blobs,
    };
    let (meta, metadata_name) = if config.database.enabled {
        let db = &config.database;
        let store = PostgresStore::connect(&db.postgres_settings()?)
            .await
            .with_context(|| {
                format!(
                    "connecting to the metadata database {}:{}/{}",
                    db.host,
                    db.port,
                    db.dbname.as_deref().unwrap_or_default()
                )
            })?;
        (Metadata::of(Arc::new(store)), "metadata_postgres")
    } else {
        let db = root.join("metadata.sqlite");
        let store = SqliteStore::open(&db)
            .with_context(|| format!("opening the metadata database {}", db.display()))?;
        (Metadata::of(Arc::new(store)), "metadata_sqlite")
    };
    Ok(Stores {
        root,
        blobs,
        registry2,
        blobs_name,
        meta,
        metadata_name,
    })
}

/// What the configuration allows the registry.
pub fn registry_settings(config: &Config) -> registry::Settings {
    registry::Settings {
        delete_enabled: config.storage.delete_enabled,
        read_only: config.storage.read_only,
        max_concurrent_uploads: config.limits.max_concurrent_uploads,
        max_manifest_bytes: config.limits.max_manifest_bytes,
        blob_redirect: config.storage.redirect,
        immutable_tags: config.immutable_tags.clone(),
        quotas: config.quotas.clone(),
        max_tags: config.max_tags,
        index_children: config.index_children.clone(),
    }
}

/// `tree` (registry:2's, where registry:2 with this configuration keeps it: see `open_blobs`) when it
/// is there (see `blobs::registry2`).
async fn open_registry2(
    tree: (Arc<dyn Registry2Tree>, String),
) -> anyhow::Result<Option<Arc<dyn Registry2Tree>>> {
    let (tree, place) = tree;
    match tree.exists().await {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        // The storage may be down at start (a bucket unreachable): berth starts anyway, as it does
        // without a tree, and reads from the tree should it be there (a miss costs one more look).
        Err(e) => {
            tracing::warn!(
                tree = %place,
                error = %e,
                "cannot tell whether registry:2's tree is there; reading blobs from it where berth's own lack them"
            );
            return Ok(Some(tree));
        }
    }
    tracing::info!(
        tree = %place,
        "registry:2's tree found: its blobs are read where they lie, never written (berth import indexes it)"
    );
    Ok(Some(tree))
}

/// The blob store, its driver's name, and registry:2's tree where registry:2 with the same storage
/// settings keeps it (the filesystem root's or the bucket prefix's `docker/registry/v2/`, there or
/// not), with where that is, for the log.
type OpenedBlobs = (
    Arc<dyn BlobStore>,
    &'static str,
    (Arc<dyn Registry2Tree>, String),
);

fn open_blobs(config: &Config, root: &Path) -> anyhow::Result<OpenedBlobs> {
    if let Driver::S3(s3) = &config.storage.driver {
        let settings = S3Settings::resolve((**s3).clone(), |name| std::env::var(name).ok())
            .context("configuring the S3 blob store")?;
        let store = S3BlobStore::open(&settings).context("opening the S3 blob store")?;
        tracing::info!(
            bucket = %settings.bucket,
            endpoint = settings.endpoint.as_deref().unwrap_or("AWS"),
            region = %settings.region,
            root = %settings.root,
            chunksize = settings.chunk_size,
            max_blob_bytes = blobs::s3::max_blob_size(settings.chunk_size),
            "blobs on S3"
        );
        let place = format!(
            "s3://{}/{}{}",
            settings.bucket,
            if settings.root.is_empty() {
                String::new()
            } else {
                format!("{}/", settings.root)
            },
            blobs::registry2::TREE
        );
        let tree = Arc::new(store.registry2_tree());
        return Ok((Arc::new(store), "s3", (tree, place)));
    }
    let store = FsBlobStore::open(root)
        .with_context(|| format!("opening the blob store in {}", root.display()))?;
    let place = root.join(blobs::registry2::TREE).display().to_string();
    let tree = Arc::new(FsRegistry2Tree::new(root));
    Ok((Arc::new(store), "filesystem", (tree, place)))
}

/// With `auth.token`, what the web interface signs people in through: the token service, and the key of
/// its session cookies, derived from `http.secret` (every replica must share it, as registry:2 asks);
/// without one, a key of this process's own, and a warning.
fn sign_in(config: &Config) -> anyhow::Result<Option<berth_http::ui::SignIn>> {
    let Some(token) = &config.auth.token else {
        return Ok(None);
    };
    let service = upstream::token_service::HttpTokenService::new(
        &token.realm,
        &token.service,
        &format!("berth/{}", env!("CARGO_PKG_VERSION")),
    )
    .context("the web interface's token service")?;
    let secret = config
        .http
        .secret
        .as_ref()
        .map(|s| s.expose().as_bytes().to_vec());
    if secret.is_none() {
        tracing::warn!(
            "http.secret is not set: the web interface's sessions are sealed with a key of this \
             process's own, so they end when it restarts and are not taken by other replicas"
        );
    }
    let secure = config.http.tls.is_some()
        || config
            .http
            .site
            .base_url
            .as_ref()
            .is_some_and(|u| u.as_str().starts_with("https://"));
    Ok(Some(berth_http::ui::SignIn {
        service: Arc::new(service),
        secret,
        secure,
    }))
}
