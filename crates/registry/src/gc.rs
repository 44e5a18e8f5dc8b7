//! Garbage collection of blobs: the bytes no manifest references any more, swept while the registry
//! serves, after a grace period, on one replica at a time.
//!
//! Why it never loses a byte anything references (the protocol is drawn in `metadata::GcMarks`):
//! - Deletion is logical first. A sweep lists the blobs no manifest references that nothing touched
//!   for the grace period, and *claims* each in one metadata transaction that checks again, unlinks it
//!   from every repository and marks it being deleted. Only then are its bytes deleted, and the claim
//!   released.
//! - Everything that makes a blob's bytes visible or relies on them being there and then links them (a
//!   push's commit, a mount, a pull-through fetch) first *holds* the blob ([`Registry::hold_blob`]):
//!   this process's lock on the digest, and a reservation in the metadata, which touches the blob so no
//!   sweep claims it for the grace period, and waits while a sweep (of any replica) has it claimed.
//!   So either the claim sees the touch and leaves the blob, or the writer waits for the bytes to be
//!   gone and writes them anew.
//! - A manifest cannot reference a claimed blob (its links are gone, and the metadata refuses it).
//!
//! The sweep runs under the job lock [`GC_JOB`]; a sweep that died between a claim and its release
//! leaves the claim, which the next sweep finishes first.
//!
//! After the unreferenced blobs, a sweep walks the blob store beside the metadata (`gc/orphans.rs`):
//! bytes no row records (a crash, a restored database) go by the same claim-delete-release, and rows
//! whose bytes are missing are reported, never deleted.

mod orphans;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use metadata::JobLock;
use oci::{Digest, RepoName};

use crate::clock::unix_seconds;
use crate::keyed_lock::KeyedGuard;
use crate::repo_walk::RepoWalk;
use crate::{Error, Registry, Result};

/// The job lock a sweep holds: one replica sweeps at a time.
pub const GC_JOB: &str = "gc";

/// How many candidates a sweep reads at a time.
const PAGE: usize = 500;

/// The youngest temporary data (a crashed commit's: fs `tmp/`, S3 multipart uploads) a sweep purges,
/// whatever its grace: a commit in progress holds its temporary data for seconds to minutes, and a
/// sweep with a grace of zero must not cut it. The upload purger removes them too, by its own age.
const TEMPORARY_AGE: Duration = Duration::from_secs(3600);

/// How long a writer waits for a sweep to release a blob it claimed before answering 503: a sweep
/// holds a claim for one deletion, so this is only reached when the sweeping replica died mid-way
/// (its next sweep, or another replica's, finishes the claim).
const RESERVE_PATIENCE: Duration = Duration::from_secs(30);

/// What a sweep is asked to do.
#[derive(Clone, Copy, Debug)]
pub struct GcOptions {
    /// How long a blob stays after anything last wanted it (a link, an unlink, the deletion of a
    /// manifest that referenced it, a push reserving it). Zero sweeps at once: safe only while no push
    /// is in flight.
    pub grace: Duration,
    /// Say what would go, remove nothing.
    pub dry_run: bool,
    /// Also delete the manifests no tag reaches (`metadata::GcMarks::unreachable_manifests`), pushed
    /// before the grace period, first: their blobs then go in the same run when the grace is zero, else
    /// in a run after the grace period.
    pub delete_untagged: bool,
}

/// What a sweep did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs whose bytes were deleted (or would be), in digest order of their sweep.
    pub blobs: Vec<Digest>,
    /// Manifests deleted (or that would be) because no tag reaches them.
    pub manifests: Vec<(RepoName, Digest)>,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes no metadata row recorded, older than the grace period, deleted (or that would be).
    pub orphans: Vec<Digest>,
    /// Their bytes.
    pub orphan_bytes: u64,
    /// Blobs the metadata records whose bytes are missing: reported (and logged), never deleted.
    pub missing: Vec<Digest>,
    /// The blob store's stale temporary data purged (see `BlobStore::purge_temporary`).
    pub temporaries: Vec<String>,
    /// Claims a stopped sweep had left, finished by this one.
    pub resumed: usize,
    pub dry_run: bool,
    pub took: Duration,
}

impl std::fmt::Display for GcReport {
    /// The summary line every run ends with.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run { "would free" } else { "freed" };
        write!(
            f,
            "garbage collection {verb} {} blobs, {} bytes, {} untagged manifests, in {:.1} s",
            self.blobs.len(),
            self.bytes,
            self.manifests.len(),
            self.took.as_secs_f64()
        )?;
        if !self.orphans.is_empty() {
            write!(
                f,
                "; {verb} {} orphaned blobs (bytes no metadata records), {} bytes",
                self.orphans.len(),
                self.orphan_bytes
            )?;
        }
        if !self.temporaries.is_empty() {
            let verb = if self.dry_run {
                "would purge"
            } else {
                "purged"
            };
            write!(f, "; {verb} {} temporary items", self.temporaries.len())?;
        }
        if !self.missing.is_empty() {
            write!(
                f,
                "; {} blobs the metadata records have no bytes (see the warnings)",
                self.missing.len()
            )?;
        }
        if self.resumed > 0 {
            write!(
                f,
                " (and finished {} claims a stopped run left)",
                self.resumed
            )?;
        }
        Ok(())
    }
}

