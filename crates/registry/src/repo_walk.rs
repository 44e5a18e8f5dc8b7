//! Every repository of the catalog, a page at a time, for a background job that holds its job lock
//! (untagged-manifest collection, retention): the walk stops when the catalog ends or the lock is lost.

use metadata::JobLock;
use oci::RepoName;

use crate::{Registry, Result};

/// Repositories read per catalog page.
const PAGE: usize = 500;

pub(crate) struct RepoWalk<'a> {
    registry: &'a Registry,
    lock: &'a JobLock,
    job: &'static str,
    after: Option<String>,
}

impl<'a> RepoWalk<'a> {
    pub(crate) fn new(registry: &'a Registry, lock: &'a JobLock, job: &'static str) -> Self {
        RepoWalk {
            registry,
            lock,
            job,
            after: None,
        }
    }

    /// The next page; `None` at the end of the catalog, or once the job lock is lost (logged).
    pub(crate) async fn next_page(&mut self) -> Result<Option<Vec<RepoName>>> {
        let names = self
            .registry
            .meta
            .catalog
            .list_repos(self.after.as_deref(), PAGE)
            .await?;
        let Some(last) = names.last() else {
            return Ok(None);
        };
        self.after = Some(last.clone());
        if !self.lock.is_held().await {
            tracing::warn!(job = self.job, "lost the job lock; stopping");
            return Ok(None);
        }
        // Names came from the catalog, so they parse; one that does not is skipped.
        Ok(Some(names.iter().filter_map(|n| n.parse().ok()).collect()))
    }
}
