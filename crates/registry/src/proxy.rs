//! The pull-through cache: repositories under a configured namespace are read from an [`Upstream`]
//! on a miss and kept in the registry's own stores.
//!
//! It is a wrapper on the read path, not a mode of every handler: `get_manifest`, `get_blob` and
//! `stat_blob` ask [`Registry::proxy_route`] whether the repository is cached and, if so, hand over to
//! [`manifests`] or [`flight`]; every write into a cached repository is refused
//! ([`Registry::writable_in`]). Cached content lives in the same stores as pushed content and is served
//! by the same code once it is there:
//! - manifests are stored through the metadata store without the reference check (their blobs are
//!   fetched when asked for, not up front), tags are revalidated with a HEAD at most once per interval
//!   ([`fresh`]), and a cached copy is served stale (flagged for a `Warning` header) when the upstream
//!   cannot confirm it;
//! - blobs are fetched once per repository and digest however many clients ask at once, streamed to all
//!   of them while they are written to an upload, and committed only when the digest checks out
//!   ([`flight`]).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use oci::RepoName;

use crate::{ByteStream, Error, Registry, Result};

mod evict;
mod flight;
mod fresh;
mod manifests;
mod observer;
mod route;
mod tally;
pub mod upstream;

pub use evict::{Eviction, EvictionReport};
pub use observer::{CacheEvent, CacheKind, CacheObserver, UpstreamCall, UpstreamOutcome};
pub use route::Namespace;
pub use tally::CacheTotals;
pub use upstream::{ManifestHead, Upstream, UpstreamBlob, UpstreamError, UpstreamManifest};

pub(crate) use route::Route;

/// How long a tag pulled through the cache is served without asking the upstream, by default.
pub const DEFAULT_REVALIDATE_AFTER: Duration = Duration::from_secs(60);

/// The `Warning` header value of a manifest served from the cache because the upstream could not
/// confirm it (RFC 9111's warn-code 110, "Response is Stale").
pub const STALE_WARNING: &str = "110 - \"Response is stale\"";

/// What the cache mirrors and how.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// Cached namespaces; repositories outside them are local (pushed to this registry).
    pub namespaces: Vec<Namespace>,
    /// A tag confirmed by the upstream within this long is served without asking again.
    pub revalidate_after: Duration,
    /// Size and age limits; `None`: the cache keeps everything (and records no pull times).
    pub eviction: Option<Eviction>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            namespaces: Vec::new(),
            revalidate_after: DEFAULT_REVALIDATE_AFTER,
            eviction: None,
        }
    }
}

/// The cache's state in a registry: its routes, which tags are fresh, the blob fetches in flight.
pub(crate) struct Proxy {
    routes: route::Routes,
    fresh: fresh::Freshness,
    flights: flight::Flights,
    /// The tally, then the configured observer (the metrics).
    observer: Arc<dyn CacheObserver>,
    tally: Arc<tally::CacheTally>,
    /// Whether pull times are recorded (only eviction by age and size reads them).
    tracks_pulls: bool,
    pulls: evict::Pulls,
}

impl Registry {
    /// This registry with a pull-through cache of `config`'s namespaces, reporting to `observer`.
    pub fn with_proxy(
        mut self,
        config: ProxySettings,
        observer: Option<Arc<dyn CacheObserver>>,
    ) -> Registry {
        let routes = route::Routes::new(config.namespaces);
        self.proxy = (!routes.is_empty()).then(|| {
            let tally = Arc::new(tally::CacheTally::default());
            Arc::new(Proxy {
                routes,
                fresh: fresh::Freshness::new(config.revalidate_after),
                flights: flight::Flights::default(),
                observer: Arc::new(tally::Tallied {
                    tally: Arc::clone(&tally),
                    next: observer.unwrap_or_else(|| Arc::new(observer::Nobody)),
                }),
                tally,
                tracks_pulls: config.eviction.is_some(),
                pulls: evict::Pulls::default(),
            })
        });
        self
    }