/// What this process's sweeps deleted since it started, for the metrics.
#[derive(Debug, Default)]
pub struct GcTotals {
    runs: AtomicU64,
    blobs: AtomicU64,
    bytes: AtomicU64,
    manifests: AtomicU64,
    orphans: AtomicU64,
    orphan_bytes: AtomicU64,
    missing: AtomicU64,
    last_run: AtomicU64,
}

/// [`GcTotals`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcTotalsSnapshot {
    /// Sweeps that ran to their end (dry runs not counted).
    pub runs: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub manifests: u64,
    /// Orphaned blobs (bytes no metadata recorded) deleted, and their bytes.
    pub orphans: u64,
    pub orphan_bytes: u64,
    /// Blobs recorded without bytes that the last sweep found (a gauge, not a total).
    pub missing: u64,
    /// Unix seconds of the end of the last sweep; 0 before any.
    pub last_run: u64,
}

impl GcTotals {
    fn add(&self, report: &GcReport) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.blobs
            .fetch_add(report.blobs.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(report.bytes, Ordering::Relaxed);
        self.manifests
            .fetch_add(report.manifests.len() as u64, Ordering::Relaxed);
        self.orphans
            .fetch_add(report.orphans.len() as u64, Ordering::Relaxed);
        self.orphan_bytes
            .fetch_add(report.orphan_bytes, Ordering::Relaxed);
        self.missing
            .store(report.missing.len() as u64, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_run.store(now, Ordering::Relaxed);
    }

    fn snapshot(&self) -> GcTotalsSnapshot {
        GcTotalsSnapshot {
            runs: self.runs.load(Ordering::Relaxed),
            blobs: self.blobs.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            manifests: self.manifests.load(Ordering::Relaxed),
            orphans: self.orphans.load(Ordering::Relaxed),
            orphan_bytes: self.orphan_bytes.load(Ordering::Relaxed),
            missing: self.missing.load(Ordering::Relaxed),
            last_run: self.last_run.load(Ordering::Relaxed),
        }
    }
}

/// This process's lock on a digest and the metadata's reservation of it, held from before a writer
/// relies on the blob's bytes being there until it has linked them.
pub(crate) struct BlobHold {
    _lock: KeyedGuard,
}

impl Registry {
    /// Holds blob `digest` of `size` bytes for a writer (see the module comment): waits while a sweep
    /// has it claimed, up to [`RESERVE_PATIENCE`], then answers UNAVAILABLE.
    pub(crate) async fn hold_blob(&self, digest: &Digest, size: u64) -> Result<BlobHold> {
        let lock = self.lock_blob(digest).await;
        reserve(&*self.meta.gc, digest, size).await?;
        Ok(BlobHold { _lock: lock })
    }

    /// Sweeps once under the job lock [`GC_JOB`]; `None`, having done nothing, when another holder
    /// (replica or `berth garbage-collect`) has it. Refused in read-only mode unless it is a dry run.
    pub async fn collect_garbage(&self, options: GcOptions) -> Result<Option<GcReport>> {
        if !options.dry_run {
            self.writable()?;
        }
        let Some(lock) = self.meta.jobs.try_job_lock(GC_JOB).await? else {
            return Ok(None);
        };
        let report = self.sweep(options, &lock).await?;
        // Free at once for the next run (`berth garbage-collect` again right after this one).
        lock.release().await;
        if !report.dry_run {
            self.gc_totals.add(&report);
        }
        Ok(Some(report))
    }

    /// What this process's sweeps deleted so far (for the metrics).
    pub fn gc_totals(&self) -> GcTotalsSnapshot {
        self.gc_totals.snapshot()
    }

    /// Sweeps forever, every `interval` (the first time one `interval` after start, at most an hour),
    /// keeping blobs for `grace` (and, with `delete_untagged`, deleting the manifests no tag reaches). Of several replicas running this, the one holding the job lock
    /// [`GC_JOB`] sweeps; the lock is taken again each round, so another replica takes over within an
    /// interval of the holder's death. Failures are logged and retried at the next round. Returns at
    /// once in read-only mode.
    pub async fn run_garbage_collector(
        self,
        interval: Duration,
        grace: Duration,
        delete_untagged: bool,
    ) {
        if self.settings.read_only {
            tracing::info!("garbage collection is off: the registry is in read-only mode");
            return;
        }
        let interval = interval.max(Duration::from_secs(1));
        tokio::time::sleep(interval.min(Duration::from_secs(3600))).await;
        loop {
            let options = GcOptions {
                grace,
                dry_run: false,
                delete_untagged,
            };
            match self.collect_garbage(options).await {
                Ok(Some(report)) => {
                    tracing::info!(blobs = report.blobs.len(), bytes = report.bytes, "{report}")
                }
                Ok(None) => tracing::debug!("another replica holds the garbage collection lock"),
                Err(e) => {
                    tracing::warn!(error = %e, "garbage collection failed; trying again next round")
                }
            }
            tokio::time::sleep(interval).await;
        }
    }

