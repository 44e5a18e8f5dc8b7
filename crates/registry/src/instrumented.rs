//! Decorators that time every storage operation: an [`InstrumentedBlobStore`] and an
//! [`InstrumentedMetadata`] wrap any backend, implement the same traits, and report each call's
//! duration and outcome to a [`StorageObserver`], each call in a span of its own while a trace is recorded
//! ([`crate::spans`]).
//!
//! Why decorators: the backends stay free of metrics code and the registry stays free of `if metrics`
//! branches; whoever wires the process decides whether to wrap. Why an observer trait rather than a metrics
//! library: the registry must not depend on how (or whether) the numbers are exported; the HTTP crate
//! implements the observer with Prometheus histograms.
//!
//! What a duration covers: the call, until its future completes. For `read` and `upload_read` that is the
//! time to open the stream, not to drain it; `upload_write` consumes the request body, so its time includes
//! waiting for the client's bytes. A call whose future is dropped before it completes (the client went away)
//! is not reported.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use blobs::{BlobReader, BlobStore, ByteStream, ListedBlob, UploadId};
use metadata::{
    Catalog, GcMarks, ManifestPull, Metadata, NewManifest, ProxyEntries, Referrer, RepoUsage,
    StoreTotals, StoredManifest, TagAge, TagAges, UploadSession, UploadSessions, Usage,
};
use oci::{Digest, RepoName, Tag};
use tracing::Instrument;

/// One storage call: which store, which backend, which method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StorageOp {
    /// `"blobs"` or `"metadata"`.
    pub store: &'static str,
    /// The backend's short name as the wiring gave it (`"fs"`, `"sqlite"`, ...).
    pub backend: &'static str,
    /// The trait method's name (`"stat"`, `"put_manifest"`, ...).
    pub operation: &'static str,
}

/// Receives the timing of every storage call. Called on the request's task, so it must be quick.
pub trait StorageObserver: Send + Sync + 'static {
    /// `op` completed after `elapsed`; `ok` is false when it returned an error.
    fn observe(&self, op: StorageOp, elapsed: Duration, ok: bool);
}

/// No observer: the decorators installed for their spans alone (traces exported, metrics not).
impl StorageObserver for () {
    fn observe(&self, _: StorageOp, _: Duration, _: bool) {}
}

/// Times `fut` and reports it as `op`, in a span of its own when a trace is being recorded
/// ([`spans::storage`](crate::spans::storage)).
async fn timed<T, E>(
    observer: &dyn StorageObserver,
    op: StorageOp,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let span = crate::spans::storage(op);
    let started = Instant::now();
    let out = fut.instrument(span.clone()).await;
    observer.observe(op, started.elapsed(), out.is_ok());
    if out.is_err() {
        crate::spans::failed(&span);
    }
    out
}

/// A [`BlobStore`] that reports the duration of every call of the one it wraps.
pub struct InstrumentedBlobStore {
    inner: Arc<dyn BlobStore>,
    backend: &'static str,
    observer: Arc<dyn StorageObserver>,
}

impl InstrumentedBlobStore {
    pub fn new(
        inner: Arc<dyn BlobStore>,
        backend: &'static str,
        observer: Arc<dyn StorageObserver>,
    ) -> InstrumentedBlobStore {
        InstrumentedBlobStore {
            inner,
            backend,
            observer,
        }
    }

