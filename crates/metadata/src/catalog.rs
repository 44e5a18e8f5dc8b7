//! The catalog role: repositories, which blobs each may read, manifests, tags and referrers.

use bytes::Bytes;
use oci::{Digest, RepoName, Tag};

use crate::Result;

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
    /// Children of a sparse index (registry:3's `validation.manifests.indexes`) that need not exist:
    /// recorded as references like `children` (so a child pushed later is kept for the index), never
    /// checked.
    pub optional_children: Vec<Digest>,
    /// The tag given with it is immutable: `put_manifest` may create it, or find it on this very
    /// manifest, but not move it from another (`Error::TagImmutable`), in the same transaction.
    pub tag_immutable: bool,
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

/// Repositories, blob links, manifests, tags and referrers. A repository exists once anything was linked
/// or pushed to it; it is listed by `list_repos` (and `repo_exists` is true) while it holds at least one
/// manifest.
///
/// Listing methods are in byte-wise lexical order, return at most `limit` items, and start strictly
/// after `after` when it is given.
#[async_trait::async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Records that `repo` may read blob `digest` of `size` bytes (idempotent).
    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<()>;

    /// [`link_blob`](Catalog::link_blob) for each `(digest, size)` of `blobs`, in one transaction: all
    /// are linked or none (`BlobDeleting` for one links none). An empty list changes nothing. For linking
    /// many blobs at once (a registry:2 repository's layers when it is adopted): one commit, and so one
    /// flush to disk, instead of one per blob.
    async fn link_blobs(&self, repo: &RepoName, blobs: &[(Digest, u64)]) -> Result<()>;

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

    /// Points each `(tag, digest)` of `tags` at the manifest `digest`, which must be stored in `repo`, in
    /// one transaction: all move or none (`MissingManifest` when one is not there). Each move is the one
    /// `put_manifest` with that tag makes; an empty list changes nothing. For tagging stored manifests
    /// many at once (a registry:2 repository's tags when it is adopted): one commit for them, and no
    /// manifest sent again.
    async fn put_tags(&self, repo: &RepoName, tags: &[(Tag, Digest)]) -> Result<()>;

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
}
