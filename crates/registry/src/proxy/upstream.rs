//! The upstream registry a cached namespace mirrors, as the pull-through cache sees it.
//!
//! The cache (the rest of `registry::proxy`) decides *when* to ask the upstream and what to keep; an
//! [`Upstream`] only fetches. The HTTP implementation (the bearer-token dance, TLS, timeouts) lives in
//! the `berth-upstream` crate, so the registry stays free of HTTP types: everything here is `oci` types,
//! bytes and streams.
//!
//! Names passed to an `Upstream` are the upstream's own repository names (the cache has already
//! removed its namespace prefix and applied Docker Hub's `library/` rule).

use std::time::Duration;

use bytes::Bytes;
use oci::{Digest, Reference, RepoName};

use crate::ByteStream;

/// What a manifest HEAD tells: enough to decide whether the cached copy is still current.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest` of the upstream's answer.
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A manifest fetched whole (manifests are small and bounded by the caller's limit).
#[derive(Clone, Debug)]
pub struct UpstreamManifest {
    /// The digest of `payload` as computed by the fetcher (never trusted from a header alone); when the
    /// request was by digest, the fetcher has already checked that it matches.
    pub digest: Digest,
    pub media_type: String,
    pub payload: Bytes,
}

/// A blob being fetched. The stream yields the upstream's bytes as they arrive; it is *not* verified:
/// the cache hashes it and decides whether to keep it.
pub struct UpstreamBlob {
    /// `Content-Length` of the upstream's answer, when it sent one.
    pub size: Option<u64>,
    pub body: ByteStream,
}

/// Why the upstream could not answer. "Not found" is not an error: methods return `Ok(None)` for it.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Unreachable, refused, reset, timed out, or answered 5xx: the cache may serve a stale copy.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// 429 from the upstream (Docker Hub's pull limit): the cache may serve a stale copy.
    #[error("upstream rate limit reached")]
    RateLimited { retry_after: Option<Duration> },
    /// The upstream refused berth's credentials (401/403 after the token dance).
    #[error("upstream denied access: {0}")]
    Denied(String),
    /// An answer that breaks the protocol: a manifest over the size limit, a digest that does not match
    /// the one asked for, a missing or malformed header.
    #[error("upstream answered wrongly: {0}")]
    Protocol(String),
}

/// One upstream registry. Implementations are cheap to share (`Arc<dyn Upstream>`) and cache their
/// bearer tokens themselves.
#[async_trait::async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// A short name for logs and metrics labels (the configured namespace prefix or host), never a URL
    /// with credentials.
    fn name(&self) -> &str;

    /// HEAD of a manifest by tag or digest (does not count against Docker Hub's pull limit).
    /// `Ok(None)` when the upstream answers 404.
    async fn manifest_head(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<ManifestHead>, UpstreamError>;

    /// GET of a manifest by tag or digest, accepting every manifest and index type berth serves (OCI
    /// and Docker schema2). A payload over `max_bytes` is a `Protocol` error. `Ok(None)` on 404.
    async fn manifest_get(
        &self,
        repo: &RepoName,
        reference: &Reference,
        max_bytes: usize,
    ) -> Result<Option<UpstreamManifest>, UpstreamError>;

    /// One page of the repository's tags (`GET /v2/<name>/tags/list?n=&last=`): at most `n`, after
    /// `last`, and whether the upstream says more follow (a `Link` to the next page). `Ok(None)` on 404.
    async fn tags_list(
        &self,
        repo: &RepoName,
        n: usize,
        last: Option<&str>,
    ) -> Result<Option<(Vec<String>, bool)>, UpstreamError>;

    /// GET of a whole blob, following redirects (registries commonly redirect to object storage).
    /// `Ok(None)` on 404. Errors that happen mid-stream arrive as an `io::Error` from the body.
    async fn blob_get(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<UpstreamBlob>, UpstreamError>;

    /// One page of the upstream's catalog (`GET /v2/_catalog?n=&last=`): at most `n` repository names
    /// after `last`, and whether more follow. `Ok(None)` when the upstream has no catalog (404, as
    /// Docker Hub); the default is an upstream that cannot list one.
    async fn catalog(
        &self,
        _n: usize,
        _last: Option<&str>,
    ) -> Result<Option<(Vec<String>, bool)>, UpstreamError> {
        Ok(None)
    }

    /// The digests of the manifests that refer to `digest` (signatures, SBOMs, attestations): the
    /// referrers API (`GET /v2/<name>/referrers/<digest>`), or, where the upstream has none, the
    /// referrers tag schema (`sha256-<hex>`). Replication copies them beside the image. The default is
    /// an upstream that cannot tell: none.
    async fn referrers(
        &self,
        _repo: &RepoName,
        _digest: &Digest,
    ) -> Result<Vec<Digest>, UpstreamError> {
        Ok(Vec::new())
    }
}
