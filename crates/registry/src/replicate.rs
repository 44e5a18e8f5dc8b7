//! Replication from another registry (issue 19): local repositories kept in step with an upstream's,
//! pull-based, as zot's sync and Harbor's pull replication do.
//!
//! One pass over a [`Replication`]: for each repository, the upstream's tags (every page) that the
//! filter keeps are compared with the local ones by a HEAD each (which Docker Hub does not count as a
//! pull); a tag whose digest differs is fetched by digest, an index after its children, an image after
//! its config and layers, each blob read from the upstream only when the registry holds none of it
//! ([`Registry::ingest_blob`]), and everything goes in through the registry's own push operations
//! (digests checked, quotas, immutable tags and notifications as for a client's push). A tag the
//! upstream no longer has is kept unless the replication says otherwise. Repositories are copied a few
//! at a time (`concurrency`). Each tag's referrers
//! (signatures, SBOMs, attestations: the referrers API, or the tag schema of registries without it) are
//! copied too, on every pass, two levels deep. A repository that fails is reported and the pass goes on
//! with the next.
//!
//! The upstream is the pull-through cache's [`Upstream`] (its client, TLS and bearer-token dance).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use oci::manifest::{Manifest, ManifestKind};
use oci::{Digest, Pattern, Reference, RepoName, Tag};

use crate::clock::unix_now;
use crate::ingest::Ingested;
use crate::proxy::{Upstream, UpstreamError};
use crate::{Error, Registry, Result};

mod tag_filter;

pub use tag_filter::{TagRegex, VersionFilter, version_of};

/// The upstream's tags read per request.
const TAGS_PAGE: usize = 1000;

/// The most names of an upstream's catalog a pass reads for the repository patterns.
const MAX_CATALOG: usize = 100_000;

/// How deep referrers are followed: an image's signatures and SBOMs, and theirs (an SBOM's signature).
const REFERRER_DEPTH: u8 = 2;

/// The job lock a pass holds: one replica replicates at a time.
pub const REPLICATION_JOB: &str = "replication";

/// What to keep in step with what.
#[derive(Clone)]
pub struct Replication {
    pub upstream: Arc<dyn Upstream>,
    /// Upstream repository, and the local repository it is copied to.
    pub repositories: Vec<(RepoName, RepoName)>,
    /// Also every repository of the upstream's catalog that one of these matches, read at each pass
    /// (a registry without a catalog, as Docker Hub, lists none).
    pub patterns: Vec<Pattern>,
    /// Where the repositories the patterns find are copied: under this prefix, else the same name.
    pub prefix: Option<String>,
    /// The tags copied: those matching any pattern (every tag when empty).
    pub tags: Vec<Pattern>,
    /// Of those, only versions, in a range when one is given (zot's `semver`).
    pub semver: Option<VersionFilter>,
    /// Of those, only the tags this matches (zot's `regex`).
    pub regex: Option<TagRegex>,
    /// Delete a local tag (among those the patterns cover) that the upstream no longer has.
    pub delete_removed_tags: bool,
    /// Repositories copied at once (at least one).
    pub concurrency: usize,
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationReport {
    /// Tags compared with the upstream.
    pub tags_checked: usize,
    /// Tags set or moved, as `name:tag`.
    pub tags_updated: Vec<String>,
    /// Local tags deleted because the upstream no longer has them, as `name:tag`.
    pub tags_deleted: Vec<String>,
    /// Manifests put (children of indexes and referrers included).
    pub manifests: usize,
    /// Referrers copied (signatures, SBOMs, attestations of the replicated images).
    pub referrers: usize,
    /// Blobs read from the upstream, and their bytes.
    pub blobs_copied: usize,
    pub bytes_copied: u64,
    /// Blobs the registry held already.
    pub blobs_linked: usize,
    /// Repositories or tags that failed, and why.
    pub failures: Vec<(String, String)>,
}

impl ReplicationReport {
    /// Adds what `other` (another repository's pass) did.
    fn absorb(&mut self, other: ReplicationReport) {
        self.tags_checked += other.tags_checked;
        self.tags_updated.extend(other.tags_updated);
        self.tags_deleted.extend(other.tags_deleted);
        self.manifests += other.manifests;
        self.referrers += other.referrers;
        self.blobs_copied += other.blobs_copied;
        self.bytes_copied += other.bytes_copied;
        self.blobs_linked += other.blobs_linked;
        self.failures.extend(other.failures);
    }
}

/// What this process's passes did since it started.
#[derive(Debug, Default)]
pub struct ReplicationTotals {
    passes: AtomicU64,
    tags_updated: AtomicU64,
    referrers: AtomicU64,
    bytes_copied: AtomicU64,
    failures: AtomicU64,
    last_pass: AtomicU64,
}

/// [`ReplicationTotals`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicationTotalsSnapshot {
    /// Passes this process ran (under the job lock) to their end.
    pub passes: u64,
    pub tags_updated: u64,
    pub referrers: u64,
    /// Bytes of the blobs read from upstreams.
    pub bytes_copied: u64,
    /// Repositories or tags that failed (each retried at the next pass).
    pub failures: u64,
    /// Unix seconds of the end of the last pass; 0 before any.
    pub last_pass: u64,
}

