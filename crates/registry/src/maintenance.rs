//! Housekeeping the registry does on its own, outside any request: purging abandoned uploads
//! (registry:2's `storage.maintenance.uploadpurging`) and the probes behind the health checks.
//!
//! An upload is abandoned when its session has not moved for the purge age. The session's `updated_at`
//! (last chunk), not its start, is the clock: a slow client pushing a huge layer over days is not cut off
//! while it makes progress. Purging removes the bytes, then the session, as a cancel does, under the
//! upload's lock, and only after re-reading the session under that lock, so a chunk that lands between
//! the listing and the purge saves its upload.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Registry, Result, UploadId};

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
        if !dry_run {
            self.writable()?;
        }
        let cutoff = unix_seconds(older_than);
        let mut report = PurgeReport::default();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .meta
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
        match self.meta.upload(id).await? {
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
        self.meta.delete_upload(id).await?;
        Ok(true)
    }

    /// Purges abandoned uploads forever, per `settings`: the first time shortly after start, then every
    /// `interval`. Failures are logged and retried at the next interval. Returns at once in read-only
    /// mode, where nothing may be removed (as registry:2 does).
    pub async fn run_upload_purger(self, settings: UploadPurging) {
        if self.config.read_only {
            tracing::info!("upload purging is off: the registry is in read-only mode");
            return;
        }
        // A zero interval would spin; configuration refuses it, this keeps the loop safe regardless.
        let interval = settings.interval.max(Duration::from_secs(1));
        tokio::time::sleep(interval.min(FIRST_PURGE_DELAY)).await;
        loop {
            let older_than = SystemTime::now()
                .checked_sub(settings.age)
                .unwrap_or(UNIX_EPOCH);
            match self.purge_uploads(older_than, settings.dry_run).await {
                Ok(report) => log_report(&report, settings.dry_run),
                Err(e) => tracing::warn!(
                    error = %e,
                    retry_in_s = interval.as_secs(),
                    "purging abandoned uploads failed"
                ),
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Health probe of the blob storage (`BlobStore::check`).
    pub async fn check_storage(&self) -> Result<()> {
        self.blobs.check().await.map_err(Error::from)
    }

    /// Health probe of the metadata store: one cheap query.
    pub async fn check_metadata(&self) -> Result<()> {
        self.meta.list_repos(None, 1).await?;
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

/// Whole seconds since the epoch, as sessions record time (a clock before 1970 counts as 0).
fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Compile-time check: the purger is spawned on the multi-threaded runtime, so it must be `Send`.
#[cfg(test)]
#[allow(dead_code)]
fn purger_is_send(reg: Registry) {
    fn send<T: Send>(_: T) {}
    send(reg.clone().run_upload_purger(UploadPurging::default()));
    send(reg.purge_uploads(SystemTime::now(), true));
    send(reg.check_storage());
    send(reg.check_metadata());
}
