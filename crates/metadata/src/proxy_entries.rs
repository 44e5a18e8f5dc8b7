//! The pull-through cache's entries: what the cache fetched into which repository and when it was last
//! pulled, which its eviction (least recently pulled first, or not pulled for too long) works from.
//! Only the cache writes them; local repositories have none.

use oci::{Digest, RepoName};

use crate::Result;

/// A manifest or blob the pull-through cache holds in a repository, with when it was last pulled: what
/// its eviction (least recently pulled first, or not pulled for too long) works from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyEntry {
    pub repo: RepoName,
    pub digest: Digest,
    pub kind: ProxyEntryKind,
    /// Bytes it takes: the blob's size, or the manifest's payload length.
    pub size: u64,
    /// Unix seconds of the last pull.
    pub pulled_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyEntryKind {
    Manifest,
    Blob,
}

impl ProxyEntryKind {
    /// How it is stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyEntryKind::Manifest => "manifest",
            ProxyEntryKind::Blob => "blob",
        }
    }

    pub fn parse(s: &str) -> Option<ProxyEntryKind> {
        match s {
            "manifest" => Some(ProxyEntryKind::Manifest),
            "blob" => Some(ProxyEntryKind::Blob),
            _ => None,
        }
    }
}

/// The pull-through cache's entries.
#[async_trait::async_trait]
pub trait ProxyEntries: Send + Sync + 'static {
    /// Records pulls of the pull-through cache's content, in one transaction: creates each entry, or
    /// moves its `pulled_at` forward (never back) and sets its size and kind.
    async fn touch_proxy_entries(&self, entries: &[ProxyEntry]) -> Result<()>;

    /// Entries last pulled before `pulled_before` (Unix seconds), least recently pulled first (ties by
    /// repository, then digest), at most `limit`.
    async fn oldest_proxy_entries(
        &self,
        pulled_before: i64,
        limit: usize,
    ) -> Result<Vec<ProxyEntry>>;

    /// The sum of the entries' sizes.
    async fn proxy_entries_size(&self) -> Result<u64>;

    /// Removes the entry of `digest` in `repo`. Returns whether it existed.
    async fn remove_proxy_entry(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;
}
