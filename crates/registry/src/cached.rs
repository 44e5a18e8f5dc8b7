//! A [`CachedCatalog`]: an in-memory cache in front of any [`Catalog`] for the three lookups
//! every pull makes (a manifest by digest, a tag's manifest, a blob's link to a repository), so that a
//! hot pull is answered from memory without a query or a hop to a blocking thread.
//!
//! Why a decorator (like [`instrumented`](crate::instrumented)): the backends and the registry stay as
//! they are, and the wiring decides whether to cache.
//!
//! What stays true with it (ARCHITECTURE.md, "Architecture invariants"):
//! - **This process's own writes are seen at once.** Every write through the decorator removes what it
//!   may have changed (the manifest, the tag, the link; every tag of a repository whose manifest was
//!   deleted) before it returns, whether it succeeded or not (a failed write may still have committed).
//!   A lookup that started before such a write and finishes after it does not store its (possibly old)
//!   answer: writes bump an epoch per stripe of repositories, and a fill is dropped when the epoch of its
//!   repository moved since it started.
//! - **Other writers are seen within the TTL.** Another replica on the same PostgreSQL, or a `berth gc`
//!   beside the server, writes to the database without passing here. Every entry, found or not found,
//!   is trusted only for `ttl` after the moment its query *started*, so a change committed at time T is
//!   seen by every lookup that starts after T + ttl. Manifest bytes are immutable (their digest is of
//!   them), but whether a repository still holds them is not, so positive entries expire too.
//! - **Memory is bounded.** Entries are charged their payload plus a fixed overhead, and the least
//!   recently used (CLOCK: one reference bit, second chance) are evicted beyond `max_bytes`.
//!
//! Errors are never cached; the catalog's other methods (listings, referrers, `known_blob`) pass
//! straight through. It decorates the catalog alone: the registry's other roles (uploads, job locks,
//! the pull-through cache's entries) never pass here.
//!
//! Why a `std::sync::Mutex` around one map: every critical section is a hash lookup and a clone, never
//! held across an `.await`; on a hit that is far cheaper than the query and the thread hop it replaces.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use metadata::{Catalog, NewManifest, Referrer, StoredManifest};
use oci::{Digest, RepoName, Tag};

/// How the cache behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long an entry is trusted after its query started: the bound on how late a write by another
    /// process (replica, `berth gc`) is seen. Zero disables the cache.
    pub ttl: Duration,
    /// Most bytes of entries (payloads plus [`ENTRY_OVERHEAD`] each) kept. Zero disables the cache.
    pub max_bytes: usize,
}

impl CacheSettings {
    /// Whether these settings cache anything at all.
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_bytes > 0
    }
}

