//! What the web interface reads beyond the distribution API's operations: each tag of a repository with
//! the manifest it points at and when it was pushed and last pulled. Reading it is not a pull.

use oci::RepoName;

use crate::{Error, Registry, Result, TagAge};

impl Registry {
    /// Every tag of `repo`, in tag order, with its manifest's digest, push time and last recorded pull;
    /// NAME_UNKNOWN if the repository does not exist. A cached repository lists the tags pulled through
    /// it so far, as `list_tags` does.
    pub async fn tag_details(&self, repo: &RepoName) -> Result<Vec<TagAge>> {
        let route = self.proxy_route(repo);
        let repo = route.as_ref().map_or(repo, |r| &r.local);
        if !self.meta.catalog.repo_exists(repo).await? {
            return Err(Error::NameUnknown(repo.clone()));
        }
        Ok(self.meta.tag_ages.tag_ages(repo).await?)
    }
}