    fn op(&self, operation: &'static str) -> StorageOp {
        StorageOp {
            store: "blobs",
            backend: self.backend,
            operation,
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for InstrumentedBlobStore {
    async fn stat(&self, digest: &Digest) -> blobs::Result<Option<u64>> {
        timed(&*self.observer, self.op("stat"), self.inner.stat(digest)).await
    }

    async fn read(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> blobs::Result<Option<BlobReader>> {
        timed(
            &*self.observer,
            self.op("read"),
            self.inner.read(digest, range),
        )
        .await
    }

    async fn delete(&self, digest: &Digest) -> blobs::Result<bool> {
        timed(
            &*self.observer,
            self.op("delete"),
            self.inner.delete(digest),
        )
        .await
    }

    async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> blobs::Result<Vec<ListedBlob>> {
        timed(
            &*self.observer,
            self.op("list_blobs"),
            self.inner.list_blobs(after, limit),
        )
        .await
    }

    async fn quarantine(&self, digest: &Digest) -> blobs::Result<bool> {
        timed(
            &*self.observer,
            self.op("quarantine"),
            self.inner.quarantine(digest),
        )
        .await
    }

    async fn upload_write(
        &self,
        id: &UploadId,
        offset: u64,
        data: ByteStream,
    ) -> blobs::Result<u64> {
        timed(
            &*self.observer,
            self.op("upload_write"),
            self.inner.upload_write(id, offset, data),
        )
        .await
    }

    async fn upload_write_unsynced(
        &self,
        id: &UploadId,
        offset: u64,
        data: ByteStream,
    ) -> blobs::Result<u64> {
        timed(
            &*self.observer,
            self.op("upload_write"),
            self.inner.upload_write_unsynced(id, offset, data),
        )
        .await
    }

    async fn upload_read(&self, id: &UploadId, len: u64) -> blobs::Result<ByteStream> {
        timed(
            &*self.observer,
            self.op("upload_read"),
            self.inner.upload_read(id, len),
        )
        .await
    }

    async fn upload_read_from(
        &self,
        id: &UploadId,
        from: u64,
        len: u64,
    ) -> blobs::Result<ByteStream> {
        timed(
            &*self.observer,
            self.op("upload_read"),
            self.inner.upload_read_from(id, from, len),
        )
        .await
    }

    async fn upload_commit(&self, id: &UploadId, len: u64, digest: &Digest) -> blobs::Result<()> {
        timed(
            &*self.observer,
            self.op("upload_commit"),
            self.inner.upload_commit(id, len, digest),
        )
        .await
    }

    async fn upload_delete(&self, id: &UploadId) -> blobs::Result<()> {
        timed(
            &*self.observer,
            self.op("upload_delete"),
            self.inner.upload_delete(id),
        )
        .await
    }

    async fn purge_temporary(
        &self,
        older_than: SystemTime,
        dry_run: bool,
    ) -> blobs::Result<Vec<String>> {
        timed(
            &*self.observer,
            self.op("purge_temporary"),
            self.inner.purge_temporary(older_than, dry_run),
        )
        .await
    }

    async fn check(&self) -> blobs::Result<()> {
        timed(&*self.observer, self.op("check"), self.inner.check()).await
    }

    /// Passed through untimed: a local computation (a presigned URL), not a call to the storage. Without
    /// it the decorator would hide the store's redirects.
    async fn redirect_url(
        &self,
        digest: &Digest,
        expires: Duration,
    ) -> blobs::Result<Option<String>> {
        self.inner.redirect_url(digest, expires).await
    }
}

/// The roles of a [`Metadata`] that report the duration of every call: the catalog, the upload
/// sessions, the pull-through cache's entries and the garbage collector's marks. Job locks are not wrapped ([`wrap`](Self::wrap) keeps
/// the backend's): a lock held for hours is not a storage latency.
pub struct InstrumentedMetadata {
    inner: Metadata,
    backend: &'static str,
    observer: Arc<dyn StorageObserver>,
}

impl InstrumentedMetadata {
    pub fn new(
        inner: Metadata,
        backend: &'static str,
        observer: Arc<dyn StorageObserver>,
    ) -> InstrumentedMetadata {
        InstrumentedMetadata {
            inner,
            backend,
            observer,
        }
    }

    /// `inner` with its timed roles in place of its own.
    pub fn wrap(
        inner: Metadata,
        backend: &'static str,
        observer: Arc<dyn StorageObserver>,
    ) -> Metadata {
        let jobs = inner.jobs.clone();
        // A few writes per scrub: not worth timing, and one role less to forward.
        let scrub = inner.scrub.clone();
        // One long-lived stream, not calls to time.
        let changes = inner.changes.clone();
        // The delivery worker's reads and removals, off every request's path: not timed.
        let outbox = inner.outbox.clone();
        // A write per repository of one adoption: not worth timing.
        let adopt = inner.adopt.clone();
        let timed = Arc::new(InstrumentedMetadata::new(inner, backend, observer));
        Metadata {
            catalog: timed.clone(),
            uploads: timed.clone(),
            jobs,
            proxy_entries: timed.clone(),
            gc: timed.clone(),
            scrub,
            tag_ages: timed.clone(),
            usage: timed,
            changes,
            outbox,
            adopt,
        }
    }

    fn op(&self, operation: &'static str) -> StorageOp {
        StorageOp {
            store: "metadata",
            backend: self.backend,
            operation,
        }
    }
}

#[async_trait::async_trait]
impl Catalog for InstrumentedMetadata {
    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> metadata::Result<()> {
        let fut = self.inner.catalog.link_blob(repo, digest, size);
        timed(&*self.observer, self.op("link_blob"), fut).await
    }

    async fn link_blobs(&self, repo: &RepoName, blobs: &[(Digest, u64)]) -> metadata::Result<()> {
        let fut = self.inner.catalog.link_blobs(repo, blobs);
        timed(&*self.observer, self.op("link_blobs"), fut).await
    }

    async fn linked_blob(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<Option<u64>> {
        let fut = self.inner.catalog.linked_blob(repo, digest);
        timed(&*self.observer, self.op("linked_blob"), fut).await
    }

    async fn known_blob(&self, digest: &Digest) -> metadata::Result<Option<u64>> {
        let fut = self.inner.catalog.known_blob(digest);
        timed(&*self.observer, self.op("known_blob"), fut).await
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        let fut = self.inner.catalog.unlink_blob(repo, digest);
        timed(&*self.observer, self.op("unlink_blob"), fut).await
    }

    async fn put_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
    ) -> metadata::Result<()> {
        let fut = self.inner.catalog.put_manifest(repo, manifest, tag);
        timed(&*self.observer, self.op("put_manifest"), fut).await
    }

    async fn put_tags(&self, repo: &RepoName, tags: &[(Tag, Digest)]) -> metadata::Result<()> {
        let fut = self.inner.catalog.put_tags(repo, tags);
        timed(&*self.observer, self.op("put_tags"), fut).await
    }

    async fn manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> metadata::Result<Option<StoredManifest>> {
        let fut = self.inner.catalog.manifest(repo, digest);
        timed(&*self.observer, self.op("manifest"), fut).await
    }

    async fn tagged_manifest(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> metadata::Result<Option<StoredManifest>> {
        let fut = self.inner.catalog.tagged_manifest(repo, tag);
        timed(&*self.observer, self.op("tagged_manifest"), fut).await
    }

    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        let fut = self.inner.catalog.delete_manifest(repo, digest);
        timed(&*self.observer, self.op("delete_manifest"), fut).await
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> metadata::Result<bool> {
        let fut = self.inner.catalog.delete_tag(repo, tag);
        timed(&*self.observer, self.op("delete_tag"), fut).await
    }

    async fn repo_exists(&self, repo: &RepoName) -> metadata::Result<bool> {
        let fut = self.inner.catalog.repo_exists(repo);
        timed(&*self.observer, self.op("repo_exists"), fut).await
    }

    async fn list_tags(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        limit: usize,
    ) -> metadata::Result<Vec<String>> {
        let fut = self.inner.catalog.list_tags(repo, after, limit);
        timed(&*self.observer, self.op("list_tags"), fut).await
    }

    async fn list_repos(&self, after: Option<&str>, limit: usize) -> metadata::Result<Vec<String>> {
        let fut = self.inner.catalog.list_repos(after, limit);
        timed(&*self.observer, self.op("list_repos"), fut).await
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
    ) -> metadata::Result<Vec<Referrer>> {
        let fut = self.inner.catalog.referrers(repo, subject);
        timed(&*self.observer, self.op("referrers"), fut).await
    }
}

#[async_trait::async_trait]
impl UploadSessions for InstrumentedMetadata {
    async fn save_upload(
        &self,
        session: &UploadSession,
        expected_offset: Option<u64>,
    ) -> metadata::Result<bool> {
        let fut = self.inner.uploads.save_upload(session, expected_offset);
        timed(&*self.observer, self.op("save_upload"), fut).await
    }

    async fn upload(&self, id: &str) -> metadata::Result<Option<UploadSession>> {
        let fut = self.inner.uploads.upload(id);
        timed(&*self.observer, self.op("upload"), fut).await
    }

    async fn delete_upload(&self, id: &str) -> metadata::Result<bool> {
        let fut = self.inner.uploads.delete_upload(id);
        timed(&*self.observer, self.op("delete_upload"), fut).await
    }

    async fn stale_uploads(
        &self,
        updated_before: i64,
        after: Option<&str>,
        limit: usize,
    ) -> metadata::Result<Vec<UploadSession>> {
        let fut = self
            .inner
            .uploads
            .stale_uploads(updated_before, after, limit);
        timed(&*self.observer, self.op("stale_uploads"), fut).await
    }
}

#[async_trait::async_trait]
impl ProxyEntries for InstrumentedMetadata {
    async fn touch_proxy_entries(&self, entries: &[metadata::ProxyEntry]) -> metadata::Result<()> {
        let fut = self.inner.proxy_entries.touch_proxy_entries(entries);
        timed(&*self.observer, self.op("touch_proxy_entries"), fut).await
    }

    async fn oldest_proxy_entries(
        &self,
        pulled_before: i64,
        limit: usize,
    ) -> metadata::Result<Vec<metadata::ProxyEntry>> {
        let fut = self
            .inner
            .proxy_entries
            .oldest_proxy_entries(pulled_before, limit);
        timed(&*self.observer, self.op("oldest_proxy_entries"), fut).await
    }

    async fn proxy_entries_size(&self) -> metadata::Result<u64> {
        let fut = self.inner.proxy_entries.proxy_entries_size();
        timed(&*self.observer, self.op("proxy_entries_size"), fut).await
    }

    async fn remove_proxy_entry(&self, repo: &RepoName, digest: &Digest) -> metadata::Result<bool> {
        let fut = self.inner.proxy_entries.remove_proxy_entry(repo, digest);
        timed(&*self.observer, self.op("remove_proxy_entry"), fut).await
    }
}

#[async_trait::async_trait]
impl GcMarks for InstrumentedMetadata {
    async fn reserve_blob(&self, digest: &Digest, size: u64) -> metadata::Result<bool> {
        let fut = self.inner.gc.reserve_blob(digest, size);
        timed(&*self.observer, self.op("reserve_blob"), fut).await
    }

    async fn unreferenced_blobs(
        &self,
        touched_before: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> metadata::Result<Vec<(Digest, u64)>> {
        let fut = self
            .inner
            .gc
            .unreferenced_blobs(touched_before, after, limit);
        timed(&*self.observer, self.op("unreferenced_blobs"), fut).await
    }

    async fn claim_blob(&self, digest: &Digest, touched_before: i64) -> metadata::Result<bool> {
        let fut = self.inner.gc.claim_blob(digest, touched_before);
        timed(&*self.observer, self.op("claim_blob"), fut).await
    }

    async fn release_blob(&self, digest: &Digest) -> metadata::Result<()> {
        let fut = self.inner.gc.release_blob(digest);
        timed(&*self.observer, self.op("release_blob"), fut).await
    }

    async fn claimed_blobs(&self, limit: usize) -> metadata::Result<Vec<Digest>> {
        let fut = self.inner.gc.claimed_blobs(limit);
        timed(&*self.observer, self.op("claimed_blobs"), fut).await
    }

    async fn recorded_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> metadata::Result<Vec<metadata::RecordedBlob>> {
        let fut = self.inner.gc.recorded_blobs(after, limit);
        timed(&*self.observer, self.op("recorded_blobs"), fut).await
    }

    async fn claim_unrecorded_blob(&self, digest: &Digest, size: u64) -> metadata::Result<bool> {
        let fut = self.inner.gc.claim_unrecorded_blob(digest, size);
        timed(&*self.observer, self.op("claim_unrecorded_blob"), fut).await
    }

    async fn unreachable_manifests(
        &self,
        repo: &RepoName,
        created_before: i64,
    ) -> metadata::Result<Vec<Digest>> {
        let fut = self.inner.gc.unreachable_manifests(repo, created_before);
        timed(&*self.observer, self.op("unreachable_manifests"), fut).await
    }

    async fn delete_unreachable_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        created_before: i64,
    ) -> metadata::Result<bool> {
        let fut = self
            .inner
            .gc
            .delete_unreachable_manifest(repo, digest, created_before);
        timed(&*self.observer, self.op("delete_unreachable_manifest"), fut).await
    }
}

#[async_trait::async_trait]
impl TagAges for InstrumentedMetadata {
    async fn record_pulls(&self, pulls: &[ManifestPull]) -> metadata::Result<()> {
        let fut = self.inner.tag_ages.record_pulls(pulls);
        timed(&*self.observer, self.op("record_pulls"), fut).await
    }

    async fn tag_ages(&self, repo: &RepoName) -> metadata::Result<Vec<TagAge>> {
        let fut = self.inner.tag_ages.tag_ages(repo);
        timed(&*self.observer, self.op("tag_ages"), fut).await
    }

    async fn delete_tag_unchanged(&self, repo: &RepoName, age: &TagAge) -> metadata::Result<bool> {
        let fut = self.inner.tag_ages.delete_tag_unchanged(repo, age);
        timed(&*self.observer, self.op("delete_tag_unchanged"), fut).await
    }
}

#[async_trait::async_trait]
impl Usage for InstrumentedMetadata {
    async fn repo_usage(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> metadata::Result<Vec<RepoUsage>> {
        let fut = self.inner.usage.repo_usage(after, limit);
        timed(&*self.observer, self.op("repo_usage"), fut).await
    }

    async fn repos_with_prefix(&self, prefix: &str) -> metadata::Result<Vec<RepoName>> {
        let fut = self.inner.usage.repos_with_prefix(prefix);
        timed(&*self.observer, self.op("repos_with_prefix"), fut).await
    }

    async fn distinct_bytes(&self, repos: &[RepoName]) -> metadata::Result<u64> {
        let fut = self.inner.usage.distinct_bytes(repos);
        timed(&*self.observer, self.op("distinct_bytes"), fut).await
    }

    async fn linked_to_any(&self, repos: &[RepoName], digest: &Digest) -> metadata::Result<bool> {
        let fut = self.inner.usage.linked_to_any(repos, digest);
        timed(&*self.observer, self.op("linked_to_any"), fut).await
    }

    async fn totals(&self) -> metadata::Result<StoreTotals> {
        let fut = self.inner.usage.totals();
        timed(&*self.observer, self.op("totals"), fut).await
    }
}