    async fn sweep(&self, options: GcOptions, lock: &JobLock) -> Result<GcReport> {
        let started = Instant::now();
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        if !options.dry_run {
            for digest in self.meta.gc.claimed_blobs(usize::MAX).await? {
                self.delete_claimed(&digest).await?;
                report.resumed += 1;
            }
        }
        // Touched at or before the second that is `grace` ago (so a grace of zero takes everything).
        let cutoff =
            || unix_seconds(SystemTime::now().checked_sub(options.grace)).saturating_add(1);
        if options.delete_untagged {
            self.delete_untagged(options.dry_run, cutoff(), lock, &mut report)
                .await?;
        }
        // Read again after the untagged manifests went: deleting one touches its blobs, and with a grace
        // of zero they must go in this run even when the deletes ended in a later second than the
        // cutoff above was read in (the e2e `gc::untagged` test failed so, now and then).
        let cutoff = cutoff();
        let mut after: Option<Digest> = None;
        loop {
            if !lock.is_held().await {
                tracing::warn!(job = GC_JOB, "lost the job lock while collecting; stopping");
                break;
            }
            let page = self
                .meta
                .gc
                .unreferenced_blobs(cutoff, after.as_ref(), PAGE)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (digest, size) in page {
                if options.dry_run || self.collect(&digest, cutoff).await? {
                    report.bytes += size;
                    report.blobs.push(digest);
                }
            }
        }
        self.reconcile(options.dry_run, cutoff, lock, &mut report)
            .await?;
        let stale = SystemTime::now().checked_sub(options.grace.max(TEMPORARY_AGE));
        report.temporaries = self
            .blobs
            .purge_temporary(stale.unwrap_or(SystemTime::UNIX_EPOCH), options.dry_run)
            .await?;
        report.took = started.elapsed();
        Ok(report)
    }

    /// Deletes (or, in a dry run, lists) the manifests no tag reaches, repository by repository.
    async fn delete_untagged(
        &self,
        dry_run: bool,
        cutoff: i64,
        lock: &JobLock,
        report: &mut GcReport,
    ) -> Result<()> {
        let mut walk = RepoWalk::new(self, lock, GC_JOB);
        while let Some(repos) = walk.next_page().await? {
            // A cached repository's untagged manifests (an index's children, fetched by digest) are
            // the cache's to evict, as its blobs are.
            for repo in repos.into_iter().filter(|r| !self.is_cached(r)) {
                for digest in self.delete_unreachable(&repo, cutoff, dry_run).await? {
                    report.manifests.push((repo.clone(), digest));
                }
            }
        }
        Ok(())
    }

    /// Deletes (or, in a dry run, lists) the manifests of `repo` no tag reaches that were pushed before
    /// `cutoff` (Unix seconds); returns those deleted. Shared by garbage collection and retention.
    pub(crate) async fn delete_unreachable(
        &self,
        repo: &RepoName,
        cutoff: i64,
        dry_run: bool,
    ) -> Result<Vec<Digest>> {
        let mut deleted = Vec::new();
        for digest in self.meta.gc.unreachable_manifests(repo, cutoff).await? {
            let gone = dry_run
                || self
                    .meta
                    .gc
                    .delete_unreachable_manifest(repo, &digest, cutoff)
                    .await?;
            if gone {
                deleted.push(digest);
            }
        }
        Ok(deleted)
    }

    /// Claims, deletes and releases one candidate. `false` when it was wanted again meanwhile.
    async fn collect(&self, digest: &Digest, cutoff: i64) -> Result<bool> {
        // This process's writers wait on the lock rather than on the metadata's claim.
        let _lock = self.lock_blob(digest).await;
        if !self.meta.gc.claim_blob(digest, cutoff).await? {
            return Ok(false);
        }
        self.delete_claimed(digest).await?;
        Ok(true)
    }

    /// Deletes a claimed blob's bytes (if still there), then releases the claim.
    async fn delete_claimed(&self, digest: &Digest) -> Result<()> {
        self.blobs.delete(digest).await?;
        self.meta.gc.release_blob(digest).await?;
        tracing::debug!(%digest, "garbage collected");
        Ok(())
    }
}

/// Reserves `digest` in the metadata, waiting (with growing pauses) while a sweep has it claimed.
pub(crate) async fn reserve(gc: &dyn metadata::GcMarks, digest: &Digest, size: u64) -> Result<()> {
    let deadline = Instant::now() + RESERVE_PATIENCE;
    let mut pause = Duration::from_millis(20);
    while !gc.reserve_blob(digest, size).await? {
        if Instant::now() >= deadline {
            return Err(Error::Unavailable(format!(
                "blob {digest} is being deleted by the garbage collector; try again later"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
    Ok(())
}