impl ReplicationTotals {
    fn add(&self, reports: &[ReplicationReport]) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        for r in reports {
            self.tags_updated
                .fetch_add(r.tags_updated.len() as u64, Ordering::Relaxed);
            self.referrers
                .fetch_add(r.referrers as u64, Ordering::Relaxed);
            self.bytes_copied
                .fetch_add(r.bytes_copied, Ordering::Relaxed);
            self.failures
                .fetch_add(r.failures.len() as u64, Ordering::Relaxed);
        }
        self.last_pass
            .store(unix_now().max(1) as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ReplicationTotalsSnapshot {
        ReplicationTotalsSnapshot {
            passes: self.passes.load(Ordering::Relaxed),
            tags_updated: self.tags_updated.load(Ordering::Relaxed),
            referrers: self.referrers.load(Ordering::Relaxed),
            bytes_copied: self.bytes_copied.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            last_pass: self.last_pass.load(Ordering::Relaxed),
        }
    }
}

impl Registry {
    /// One pass of every replication under the job lock [`REPLICATION_JOB`]; `None`, having done
    /// nothing, when another replica (or command) holds it. Refused in read-only mode.
    pub async fn replicate_all(
        &self,
        replications: &[Replication],
    ) -> Result<Option<Vec<ReplicationReport>>> {
        self.writable()?;
        let Some(lock) = self.meta.jobs.try_job_lock(REPLICATION_JOB).await? else {
            return Ok(None);
        };
        let mut reports = Vec::with_capacity(replications.len());
        for replication in replications {
            if !lock.is_held().await {
                tracing::warn!(
                    job = REPLICATION_JOB,
                    "lost the job lock while replicating; stopping"
                );
                break;
            }
            reports.push(self.replicate(replication).await);
        }
        lock.release().await;
        self.replication_totals.add(&reports);
        Ok(Some(reports))
    }

    /// What this process's replication passes did since it started (metrics, the registry page).
    pub fn replication_totals(&self) -> ReplicationTotalsSnapshot {
        self.replication_totals.snapshot()
    }