impl Default for CacheSettings {
    /// One second: a tag moved on another replica is served by this one at most a second late, while a
    /// hot tag costs one query a second instead of one per pull. 8 MiB: a few thousand manifests.
    fn default() -> Self {
        CacheSettings {
            ttl: Duration::from_secs(1),
            max_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What an entry is charged beyond its payload and names: the map slots, the eviction queue's copy of
/// its key, the `Instant` and the allocations' headers, rounded up.
pub const ENTRY_OVERHEAD: usize = 256;

/// Repositories are spread over this many epochs (see the module comment): a write to one repository
/// only drops concurrent fills of the repositories sharing its stripe.
const STRIPES: usize = 32;

/// A [`Catalog`] that answers repeated pull lookups from memory (see the module comment).
pub struct CachedCatalog {
    inner: Arc<dyn Catalog>,
    settings: CacheSettings,
    /// Bumped by every invalidation; a fill remembers it before its query.
    epoch: AtomicU64,
    hasher: RandomState,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    repos: HashMap<RepoName, RepoEntries>,
    /// Every entry in insertion order, for the CLOCK eviction. A slot whose entry was replaced or
    /// removed is skipped when it comes up (its `id` no longer matches).
    clock: VecDeque<Slot>,
    /// Entries in `repos`.
    live: usize,
    /// Bytes charged for the entries in `repos`.
    bytes: usize,
    next_id: u64,
    /// The epoch of the last invalidation of each stripe of repositories.
    stripes: [u64; STRIPES],
}

#[derive(Default)]
struct RepoEntries {
    manifests: HashMap<Digest, Entry<Option<StoredManifest>>>,
    tags: HashMap<Tag, Entry<Option<Digest>>>,
    links: HashMap<Digest, Entry<Option<u64>>>,
}

impl RepoEntries {
    fn is_empty(&self) -> bool {
        self.manifests.is_empty() && self.tags.is_empty() && self.links.is_empty()
    }
}

struct Entry<T> {
    value: T,
    /// When the query that produced `value` started.
    fetched: Instant,
    /// The reference bit of the CLOCK: set by a hit, cleared when the entry is passed over once.
    used: bool,
    id: u64,
    cost: usize,
}

/// Which entry of a repository a slot of the eviction queue stands for.
enum Key {
    Manifest(Digest),
    Tag(Tag),
    Link(Digest),
}

struct Slot {
    repo: RepoName,
    key: Key,
    id: u64,
}

impl CachedCatalog {
    pub fn new(inner: Arc<dyn Catalog>, settings: CacheSettings) -> CachedCatalog {
        CachedCatalog {
            inner,
            settings,
            epoch: AtomicU64::new(0),
            hasher: RandomState::new(),
            state: Mutex::new(State::default()),
        }
    }

    /// Bytes charged for the entries held now (never above `max_bytes` once a fill returns).
    pub fn cached_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Entries held now.
    pub fn cached_entries(&self) -> usize {
        self.lock().live
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot leave the maps inconsistent in a way that matters:
        // at worst an entry is charged wrongly until evicted.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stripe(&self, repo: &RepoName) -> usize {
        (self.hasher.hash_one(repo) % STRIPES as u64) as usize
    }

    fn fresh<T>(&self, entry: &Entry<T>, now: Instant) -> bool {
        now.saturating_duration_since(entry.fetched) < self.settings.ttl
    }

    /// Starts a fill: the epoch and time before the query.
    fn begin(&self) -> Fill {
        Fill {
            epoch: self.epoch.load(Ordering::SeqCst),
            started: Instant::now(),
        }
    }

    /// Forgets what `forget` removes from `repo`'s entries, and makes fills of `repo` that are in
    /// flight drop their answers. Runs after every write, whatever its outcome.
    fn invalidate(&self, repo: &RepoName, forget: impl FnOnce(&mut RepoEntries) -> Vec<usize>) {
        if !self.settings.enabled() {
            return;
        }
        let stripe = self.stripe(repo);
        let mut state = self.lock();
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        state.stripes[stripe] = epoch;
        let Some(entries) = state.repos.get_mut(repo) else {
            return;
        };
        let freed = forget(entries);
        let empty = entries.is_empty();
        if empty {
            state.repos.remove(repo);
        }
        state.live -= freed.len();
        state.bytes -= freed.iter().sum::<usize>();
    }

    /// Stores an answer, unless a write to its repository happened since `fill` began; then evicts
    /// down to the budget.
    fn store(&self, repo: &RepoName, fill: Fill, put: impl FnOnce(&mut RepoEntries, Meta) -> Put) {
        if !self.settings.enabled() {
            return;
        }
        let stripe = self.stripe(repo);
        let mut state = self.lock();
        if state.stripes[stripe] > fill.epoch {
            return;
        }
        let id = state.next_id;
        state.next_id += 1;
        let meta = Meta {
            fetched: fill.started,
            id,
            base: ENTRY_OVERHEAD + repo.as_str().len(),
        };
        let entries = state.repos.entry(repo.clone()).or_default();
        let put = put(entries, meta);
        state.live += 1;
        state.bytes += put.cost;
        if let Some(old) = put.replaced {
            state.live -= 1;
            state.bytes -= old;
        }
        state.clock.push_back(Slot {
            repo: repo.clone(),
            key: put.key,
            id,
        });
        state.evict(self.settings.max_bytes);
    }

    fn cached_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        now: Instant,
    ) -> Option<Option<StoredManifest>> {
        let mut state = self.lock();
        let entry = state.repos.get_mut(repo)?.manifests.get_mut(digest)?;
        if !self.fresh(entry, now) {
            return None;
        }
        entry.used = true;
        Some(entry.value.clone())
    }

    fn store_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        fill: Fill,
        value: &Option<StoredManifest>,
    ) {
        self.store(repo, fill, |entries, meta| {
            let cost = meta.base
                + value
                    .as_ref()
                    .map_or(0, |m| m.payload.len() + m.media_type.len());
            let replaced = entries
                .manifests
                .insert(digest.clone(), meta.entry(value.clone(), cost));
            Put {
                key: Key::Manifest(digest.clone()),
                cost,
                replaced: replaced.map(|e| e.cost),
            }
        });
    }

    fn store_tag(&self, repo: &RepoName, tag: &Tag, fill: Fill, value: Option<Digest>) {
        self.store(repo, fill, |entries, meta| {
            let cost = meta.base + tag.as_str().len();
            let replaced = entries.tags.insert(tag.clone(), meta.entry(value, cost));
            Put {
                key: Key::Tag(tag.clone()),
                cost,
                replaced: replaced.map(|e| e.cost),
            }
        });
    }
}

/// The start of a fill: see [`CachedCatalog::begin`].
#[derive(Clone, Copy)]
struct Fill {
    epoch: u64,
    started: Instant,
}

/// What every new entry gets, handed to the closure that inserts it.
struct Meta {
    fetched: Instant,
    id: u64,
    /// The fixed part of the entry's cost.
    base: usize,
}

impl Meta {
    fn entry<T>(&self, value: T, cost: usize) -> Entry<T> {
        Entry {
            value,
            fetched: self.fetched,
            used: false,
            id: self.id,
            cost,
        }
    }
}

/// What an insertion did: the new entry's key and cost, and the cost of the entry it replaced.
struct Put {
    key: Key,
    cost: usize,
    replaced: Option<usize>,
}

impl State {
    /// CLOCK eviction down to `max_bytes`: the oldest entry goes unless it was used since it was last
    /// passed over, in which case it gets a second chance at the back of the queue.
    fn evict(&mut self, max_bytes: usize) {
        while self.bytes > max_bytes {
            let Some(slot) = self.clock.pop_front() else {
                break;
            };
            let Some(entries) = self.repos.get_mut(&slot.repo) else {
                continue;
            };
            let cost = match &slot.key {
                Key::Manifest(d) => second_chance(&mut entries.manifests, d, slot.id),
                Key::Tag(t) => second_chance(&mut entries.tags, t, slot.id),
                Key::Link(d) => second_chance(&mut entries.links, d, slot.id),
            };
            match cost {
                Chance::Stale => {}
                Chance::Kept => self.clock.push_back(slot),
                Chance::Evicted(cost) => {
                    if entries.is_empty() {
                        self.repos.remove(&slot.repo);
                    }
                    self.live -= 1;
                    self.bytes -= cost;
                }
            }
        }
        // Slots of replaced or invalidated entries pile up while nothing needs evicting (a hot tag is
        // refetched every TTL): drop them once they outnumber the live entries.
        if self.clock.len() > 2 * self.live + 64 {
            let repos = &self.repos;
            self.clock.retain(|slot| {
                let Some(entries) = repos.get(&slot.repo) else {
                    return false;
                };
                match &slot.key {
                    Key::Manifest(d) => entries.manifests.get(d).is_some_and(|e| e.id == slot.id),
                    Key::Tag(t) => entries.tags.get(t).is_some_and(|e| e.id == slot.id),
                    Key::Link(d) => entries.links.get(d).is_some_and(|e| e.id == slot.id),
                }
            });
        }
    }
}

enum Chance {
    /// The slot's entry is gone or was replaced.
    Stale,
    /// Used since last time: kept, its reference bit cleared.
    Kept,
    /// Removed; it was charged this much.
    Evicted(usize),
}

fn second_chance<K, T>(map: &mut HashMap<K, Entry<T>>, key: &K, id: u64) -> Chance
where
    K: std::hash::Hash + Eq,
{
    match map.get_mut(key) {
        Some(e) if e.id == id => {
            if e.used {
                e.used = false;
                Chance::Kept
            } else {
                let cost = e.cost;
                map.remove(key);
                Chance::Evicted(cost)
            }
        }
        _ => Chance::Stale,
    }
}

/// Removes `key` from `map`, returning what it was charged.
fn forget<K, T>(map: &mut HashMap<K, Entry<T>>, key: &K) -> Vec<usize>
where
    K: std::hash::Hash + Eq,
{
    map.remove(key).map(|e| e.cost).into_iter().collect()
}

#[async_trait::async_trait]
impl Catalog for CachedCatalog {
    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> metadata::Result<()> {
        let out = self.inner.link_blob(repo, digest, size).await;
        self.invalidate(repo, |e| forget(&mut e.links, digest));
        out
    }

