//! The cache's own running totals, kept whether or not anyone exports metrics: what the web interface's
//! registry page and `/api/v1/registry` show of the cache (hits, bytes the upstream did not send again,
//! the last upstream failure). Every event still reaches the configured observer (the metrics) too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::observer::{CacheEvent, CacheObserver, UpstreamOutcome};
use crate::clock;

/// Counts what the cache did since this process started.
#[derive(Default)]
pub(crate) struct CacheTally {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    served_bytes: AtomicU64,
    upstream_failures: AtomicU64,
    /// Unix seconds of the last upstream failure (0: none), and its outcome's index in [`FAILURES`].
    last_failure_at: AtomicU64,
    last_failure: AtomicU64,
}

/// The outcomes that count as a failure of the upstream, in the order `last_failure` indexes them. A 404
/// is an answer, not a failure.
const FAILURES: [UpstreamOutcome; 5] = [
    UpstreamOutcome::Unavailable,
    UpstreamOutcome::RateLimited,
    UpstreamOutcome::Denied,
    UpstreamOutcome::Invalid,
    UpstreamOutcome::Aborted,
];

/// [`CacheTally`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheTotals {
    /// Manifests and blobs served from the cache.
    pub hits: u64,
    /// Fetched from the upstream because they were not cached (or out of date).
    pub misses: u64,
    /// Served from the cache because the upstream could not confirm them.
    pub stale: u64,
    /// Blob bytes served from the cache: what the upstream did not have to send again.
    pub served_bytes: u64,
    /// Upstream requests that failed (down, rate limited, denied, invalid, broken off).
    pub upstream_failures: u64,
    /// When the last one failed (Unix seconds), and how (`unavailable`, `rate_limited`, ...).
    pub last_failure: Option<(u64, &'static str)>,
}

impl CacheTally {
    pub fn snapshot(&self) -> CacheTotals {
        let at = self.last_failure_at.load(Relaxed);
        let how = FAILURES
            .get(self.last_failure.load(Relaxed) as usize)
            .map_or("unknown", |o| o.as_str());
        CacheTotals {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            stale: self.stale.load(Relaxed),
            served_bytes: self.served_bytes.load(Relaxed),
            upstream_failures: self.upstream_failures.load(Relaxed),
            last_failure: (at != 0).then_some((at, how)),
        }
    }

    fn count(&self, event: CacheEvent) {
        match event {
            CacheEvent::Hit(_) => self.hits.fetch_add(1, Relaxed),
            CacheEvent::Miss(_) => self.misses.fetch_add(1, Relaxed),
            CacheEvent::Stale(_) => self.stale.fetch_add(1, Relaxed),
            CacheEvent::ServedBytes(n) => self.served_bytes.fetch_add(n, Relaxed),
            CacheEvent::Upstream(_, outcome) => {
                if let Some(i) = FAILURES.iter().position(|f| *f == outcome) {
                    self.last_failure.store(i as u64, Relaxed);
                    self.last_failure_at
                        .store(clock::unix_now().max(1) as u64, Relaxed);
                    self.upstream_failures.fetch_add(1, Relaxed)
                } else {
                    0
                }
            }
            CacheEvent::Evicted { .. } | CacheEvent::Uncached => 0,
        };
    }
}

/// The observer the cache reports to: the tally, then whoever else watches.
pub(crate) struct Tallied {
    pub tally: Arc<CacheTally>,
    pub next: Arc<dyn CacheObserver>,
}

impl CacheObserver for Tallied {
    fn event(&self, event: CacheEvent) {
        self.tally.count(event);
        self.next.event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::observer::{CacheKind, UpstreamCall};

    #[test]
    fn hits_bytes_and_the_last_failure_add_up() {
        let tally = CacheTally::default();
        assert_eq!(tally.snapshot(), CacheTotals::default());
        for e in [
            CacheEvent::Hit(CacheKind::Blob),
            CacheEvent::Hit(CacheKind::Manifest),
            CacheEvent::Miss(CacheKind::Blob),
            CacheEvent::Stale(CacheKind::Manifest),
            CacheEvent::ServedBytes(100),
            CacheEvent::ServedBytes(23),
            CacheEvent::Upstream(UpstreamCall::BlobGet, UpstreamOutcome::Ok),
            CacheEvent::Upstream(UpstreamCall::BlobGet, UpstreamOutcome::NotFound),
            CacheEvent::Upstream(UpstreamCall::ManifestHead, UpstreamOutcome::Unavailable),
            CacheEvent::Upstream(UpstreamCall::ManifestGet, UpstreamOutcome::RateLimited),
        ] {
            tally.count(e);
        }
        let t = tally.snapshot();
        assert_eq!(
            (
                t.hits,
                t.misses,
                t.stale,
                t.served_bytes,
                t.upstream_failures
            ),
            (2, 1, 1, 123, 2)
        );
        let (at, how) = t.last_failure.expect("a failure was counted");
        assert!(at > 1_600_000_000, "{at}");
        assert_eq!(how, "rate_limited");
    }
}
