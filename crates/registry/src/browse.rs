//! What the web interface reads beyond the distribution API's operations: each tag of a repository with
//! the manifest it points at and when it was pushed and last pulled (reading it is not a pull), and the
//! whole store's counts.

use oci::RepoName;

use crate::{Error, Registry, Result, StoreTotals, TagAge};

impl Registry {
    /// Every tag of `repo`, in tag order, with its manifest's digest, push time and last recorded pull;
    /// NAME_UNKNOWN if the repository does not exist. A cached repository lists the tags pulled through
    /// it so far, as `list_tags` does.
    pub async fn tag_details(&self, repo: &RepoName) -> Result<Vec<TagAge>> {
        let route = self.proxy_route(repo);
        let repo = route.as_ref().map_or(repo, |r| &r.local);
        self.adopt_ahead(repo).await?;
        if !self.meta.catalog.repo_exists(repo).await? {
            return Err(Error::NameUnknown(repo.clone()));
        }
        Ok(self.meta.tag_ages.tag_ages(repo).await?)
    }

    /// Counts and bytes of everything stored, and of what no manifest references (what garbage
    /// collection would free once the grace period has passed); one metadata read.
    pub async fn totals(&self) -> Result<StoreTotals> {
        Ok(self.meta.usage.totals().await?)
    }

    /// Bytes the pull-through cache's entries take (what eviction's size limit counts).
    pub async fn cached_bytes(&self) -> Result<u64> {
        Ok(self.meta.proxy_entries.proxy_entries_size().await?)
    }
}
