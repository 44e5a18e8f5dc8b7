//! Quotas: the most blob bytes a set of repositories may store (`quotas` in the configuration).
//!
//! A quota's scope is every repository its patterns match; its usage is the bytes of the distinct blobs
//! linked to any of them (`metadata::Usage::distinct_bytes`: a layer shared by ten repositories of the
//! scope counts once). It is checked where bytes are about to be linked: a new upload is refused while
//! a scope it falls in is full, and an upload's last request (or a mount) is refused when its blob is
//! new to the scope and would take it past the quota, before the bytes become a blob. Every quota
//! covering the repository is checked. The refusal is DENIED, naming the quota, what it holds and what
//! the push needed, which docker, podman and skopeo show the user.
//!
//! The limit is soft by what pushes in flight at once add: two uploads checked at the same moment may
//! both fit alone and not together (the alternative, a lock per scope across replicas, would serialise
//! every push of a team). The pull-through cache's repositories are bounded by its own eviction.

use std::sync::PoisonError;
use std::time::Duration;

use oci::{Digest, Pattern, RepoName};

use crate::{Error, Registry, Result};

/// One quota: at most `bytes` for all the repositories matching any of `repositories`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    pub repositories: Vec<Pattern>,
    pub bytes: u64,
}

impl Quota {
    fn covers(&self, repo: &RepoName) -> bool {
        self.repositories.iter().any(|p| p.matches(repo.as_str()))
    }

    /// How the quota is named to the user and in the metrics: its patterns.
    pub fn name(&self) -> String {
        let patterns: Vec<&str> = self.repositories.iter().map(Pattern::as_str).collect();
        patterns.join(", ")
    }
}

/// A quota's scope as it stands, for the metrics and the usage endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaUsage {
    pub quota: Quota,
    /// The repositories it covers now.
    pub scope: Vec<RepoName>,
    pub used: u64,
}

impl Registry {
    /// Refuses, with [`Error::OverQuota`], linking blob `digest` of `size` bytes into `repo` when it
    /// would take a quota covering `repo` past its limit; with `None`, refuses when such a quota is
    /// already full (a new upload, whose size is not known yet).
    pub(crate) async fn check_quotas(
        &self,
        repo: &RepoName,
        blob: Option<(&Digest, u64)>,
    ) -> Result<()> {
        if self.settings.quotas.is_empty() || self.proxy_route(repo).is_some() {
            return Ok(());
        }
        for quota in self.settings.quotas.iter().filter(|q| q.covers(repo)) {
            let scope = self.scope(quota, Some(repo)).await?;
            let used = self.meta.usage.distinct_bytes(&scope).await?;
            let adds = match blob {
                Some((digest, size)) => {
                    if self.meta.usage.linked_to_any(&scope, digest).await? {
                        0
                    } else {
                        size
                    }
                }
                None => 0,
            };
            let over = match blob {
                Some(_) => used.saturating_add(adds) > quota.bytes,
                None => used >= quota.bytes,
            };
            if over {
                return Err(Error::OverQuota(format!(
                    "the repositories {} hold {used} of their {} bytes{}",
                    quota.name(),
                    quota.bytes,
                    if adds > 0 {
                        format!("; this blob needs {adds} more")
                    } else {
                        String::new()
                    }
                )));
            }
        }
        Ok(())
    }

    /// Each quota with the bytes its scope holds now (kept as the last measurement, for the metrics).
    pub async fn quota_usage(&self) -> Result<Vec<QuotaUsage>> {
        let mut out = Vec::with_capacity(self.settings.quotas.len());
        for quota in &self.settings.quotas {
            let scope = self.scope(quota, None).await?;
            out.push(QuotaUsage {
                quota: quota.clone(),
                used: self.meta.usage.distinct_bytes(&scope).await?,
                scope,
            });
        }
        *self
            .quota_measured
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = out.clone();
        Ok(out)
    }

    /// What [`quota_usage`](Self::quota_usage) measured last (empty before it first ran).
    pub fn last_quota_usage(&self) -> Vec<QuotaUsage> {
        self.quota_measured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Measures the quotas every `interval`, forever, so the metrics stay current (a background task of
    /// `serve`, when quotas are configured).
    pub async fn run_quota_meter(self, interval: Duration) {
        loop {
            if let Err(e) = self.quota_usage().await {
                tracing::warn!(error = %e, "measuring the quotas failed");
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// The repositories `quota` covers (and `also`, which may not exist yet): those under each
    /// pattern's literal prefix that match it.
    async fn scope(&self, quota: &Quota, also: Option<&RepoName>) -> Result<Vec<RepoName>> {
        let mut scope: Vec<RepoName> = also.into_iter().cloned().collect();
        for pattern in &quota.repositories {
            for repo in self
                .meta
                .usage
                .repos_with_prefix(pattern.literal_prefix())
                .await?
            {
                if pattern.matches(repo.as_str()) {
                    scope.push(repo);
                }
            }
        }
        scope.sort();
        scope.dedup();
        Ok(scope)
    }
}
