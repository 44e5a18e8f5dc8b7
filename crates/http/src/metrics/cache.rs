//! The pull-through cache's metrics: what the registry's cache reports ([`CacheObserver`]) counted for
//! Prometheus.
//!
//! - `berth_proxy_cache_lookups_total{kind, result}`: `kind` is `manifest` or `blob`, `result` is `hit`
//!   (served from the cache), `miss` (fetched from the upstream) or `stale` (served from the cache
//!   because the upstream could not confirm it);
//! - `berth_proxy_cache_served_bytes_total`: blob bytes served from the cache (what the upstream did not
//!   have to send again);
//! - `berth_proxy_upstream_requests_total{request, outcome}`: `manifest_head`, `manifest_get`,
//!   `blob_get` by `ok`, `not_found`, `unavailable`, `rate_limited`, `denied`, `invalid`, `aborted`;
//! - `berth_proxy_cache_evicted_entries_total` and `berth_proxy_cache_evicted_bytes_total`;
//! - `berth_proxy_cache_uncached_fetches_total`: blob fetches that served their clients without
//!   caching the blob, because the cache's storage failed (a full disk, mostly).
//!
//! Every label value is one of those fixed words (bounded label sets): never a repository or upstream.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use registry::proxy::{CacheEvent, CacheObserver};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    request: &'static str,
    outcome: &'static str,
}

/// The cache's counters; clones share them.
#[derive(Clone, Default)]
pub(crate) struct CacheMetrics {
    lookups: Family<LookupLabels, Counter>,
    served_bytes: Counter,
    upstream: Family<UpstreamLabels, Counter>,
    evicted_entries: Counter,
    evicted_bytes: Counter,
    uncached: Counter,
}

impl CacheMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "berth_proxy_cache_lookups",
            "Pull-through cache lookups by kind and result (hit, miss, stale)",
            self.lookups.clone(),
        );
        registry.register(
            "berth_proxy_cache_served_bytes",
            "Blob bytes served from the pull-through cache",
            self.served_bytes.clone(),
        );
        registry.register(
            "berth_proxy_upstream_requests",
            "Requests of the pull-through cache to its upstreams by request and outcome",
            self.upstream.clone(),
        );
        registry.register(
            "berth_proxy_cache_evicted_entries",
            "Cached manifests and blobs removed by eviction",
            self.evicted_entries.clone(),
        );
        registry.register(
            "berth_proxy_cache_evicted_bytes",
            "Bytes of cached blobs removed by eviction",
            self.evicted_bytes.clone(),
        );
        registry.register(
            "berth_proxy_cache_uncached_fetches",
            "Blob fetches served without caching the blob because the cache's storage failed",
            self.uncached.clone(),
        );
    }

    fn lookup(&self, kind: &'static str, result: &'static str) {
        self.lookups
            .get_or_create(&LookupLabels { kind, result })
            .inc();
    }
}

impl CacheObserver for CacheMetrics {
    fn event(&self, event: CacheEvent) {
        match event {
            CacheEvent::Hit(kind) => self.lookup(kind.as_str(), "hit"),
            CacheEvent::Miss(kind) => self.lookup(kind.as_str(), "miss"),
            CacheEvent::Stale(kind) => self.lookup(kind.as_str(), "stale"),
            CacheEvent::ServedBytes(n) => {
                self.served_bytes.inc_by(n);
            }
            CacheEvent::Upstream(request, outcome) => {
                self.upstream
                    .get_or_create(&UpstreamLabels {
                        request: request.as_str(),
                        outcome: outcome.as_str(),
                    })
                    .inc();
            }
            CacheEvent::Evicted { entries, bytes } => {
                self.evicted_entries.inc_by(entries);
                self.evicted_bytes.inc_by(bytes);
            }
            CacheEvent::Uncached => {
                self.uncached.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use registry::proxy::{CacheKind, UpstreamCall, UpstreamOutcome};

    use super::*;

    #[test]
    fn events_become_counters_with_fixed_labels() {
        let metrics = CacheMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.event(CacheEvent::Hit(CacheKind::Blob));
        metrics.event(CacheEvent::Hit(CacheKind::Blob));
        metrics.event(CacheEvent::Stale(CacheKind::Manifest));
        metrics.event(CacheEvent::ServedBytes(1000));
        metrics.event(CacheEvent::Upstream(
            UpstreamCall::ManifestHead,
            UpstreamOutcome::RateLimited,
        ));
        metrics.event(CacheEvent::Evicted {
            entries: 2,
            bytes: 300,
        });
        metrics.event(CacheEvent::Uncached);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"berth_proxy_cache_lookups_total{kind="blob",result="hit"} 2"#,
            r#"berth_proxy_cache_lookups_total{kind="manifest",result="stale"} 1"#,
            "berth_proxy_cache_served_bytes_total 1000",
            r#"berth_proxy_upstream_requests_total{request="manifest_head",outcome="rate_limited"} 1"#,
            "berth_proxy_cache_evicted_entries_total 2",
            "berth_proxy_cache_evicted_bytes_total 300",
            "berth_proxy_cache_uncached_fetches_total 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