    /// Replicates forever, a pass every `interval` (the first right after start); of several replicas
    /// running this, the one holding the job lock replicates, and another takes over within an
    /// interval of its death. Each pass's outcome is logged; failures are retried at the next pass.
    /// Returns at once in read-only mode.
    pub async fn run_replication(self, replications: Vec<Replication>, interval: Duration) {
        if self.settings.read_only {
            tracing::info!("replication is off: the registry is in read-only mode");
            return;
        }
        let interval = interval.max(Duration::from_secs(1));
        loop {
            match self.replicate_all(&replications).await {
                Ok(Some(reports)) => {
                    for report in reports {
                        for (what, why) in &report.failures {
                            tracing::warn!(%what, %why, "replication failed; trying again next pass");
                        }
                        tracing::info!(
                            tags_checked = report.tags_checked,
                            tags_updated = report.tags_updated.len(),
                            tags_deleted = report.tags_deleted.len(),
                            referrers = report.referrers,
                            blobs_copied = report.blobs_copied,
                            bytes_copied = report.bytes_copied,
                            "replication pass"
                        );
                    }
                }
                Ok(None) => tracing::debug!("another replica holds the replication lock"),
                Err(e) => tracing::warn!(error = %e, "replication failed; trying again next pass"),
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// One pass of `replication` (see the module comment), without the job lock.
    /// Repositories go `replication.concurrency` at a time; the report lists them in their order.
    pub async fn replicate(&self, replication: &Replication) -> ReplicationReport {
        let mut report = ReplicationReport::default();
        let mut repositories = replication.repositories.clone();
        if !replication.patterns.is_empty() {
            match self.catalog_matches(replication).await {
                Ok((found, short)) => {
                    if let Some(why) = short {
                        report
                            .failures
                            .push(("the upstream's catalog".to_string(), why));
                    }
                    let mut listed: HashSet<RepoName> =
                        repositories.iter().map(|(r, _)| r.clone()).collect();
                    for (remote, local) in found {
                        match local {
                            Ok(local) if listed.insert(remote.clone()) => {
                                repositories.push((remote, local));
                            }
                            Ok(_) => {}
                            Err(why) => report.failures.push((remote.to_string(), why)),
                        }
                    }
                }
                Err(e) => report
                    .failures
                    .push(("the upstream's catalog".to_string(), e.to_string())),
            }
        }
        // Unordered, then put back in order: an ordered buffer counts the finished repositories waiting
        // for a slow one before them, and would start no other meanwhile.
        let limit = replication.concurrency.max(1);
        // (The futures made first, by a function: an `async` block in the stream's closure does not
        // satisfy the borrow checker's higher-ranked bounds.)
        let passes: Vec<_> = repositories
            .iter()
            .enumerate()
            .map(|(i, (remote, local))| {
                numbered(i, self.replicate_repository(replication, remote, local))
            })
            .collect();
        let mut done: Vec<(usize, ReplicationReport)> =
            stream::iter(passes).buffer_unordered(limit).collect().await;
        done.sort_unstable_by_key(|(i, _)| *i);
        for (_, one) in done {
            report.absorb(one);
        }
        report
    }

    /// The upstream's repositories that `replication.patterns` match, every page of its catalog (at
    /// most [`MAX_CATALOG`] names), each with its local name or why it has none (too long under the
    /// prefix).
    async fn catalog_matches(&self, replication: &Replication) -> Result<CatalogMatches> {
        let mut found = Vec::new();
        let mut short = None;
        let mut last: Option<String> = None;
        let mut seen = 0;
        loop {
            let page = replication
                .upstream
                .catalog(TAGS_PAGE, last.as_deref())
                .await
                .map_err(upstream_error)?;
            let Some((names, more)) = page else {
                short = Some("the upstream serves no catalog: the patterns matched nothing".into());
                break;
            };
            seen += names.len();
            last = names.last().cloned();
            for name in names {
                if !replication.patterns.iter().any(|p| p.matches(&name)) {
                    continue;
                }
                let Ok(remote) = name.parse::<RepoName>() else {
                    continue;
                };
                let local = local_name(replication.prefix.as_deref(), &remote);
                found.push((remote, local));
            }
            if !more || last.is_none() {
                break;
            }
            if seen >= MAX_CATALOG {
                short = Some(format!(
                    "the patterns were matched against the first {seen} names only"
                ));
                break;
            }
        }
        Ok((found, short))
    }

    async fn replicate_repository(
        &self,
        replication: &Replication,
        remote: &RepoName,
        local: &RepoName,
    ) -> ReplicationReport {
        let mut report = ReplicationReport::default();
        let mut pass = Pass {
            registry: self,
            replication,
            remote,
            local,
            report: &mut report,
        };
        if let Err(why) = pass.repository().await {
            report
                .failures
                .push((format!("{remote} -> {local}"), why.to_string()));
        }
        report
    }
}

struct Pass<'a> {
    registry: &'a Registry,
    replication: &'a Replication,
    remote: &'a RepoName,
    local: &'a RepoName,
    report: &'a mut ReplicationReport,
}

impl Pass<'_> {
    fn upstream(&self) -> &dyn Upstream {
        &*self.replication.upstream
    }

    fn wanted(&self, tag: &str) -> bool {
        let tags = &self.replication.tags;
        (tags.is_empty() || tags.iter().any(|p| p.matches(tag)))
            && self
                .replication
                .semver
                .as_ref()
                .is_none_or(|v| v.keeps(tag))
            && self.replication.regex.as_ref().is_none_or(|r| r.keeps(tag))
    }

    async fn repository(&mut self) -> Result<()> {
        let remote_tags = self.upstream_tags().await?;
        let local_tags: HashMap<String, Digest> = match self.registry.tag_details(self.local).await
        {
            Ok(tags) => tags
                .into_iter()
                .map(|t| (t.tag.to_string(), t.digest))
                .collect(),
            Err(Error::NameUnknown(_)) => HashMap::new(),
            Err(e) => return Err(e),
        };
        for tag in &remote_tags {
            self.report.tags_checked += 1;
            if let Err(why) = self.tag(tag, local_tags.get(tag.as_str())).await {
                self.report.failures.push((self.name(tag), why.to_string()));
            }
        }
        if self.replication.delete_removed_tags {
            let upstream: HashSet<&str> = remote_tags.iter().map(Tag::as_str).collect();
            let mut gone: Vec<&String> = local_tags
                .keys()
                .filter(|t| self.wanted(t) && !upstream.contains(t.as_str()))
                .collect();
            gone.sort();
            for tag in gone {
                let Ok(parsed) = tag.parse::<Tag>() else {
                    continue;
                };
                match self
                    .registry
                    .delete_manifest(self.local, &Reference::Tag(parsed.clone()))
                    .await
                {
                    Ok(()) => self.report.tags_deleted.push(self.name(&parsed)),
                    Err(e) => self
                        .report
                        .failures
                        .push((self.name(&parsed), e.to_string())),
                }
            }
        }
        Ok(())
    }

    fn name(&self, tag: &Tag) -> String {
        format!("{}:{}", self.local, tag.as_str())
    }

    /// Every tag of the upstream repository the patterns keep; none when it does not exist.
    async fn upstream_tags(&self) -> Result<Vec<Tag>> {
        let mut tags = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = self
                .upstream()
                .tags_list(self.remote, TAGS_PAGE, last.as_deref())
                .await
                .map_err(upstream_error)?;
            let Some((names, more)) = page else {
                break;
            };
            last = names.last().cloned();
            tags.extend(
                names
                    .iter()
                    .filter(|t| self.wanted(t))
                    .filter_map(|t| t.parse::<Tag>().ok()),
            );
            if !more || last.is_none() {
                break;
            }
        }
        Ok(tags)
    }

