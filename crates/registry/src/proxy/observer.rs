//! What the pull-through cache reports, for whoever keeps the metrics (the registry has no Prometheus).
//!
//! Every label is one of a few fixed words, never a repository or upstream URL: metric label sets stay
//! bounded whatever clients ask for.

/// What was asked of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheKind {
    Manifest,
    Blob,
}

/// A request the cache made of an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamCall {
    ManifestHead,
    ManifestGet,
    BlobGet,
}

/// How an upstream request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamOutcome {
    Ok,
    NotFound,
    Unavailable,
    RateLimited,
    Denied,
    /// A malformed answer, or bytes that did not match their digest.
    Invalid,
    /// The body broke off mid-transfer.
    Aborted,
}

/// One thing the cache did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheEvent {
    /// Served from the cache (for a tag: fresh, or confirmed current by a HEAD).
    Hit(CacheKind),
    /// Not cached, or out of date: fetched from the upstream.
    Miss(CacheKind),
    /// Served from the cache because the upstream could not confirm it (down, slow, 429).
    Stale(CacheKind),
    /// Bytes of blobs served from the cache, which the upstream did not have to send.
    ServedBytes(u64),
    Upstream(UpstreamCall, UpstreamOutcome),
    /// Entries removed by eviction, and their bytes.
    Evicted {
        entries: u64,
        bytes: u64,
    },
    /// A blob fetch went on without caching the blob: the cache's storage failed (a full disk, mostly).
    Uncached,
}

/// Receives the cache's events. Called on the request path: must not block.
pub trait CacheObserver: Send + Sync + 'static {
    fn event(&self, event: CacheEvent);
}

/// The observer of a registry nobody watches.
pub(crate) struct Nobody;

impl CacheObserver for Nobody {
    fn event(&self, _: CacheEvent) {}
}

impl CacheKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Manifest => "manifest",
            CacheKind::Blob => "blob",
        }
    }
}

impl UpstreamCall {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamCall::ManifestHead => "manifest_head",
            UpstreamCall::ManifestGet => "manifest_get",
            UpstreamCall::BlobGet => "blob_get",
        }
    }
}

impl UpstreamOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamOutcome::Ok => "ok",
            UpstreamOutcome::NotFound => "not_found",
            UpstreamOutcome::Unavailable => "unavailable",
            UpstreamOutcome::RateLimited => "rate_limited",
            UpstreamOutcome::Denied => "denied",
            UpstreamOutcome::Invalid => "invalid",
            UpstreamOutcome::Aborted => "aborted",
        }
    }
}
