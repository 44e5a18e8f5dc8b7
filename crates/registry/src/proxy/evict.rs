//! Eviction of the pull-through cache: by age (not pulled for `max_age`) and by size (least recently
//! pulled first until the cache fits `max_bytes`), never touching local repositories.
//!
//! What the cache holds is recorded as *cache entries* in the metadata store (one per repository and
//! manifest or blob, with its size and last pull), written when content is fetched, with eviction
//! configured or not: an entry also keeps its blob from the garbage collector, which leaves cached
//! content to eviction. Pulls of cached
//! content are not written one by one: they are gathered in memory ([`Pulls`]) and written in one batch
//! by each eviction round (or sooner when many pile up), so a busy cache does not pay a database write
//! per pull; a crash loses at most one round's pull times, which only makes eviction a little early.
//!
//! Evicting an entry is what a client's delete would do: a manifest is deleted with its tags, a blob is
//! unlinked from the repository; a blob no repository links any more is then deleted from the blob
//! store. An entry whose repository is no longer under a cached namespace (the configuration changed) is
//! forgotten without touching the repository. A blob being fetched right now is skipped.
//!
//! Sizes are per entry: a blob cached through two repositories counts twice, so the size limit is
//! conservative. Of replicas sharing the stores, one evicts at a time (a job lock per round).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use metadata::{ProxyEntry, ProxyEntryKind};
use oci::{Digest, RepoName};

use super::CacheEvent;
use crate::clock::unix_now;
use crate::{Registry, Result};

/// Pulls gathered before a batch is written without waiting for the next round.
const FLUSH_AT: usize = 10_000;
/// Entries read per query while evicting.
const PAGE: usize = 100;
/// The job lock of eviction rounds.
const EVICTION_JOB: &str = "proxy-eviction";

/// How the cache is kept in bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eviction {
    /// Most bytes the cache's entries may take; the least recently pulled go first.
    pub max_bytes: Option<u64>,
    /// Entries not pulled for this long go.
    pub max_age: Option<Duration>,
    /// Time between rounds.
    pub interval: Duration,
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvictionReport {
    pub entries: u64,
    pub bytes: u64,
}

/// Pulls of cached content not written yet: the latest time per repository and digest.
#[derive(Default)]
pub(crate) struct Pulls(Mutex<HashMap<(RepoName, Digest), ProxyEntry>>);

impl Pulls {
    fn take(&self) -> Vec<ProxyEntry> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.drain().map(|(_, e)| e).collect()
    }
}

impl Registry {
    /// Notes a pull of cached content (written by the next flush).
    pub(crate) fn record_pull(
        &self,
        repo: &RepoName,
        digest: &Digest,
        kind: ProxyEntryKind,
        size: u64,
    ) {
        let Some(proxy) = self.proxy.as_ref().filter(|p| p.tracks_pulls) else {
            return;
        };
        let full = {
            let mut map = proxy.pulls.0.lock().unwrap_or_else(PoisonError::into_inner);
            map.insert(
                (repo.clone(), digest.clone()),
                ProxyEntry {
                    repo: repo.clone(),
                    digest: digest.clone(),
                    kind,
                    size,
                    pulled_at: unix_now(),
                },
            );
            map.len() >= FLUSH_AT
        };
        if full {
            let reg = self.clone();
            tokio::spawn(async move {
                if let Err(e) = reg.flush_cache_pulls().await {
                    tracing::warn!(error = %e, "recording pulls of cached content failed");
                }
            });
        }
    }

    /// Records newly cached content at once (a fetch already wrote to the stores; one more row is
    /// nothing, and it must not be lost, or eviction would never see it). Failures are logged: the
    /// content is served either way.
    pub(crate) async fn record_cached(
        &self,
        repo: &RepoName,
        digest: &Digest,
        kind: ProxyEntryKind,
        size: u64,
    ) {
        // Eviction or not: the entry is also what keeps the garbage collector from the content.
        if self.proxy.is_none() {
            return;
        }
        let entry = ProxyEntry {
            repo: repo.clone(),
            digest: digest.clone(),
            kind,
            size,
            pulled_at: unix_now(),
        };
        if let Err(e) = self.meta.proxy_entries.touch_proxy_entries(&[entry]).await {
            tracing::warn!(%repo, %digest, error = %e, "recording cached content for eviction failed");
        }
    }

    /// Writes the pulls gathered in memory.
    pub async fn flush_cache_pulls(&self) -> Result<()> {
        let Some(proxy) = &self.proxy else {
            return Ok(());
        };
        let pulls = proxy.pulls.take();
        if pulls.is_empty() {
            return Ok(());
        }
        self.meta.proxy_entries.touch_proxy_entries(&pulls).await?;
        Ok(())
    }

    /// One eviction round: flushes the pulls, then evicts by age, then by size.
    pub async fn evict_cache(&self, eviction: &Eviction) -> Result<EvictionReport> {
        self.evict_cache_as_of(eviction, unix_now()).await
    }

