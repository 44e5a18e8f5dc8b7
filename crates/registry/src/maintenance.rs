//! Housekeeping the registry does on its own, outside any request: purging abandoned uploads
//! (registry:2's `storage.maintenance.uploadpurging`) and the probes behind the health checks.
//!
//! An upload is abandoned when its session has not moved for the purge age. The session's `updated_at`
//! (last chunk), not its start, is the clock: a slow client pushing a huge layer over days is not cut off
//! while it makes progress. Purging removes the bytes, then the session, as a cancel does, under the
//! upload's lock, and only after re-reading the session under that lock, so a chunk that lands between
//! the listing and the purge saves its upload.
//!
//! Replicas share their stores, so each would purge the same uploads at the same moments. The periodic
//! purger therefore runs each round under the metadata store's job lock [`UPLOAD_PURGE_JOB`]: the replica
//! that takes it purges, the others skip that round. The lock dies with its holder (see
//! `metadata::JobLock`), so a replica killed mid-purge never stops purging for the rest, and a holder
//! that loses the lock stops between pages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metadata::JobLock;

use crate::{Error, Registry, Result, UploadId};

/// The job lock under which abandoned uploads are purged: one replica at a time.
pub const UPLOAD_PURGE_JOB: &str = "upload-purge";

/// How abandoned uploads are purged; the defaults are registry:2's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadPurging {
    /// An upload whose session has not moved for this long is abandoned.
    pub age: Duration,
    /// Time between two purges.
    pub interval: Duration,
    /// Only log what would be removed.
    pub dry_run: bool,
}

impl Default for UploadPurging {
    fn default() -> Self {
        UploadPurging {
            age: Duration::from_secs(168 * 3600),
            interval: Duration::from_secs(24 * 3600),
            dry_run: false,
        }
    }
}

/// What one purge removed (or, in a dry run, would have removed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Ids of the abandoned uploads.
    pub uploads: Vec<String>,
    /// The blob store's stale temporary data (see `BlobStore::purge_temporary`).
    pub temporaries: Vec<String>,
}

/// Sessions read from the metadata store at a time.
const PAGE: usize = 100;

/// The first purge runs this long after start (or after one interval, if shorter): soon enough that a
/// registry restarted every day still purges, late enough not to slow its start.
const FIRST_PURGE_DELAY: Duration = Duration::from_secs(60);

impl Registry {
    /// Purges the uploads whose sessions did not move since `older_than`, and the blob store's temporary
    /// data as old. With `dry_run` nothing is removed and the report says what would be. Refused in
    /// read-only mode unless it is a dry run.
    pub async fn purge_uploads(
        &self,
        older_than: SystemTime,
        dry_run: bool,
    ) -> Result<PurgeReport> {
        self.purge(older_than, dry_run, None).await
    }

    /// [`purge_uploads`](Self::purge_uploads) under the job lock [`UPLOAD_PURGE_JOB`], so that of the
    /// replicas sharing the stores only one purges at a time. `None`, having done nothing, when another
    /// holder has the lock. If the lock is lost midway (its database session died), the purge stops
    /// after the page in progress and reports what it removed.
    pub async fn purge_uploads_exclusively(
        &self,
        older_than: SystemTime,
        dry_run: bool,
    ) -> Result<Option<PurgeReport>> {
        let Some(lock) = self.meta.jobs.try_job_lock(UPLOAD_PURGE_JOB).await? else {
            return Ok(None);
        };
        self.purge(older_than, dry_run, Some(&lock)).await.map(Some)
    }

