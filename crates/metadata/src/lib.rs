//! What the registry knows about its content: repositories, which blobs each may read, manifests, tags,
//! referrers and upload sessions.
//!
//! Every method of [`MetadataStore`] is one atomic domain operation (one transaction), so the registry
//! never has to hold a lock across calls: tag moves, manifest puts with their reference checks, and upload
//! progress are each all-or-nothing. Backends: [`sqlite`] (one node) and [`postgres`] (shared by
//! replicas), over the same portable schema.
//! Every backend passes the shared suite in [`testsuite`]. Background jobs that must run on one replica at
//! a time take a [`JobLock`] from the store.

use bytes::Bytes;
use oci::{Digest, RepoName, Tag};

pub use job_lock::JobLock;

mod job_lock;
pub mod postgres;
pub mod schema;
pub mod sqlite;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

/// A manifest about to be stored, with the references the registry extracted from its payload.
#[derive(Clone, Debug)]
pub struct NewManifest {
    pub digest: Digest,
    /// The manifest's media type (from its `mediaType` field, or the Content-Type it was pushed with).
    pub media_type: String,
    /// The exact bytes pushed; `digest` is their digest.
    pub payload: Bytes,
    /// `artifactType`, or for an image manifest without one, its config's media type (what the referrers
    /// API reports).
    pub artifact_type: Option<String>,
    /// The `subject` this manifest refers to, for the referrers API. Need not exist.
    pub subject: Option<Digest>,
    /// The manifest's `annotations` object as JSON text, copied into referrers responses.
    pub annotations: Option<String>,
    /// Blobs (config and layers) that must be linked to the repository.
    pub blobs: Vec<Digest>,
    /// Manifests (children of an index) that must exist in the repository.
    pub children: Vec<Digest>,
}

/// A stored manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub payload: Bytes,
    pub subject: Option<Digest>,
}

/// One entry of a referrers response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    /// JSON text of the referrer's annotations, if it had any.
    pub annotations: Option<String>,
}

/// An upload in progress: how many bytes the blob store holds for it and the hash state over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSession {
    /// The id the blob store knows the bytes by (an `UploadId`'s string).
    pub id: String,
    pub repo: RepoName,
    /// Bytes received and made durable so far.
    pub offset: u64,
    /// `oci::ResumableHasher::to_bytes()` over those bytes.
    pub hash_state: Vec<u8>,
    /// Unix seconds of the session's creation and of its last update (for purging stale uploads).
    pub started_at: i64,
    pub updated_at: i64,
}

/// A manifest or blob the pull-through cache holds in a repository, with when it was last pulled: what
/// its eviction (least recently pulled first, or not pulled for too long) works from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheEntry {
    pub repo: RepoName,
    pub digest: Digest,
    pub kind: CacheEntryKind,
    /// Bytes it takes: the blob's size, or the manifest's payload length.
    pub size: u64,
    /// Unix seconds of the last pull.
    pub pulled_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheEntryKind {
    Manifest,
    Blob,
}