    /// [`evict_cache`](Self::evict_cache) as if the clock read `now` (Unix seconds): for tests, which
    /// cannot wait days for content to age.
    pub async fn evict_cache_as_of(&self, eviction: &Eviction, now: i64) -> Result<EvictionReport> {
        let mut report = EvictionReport::default();
        if self.proxy.is_none() {
            return Ok(report);
        }
        self.flush_cache_pulls().await?;
        if let Some(age) = eviction.max_age {
            let cut = crate::clock::seconds_before(now, age);
            loop {
                let page = self
                    .meta
                    .proxy_entries
                    .oldest_proxy_entries(cut, PAGE)
                    .await?;
                let progress = self.evict_page(&page, None, &mut report).await?;
                if page.len() < PAGE || !progress {
                    break;
                }
            }
        }
        if let Some(max) = eviction.max_bytes {
            loop {
                let total = self.meta.proxy_entries.proxy_entries_size().await?;
                if total <= max {
                    break;
                }
                let page = self
                    .meta
                    .proxy_entries
                    .oldest_proxy_entries(i64::MAX, PAGE)
                    .await?;
                let progress = self
                    .evict_page(&page, Some((total, max)), &mut report)
                    .await?;
                if page.is_empty() || !progress {
                    break;
                }
            }
        }
        if report.entries > 0 {
            self.observe(CacheEvent::Evicted {
                entries: report.entries,
                bytes: report.bytes,
            });
            tracing::info!(
                entries = report.entries,
                bytes = report.bytes,
                "evicted from the pull-through cache"
            );
        }
        Ok(report)
    }

    /// Evicts the entries of `page` in order (with `fit`: only until the total fits). Returns whether
    /// anything was removed (entries being fetched are skipped; a page of them only is no progress).
    async fn evict_page(
        &self,
        page: &[ProxyEntry],
        mut fit: Option<(u64, u64)>,
        report: &mut EvictionReport,
    ) -> Result<bool> {
        let mut progress = false;
        for e in page {
            if let Some((total, max)) = fit {
                if total <= max {
                    break;
                }
                fit = Some((total.saturating_sub(e.size), max));
            }
            if self.evict_entry(e).await? {
                report.entries += 1;
                report.bytes += e.size;
                progress = true;
            }
        }
        Ok(progress)
    }

    /// Removes one entry and what it stands for. `false` if it was skipped (being fetched).
    async fn evict_entry(&self, e: &ProxyEntry) -> Result<bool> {
        let cached_here = self
            .proxy_route(&e.repo)
            .is_some_and(|route| route.local == e.repo);
        if cached_here {
            if self.fetching(&e.repo, &e.digest) {
                return Ok(false);
            }
            match e.kind {
                ProxyEntryKind::Manifest => {
                    self.meta
                        .catalog
                        .delete_manifest(&e.repo, &e.digest)
                        .await?;
                }
                ProxyEntryKind::Blob => {
                    // A push, mount or fetch of this process that found the bytes present links them
                    // under the same lock, so it either linked before this looks or finds them gone.
                    let _blob = self.lock_blob(&e.digest).await;
                    self.meta.catalog.unlink_blob(&e.repo, &e.digest).await?;
                    if self.meta.catalog.known_blob(&e.digest).await?.is_none() {
                        self.blobs.delete(&e.digest).await?;
                        // Another replica holds no lock of this process: one of its pushes that found
                        // the bytes present just before they went would link nothing. berth has no
                        // grace-period sweep yet, so that stays possible across replicas, but never silent.
                        if self.meta.catalog.known_blob(&e.digest).await?.is_some() {
                            tracing::error!(digest = %e.digest, "a push linked this blob while eviction deleted its bytes: push it again");
                        }
                    }
                }
            }
        } else {
            tracing::info!(repo = %e.repo, digest = %e.digest, "forgetting a cache entry of a repository that is no longer cached");
        }
        self.meta
            .proxy_entries
            .remove_proxy_entry(&e.repo, &e.digest)
            .await?;
        Ok(true)
    }

    /// Runs eviction rounds every `eviction.interval` until the task is dropped. Errors are logged and
    /// the next round tries again.
    pub async fn run_cache_eviction(self, eviction: Eviction) {
        let mut tick = tokio::time::interval(eviction.interval.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let lock = match self.meta.jobs.try_job_lock(EVICTION_JOB).await {
                Ok(Some(lock)) => lock,
                // Another replica evicts this round; pulls gathered here still get written.
                Ok(None) => {
                    if let Err(e) = self.flush_cache_pulls().await {
                        tracing::warn!(error = %e, "recording pulls of cached content failed");
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "taking the eviction job lock failed");
                    continue;
                }
            };
            if let Err(e) = self.evict_cache(&eviction).await {
                tracing::warn!(error = %e, "evicting from the pull-through cache failed");
            }
            drop(lock);
        }
    }
}
