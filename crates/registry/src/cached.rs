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
//! - **A miss is never remembered.** Only what was found is kept: a blob, manifest or tag pushed
//!   through another replica is seen by the next lookup here (a client that pushes and then pulls
//!   through a balancer sees its push).
//! - **Other writers' changes are forgotten when the database says so.** Another replica on the same
//!   PostgreSQL, or a `berth gc` beside the server, writes without passing here; the metadata's change
//!   feed (`metadata::CatalogChanges`, followed by [`CachedCatalog::follow`]) names each repository
//!   whose tags, manifests or links were moved or removed, as each commit lands (PostgreSQL notifies at
//!   commit; SQLite finds another process's commits within a quarter second and then forgets
//!   everything). As a last resort every entry is trusted only for `ttl` after its query *started*, so
//!   even with the feed lost a change committed at T is seen by every lookup that starts after T + ttl.
//! - **Memory is bounded.** Entries are charged their payload plus a fixed overhead, and the least
//!   recently used (CLOCK: one reference bit, second chance) are evicted beyond `max_bytes`.
//!
//! Errors are never cached; the catalog's other methods (listings, referrers, `known_blob`) pass
//! straight through. It decorates the catalog alone: the registry's other roles (uploads, job locks,
//! the pull-through cache's entries) never pass here.
//!
//! This file is the policy (what is remembered, what each write forgets, what an entry costs); the
//! bounded, TTL-limited, epoch-guarded memory itself is [`memory`], which knows nothing of manifests.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::Equivalent;

use futures_util::StreamExt;
use metadata::{Catalog, CatalogChange, ChangeStream, NewManifest, Referrer, StoredManifest};
use oci::{Digest, RepoName, Tag};

use memory::{Fill, Memory};

mod memory;

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

/// A [`Catalog`] that answers repeated pull lookups from memory (see the module comment).
pub struct CachedCatalog {
    inner: Arc<dyn Catalog>,
    memory: Memory<RepoName, Key, Value>,
}

/// What is remembered of a repository.
#[derive(Clone, PartialEq, Eq)]
enum Key {
    Manifest(Digest),
    Tag(Tag),
    Link(Digest),
}

/// A [`Key`] borrowed, to look one up without copying its digest or tag (a hit copies nothing but the
/// answer). Both hash as this one does.
#[derive(Hash)]
enum KeyRef<'a> {
    Manifest(&'a Digest),
    Tag(&'a Tag),
    Link(&'a Digest),
}

impl Key {
    fn as_ref(&self) -> KeyRef<'_> {
        match self {
            Key::Manifest(d) => KeyRef::Manifest(d),
            Key::Tag(t) => KeyRef::Tag(t),
            Key::Link(d) => KeyRef::Link(d),
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        match (self, key) {
            (KeyRef::Manifest(a), Key::Manifest(b)) | (KeyRef::Link(a), Key::Link(b)) => *a == b,
            (KeyRef::Tag(a), Key::Tag(b)) => *a == b,
            _ => false,
        }
    }
}

/// The answer remembered under each [`Key`]: always something found.
#[derive(Clone)]
enum Value {
    Manifest(StoredManifest),
    Tag(Digest),
    Link(u64),
}

impl CachedCatalog {
    pub fn new(inner: Arc<dyn Catalog>, settings: CacheSettings) -> CachedCatalog {
        CachedCatalog {
            inner,
            memory: Memory::new(settings.ttl, settings.max_bytes),
        }
    }

    /// Bytes charged for the entries held now (never above `max_bytes` once a fill returns).
    pub fn cached_bytes(&self) -> usize {
        self.memory.bytes()
    }

    /// Entries held now.
    pub fn cached_entries(&self) -> usize {
        self.memory.entries()
    }

    /// Forgets what is remembered of `repo`.
    pub fn forget_repository(&self, repo: &RepoName) {
        self.memory.forget(repo, |_| true);
    }

    /// Forgets everything.
    pub fn forget_everything(&self) {
        self.memory.forget_all();
    }

    /// Forgets what `changes` say changed, for as long as they flow (a background task of `serve`).
    pub async fn follow(&self, mut changes: ChangeStream) {
        while let Some(change) = changes.next().await {
            match change {
                CatalogChange::Repository(repo) => self.forget_repository(&repo),
                CatalogChange::Everything => self.forget_everything(),
            }
        }
    }

    fn cached_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        now: Instant,
    ) -> Option<StoredManifest> {
        match self.memory.get(repo, &KeyRef::Manifest(digest), now)? {
            Value::Manifest(m) => Some(m),
            _ => None,
        }
    }

    /// Remembers `value` when it is something found.
    fn store_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        fill: Fill,
        value: &Option<StoredManifest>,
    ) {
        let Some(m) = value else {
            return;
        };
        let cost = base(repo) + m.payload.len() + m.media_type.len();
        let (key, value) = (Key::Manifest(digest.clone()), Value::Manifest(m.clone()));
        self.memory.store(repo, key, value, cost, fill);
    }
}

