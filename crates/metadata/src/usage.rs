//! What the registry stores, by repository and by set of repositories: for quotas, the usage endpoint
//! and the metrics.
//!
//! Bytes are those of the blobs linked to a repository (layers and configs, including uploads not yet
//! referenced by a manifest); manifests themselves are not counted. A blob linked to several
//! repositories counts once in a set of repositories ([`Usage::distinct_bytes`]) and in full in each
//! repository's own line, where `shared_bytes` says how much of it other repositories link too.

use oci::{Digest, RepoName};

use crate::Result;

/// One repository's usage. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoUsage {
    pub repo: RepoName,
    /// Bytes of the blobs linked to it.
    pub bytes: u64,
    /// Of those, the bytes of blobs other repositories link too.
    pub shared_bytes: u64,
    pub manifests: u64,
    pub tags: u64,
    /// The last manifest or tag pushed; `None` before any.
    pub last_push: Option<i64>,
    /// The last manifest pull recorded; `None` before any.
    pub last_pull: Option<i64>,
}

/// The whole store at one moment: what the registry page and `/api/v1/registry` show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreTotals {
    /// Every repository, those holding only blobs (or only a cache's entries) too.
    pub repositories: u64,
    pub manifests: u64,
    pub tags: u64,
    /// Every blob recorded, each counted once however many repositories link it, and their bytes.
    pub blobs: u64,
    pub bytes: u64,
    /// Of those, the blobs no manifest references and no pull-through cache entry holds, and their
    /// bytes: what garbage collection frees once their grace period has passed.
    pub unreferenced_blobs: u64,
    pub unreferenced_bytes: u64,
}

/// Usage of the registry's storage.
#[async_trait::async_trait]
pub trait Usage: Send + Sync + 'static {
    /// Each repository's usage, in name order strictly after `after`, at most `limit`.
    async fn repo_usage(&self, after: Option<&str>, limit: usize) -> Result<Vec<RepoUsage>>;

    /// Every repository whose name starts with `prefix` (those holding only blobs too), in name order.
    async fn repos_with_prefix(&self, prefix: &str) -> Result<Vec<RepoName>>;

    /// The bytes of the distinct blobs linked to any of `repos`, each blob counted once.
    async fn distinct_bytes(&self, repos: &[RepoName]) -> Result<u64>;

    /// Whether blob `digest` is linked to any of `repos`.
    async fn linked_to_any(&self, repos: &[RepoName], digest: &Digest) -> Result<bool>;

    /// Counts and bytes of the whole store (see [`StoreTotals`]).
    async fn totals(&self) -> Result<StoreTotals>;
}
