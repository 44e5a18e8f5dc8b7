//! Adopting one repository ahead of the background adoption, when a request names it first: while
//! `berth serve` indexes registry:2's tree repository by repository, a pull (or push, delete, tag
//! listing) of a repository the cursor has not reached yet adopts that repository whole, there and then,
//! and is answered from the catalog as if the adoption had been done long ago. Without this, everything
//! past the cursor would answer 404 until the background got there (minutes, on a large tree).
//!
//! The repository is noted in the metadata (`AdoptProgress::note_adopted_ahead`) once adopted, and the
//! background adoption passes over the noted ones: adopting it a second time would bring back what was
//! deleted in berth in between. Writes go through the same path as the background's (`repo.rs`), so a
//! repository adopted ahead is the same in the catalog as one adopted in turn.
//!
//! What a repository needs is decided once per process: "nothing" (adopted before the cursor, ahead by
//! any replica, or not in the tree) is remembered in memory, so after the first request a repository
//! costs a hash-set lookup, and nothing at all once the adoption finished. Within a process one task
//! adopts a given repository at a time (keyed locks, shared with the background adoption); across
//! replicas two may adopt the same repository at the same moment, which writes the same rows twice.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use blobs::registry2::Registry2Tree;
use metadata::AdoptedAhead;
use oci::RepoName;

use super::{AdoptOptions, AdoptReport, repo, walk};
use crate::keyed_lock::{KeyedGuard, KeyedLocks};
use crate::{Registry, Result};

/// How many repository names a process remembers as needing nothing (about 30 MB at the longest names).
const SETTLED_BOUND: usize = 100_000;

/// The registry:2 tree whose adoption may still be under way, as every repository operation checks it.
pub(crate) struct Pending {
    pub(super) tree: Arc<dyn Registry2Tree>,
    /// The adoption finished (seen in the cursor, or done by this process): nothing is left to do.
    finished: AtomicBool,
    /// Repositories that need nothing more in this process.
    settled: Mutex<HashSet<String>>,
    /// One adoption of a repository at a time in this process, ahead or in turn.
    locks: KeyedLocks,
    /// The tree's repositories in name order, walked once (by the background adoption, or by the
    /// first catalog listing, whichever asks first).
    repositories: tokio::sync::OnceCell<Vec<String>>,
}

impl Pending {
    pub(crate) fn new(tree: Arc<dyn Registry2Tree>) -> Pending {
        Pending {
            tree,
            finished: AtomicBool::new(false),
            settled: Mutex::new(HashSet::new()),
            locks: KeyedLocks::default(),
            repositories: tokio::sync::OnceCell::new(),
        }
    }

    /// The tree's repositories, in name order.
    pub(super) async fn repositories(&self) -> Result<&[String]> {
        let walked = self
            .repositories
            .get_or_try_init(|| walk::repositories(self.tree.as_ref()))
            .await?;
        Ok(walked)
    }

    fn is_settled(&self, repo: &str) -> bool {
        self.finished.load(Ordering::Relaxed)
            || self
                .settled
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(repo)
    }

    fn settle(&self, repo: &str) {
        let mut settled = self.settled.lock().unwrap_or_else(PoisonError::into_inner);
        // Names that are no repository are remembered too, and anyone may send those: past the bound
        // a repository is checked again at each request rather than the memory growing.
        if settled.len() < SETTLED_BOUND {
            settled.insert(repo.to_string());
        }
    }

    /// The adoption finished: every check from now on is a load of this flag.
    pub(super) fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
        // What was remembered is no longer needed.
        std::mem::take(&mut *self.settled.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Holds repository `repo` against another adoption of it in this process.
    pub(super) async fn lock(&self, repo: &str) -> KeyedGuard {
        self.locks.lock(repo).await
    }
}

impl Registry {
    /// Makes this registry adopt, ahead of the background adoption, each repository of `tree` that a
    /// request names before the background got to it (see [`ahead`](self)). `berth serve` calls it when
    /// registry:2's tree lies under its storage and runs [`Registry::run_registry2_adoption`] beside.
    pub fn adopting(mut self, tree: Arc<dyn Registry2Tree>) -> Registry {
        self.adoption = Some(Arc::new(Pending::new(tree)));
        self
    }

    /// The adoption finished: no request adopts anything from now on.
    pub(super) fn adoption_finished(&self) {
        if let Some(pending) = &self.adoption {
            pending.finish();
        }
    }

    /// Adopts `repo` now if registry:2's tree holds it and the adoption has not got to it: called first
    /// by every read of a repository and every manifest write, delete and mount from it, so that none
    /// answers before the repository is in the catalog. Nothing to do (and no metadata read) when no adoption is pending or `repo` was seen.
    pub(crate) async fn adopt_ahead(&self, repo: &RepoName) -> Result<()> {
        let Some(pending) = &self.adoption else {
            return Ok(());
        };
        let name = repo.as_str();
        // A cached repository's content is the upstream's, whatever the tree held under its name.
        if pending.is_settled(name) || self.is_cached(repo) {
            return Ok(());
        }
        let _held = pending.lock(name).await;
        if pending.is_settled(name) {
            return Ok(());
        }
        let adopt = &self.meta.adopt;
        match adopt.adopt_cursor().await? {
            Some(cursor) if cursor.finished => {
                pending.finish();
                return Ok(());
            }
            Some(cursor) if cursor.after.as_deref().is_some_and(|after| name <= after) => {
                pending.settle(name);
                return Ok(());
            }
            _ => {}
        }
        if adopt.adopted_ahead(name).await?.is_some()
            || !walk::is_repository(pending.tree.as_ref(), name).await?
        {
            pending.settle(name);
            return Ok(());
        }
        let mut report = AdoptReport::default();
        let mut adoption = repo::Adoption {
            registry: self,
            tree: pending.tree.as_ref(),
            options: AdoptOptions::default(),
            verdicts: HashMap::new(),
            report: &mut report,
        };
        adoption.repository(name).await?;
        let counts = AdoptedAhead {
            manifests: report.manifests,
            tags: report.tags,
            layer_links: report.layer_links,
            skipped: report.skipped.len() as u64,
        };
        adopt.note_adopted_ahead(name, &counts).await?;
        pending.settle(name);
        tracing::info!(
            repo = name,
            "a request's registry:2 repository was adopted ahead of the background adoption"
        );
        Ok(())
    }

    /// For the catalog while the adoption is under way: up to `limit` of the tree's repositories after
    /// `last` that the adoption has not reached, so that a listing names every repository registry:2
    /// served (the catalog's own page is merged with these). Empty once the adoption finished.
    pub(crate) async fn repositories_ahead(
        &self,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepoName>> {
        let Some(pending) = &self.adoption else {
            return Ok(Vec::new());
        };
        if pending.finished.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let after = match self.meta.adopt.adopt_cursor().await? {
            Some(cursor) if cursor.finished => {
                pending.finish();
                return Ok(Vec::new());
            }
            Some(cursor) => cursor.after,
            None => None,
        };
        // Past both the page's start and the cursor (what the cursor passed is in the catalog), and
        // not adopted ahead here (the catalog has those too, or they were deleted since).
        let from = match (last, after.as_deref()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let names = pending.repositories().await?;
        let start = from.map_or(0, |from| names.partition_point(|n| n.as_str() <= from));
        Ok(names[start..]
            .iter()
            .filter(|n| !pending.is_settled(n))
            .filter_map(|n| n.parse::<RepoName>().ok())
            .take(limit)
            .collect())
    }
}