    /// Whether `repo` is mirrored from an upstream (and so read-only to clients).
    pub fn is_cached(&self, repo: &RepoName) -> bool {
        self.proxy_route(repo).is_some()
    }

    /// The repository a containerd mirror request means: `name` under the namespace `ns` (its `?ns=`
    /// parameter) when a cached namespace has exactly that prefix, else `None` (the name stands as sent).
    pub fn proxy_namespace(&self, ns: &str, name: &RepoName) -> Option<RepoName> {
        self.proxy.as_ref()?.routes.with_namespace(ns, name)
    }

    /// The cached namespaces (prefix, upstream's name) and what the cache did since this process
    /// started; `None` without a cache.
    pub fn cache_state(&self) -> Option<(Vec<(String, String)>, CacheTotals)> {
        let proxy = self.proxy.as_ref()?;
        Some((proxy.routes.names(), proxy.tally.snapshot()))
    }

    pub(crate) fn proxy_route(&self, repo: &RepoName) -> Option<Route> {
        self.proxy.as_ref()?.routes.route(repo)
    }

    /// The write check of an operation on `repo`: read-only mode, then cached namespaces, which only
    /// their upstream fills (405 UNSUPPORTED, as registry:2 answers pushes to a mirror).
    pub(crate) fn writable_in(&self, repo: &RepoName) -> Result<()> {
        self.writable()?;
        if self.is_cached(repo) {
            return Err(Error::Unsupported(format!(
                "{repo} is a pull-through cache of an upstream registry: it is read-only"
            )));
        }
        Ok(())
    }

    /// A cached blob read from the cache: counted as a hit and recorded as pulled. What it returns
    /// counts the bytes as they are sent, as bytes the upstream did not have to send (`None` without a
    /// cache).
    pub(crate) fn served_from_cache(
        &self,
        repo: &RepoName,
        digest: &oci::Digest,
        size: u64,
    ) -> Option<ServedBytes> {
        let proxy = self.proxy.as_ref()?;
        self.record_pull(repo, digest, metadata::ProxyEntryKind::Blob, size);
        proxy.observer.event(CacheEvent::Hit(CacheKind::Blob));
        Some(ServedBytes(Arc::clone(&proxy.observer)))
    }

    fn observe(&self, event: CacheEvent) {
        if let Some(p) = &self.proxy {
            p.observer.event(event);
        }
    }
}

/// Counts the bytes of a cache hit as they go out (the metrics' bytes served from the cache), whichever
/// way they are sent: streamed (`counting`) or from the file by the server (`sent`, per piece).
#[derive(Clone)]
pub struct ServedBytes(Arc<dyn CacheObserver>);

impl ServedBytes {
    /// `n` more bytes of the blob were sent.
    pub fn sent(&self, n: u64) {
        self.0.event(CacheEvent::ServedBytes(n));
    }

    /// `body`, counting each chunk as it passes.
    pub(crate) fn counting(self, body: ByteStream) -> ByteStream {
        Box::pin(body.inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                self.sent(bytes.len() as u64);
            }
        }))
    }
}

impl std::fmt::Debug for ServedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServedBytes")
    }
}

/// An upstream failure as the client sees it when there is no cached copy to fall back on.
pub(crate) fn client_error(e: &UpstreamError) -> Error {
    match e {
        UpstreamError::RateLimited { .. } => Error::TooManyRequests,
        UpstreamError::Denied(_) => Error::Denied,
        UpstreamError::Unavailable(_) => {
            Error::Unavailable("the upstream registry cannot be reached".into())
        }
        UpstreamError::Protocol(_) => {
            Error::Unavailable("the upstream registry answered wrongly".into())
        }
    }
}

/// The metrics outcome of an upstream failure.
fn outcome(e: &UpstreamError) -> UpstreamOutcome {
    match e {
        UpstreamError::Unavailable(_) => UpstreamOutcome::Unavailable,
        UpstreamError::RateLimited { .. } => UpstreamOutcome::RateLimited,
        UpstreamError::Denied(_) => UpstreamOutcome::Denied,
        UpstreamError::Protocol(_) => UpstreamOutcome::Invalid,
    }
}