    /// Brings `tag` in step: a HEAD, then, if the digest moved, the manifest and what it needs.
    async fn tag(&mut self, tag: &Tag, local: Option<&Digest>) -> Result<()> {
        let reference = Reference::Tag(tag.clone());
        let Some(head) = self
            .upstream()
            .manifest_head(self.remote, &reference)
            .await
            .map_err(upstream_error)?
        else {
            // Deleted upstream since the listing.
            return Ok(());
        };
        if local != Some(&head.digest) {
            let (media_type, payload) = self.manifest(&head.digest).await?;
            self.registry
                .put_manifest(self.local, &reference, Some(&media_type), payload)
                .await?;
            self.report.tags_updated.push(self.name(tag));
        }
        // Checked on every pass, the tag moved or not: a signature is often pushed after its image.
        self.referrers(&head.digest, REFERRER_DEPTH).await
    }

    /// Copies the upstream's referrers of `digest` that are not here yet, and, down to `depth`
    /// levels, theirs. Each is put by digest like any manifest, so its `subject` indexes it locally.
    async fn referrers(&mut self, digest: &Digest, depth: u8) -> Result<()> {
        if depth == 0 {
            return Ok(());
        }
        let found = self
            .upstream()
            .referrers(self.remote, digest)
            .await
            .map_err(upstream_error)?;
        for referrer in found {
            let here = self
                .registry
                .meta
                .catalog
                .manifest(self.local, &referrer)
                .await?
                .is_some();
            if !here {
                self.manifest(&referrer).await?;
                self.report.referrers += 1;
            }
            // Boxed: the recursion is bounded by `depth`.
            Box::pin(self.referrers(&referrer, depth - 1)).await?;
        }
        Ok(())
    }

