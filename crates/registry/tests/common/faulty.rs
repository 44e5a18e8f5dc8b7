//! Stores that fail on demand, wrapped around the real ones: to check that backend failures become
//! `Error::Internal` and that a lost compare-and-swap on an upload is reported, not ignored; the blob
//! store also holds and counts what the pull-through cache tests watch.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use blobs::{BlobReader, BlobStore, ByteStream, UploadId};
use futures_util::{StreamExt, future};
use metadata::{
    Catalog, Metadata, NewManifest, ProxyEntries, ProxyEntry, Referrer, StoredManifest,
    UploadSession, UploadSessions,
};
use oci::{Digest, RepoName, Tag};
use tokio::sync::Semaphore;

/// A metadata store that fails every call while `fail` is set, while `race` is set lets "another
/// replica" advance an upload by one byte just before each compare-and-swap, and while `links` holds a
/// semaphore makes each `link_blob` wait for a permit of it (counted in `links_waiting` while it waits),
/// and while `saves` holds one makes each `save_upload` wait for a permit of it.
pub struct FaultyMeta {
    pub inner: Metadata,
    pub fail: AtomicBool,
    pub race: AtomicBool,
    pub links: std::sync::Mutex<Option<Arc<Semaphore>>>,
    pub links_waiting: AtomicUsize,
    /// While set, each `save_upload` waits for a permit of it first.
    pub saves: std::sync::Mutex<Option<Arc<Semaphore>>>,
}

impl FaultyMeta {
    /// Wraps the catalog, upload sessions and cache entries of `inner` (job locks and the collector's
    /// marks are not its concern).
    pub fn new(inner: impl Into<Metadata>) -> Arc<FaultyMeta> {
        Arc::new(FaultyMeta {
            inner: inner.into(),
            fail: AtomicBool::new(false),
            race: AtomicBool::new(false),
            links: Default::default(),
            links_waiting: AtomicUsize::new(0),
            saves: Default::default(),
        })
    }

    /// The metadata with this store in place of the roles it wraps.
    pub fn metadata(self: &Arc<Self>) -> Metadata {
        Metadata {
            catalog: self.clone(),
            uploads: self.clone(),
            jobs: self.inner.jobs.clone(),
            proxy_entries: self.clone(),
            gc: self.inner.gc.clone(),
            scrub: self.inner.scrub.clone(),
            tag_ages: self.inner.tag_ages.clone(),
            usage: self.inner.usage.clone(),
            changes: self.inner.changes.clone(),
            outbox: self.inner.outbox.clone(),
            adopt: self.inner.adopt.clone(),
        }
    }