impl CacheEntryKind {
    /// How it is stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheEntryKind::Manifest => "manifest",
            CacheEntryKind::Blob => "blob",
        }
    }

    pub fn parse(s: &str) -> Option<CacheEntryKind> {
        match s {
            "manifest" => Some(CacheEntryKind::Manifest),
            "blob" => Some(CacheEntryKind::Blob),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `put_manifest`: this blob is not linked to the repository.
    #[error("blob {0} is not in the repository")]
    MissingBlob(Digest),
    /// `put_manifest`: this child manifest does not exist in the repository.
    #[error("manifest {0} is not in the repository")]
    MissingManifest(Digest),
    /// Stored data could not be decoded (a bug or a tampered database).
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// The database cannot be reached right now (connection refused or lost, pool exhausted past its
    /// timeout, server shutting down). Nothing was written; the caller may retry later.
    #[error("metadata backend unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database failed.
    #[error("metadata backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The registry's metadata. A repository exists once anything was linked or pushed to it; it is listed by
/// `list_repos` (and `repo_exists` is true) while it holds at least one manifest.
///
/// Listing methods are in byte-wise lexical order, return at most `limit` items, and start strictly
/// after `after` when it is given.
#[async_trait::async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Records that `repo` may read blob `digest` of `size` bytes (idempotent).
    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<()>;

    /// Size of blob `digest` if it is linked to `repo`, else `None`.
    async fn linked_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>>;

    /// Size of blob `digest` if it is linked to any repository (for mounting without `from`).
    async fn known_blob(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Removes the link of blob `digest` to `repo`. Returns whether it existed.
    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;

    /// Stores `manifest` in `repo` (idempotent for the same digest) and, if given, points `tag` at it, in
    /// one transaction. Fails with `MissingBlob`/`MissingManifest`, storing nothing, if a reference is absent.
    async fn put_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
    ) -> Result<()>;

    /// The manifest `digest` in `repo`.
    async fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<StoredManifest>>;

    /// The manifest `tag` points to in `repo`.
    async fn tagged_manifest(&self, repo: &RepoName, tag: &Tag) -> Result<Option<StoredManifest>>;

    /// Deletes manifest `digest` from `repo` with every tag pointing at it. Returns whether it existed.
    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;

    /// Deletes tag `tag` (not the manifest). Returns whether it existed.
    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool>;

    /// Whether `repo` holds at least one manifest.
    async fn repo_exists(&self, repo: &RepoName) -> Result<bool>;

    /// Tags of `repo`, lexically ordered.
    async fn list_tags(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>>;

    /// Repositories holding at least one manifest, lexically ordered.
    async fn list_repos(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>>;

    /// Manifests in `repo` whose `subject` is `subject`, ordered by digest.
    async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Referrer>>;

    /// Creates upload session `session`, or replaces it if `session.offset` and the stored one match
    /// `expected_offset` (compare-and-swap: two concurrent writers to one upload cannot both win).
    /// `expected_offset: None` creates and fails if it exists. Returns whether the write happened.
    async fn save_upload(
        &self,
        session: &UploadSession,
        expected_offset: Option<u64>,
    ) -> Result<bool>;

    /// The upload session `id`.
    async fn upload(&self, id: &str) -> Result<Option<UploadSession>>;

    /// Removes upload session `id`. Returns whether it existed.
    async fn delete_upload(&self, id: &str) -> Result<bool>;

    /// Upload sessions last updated before `updated_before` (Unix seconds): the candidates for purging
    /// abandoned uploads. Ordered by id, at most `limit`, strictly after id `after` when given.
    async fn stale_uploads(
        &self,
        updated_before: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UploadSession>>;

    /// Takes the job lock `name` (ASCII letters, digits, `-`, `_`; at most 64 bytes) without waiting:
    /// `None` if another holder has it, whether in this process or in another replica on the same
    /// database. Not reentrant: a second call while the first lock is held gives `None`. The lock is
    /// released when the [`JobLock`] is dropped, and also when its holder dies (see [`JobLock`]).
    ///
    /// The default grants every call at once: right only for a store that no other process uses. A
    /// backend shared by processes overrides it, and a decorator of another store must forward it, or
    /// jobs would run on every replica at once.
    async fn try_job_lock(&self, name: &str) -> Result<Option<JobLock>> {
        job_lock::check_name(name)?;
        Ok(Some(JobLock::local(name)))
    }

    /// Records pulls of the pull-through cache's content, in one transaction: creates each entry, or
    /// moves its `pulled_at` forward (never back) and sets its size and kind.
    ///
    /// The cache-entry methods are for the pull-through cache alone; their defaults refuse, so a store
    /// that does not keep entries (or a decorator that does not forward them) makes eviction fail
    /// loudly instead of evicting nothing silently. Both backends implement them.
    async fn touch_cache_entries(&self, entries: &[CacheEntry]) -> Result<()> {
        let _ = entries;
        Err(cache_entries_unsupported())
    }

    /// Cache entries last pulled before `pulled_before` (Unix seconds), least recently pulled first (ties
    /// by repository, then digest), at most `limit`.
    async fn oldest_cache_entries(
        &self,
        pulled_before: i64,
        limit: usize,
    ) -> Result<Vec<CacheEntry>> {
        let _ = (pulled_before, limit);
        Err(cache_entries_unsupported())
    }

    /// The sum of the cache entries' sizes.
    async fn cache_size(&self) -> Result<u64> {
        Err(cache_entries_unsupported())
    }

    /// Removes the cache entry of `digest` in `repo`. Returns whether it existed.
    async fn remove_cache_entry(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let _ = (repo, digest);
        Err(cache_entries_unsupported())
    }
}

fn cache_entries_unsupported() -> Error {
    Error::Backend("this metadata store keeps no pull-through cache entries".into())
}
