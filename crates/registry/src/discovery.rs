//! Content discovery: tags, catalog, referrers.

use oci::{Digest, RepoName};

use crate::{Referrer, Registry, Result};

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

impl Registry {
    /// Tags of `repo`; NAME_UNKNOWN if it does not exist. Returns the page and whether more follow.
    pub async fn list_tags(&self, repo: &RepoName, page: &Page) -> Result<(Vec<String>, bool)> {
        let _ = (repo, page);
        todo!()
    }

    /// Repositories. Returns the page and whether more follow.
    pub async fn catalog(&self, page: &Page) -> Result<(Vec<String>, bool)> {
        let _ = page;
        todo!()
    }

    /// Manifests in `repo` whose subject is `subject`, optionally only those of `artifact_type`.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers> {
        let _ = (repo, subject, artifact_type);
        todo!()
    }
}