/// What every entry of `repo` is charged before its own payload.
fn base(repo: &RepoName) -> usize {
    ENTRY_OVERHEAD + repo.as_str().len()
}

#[async_trait::async_trait]
impl Catalog for CachedCatalog {
    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> metadata::Result<()> {
        let out = self.inner.link_blob(repo, digest, size).await;
        self.memory
            .forget(repo, |k| matches!(k, Key::Link(d) if d == digest));
        out
    }

    async fn link_blobs(&self, repo: &RepoName, blobs: &[(Digest, u64)]) -> metadata::Result<()> {
        let out = self.inner.link_blobs(repo, blobs).await;
        self.memory.forget(
            repo,
            |k| matches!(k, Key::Link(d) if blobs.iter().any(|(b, _)| b == d)),
        );
        out
    }

    async fn linked_blob(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<Option<u64>> {
        let fill = self.memory.begin();
        if let Some(Value::Link(size)) = self.memory.get(repo, &KeyRef::Link(digest), fill.started)
        {
            return Ok(Some(size));
        }
        let value = self.inner.linked_blob(repo, digest).await?;
        if let Some(size) = value {
            let cost = base(repo) + digest.hex().len();
            let key = Key::Link(digest.clone());
            self.memory.store(repo, key, Value::Link(size), cost, fill);
        }
        Ok(value)
    }

    async fn known_blob(&self, digest: &Digest) -> metadata::Result<Option<u64>> {
        self.inner.known_blob(digest).await
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        let out = self.inner.unlink_blob(repo, digest).await;
        self.memory
            .forget(repo, |k| matches!(k, Key::Link(d) if d == digest));
        out
    }

    async fn put_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
    ) -> metadata::Result<()> {
        let out = self.inner.put_manifest(repo, manifest, tag).await;
        self.memory.forget(repo, |k| match k {
            Key::Manifest(d) => *d == manifest.digest,
            Key::Tag(t) => Some(t) == tag,
            Key::Link(_) => false,
        });
        out
    }

    async fn put_tags(&self, repo: &RepoName, tags: &[(Tag, Digest)]) -> metadata::Result<()> {
        let out = self.inner.put_tags(repo, tags).await;
        self.memory.forget(
            repo,
            |k| matches!(k, Key::Tag(t) if tags.iter().any(|(g, _)| g == t)),
        );
        out
    }

    async fn manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> metadata::Result<Option<StoredManifest>> {
        let fill = self.memory.begin();
        if let Some(hit) = self.cached_manifest(repo, digest, fill.started) {
            return Ok(Some(hit));
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
        let fill = self.memory.begin();
        if let Some(Value::Tag(digest)) = self.memory.get(repo, &KeyRef::Tag(tag), fill.started)
            && let Some(m) = self.cached_manifest(repo, &digest, fill.started)
        {
            return Ok(Some(m));
        }
        let value = self.inner.tagged_manifest(repo, tag).await?;
        if let Some(m) = &value {
            let cost = base(repo) + tag.as_str().len();
            let entry = Value::Tag(m.digest.clone());
            self.memory
                .store(repo, Key::Tag(tag.clone()), entry, cost, fill);
            self.store_manifest(repo, &m.digest, fill, &value);
        }
        Ok(value)
    }

    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        let out = self.inner.delete_manifest(repo, digest).await;
        // Every tag pointing at it went with it; which ones is cheaper to forget than to find.
        self.memory.forget(repo, |k| match k {
            Key::Manifest(d) => d == digest,
            Key::Tag(_) => true,
            Key::Link(_) => false,
        });
        out
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> metadata::Result<bool> {
        let out = self.inner.delete_tag(repo, tag).await;
        self.memory
            .forget(repo, |k| matches!(k, Key::Tag(t) if t == tag));
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