    async fn purge(
        &self,
        older_than: SystemTime,
        dry_run: bool,
        lock: Option<&JobLock>,
    ) -> Result<PurgeReport> {
        if !dry_run {
            self.writable()?;
        }
        let cutoff = crate::clock::unix_seconds(Some(older_than));
        let mut report = PurgeReport::default();
        let mut after: Option<String> = None;
        loop {
            if let Some(lock) = lock
                && !lock.is_held().await
            {
                tracing::warn!(
                    job = lock.name(),
                    "lost the job lock while purging; stopping (another replica may purge now)"
                );
                return Ok(report);
            }
            let page = self
                .meta
                .uploads
                .stale_uploads(cutoff, after.as_deref(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for session in page {
                if self.purge_upload(&session.id, cutoff, dry_run).await? {
                    report.uploads.push(session.id);
                }
            }
        }
        report.temporaries = self.blobs.purge_temporary(older_than, dry_run).await?;
        Ok(report)
    }

    /// Purges one upload if it is still stale once its lock is held. Returns whether it was (or, in a
    /// dry run, would be) purged.
    async fn purge_upload(&self, id: &str, cutoff: i64, dry_run: bool) -> Result<bool> {
        let _guard = self.upload_locks.lock(id).await;
        match self.meta.uploads.upload(id).await? {
            Some(session) if session.updated_at < cutoff => {}
            // Moved meanwhile, or finished or cancelled: not abandoned.
            _ => return Ok(false),
        }
        if dry_run {
            return Ok(true);
        }
        // An id the blob store could never hold has no bytes there; only the session goes.
        if let Some(upload) = UploadId::parse(id) {
            // Bytes before the session, as in `cancel_upload`: a failure in between leaves a session
            // with no bytes (purged next time), never bytes nobody knows about.
            self.blobs.upload_delete(&upload).await?;
        }
        self.meta.uploads.delete_upload(id).await?;
        Ok(true)
    }

    /// Purges abandoned uploads forever, per `settings`: the first time shortly after start, then every
    /// `interval`. Failures are logged and retried at the next interval. Returns at once in read-only
    /// mode, where nothing may be removed (as registry:2 does).
    ///
    /// Of several replicas running this, one purges: the first to take the job lock
    /// [`UPLOAD_PURGE_JOB`] keeps it for as long as it lives, and the others try again every interval,
    /// so one of them takes over within an interval of the holder's death (or of its lock being lost).
    pub async fn run_upload_purger(self, settings: UploadPurging) {
        if self.settings.read_only {
            tracing::info!("upload purging is off: the registry is in read-only mode");
            return;
        }
        // A zero interval would spin; configuration refuses it, this keeps the loop safe regardless.
        let interval = settings.interval.max(Duration::from_secs(1));
        tokio::time::sleep(interval.min(FIRST_PURGE_DELAY)).await;
        let mut lock: Option<JobLock> = None;
        loop {
            lock = self.keep_job_lock(lock).await;
            if let Some(held) = &lock {
                let older_than = SystemTime::now()
                    .checked_sub(settings.age)
                    .unwrap_or(UNIX_EPOCH);
                match self.purge(older_than, settings.dry_run, Some(held)).await {
                    Ok(report) => log_report(&report, settings.dry_run),
                    Err(e) => tracing::warn!(
                        error = %e,
                        retry_in_s = interval.as_secs(),
                        "purging abandoned uploads failed"
                    ),
                }
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// The purge lock for the next round: `held` if it is still ours, else a new try.
    async fn keep_job_lock(&self, held: Option<JobLock>) -> Option<JobLock> {
        if let Some(lock) = held {
            if lock.is_held().await {
                return Some(lock);
            }
            tracing::warn!(
                job = lock.name(),
                "lost the job lock; trying to take it again"
            );
        }
        match self.meta.jobs.try_job_lock(UPLOAD_PURGE_JOB).await {
            Ok(Some(lock)) => {
                tracing::info!(job = lock.name(), "this replica purges abandoned uploads");
                Some(lock)
            }
            Ok(None) => {
                tracing::debug!(
                    job = UPLOAD_PURGE_JOB,
                    "another replica purges abandoned uploads"
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, job = UPLOAD_PURGE_JOB, "cannot take the job lock");
                None
            }
        }
    }

    /// Health probe of the blob storage (`BlobStore::check`).
    pub async fn check_storage(&self) -> Result<()> {
        self.blobs.check().await.map_err(Error::from)
    }

    /// Health probe of the metadata store: one cheap query.
    pub async fn check_metadata(&self) -> Result<()> {
        self.meta.catalog.list_repos(None, 1).await?;
        Ok(())
    }
}

fn log_report(report: &PurgeReport, dry_run: bool) {
    for id in &report.uploads {
        if dry_run {
            tracing::info!(upload = %id, "dry run: would purge abandoned upload");
        } else {
            tracing::debug!(upload = %id, "purged abandoned upload");
        }
    }
    for name in &report.temporaries {
        if dry_run {
            tracing::info!(file = %name, "dry run: would purge stale temporary data");
        } else {
            tracing::debug!(file = %name, "purged stale temporary data");
        }
    }
    tracing::info!(
        uploads = report.uploads.len(),
        temporaries = report.temporaries.len(),
        dry_run,
        "purged abandoned uploads"
    );
}

/// Compile-time check: the purger is spawned on the multi-threaded runtime, so it must be `Send`.
#[cfg(test)]
#[allow(dead_code)]
fn purger_is_send(reg: Registry) {
    fn send<T: Send>(_: T) {}
    send(reg.clone().run_upload_purger(UploadPurging::default()));
    send(reg.purge_uploads(SystemTime::now(), true));
    send(reg.purge_uploads_exclusively(SystemTime::now(), true));
    send(reg.check_storage());
    send(reg.check_metadata());
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use blobs::fs::FsBlobStore;
    use metadata::JobLocks;
    use metadata::sqlite::SqliteStore;
    use oci::RepoName;

    use super::*;
    use crate::Settings;

    /// Two replicas over one directory: one blob store, two metadata stores on the same database file (as
    /// two processes would open it). Returns them with the second replica's store, to take locks with.
    fn replicas() -> (tempfile::TempDir, Registry, Registry, Arc<SqliteStore>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let blobs = Arc::new(FsBlobStore::open(dir.path()).expect("blob store"));
        let db = dir.path().join("metadata.sqlite");
        let meta_a = Arc::new(SqliteStore::open(&db).expect("first store"));
        let meta_b = Arc::new(SqliteStore::open(&db).expect("second store"));
        let a = Registry::new(blobs.clone(), meta_a, Settings::default());
        let b = Registry::new(blobs, meta_b.clone(), Settings::default());
        (dir, a, b, meta_b)
    }

    fn in_an_hour() -> SystemTime {
        SystemTime::now() + Duration::from_secs(3600)
    }

    #[tokio::test]
    async fn a_purge_is_skipped_while_another_replica_holds_the_lock() {
        let (_dir, a, b, meta_b) = replicas();
        let repo: RepoName = "team/app".parse().expect("repo");
        let upload = b.start_upload(&repo).await.expect("upload").id;

        let held = meta_b
            .try_job_lock(UPLOAD_PURGE_JOB)
            .await
            .expect("lock")
            .expect("free");
        let skipped = a.purge_uploads_exclusively(in_an_hour(), false).await;
        assert!(matches!(skipped, Ok(None)), "{skipped:?}");
        assert!(
            b.upload_status(&repo, &upload).await.is_ok(),
            "purged anyway"
        );

        drop(held);
        let report = a
            .purge_uploads_exclusively(in_an_hour(), false)
            .await
            .expect("purge")
            .expect("the lock is free again");
        assert_eq!(report.uploads, [upload.to_string()]);
        assert!(b.upload_status(&repo, &upload).await.is_err());
        // The purge let go of the lock when it was done.
        assert!(
            meta_b
                .try_job_lock(UPLOAD_PURGE_JOB)
                .await
                .expect("lock")
                .is_some()
        );
    }

    #[tokio::test]
    async fn the_periodic_purger_waits_for_the_lock() {
        let (_dir, a, b, meta_b) = replicas();
        let repo: RepoName = "team/app".parse().expect("repo");
        let upload = b.start_upload(&repo).await.expect("upload").id;
        let held = meta_b
            .try_job_lock(UPLOAD_PURGE_JOB)
            .await
            .expect("lock")
            .expect("free");
        let purger = tokio::spawn(a.clone().run_upload_purger(UploadPurging {
            age: Duration::from_secs(1),
            interval: Duration::from_secs(1),
            dry_run: false,
        }));
        // Rounds at 1 s, 2 s, 3 s: each finds the lock taken. (Sessions keep whole seconds, so the upload
        // is abandoned after at most two.)
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(
            b.upload_status(&repo, &upload).await.is_ok(),
            "purged while another replica held the lock"
        );

        drop(held);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while b.upload_status(&repo, &upload).await.is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "not purged once the lock was free"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        purger.abort();
    }

    /// The replica whose purger took the lock keeps it between rounds (the others never get a turn
    /// while it lives), and lets go when it stops.
    #[tokio::test]
    async fn the_purging_replica_keeps_the_lock_until_it_stops() {
        let (_dir, a, _b, meta_b) = replicas();
        let purger = tokio::spawn(a.clone().run_upload_purger(UploadPurging {
            age: Duration::from_secs(3600),
            interval: Duration::from_secs(1),
            dry_run: false,
        }));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Taken at the first round (after one interval)...
        while meta_b
            .try_job_lock(UPLOAD_PURGE_JOB)
            .await
            .expect("lock")
            .is_some()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the purger never took the lock"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // ...and still held rounds later.
        for _ in 0..25 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(
                meta_b
                    .try_job_lock(UPLOAD_PURGE_JOB)
                    .await
                    .expect("lock")
                    .is_none(),
                "the purging replica let go of the lock between rounds"
            );
        }
        purger.abort();
        let _ = purger.await;
        assert!(
            meta_b
                .try_job_lock(UPLOAD_PURGE_JOB)
                .await
                .expect("lock")
                .is_some(),
            "the lock outlived the purger"
        );
    }
}