    /// Manifest `digest` in the local repository (copied, after what it references, unless there:
    /// the catalog is what says so, so an index's shared children are copied once): its media type
    /// and bytes.
    async fn manifest(&mut self, digest: &Digest) -> Result<(String, Bytes)> {
        if let Some(m) = self
            .registry
            .meta
            .catalog
            .manifest(self.local, digest)
            .await?
        {
            return Ok((m.media_type, m.payload));
        }
        let limit = self.registry.settings.max_manifest_bytes;
        let m = self
            .upstream()
            .manifest_get(self.remote, &Reference::Digest(digest.clone()), limit)
            .await
            .map_err(upstream_error)?
            .ok_or_else(|| Error::ManifestUnknown(digest.to_string()))?;
        let parsed = Manifest::parse(&m.payload, Some(&m.media_type))
            .map_err(|e| Error::ManifestInvalid(format!("the upstream's {digest}: {e}")))?;
        match parsed.kind {
            ManifestKind::Index => {
                for child in &parsed.manifests {
                    // Boxed: an index may hold indexes.
                    Box::pin(self.manifest(&child.digest)).await?;
                }
            }
            ManifestKind::Image => {
                for blob in parsed.required_blobs() {
                    self.blob(&blob.digest).await?;
                }
            }
        }
        self.registry
            .put_manifest(
                self.local,
                &Reference::Digest(digest.clone()),
                Some(&m.media_type),
                m.payload.clone(),
            )
            .await?;
        self.report.manifests += 1;
        Ok((m.media_type, m.payload))
    }

    async fn blob(&mut self, digest: &Digest) -> Result<()> {
        let (upstream, remote) = (&self.replication.upstream, self.remote);
        let source = || async move {
            let blob = upstream
                .blob_get(remote, digest)
                .await
                .map_err(upstream_error)?;
            Ok(blob.map(|b| (b.size, b.body)))
        };
        match self
            .registry
            .ingest_blob(self.local, digest, source)
            .await?
        {
            Ingested::Linked => self.report.blobs_linked += 1,
            Ingested::Copied(size) => {
                self.report.blobs_copied += 1;
                self.report.bytes_copied += size;
            }
        }
        Ok(())
    }
}

/// An upstream's failure as the registry's error (the pull-through cache's mapping).
fn upstream_error(e: UpstreamError) -> Error {
    crate::proxy::client_error(&e)
}

/// The upstream's repositories the patterns match, each with its local name or why it has none; and
/// why the catalog could not be read whole, if it could not.
type CatalogMatches = (
    Vec<(RepoName, std::result::Result<RepoName, String>)>,
    Option<String>,
);

/// The local name of the upstream's repository `remote` under `prefix`, or why it has none (too long
/// under it).
pub fn local_name(
    prefix: Option<&str>,
    remote: &RepoName,
) -> std::result::Result<RepoName, String> {
    match prefix {
        None => Ok(remote.clone()),
        Some(p) => format!("{p}/{remote}")
            .parse()
            .map_err(|e| format!("under prefix {p}: {e}")),
    }
}

/// `fut`'s output with the number `i`, to put outputs that come in any order back in theirs.
async fn numbered<T>(i: usize, fut: impl Future<Output = T>) -> (usize, T) {
    (i, fut.await)
}
