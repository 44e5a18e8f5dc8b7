//! The metadata cache: it keeps the catalog's contract (the catalog suite runs through it), answers
//! repeated lookups without the store underneath, sees this process's writes at once and another
//! writer's within its TTL, and stays within its memory budget.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_registry as registry;
use bytes::Bytes;
use metadata::sqlite::SqliteStore;
use metadata::{Catalog, NewManifest, Referrer, StoredManifest};
use oci::{Digest, RepoName, Tag};
use registry::cached::{CacheSettings, CachedCatalog, ENTRY_OVERHEAD};
use tokio::sync::Notify;

mod metadata_suite {
    use super::*;

    metadata::catalog_tests!(async {
        let sqlite = SqliteStore::open_temporary().expect("temporary sqlite store");
        CachedCatalog::new(Arc::new(sqlite), CacheSettings::default())
    });
}

/// A store that counts the calls that reach it, and can hold a `tagged_manifest` answer until told.
struct Counting {
    inner: Arc<dyn Catalog>,
    calls: Mutex<HashMap<&'static str, usize>>,
    /// When set, `tagged_manifest` queries, then waits for this before answering.
    hold: Mutex<Option<Arc<Notify>>>,
}

impl Counting {
    fn new(inner: Arc<dyn Catalog>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            calls: Mutex::default(),
            hold: Mutex::default(),
        })
    }

    fn count(&self, method: &'static str) {
        *self.calls.lock().unwrap().entry(method).or_default() += 1;
    }

    fn calls(&self, method: &str) -> usize {
        self.calls.lock().unwrap().get(method).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Catalog for Counting {
    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> metadata::Result<()> {
        self.count("link_blob");
        self.inner.link_blob(repo, digest, size).await
    }
    async fn link_blobs(&self, repo: &RepoName, blobs: &[(Digest, u64)]) -> metadata::Result<()> {
        self.count("link_blobs");
        self.inner.link_blobs(repo, blobs).await
    }
    async fn put_tags(&self, repo: &RepoName, tags: &[(Tag, Digest)]) -> metadata::Result<()> {
        self.count("put_tags");
        self.inner.put_tags(repo, tags).await
    }
    async fn linked_blob(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<Option<u64>> {
        self.count("linked_blob");
        self.inner.linked_blob(repo, digest).await
    }
    async fn known_blob(&self, digest: &Digest) -> metadata::Result<Option<u64>> {
        self.count("known_blob");
        self.inner.known_blob(digest).await
    }
    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        self.count("unlink_blob");
        self.inner.unlink_blob(repo, digest).await
    }
    async fn put_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
    ) -> metadata::Result<()> {
        self.count("put_manifest");
        self.inner.put_manifest(repo, manifest, tag).await
    }
    async fn manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> metadata::Result<Option<StoredManifest>> {
        self.count("manifest");
        self.inner.manifest(repo, digest).await
    }
    async fn tagged_manifest(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> metadata::Result<Option<StoredManifest>> {
        self.count("tagged_manifest");
        let out = self.inner.tagged_manifest(repo, tag).await;
        let hold = self.hold.lock().unwrap().take();
        if let Some(hold) = hold {
            hold.notified().await;
        }
        out
    }
    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        self.count("delete_manifest");
        self.inner.delete_manifest(repo, digest).await
    }
    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> metadata::Result<bool> {
        self.count("delete_tag");
        self.inner.delete_tag(repo, tag).await
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

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn tag(name: &str) -> Tag {
    name.parse().unwrap()
}

/// A manifest with no references (nothing to link first), `padding` bytes of filler in its payload.
fn manifest(label: &str, padding: usize) -> NewManifest {
    let payload = Bytes::from(format!(
        "{{\"schemaVersion\":2,\"label\":{label:?},\"pad\":\"{}\"}}",
        "x".repeat(padding)
    ));
    NewManifest {
        digest: Digest::sha256_of(&payload),
        media_type: oci::media_type::OCI_MANIFEST.to_string(),
        payload,
        artifact_type: None,
        subject: None,
        annotations: None,
        blobs: Vec::new(),
        children: Vec::new(),
        optional_children: Vec::new(),
        tag_immutable: false,
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// A cache with `ttl` over a counted temporary SQLite store.
fn cached(ttl: Duration, max_bytes: usize) -> (CachedCatalog, Arc<Counting>) {
    let sqlite = SqliteStore::open_temporary().unwrap();
    let counting = Counting::new(Arc::new(sqlite));
    let cache = CachedCatalog::new(counting.clone(), CacheSettings { ttl, max_bytes });
    (cache, counting)
}

#[tokio::test]
async fn repeated_lookups_are_served_without_the_store() {
    let (cache, inner) = cached(HOUR, 1 << 20);
    let r = repo("app");
    let m = manifest("one", 0);
    let blob = Digest::sha256_of(b"layer");
    let absent = Digest::sha256_of(b"absent");
    cache.put_manifest(&r, &m, Some(&tag("v1"))).await.unwrap();
    cache.link_blob(&r, &blob, 42).await.unwrap();

    for _ in 0..3 {
        let got = cache
            .tagged_manifest(&r, &tag("v1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.payload, m.payload);
        // The tag's answer filled the manifest's entry too.
        let got = cache.manifest(&r, &m.digest).await.unwrap().unwrap();
        assert_eq!(got.digest, m.digest);
        assert_eq!(cache.linked_blob(&r, &blob).await.unwrap(), Some(42));
        // Answers that found nothing are never remembered: another replica may push it next.
        assert_eq!(cache.linked_blob(&r, &absent).await.unwrap(), None);
        assert_eq!(cache.manifest(&r, &absent).await.unwrap(), None);
        assert_eq!(cache.tagged_manifest(&r, &tag("nope")).await.unwrap(), None);
    }
    assert_eq!(
        inner.calls("tagged_manifest"),
        4,
        "v1 once, nope every time"
    );
    assert_eq!(
        inner.calls("manifest"),
        3,
        "only the absent one, every time"
    );
    assert_eq!(
        inner.calls("linked_blob"),
        4,
        "the blob once, the absent one every time"
    );
    // Per repository: the same tag elsewhere is another lookup.
    assert_eq!(
        cache
            .tagged_manifest(&repo("other"), &tag("v1"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(inner.calls("tagged_manifest"), 5);
}

/// What another writer changes is forgotten when the change feed says so, long before the TTL:
/// the repository named, or everything.
#[tokio::test]
async fn the_change_feed_makes_the_cache_forget() {
    let (cache, inner) = cached(HOUR, 1 << 20);
    let cache = Arc::new(cache);
    let (a, b) = (repo("a"), repo("b"));
    let m = manifest("m", 0);
    for r in [&a, &b] {
        cache.put_manifest(r, &m, Some(&tag("v1"))).await.unwrap();
        cache.tagged_manifest(r, &tag("v1")).await.unwrap().unwrap();
    }
    assert_eq!(inner.calls("tagged_manifest"), 2);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let feed: metadata::ChangeStream =
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|c| (c, rx))
        }));
    let follower = Arc::clone(&cache);
    let following = tokio::spawn(async move { follower.follow(feed).await });
    let settle = || tokio::time::sleep(Duration::from_millis(50));

    tx.send(metadata::CatalogChange::Repository(a.clone()))
        .unwrap();
    settle().await;
    cache.tagged_manifest(&a, &tag("v1")).await.unwrap();
    cache.tagged_manifest(&b, &tag("v1")).await.unwrap();
    assert_eq!(
        inner.calls("tagged_manifest"),
        3,
        "a asked again, b still remembered"
    );

    tx.send(metadata::CatalogChange::Everything).unwrap();
    settle().await;
    assert_eq!(cache.cached_entries(), 0);
    cache.tagged_manifest(&b, &tag("v1")).await.unwrap();
    assert_eq!(inner.calls("tagged_manifest"), 4);
    drop(tx);
    following.await.unwrap();
}

#[tokio::test]
async fn own_writes_are_seen_at_once() {
    let (cache, _inner) = cached(HOUR, 1 << 20);
    let r = repo("app");
    let (a, b) = (manifest("a", 0), manifest("b", 0));
    let v1 = tag("v1");
    let blob = Digest::sha256_of(b"layer");

    // Misses first (not remembered), then the writes.
    assert_eq!(cache.tagged_manifest(&r, &v1).await.unwrap(), None);
    assert_eq!(cache.manifest(&r, &a.digest).await.unwrap(), None);
    assert_eq!(cache.linked_blob(&r, &blob).await.unwrap(), None);
    cache.put_manifest(&r, &a, Some(&v1)).await.unwrap();
    cache.link_blob(&r, &blob, 7).await.unwrap();
    let got = cache.tagged_manifest(&r, &v1).await.unwrap().unwrap();
    assert_eq!(got.digest, a.digest);
    assert!(cache.manifest(&r, &a.digest).await.unwrap().is_some());
    assert_eq!(cache.linked_blob(&r, &blob).await.unwrap(), Some(7));

    // The tag moves.
    cache.put_manifest(&r, &b, Some(&v1)).await.unwrap();
    let got = cache.tagged_manifest(&r, &v1).await.unwrap().unwrap();
    assert_eq!(got.digest, b.digest);

    // Unlinking, deleting a tag, deleting a manifest (and the tags on it).
    assert!(cache.unlink_blob(&r, &blob).await.unwrap());
    assert_eq!(cache.linked_blob(&r, &blob).await.unwrap(), None);
    cache.put_manifest(&r, &a, Some(&tag("v2"))).await.unwrap();
    assert!(
        cache
            .tagged_manifest(&r, &tag("v2"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(cache.delete_tag(&r, &tag("v2")).await.unwrap());
    assert_eq!(cache.tagged_manifest(&r, &tag("v2")).await.unwrap(), None);
    assert!(cache.manifest(&r, &b.digest).await.unwrap().is_some());
    assert!(cache.delete_manifest(&r, &b.digest).await.unwrap());
    assert_eq!(cache.manifest(&r, &b.digest).await.unwrap(), None);
    assert_eq!(cache.tagged_manifest(&r, &v1).await.unwrap(), None);
}

/// A lookup that read the old value before a write and finishes after it must not leave that old value
/// in the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_racing_a_write_does_not_store_its_old_answer() {
    let (cache, inner) = cached(HOUR, 1 << 20);
    let cache = Arc::new(cache);
    let r = repo("app");
    let (a, b) = (manifest("a", 0), manifest("b", 0));
    cache.put_manifest(&r, &a, Some(&tag("v1"))).await.unwrap();

    let release = Arc::new(Notify::new());
    *inner.hold.lock().unwrap() = Some(release.clone());
    let reader = {
        let (cache, r) = (cache.clone(), r.clone());
        tokio::spawn(async move { cache.tagged_manifest(&r, &tag("v1")).await })
    };
    // Wait until the reader has its (old) answer and is held.
    while inner.calls("tagged_manifest") == 0 || inner.hold.lock().unwrap().is_some() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cache.put_manifest(&r, &b, Some(&tag("v1"))).await.unwrap();
    release.notify_one();
    let old = reader.await.unwrap().unwrap().unwrap();
    assert_eq!(old.digest, a.digest, "it read before the write");

    let now = cache
        .tagged_manifest(&r, &tag("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        now.digest, b.digest,
        "the old answer was cached after the write"
    );
}

/// Two stores on one database, as two replicas on one PostgreSQL: what one writes, the other's cache
/// serves late by at most the TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_is_seen_within_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.sqlite");
    let writer = SqliteStore::open(&path).unwrap();
    let ttl = Duration::from_millis(400);
    let reader = CachedCatalog::new(
        Arc::new(SqliteStore::open(&path).unwrap()),
        CacheSettings {
            ttl,
            max_bytes: 1 << 20,
        },
    );
    let r = repo("app");
    let (a, b) = (manifest("a", 0), manifest("b", 0));
    let blob = Digest::sha256_of(b"layer");
    writer.put_manifest(&r, &a, Some(&tag("v1"))).await.unwrap();

    // Fill: the tag on `a`, nothing at `v2`, the blob unlinked.
    let filled = Instant::now();
    assert_eq!(
        reader
            .tagged_manifest(&r, &tag("v1"))
            .await
            .unwrap()
            .unwrap()
            .digest,
        a.digest
    );
    assert_eq!(reader.tagged_manifest(&r, &tag("v2")).await.unwrap(), None);
    assert_eq!(reader.linked_blob(&r, &blob).await.unwrap(), None);

    // The other writer moves v1, creates v2, links the blob.
    writer.put_manifest(&r, &b, Some(&tag("v1"))).await.unwrap();
    writer.put_manifest(&r, &a, Some(&tag("v2"))).await.unwrap();
    writer.link_blob(&r, &blob, 9).await.unwrap();
    let written = Instant::now();

    // Still within the TTL of the fill: the cache answers (that is what it is for).
    let asked = Instant::now();
    let seen = reader
        .tagged_manifest(&r, &tag("v1"))
        .await
        .unwrap()
        .unwrap();
    if asked.duration_since(filled) < ttl / 2 {
        assert_eq!(
            seen.digest, a.digest,
            "served from the cache within the TTL"
        );
    }

    // Every lookup that starts later than the write plus the TTL sees the new state.
    loop {
        let asked = Instant::now();
        let v1 = reader.tagged_manifest(&r, &tag("v1")).await.unwrap();
        let v2 = reader.tagged_manifest(&r, &tag("v2")).await.unwrap();
        let link = reader.linked_blob(&r, &blob).await.unwrap();
        let current = v1.map(|m| m.digest) == Some(b.digest.clone())
            && v2.map(|m| m.digest) == Some(a.digest.clone())
            && link == Some(9);
        if current {
            break;
        }
        assert!(
            asked < written + ttl,
            "stale {:?} after the write, beyond the TTL of {ttl:?}",
            asked.duration_since(written)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A delete by the other writer: the manifest by digest disappears within the TTL too.
    assert!(reader.manifest(&r, &b.digest).await.unwrap().is_some());
    writer.delete_manifest(&r, &b.digest).await.unwrap();
    let written = Instant::now();
    loop {
        let asked = Instant::now();
        if reader.manifest(&r, &b.digest).await.unwrap().is_none() {
            break;
        }
        assert!(
            asked < written + ttl,
            "deleted manifest served beyond the TTL"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn memory_stays_within_the_budget_and_hot_entries_stay() {
    let budget = 64 * 1024;
    let (cache, inner) = cached(HOUR, budget);
    let r = repo("app");
    let hot = manifest("hot", 500);
    cache.put_manifest(&r, &hot, None).await.unwrap();
    let cold: Vec<NewManifest> = (0..200)
        .map(|i| manifest(&format!("cold{i}"), 1000))
        .collect();
    for m in &cold {
        cache.put_manifest(&r, m, None).await.unwrap();
    }
    for m in &cold {
        assert!(cache.manifest(&r, &hot.digest).await.unwrap().is_some());
        assert!(cache.manifest(&r, &m.digest).await.unwrap().is_some());
        assert!(
            cache.cached_bytes() <= budget,
            "{} bytes cached, budget {budget}",
            cache.cached_bytes()
        );
    }
    // Each entry costs its payload and the overhead: the budget holds about this many.
    let fits = budget / (1000 + ENTRY_OVERHEAD);
    let entries = cache.cached_entries();
    assert!(entries <= fits + 1, "{entries} entries, about {fits} fit");
    assert!(
        entries >= fits / 2,
        "{entries} entries: evicting far too much"
    );
    // The hot manifest was read before every fill: it was never evicted, so read once from the store.
    assert_eq!(inner.calls("manifest"), 1 + cold.len());
    // The early cold ones were evicted: reading them again goes to the store.
    assert!(cache.manifest(&r, &cold[0].digest).await.unwrap().is_some());
    assert_eq!(inner.calls("manifest"), 2 + cold.len());
}

#[tokio::test]
async fn a_zero_ttl_caches_nothing() {
    let (cache, inner) = cached(Duration::ZERO, 1 << 20);
    let r = repo("app");
    let m = manifest("one", 0);
    cache.put_manifest(&r, &m, Some(&tag("v1"))).await.unwrap();
    for _ in 0..3 {
        assert!(
            cache
                .tagged_manifest(&r, &tag("v1"))
                .await
                .unwrap()
                .is_some()
        );
    }
    assert_eq!(inner.calls("tagged_manifest"), 3);
    assert_eq!(cache.cached_entries(), 0);
}