    async fn linked_blob(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<Option<u64>> {
        let fill = self.begin();
        {
            let mut state = self.lock();
            if let Some(entry) = state
                .repos
                .get_mut(repo)
                .and_then(|e| e.links.get_mut(digest))
                && self.fresh(entry, fill.started)
            {
                entry.used = true;
                return Ok(entry.value);
            }
        }
        let value = self.inner.linked_blob(repo, digest).await?;
        self.store(repo, fill, |entries, meta| {
            let cost = meta.base + digest.hex().len();
            let replaced = entries
                .links
                .insert(digest.clone(), meta.entry(value, cost));
            Put {
                key: Key::Link(digest.clone()),
                cost,
                replaced: replaced.map(|e| e.cost),
            }
        });
        Ok(value)
    }

    async fn known_blob(&self, digest: &Digest) -> metadata::Result<Option<u64>> {
        self.inner.known_blob(digest).await
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        let out = self.inner.unlink_blob(repo, digest).await;
        self.invalidate(repo, |e| forget(&mut e.links, digest));
        out
    }

    async fn put_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
    ) -> metadata::Result<()> {
        let out = self.inner.put_manifest(repo, manifest, tag).await;
        self.invalidate(repo, |e| {
            let mut freed = forget(&mut e.manifests, &manifest.digest);
            if let Some(tag) = tag {
                freed.extend(forget(&mut e.tags, tag));
            }
            freed
        });
        out
    }