    fn check(&self) -> metadata::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(metadata::Error::Backend("database is on fire".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Catalog for FaultyMeta {
    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> metadata::Result<()> {
        self.check()?;
        let held = self
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(held) = held {
            self.links_waiting.fetch_add(1, Ordering::SeqCst);
            let permit = held.acquire().await;
            self.links_waiting.fetch_sub(1, Ordering::SeqCst);
            permit
                .map_err(|_| metadata::Error::Backend("the held link was abandoned".into()))?
                .forget();
        }
        self.inner.catalog.link_blob(repo, digest, size).await
    }
    async fn link_blobs(&self, repo: &RepoName, blobs: &[(Digest, u64)]) -> metadata::Result<()> {
        self.check()?;
        self.inner.catalog.link_blobs(repo, blobs).await
    }
    async fn put_tags(&self, repo: &RepoName, tags: &[(Tag, Digest)]) -> metadata::Result<()> {
        self.check()?;
        self.inner.catalog.put_tags(repo, tags).await
    }
    async fn linked_blob(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<Option<u64>> {
        self.check()?;
        self.inner.catalog.linked_blob(repo, digest).await
    }
    async fn known_blob(&self, digest: &Digest) -> metadata::Result<Option<u64>> {
        self.check()?;
        self.inner.catalog.known_blob(digest).await
    }
    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        self.check()?;
        self.inner.catalog.unlink_blob(repo, digest).await
    }
    async fn put_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
    ) -> metadata::Result<()> {
        self.check()?;
        self.inner.catalog.put_manifest(repo, manifest, tag).await
    }
    async fn manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> metadata::Result<Option<StoredManifest>> {
        self.check()?;
        self.inner.catalog.manifest(repo, digest).await
    }
    async fn tagged_manifest(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> metadata::Result<Option<StoredManifest>> {
        self.check()?;
        self.inner.catalog.tagged_manifest(repo, tag).await
    }
    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        self.check()?;
        self.inner.catalog.delete_manifest(repo, digest).await
    }
    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> metadata::Result<bool> {
        self.check()?;
        self.inner.catalog.delete_tag(repo, tag).await
    }
    async fn repo_exists(&self, repo: &RepoName) -> metadata::Result<bool> {
        self.check()?;
        self.inner.catalog.repo_exists(repo).await
    }
    async fn list_tags(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        limit: usize,
    ) -> metadata::Result<Vec<String>> {
        self.check()?;
        self.inner.catalog.list_tags(repo, after, limit).await
    }
    async fn list_repos(&self, after: Option<&str>, limit: usize) -> metadata::Result<Vec<String>> {
        self.check()?;
        self.inner.catalog.list_repos(after, limit).await
    }
    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
    ) -> metadata::Result<Vec<Referrer>> {
        self.check()?;
        self.inner.catalog.referrers(repo, subject).await
    }
}

#[async_trait::async_trait]
impl UploadSessions for FaultyMeta {
    async fn save_upload(
        &self,
        session: &UploadSession,
        expected_offset: Option<u64>,
    ) -> metadata::Result<bool> {
        self.check()?;
        let held = self
            .saves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(held) = held {
            let permit = held.acquire().await;
            drop(permit);
        }
        if let Some(expected) = expected_offset
            && self.race.load(Ordering::SeqCst)
        {
            let rival = UploadSession {
                offset: expected + 1,
                ..session.clone()
            };
            assert!(
                self.inner
                    .uploads
                    .save_upload(&rival, Some(expected))
                    .await?
            );
        }
        self.inner
            .uploads
            .save_upload(session, expected_offset)
            .await
    }
    async fn upload(&self, id: &str) -> metadata::Result<Option<UploadSession>> {
        self.check()?;
        self.inner.uploads.upload(id).await
    }
    async fn delete_upload(&self, id: &str) -> metadata::Result<bool> {
        self.check()?;
        self.inner.uploads.delete_upload(id).await
    }
    async fn stale_uploads(
        &self,
        updated_before: i64,
        after: Option<&str>,
        limit: usize,
    ) -> metadata::Result<Vec<UploadSession>> {
        self.check()?;
        self.inner
            .uploads
            .stale_uploads(updated_before, after, limit)
            .await
    }
}

#[async_trait::async_trait]
impl ProxyEntries for FaultyMeta {
    async fn touch_proxy_entries(&self, entries: &[ProxyEntry]) -> metadata::Result<()> {
        self.check()?;
        self.inner.proxy_entries.touch_proxy_entries(entries).await
    }
    async fn oldest_proxy_entries(
        &self,
        pulled_before: i64,
        limit: usize,
    ) -> metadata::Result<Vec<ProxyEntry>> {
        self.check()?;
        self.inner
            .proxy_entries
            .oldest_proxy_entries(pulled_before, limit)
            .await
    }
    async fn proxy_entries_size(&self) -> metadata::Result<u64> {
        self.check()?;
        self.inner.proxy_entries.proxy_entries_size().await
    }
    async fn remove_proxy_entry(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        self.check()?;
        self.inner
            .proxy_entries
            .remove_proxy_entry(repo, digest)
            .await
    }
}

/// A blob store over a real one that misbehaves, holds and counts on demand:
/// - every call fails while `fail` is set;
/// - the next upload write stops after `fail_write_after` bytes of its body (which the real store
///   writes) and then fails, as a disk that fills up mid-write would ([`DISARMED`]: none);
/// - with `writes` / `commits`, every upload write / commit first waits for a permit of that
///   semaphore (a disk that has stopped until the test says so; closing it makes the call fail);
/// - `reads` counts reads of committed blobs and of uploads (a pull served from memory makes none),
///   `synced_writes` the writes that must be durable when they return (`upload_write`), and
///   `upload_read_offsets` where each read of an upload started.
pub struct FaultyBlobs {
    pub inner: Arc<dyn BlobStore>,
    pub fail: AtomicBool,
    pub fail_write_after: AtomicU64,
    pub writes: Option<Arc<Semaphore>>,
    pub commits: Option<Arc<Semaphore>>,
    pub reads: AtomicUsize,
    pub synced_writes: AtomicUsize,
    pub upload_read_offsets: std::sync::Mutex<Vec<u64>>,
}

/// [`FaultyBlobs::fail_write_after`] when no write is to fail.
pub const DISARMED: u64 = u64::MAX;

impl FaultyBlobs {
    pub fn new(inner: Arc<dyn BlobStore>) -> Arc<FaultyBlobs> {
        FaultyBlobs::holding(inner, None, None)
    }

