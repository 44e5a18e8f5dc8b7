//! Content discovery: tags, catalog, referrers, and what each repository stores.
//!
//! Listings are paged with the spec's `n` and `last`. Each page is fetched with one entry more than asked,
//! which tells whether another page follows without a second query.

use oci::{Digest, RepoName};

use crate::{Error, Referrer, Registry, RepoUsage, Result};

/// Pagination as the spec's `n` and `last` query parameters give it.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// `n`: at most this many entries (capped by the registry).
    pub n: Option<usize>,
    /// `last`: start strictly after this entry.
    pub last: Option<String>,
}

/// A referrers answer.
#[derive(Clone, Debug)]
pub struct Referrers {
    pub manifests: Vec<Referrer>,
    /// Whether an `artifactType` filter was applied (answered as `OCI-Filters-Applied: artifactType`).
    pub filtered: bool,
}

/// Most entries one page holds, whatever `n` asks for: bounds the memory and time of one request.
pub const MAX_PAGE: usize = 1000;
/// Catalog page size when `n` is absent: registry:2's default.
pub const DEFAULT_CATALOG_PAGE: usize = 100;
/// Tags page size when `n` is absent, unless `tags.maxtags` says otherwise. registry:2 returns every
/// tag; berth returns up to [`MAX_PAGE`] and says that more follow (a `Link` header), so one request
/// stays bounded however many tags there are.
pub const DEFAULT_TAGS_PAGE: usize = MAX_PAGE;
/// The largest `tags.maxtags` berth takes: a page of tags is held in memory whole (names of at most
/// 128 characters: about 1.5 MB here).
pub const MAX_TAGS_PAGE: usize = 10_000;

impl Registry {
    /// Tags of `repo`; NAME_UNKNOWN if it does not exist. Returns the page and whether more follow.
    pub async fn list_tags(&self, repo: &RepoName, page: &Page) -> Result<(Vec<String>, bool)> {
        // As registry:3 with `tags.maxtags`: a larger `n` is clamped (the `Link` header gives the rest),
        // never refused.
        let max = self.settings().max_tags;
        let limit = page.n.unwrap_or(max).min(max);
        // A cached repository lists the upstream's tags, as registry:3's cache does; when the upstream
        // fails (or does not know the repository), the tags pulled through so far.
        let route = self.proxy_route(repo);
        if let Some(route) = &route
            && limit > 0
        {
            match route
                .upstream
                .tags_list(&route.remote, limit, page.last.as_deref())
                .await
            {
                Ok(Some(listed)) => return Ok(listed),
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    upstream = route.upstream.name(),
                    repo = %route.remote,
                    error = %e,
                    "listing tags from the upstream failed; listing the cached ones"
                ),
            }
        }
        let repo = route.as_ref().map_or(repo, |r| &r.local);
        self.adopt_ahead(repo).await?;
        if !self.meta.catalog.repo_exists(repo).await? {
            return Err(Error::NameUnknown(repo.clone()));
        }
        if limit == 0 {
            return Ok((Vec::new(), false));
        }
        let items = self
            .meta
            .catalog
            .list_tags(repo, page.last.as_deref(), limit + 1)
            .await?;
        Ok(split_page(items, limit))
    }

    /// Repositories. Returns the page and whether more follow.
    pub async fn catalog(&self, page: &Page) -> Result<(Vec<String>, bool)> {
        let limit = page.limit(DEFAULT_CATALOG_PAGE);
        if limit == 0 {
            return Ok((Vec::new(), false));
        }
        let mut items = self
            .meta
            .catalog
            .list_repos(page.last.as_deref(), limit + 1)
            .await?;
        // While registry:2's tree is adopted, the repositories it has not reached yet are listed too.
        let ahead = self
            .repositories_ahead(page.last.as_deref(), limit + 1)
            .await?;
        if !ahead.is_empty() {
            items.extend(ahead.iter().map(RepoName::to_string));
            items.sort();
            items.dedup();
            items.truncate(limit + 1);
        }
        Ok(split_page(items, limit))
    }

    /// What each repository stores (see `metadata::Usage`), in name order. Returns the page and whether
    /// more follow. While registry:2's tree is adopted, the page's repositories the adoption has not
    /// reached are adopted first (as a request for one of them would), so the page lists them with
    /// their figures, as the catalog lists them.
    pub async fn usage(&self, page: &Page) -> Result<(Vec<RepoUsage>, bool)> {
        let limit = page.limit(DEFAULT_CATALOG_PAGE);
        if limit == 0 {
            return Ok((Vec::new(), false));
        }
        let last = page.last.as_deref();
        // A name past the first `limit` of these has `limit` names before it: not on this page.
        let ahead = self.repositories_ahead(last, limit + 1).await?;
        for repo in ahead.iter().take(limit) {
            self.adopt_ahead(repo).await?;
        }
        let items = self.meta.usage.repo_usage(last, limit + 1).await?;
        let (rows, more) = split_page(items, limit);
        Ok((rows, more || ahead.len() > limit))
    }

    /// Manifests in `repo` whose subject is `subject`, optionally only those of `artifact_type`.
    /// A subject nobody refers to (or that does not exist) has no referrers: an empty list, not an error.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers> {
        let route = self.proxy_route(repo);
        let repo = route.as_ref().map_or(repo, |r| &r.local);
        self.adopt_ahead(repo).await?;
        let mut manifests = self.meta.catalog.referrers(repo, subject).await?;
        if let Some(wanted) = artifact_type {
            manifests.retain(|r| r.artifact_type.as_deref() == Some(wanted));
        }
        Ok(Referrers {
            manifests,
            filtered: artifact_type.is_some(),
        })
    }
}

impl Page {
    /// How many entries to return: `n` capped at [`MAX_PAGE`], or `default` when `n` is absent.
    pub fn limit(&self, default: usize) -> usize {
        self.n.unwrap_or(default).min(MAX_PAGE)
    }
}

/// Cuts a listing fetched with one entry more than `limit` into the page and whether more follow.
fn split_page<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    let more = items.len() > limit;
    items.truncate(limit);
    (items, more)
}