    async fn manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> metadata::Result<Option<StoredManifest>> {
        let fill = self.begin();
        if let Some(hit) = self.cached_manifest(repo, digest, fill.started) {
            return Ok(hit);
        }
        let value = self.inner.manifest(repo, digest).await?;
        self.store_manifest(repo, digest, fill, &value);
        Ok(value)
    }

    async fn tagged_manifest(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> metadata::Result<Option<StoredManifest>> {
        let fill = self.begin();
        {
            let mut state = self.lock();
            if let Some(entries) = state.repos.get_mut(repo)
                && let Some(t) = entries.tags.get_mut(tag)
                && self.fresh(t, fill.started)
            {
                t.used = true;
                match t.value.clone() {
                    None => return Ok(None),
                    Some(digest) => {
                        if let Some(m) = entries.manifests.get_mut(&digest)
                            && self.fresh(m, fill.started)
                            // A tag points at a manifest the repository holds; an entry saying it
                            // does not is older news than the tag's, so ask again.
                            && m.value.is_some()
                        {
                            m.used = true;
                            return Ok(m.value.clone());
                        }
                    }
                }
            }
        }
        let value = self.inner.tagged_manifest(repo, tag).await?;
        self.store_tag(repo, tag, fill, value.as_ref().map(|m| m.digest.clone()));
        if let Some(m) = &value {
            self.store_manifest(repo, &m.digest, fill, &value);
        }
        Ok(value)
    }

    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        let out = self.inner.delete_manifest(repo, digest).await;
        self.invalidate(repo, |e| {
            let mut freed = forget(&mut e.manifests, digest);
            // Every tag pointing at it went with it; which ones is cheaper to forget than to find.
            freed.extend(e.tags.drain().map(|(_, t)| t.cost));
            freed
        });
        out
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> metadata::Result<bool> {
        let out = self.inner.delete_tag(repo, tag).await;
        self.invalidate(repo, |e| forget(&mut e.tags, tag));
        out
    }

    async fn repo_exists(&self, repo: &RepoName) -> metadata::Result<bool> {
        self.inner.repo_exists(repo).await
    }

    async fn list_tags(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        limit: usize,
    ) -> metadata::Result<Vec<String>> {
        self.inner.list_tags(repo, after, limit).await
    }

    async fn list_repos(&self, after: Option<&str>, limit: usize) -> metadata::Result<Vec<String>> {
        self.inner.list_repos(after, limit).await
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
    ) -> metadata::Result<Vec<Referrer>> {
        self.inner.referrers(repo, subject).await
    }
}