    /// A store whose upload writes and commits wait for permits of `writes` and `commits`.
    pub fn holding(
        inner: Arc<dyn BlobStore>,
        writes: Option<Arc<Semaphore>>,
        commits: Option<Arc<Semaphore>>,
    ) -> Arc<FaultyBlobs> {
        Arc::new(FaultyBlobs {
            inner,
            fail: AtomicBool::new(false),
            fail_write_after: AtomicU64::new(DISARMED),
            writes,
            commits,
            reads: AtomicUsize::new(0),
            synced_writes: AtomicUsize::new(0),
            upload_read_offsets: Default::default(),
        })
    }

    fn check(&self) -> blobs::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(blobs::Error::Io(io::Error::other("disk is on fire")))
        } else {
            Ok(())
        }
    }

    fn read_at(&self, from: u64) {
        self.upload_read_offsets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(from);
    }

    /// `upload_write`, or `upload_write_unsynced` without `synced`, with the faults and holds applied.
    async fn write(
        &self,
        synced: bool,
        id: &UploadId,
        offset: u64,
        data: ByteStream,
    ) -> blobs::Result<u64> {
        self.check()?;
        if synced {
            self.synced_writes.fetch_add(1, Ordering::SeqCst);
        }
        wait(&self.writes).await?;
        let limit = self.fail_write_after.swap(DISARMED, Ordering::SeqCst);
        let data: ByteStream = if limit == DISARMED {
            data
        } else {
            Box::pin(data.scan(limit, |left, item| {
                let piece = match item {
                    Ok(mut chunk) if *left > 0 => {
                        chunk.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
                        *left -= chunk.len() as u64;
                        Some(Ok(chunk))
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                };
                future::ready(piece)
            }))
        };
        let written = if synced {
            self.inner.upload_write(id, offset, data).await
        } else {
            self.inner.upload_write_unsynced(id, offset, data).await
        }?;
        if limit == DISARMED {
            Ok(written)
        } else {
            Err(blobs::Error::Io(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            )))
        }
    }
}

/// Waits for a permit of `hold`, if set.
async fn wait(hold: &Option<Arc<Semaphore>>) -> blobs::Result<()> {
    if let Some(hold) = hold {
        hold.acquire().await.map_err(io::Error::other)?.forget();
    }
    Ok(())
}

#[async_trait::async_trait]
impl BlobStore for FaultyBlobs {
    async fn stat(&self, digest: &Digest) -> blobs::Result<Option<u64>> {
        self.check()?;
        self.inner.stat(digest).await
    }
    async fn read(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> blobs::Result<Option<BlobReader>> {
        self.check()?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(digest, range).await
    }
    async fn delete(&self, digest: &Digest) -> blobs::Result<bool> {
        self.check()?;
        self.inner.delete(digest).await
    }
    async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> blobs::Result<Vec<blobs::ListedBlob>> {
        self.check()?;
        self.inner.list_blobs(after, limit).await
    }
    async fn quarantine(&self, digest: &Digest) -> blobs::Result<bool> {
        self.check()?;
        self.inner.quarantine(digest).await
    }
    async fn upload_write(
        &self,
        id: &UploadId,
        offset: u64,
        data: ByteStream,
    ) -> blobs::Result<u64> {
        self.write(true, id, offset, data).await
    }
    async fn upload_write_unsynced(
        &self,
        id: &UploadId,
        offset: u64,
        data: ByteStream,
    ) -> blobs::Result<u64> {
        self.write(false, id, offset, data).await
    }
    async fn upload_read(&self, id: &UploadId, len: u64) -> blobs::Result<ByteStream> {
        self.check()?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.read_at(0);
        self.inner.upload_read(id, len).await
    }
    async fn upload_read_from(
        &self,
        id: &UploadId,
        from: u64,
        len: u64,
    ) -> blobs::Result<ByteStream> {
        self.check()?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.read_at(from);
        self.inner.upload_read_from(id, from, len).await
    }
    async fn upload_commit(&self, id: &UploadId, len: u64, digest: &Digest) -> blobs::Result<()> {
        self.check()?;
        wait(&self.commits).await?;
        self.inner.upload_commit(id, len, digest).await
    }
    async fn upload_delete(&self, id: &UploadId) -> blobs::Result<()> {
        self.check()?;
        self.inner.upload_delete(id).await
    }
    async fn purge_temporary(
        &self,
        older_than: SystemTime,
        dry_run: bool,
    ) -> blobs::Result<Vec<String>> {
        self.check()?;
        self.inner.purge_temporary(older_than, dry_run).await
    }
    async fn check(&self) -> blobs::Result<()> {
        FaultyBlobs::check(self)?;
        self.inner.check().await
    }
    async fn redirect_url(
        &self,
        digest: &Digest,
        expires: std::time::Duration,
    ) -> blobs::Result<Option<String>> {
        self.check()?;
        self.inner.redirect_url(digest, expires).await
    }
}
