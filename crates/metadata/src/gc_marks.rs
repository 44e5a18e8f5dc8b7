//! The garbage collector's role: which blobs no manifest references, since when, and which a sweep is
//! deleting, so that deletion is logical first and no push ever links bytes a sweep is removing.
//!
//! The protocol between a sweep and everything that makes a blob's bytes visible and links them (a push,
//! a mount, a pull-through fetch):
//!
//! 1. The writer [`reserve_blob`](GcMarks::reserve_blob)s the digest *before* it makes the bytes
//!    visible or checks that they are there, and links them after. The reservation touches the blob, so
//!    no sweep claims it for the grace period; if a sweep already claimed it, the reservation is refused
//!    until the sweep released it (the writer waits and tries again, then writes the bytes anew).
//! 2. The sweep lists candidates ([`unreferenced_blobs`](GcMarks::unreferenced_blobs)), then for each
//!    [`claim_blob`](GcMarks::claim_blob)s it: one transaction that checks again that no manifest
//!    references it and nothing touched it since the cut-off, unlinks it from every repository and marks
//!    it being deleted. Then the sweep deletes the bytes and [`release_blob`](GcMarks::release_blob)s it.
//!
//! A claim and a reservation (or a manifest put referencing the blob) of the same digest are ordered by
//! the database (SQLite: one writer; PostgreSQL: row locks on the blob and its links), so either the claim
//! sees the touch or the reference and leaves the blob, or the writer sees the claim and waits.

use oci::{Digest, RepoName};

use crate::Result;

/// A blob as the metadata records it, whatever references it: what a walk of the whole store compares
/// with the bytes the blob store holds (orphans, missing bytes, scrub).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedBlob {
    pub digest: Digest,
    pub size: u64,
    /// When anything last wanted it (Unix seconds).
    pub touched_at: i64,
    /// A sweep claimed it and is deleting its bytes.
    pub deleting: bool,
}

/// The garbage collector's view of blobs.
#[async_trait::async_trait]
pub trait GcMarks: Send + Sync + 'static {
    /// Records that blob `digest` (of `size` bytes) is wanted now: call before making its bytes visible
    /// (or relying on them being there) and linking it. `false` while a sweep is deleting it: its bytes
    /// may vanish, so the caller must wait for the sweep to release it, then reserve again and write the
    /// bytes anew.
    async fn reserve_blob(&self, digest: &Digest, size: u64) -> Result<bool>;

    /// Blobs that no manifest references and no pull-through cache entry holds (the cache's eviction
    /// decides when those go: a cached manifest records no references to the blobs it has not fetched),
    /// that nothing touched at or after `touched_before` (Unix seconds) and that no sweep is deleting: the candidates of a sweep, with their sizes, in digest
    /// order strictly after `after`, at most `limit`.
    async fn unreferenced_blobs(
        &self,
        touched_before: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>>;

    /// Claims `digest` for deletion if it is still a candidate as `unreferenced_blobs(touched_before)`
    /// defines it: in one transaction, unlinks it from every repository and marks it being deleted.
    /// Returns whether it was claimed (`false`: it was referenced, touched or claimed meanwhile).
    async fn claim_blob(&self, digest: &Digest, touched_before: i64) -> Result<bool>;

    /// Forgets claimed blob `digest` once its bytes are gone: it may be reserved (pushed) again.
    /// Forgetting a blob that is not claimed does nothing.
    async fn release_blob(&self, digest: &Digest) -> Result<()>;

    /// Blobs claimed and not released (a sweep that stopped between the two), in digest order, at most
    /// `limit`: the next sweep deletes their bytes and releases them.
    async fn claimed_blobs(&self, limit: usize) -> Result<Vec<Digest>>;

    /// Every blob the metadata records (referenced or not, claimed or not), in digest order strictly
    /// after `after`, at most `limit`: paged beside `BlobStore::list_blobs` to find bytes without a row
    /// and rows without bytes.
    async fn recorded_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<RecordedBlob>>;

    /// Claims bytes that no row records (an orphan: a crash between a commit and its record, or a
    /// database restored from an older backup) for deletion: records `digest` of `size` bytes as
    /// claimed, as [`claim_blob`](Self::claim_blob) leaves a blob, if and only if no row records it.
    /// Returns whether it was claimed (`false`: a writer reserved it meanwhile, and will link it). The
    /// caller then deletes the bytes and [`release_blob`](Self::release_blob)s it; until then every
    /// reservation of the digest is refused, as for any claim.
    async fn claim_unrecorded_blob(&self, digest: &Digest, size: u64) -> Result<bool>;

    /// The manifests of `repo` that no tag reaches, pushed before `created_before` (Unix seconds), in
    /// digest order. A tag reaches the manifest it points at; a manifest reaches the children of an
    /// index, its `subject`, and its referrers (the manifests whose subject it is). So the children of a
    /// tagged index stay, and so do the signatures and SBOMs of a tagged image; an untagged index
    /// takes its children and referrers with it.
    async fn unreachable_manifests(
        &self,
        repo: &RepoName,
        created_before: i64,
    ) -> Result<Vec<Digest>>;

    /// Deletes manifest `digest` of `repo` as `Catalog::delete_manifest` does, in one transaction that
    /// first checks again that it is one of `unreachable_manifests(repo, created_before)` (a tag pushed
    /// meanwhile keeps it). Returns whether it was deleted.
    async fn delete_unreachable_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        created_before: i64,
    ) -> Result<bool>;
}
