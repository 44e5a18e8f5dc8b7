//! Adopting a registry:2 store in place: its repositories, manifests (every revision), current tags and
//! layer links indexed into the catalog, read from registry:2's tree through [`Registry2Tree`], so
//! that berth serves every image registry:2 served without copying a blob (the blob store reads the
//! tree's bytes, `blobs::registry2::fallback`). The tree is only read: registry:2 can be started again
//! on it.
//!
//! What is adopted, repository by repository (in name order, so a log names how far a run got):
//! - every `_layers` link whose blob has bytes (and, with `verify`, whose bytes hash to its digest);
//! - every `_manifests/revisions` link whose blob parses as a manifest berth serves, images before the
//!   indexes that list them (an index waits for its children; one whose child never comes is
//!   skipped); an artifact's `subject` makes it a referrer as a push would;
//! - every tag's `current/link`, unless berth already holds the tag on another manifest (pushed to
//!   berth since: berth's is newer, and kept).
//!
//! Nothing is dropped silently: a schema1 manifest, a link to a blob without bytes, bytes that do not
//! hash to their digest, a tag on a manifest that was not adopted, a name berth cannot hold: each is
//! a [`Skipped`] line of the report, named, with the reason. Storage failures stop the run (an
//! error); running it again is harmless (every catalog write is idempotent, tags berth holds are kept).
//!
//! Two ways to run it, under the job lock [`ADOPT_JOB`] both: `berth import`
//! ([`Registry::adopt_registry2`]), from the first repository whatever ran before, and `berth serve`'s
//! background adoption ([`Registry::run_registry2_adoption`]), which serves at once and keeps its
//! progress in the metadata (`AdoptProgress`): after each repository adopted whole, so that after a
//! crash or a restart it continues with the next; once finished (by either way) it never runs again,
//! since a second run would bring back what was deleted in berth since. While it runs, a request for a
//! repository it has not reached adopts that one at once (`ahead.rs`), and the background passes over
//! it when it gets there.

use std::collections::HashMap;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use blobs::registry2::Registry2Tree;
use futures_util::StreamExt;
use metadata::{AdoptCursor, JobLock};
use oci::{Digest, ResumableHasher};

use crate::{Registry, Result};

mod ahead;
mod repo;
mod report;
mod walk;

pub(crate) use ahead::Pending;

pub use report::{AdoptReport, SkipKind, Skipped};

/// How far this process's adoption got, for the metrics: repositories of the tree done and in all, and
/// whether it finished (an adoption that ended before this process started shows nothing here:
/// `berth import --status` reads the metadata).
#[derive(Debug, Default)]
pub struct AdoptTally {
    done: AtomicU64,
    total: AtomicU64,
    finished: AtomicBool,
}

/// [`AdoptTally`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdoptTallySnapshot {
    pub done: u64,
    pub total: u64,
    pub finished: bool,
}

impl AdoptTally {
    fn progress(&self, done: usize, total: usize) {
        self.done.store(done as u64, Ordering::Relaxed);
        self.total.store(total as u64, Ordering::Relaxed);
    }

    fn finish(&self, total: usize) {
        self.progress(total, total);
        self.finished.store(true, Ordering::Relaxed);
    }
}

/// The job lock an adoption runs under: one at a time over one metadata store.
pub const ADOPT_JOB: &str = "adopt-registry2";

/// How an adoption runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct AdoptOptions {
    /// Hash every linked blob's bytes against its digest (manifests are always checked: they are read
    /// anyway). A blob that fails is not linked.
    pub verify: bool,
}

impl Registry {
    /// Indexes the registry:2 tree `tree` into the catalog, under the job lock [`ADOPT_JOB`]; `None`
    /// when another adoption holds it.
    pub async fn adopt_registry2(
        &self,
        tree: &dyn Registry2Tree,
        options: AdoptOptions,
    ) -> Result<Option<AdoptReport>> {
        let Some(lock) = self.meta.jobs.try_job_lock(ADOPT_JOB).await? else {
            return Ok(None);
        };
        let result = self.adopt_locked(tree, options, &lock, None).await;
        lock.release().await;
        result.map(Some)
    }

    /// `berth serve`'s adoption, in the background, of the tree this registry is [`adopting`]
    /// (nothing without one): continues where the last one stopped, does nothing once one finished, or
    /// while another process holds the job lock. Failures are logged.
    ///
    /// [`adopting`]: Registry::adopting
    pub async fn run_registry2_adoption(self) {
        let Some(pending) = self.adoption.clone() else {
            return;
        };
        if let Err(e) = self.adopt_in_background(pending.tree.as_ref()).await {
            tracing::error!(error = %e, "adopting registry:2's tree failed; it continues at the next start");
        }
    }

    async fn adopt_in_background(&self, tree: &dyn Registry2Tree) -> Result<()> {
        if self
            .meta
            .adopt
            .adopt_cursor()
            .await?
            .is_some_and(|c| c.finished)
        {
            tracing::debug!("registry:2's tree was adopted already");
            self.adoption_finished();
            return Ok(());
        }
        let Some(lock) = self.meta.jobs.try_job_lock(ADOPT_JOB).await? else {
            tracing::info!("another process adopts registry:2's tree");
            return Ok(());
        };
        // Read again under the lock: the holder before us may have finished meanwhile.
        let result = match self.meta.adopt.adopt_cursor().await {
            Ok(Some(cursor)) if cursor.finished => {
                self.adoption_finished();
                Ok(())
            }
            Ok(cursor) => {
                if let Some(after) = cursor.as_ref().and_then(|c| c.after.as_deref()) {
                    tracing::info!(after, "continuing the adoption of registry:2's tree");
                }
                let options = AdoptOptions::default();
                self.adopt_locked(tree, options, &lock, Some(cursor))
                    .await
                    .map(drop)
            }
            Err(e) => Err(e.into()),
        };
        lock.release().await;
        result
    }

    /// Adopts every repository of `tree` while `lock` is held. With `progress` (the background
    /// adoption: the cursor saved last, if any) repositories up to its `after` are skipped and the cursor
    /// is saved after each repository; without it every repository is adopted and the cursor is only
    /// marked finished at the end.
    async fn adopt_locked(
        &self,
        tree: &dyn Registry2Tree,
        options: AdoptOptions,
        lock: &JobLock,
        progress: Option<Option<AdoptCursor>>,
    ) -> Result<AdoptReport> {
        let started = std::time::Instant::now();
        let resumed = progress.clone().flatten();
        let mut cursor = resumed.clone().unwrap_or(AdoptCursor {
            after: None,
            finished: false,
            started_at: crate::clock::unix_now(),
            repositories: 0,
            manifests: 0,
            tags: 0,
            skipped: 0,
        });
        let mut report = AdoptReport {
            verified: options.verify,
            ..AdoptReport::default()
        };
        if let Some(c) = &resumed {
            (report.repositories, report.manifests, report.tags) =
                (c.repositories, c.manifests, c.tags);
        }
        let skipped_before = resumed.as_ref().map_or(0, |c| c.skipped);
        let repositories = match (&self.adoption, &progress) {
            // `berth serve`'s: the tree the catalog lists from, walked once for both.
            (Some(pending), Some(_)) => pending.repositories().await?.to_vec(),
            _ => walk::repositories(tree).await?,
        };
        let total = repositories.len();
        let mut adoption = repo::Adoption {
            registry: self,
            tree,
            options,
            verdicts: HashMap::new(),
            report: &mut report,
        };
        for (done, name) in repositories.iter().enumerate() {
            if progress.is_some()
                && cursor
                    .after
                    .as_deref()
                    .is_some_and(|after| name.as_str() <= after)
            {
                continue;
            }
            if !lock.is_held().await {
                tracing::warn!(
                    job = ADOPT_JOB,
                    "lost the job lock while adopting registry:2's tree; stopping"
                );
                return Ok(report);
            }
            // One adoption of a repository at a time in this process (a request may adopt it ahead).
            let held = match &self.adoption {
                Some(pending) => Some(pending.lock(name).await),
                None => None,
            };
            let ahead = match progress {
                Some(_) => self.meta.adopt.adopted_ahead(name).await?,
                None => None,
            };
            match ahead {
                // Adopted for a request already: again would bring back what was deleted since.
                Some(counts) => adoption.passed_over(name, &counts),
                None => adoption.repository(name).await?,
            }
            self.adopt_tally.progress(done + 1, total);
            if progress.is_some() {
                cursor.after = Some(name.clone());
                cursor.repositories = adoption.report.repositories;
                cursor.manifests = adoption.report.manifests;
                cursor.tags = adoption.report.tags;
                cursor.skipped = skipped_before + adoption.report.skipped_count();
                self.meta.adopt.save_adopt_cursor(&cursor).await?;
                tracing::info!(repo = %name, done = done + 1, of = total, "registry:2's tree: adoption progress");
            }
            drop(held);
        }
        self.adopt_tally.finish(total);
        cursor.finished = true;
        cursor.repositories = report.repositories;
        cursor.manifests = report.manifests;
        cursor.tags = report.tags;
        cursor.skipped = skipped_before + report.skipped_count();
        self.meta.adopt.save_adopt_cursor(&cursor).await?;
        self.adoption_finished();
        report.seconds = started.elapsed().as_secs_f64();
        tracing::info!("{report}");
        Ok(report)
    }

    /// How far this process's adoption got (the metrics).
    pub fn adopt_tally(&self) -> AdoptTallySnapshot {
        AdoptTallySnapshot {
            done: self.adopt_tally.done.load(Ordering::Relaxed),
            total: self.adopt_tally.total.load(Ordering::Relaxed),
            finished: self.adopt_tally.finished.load(Ordering::Relaxed),
        }
    }

    /// How far the adoption of registry:2's tree got, as last saved (`berth import --status`); `None`
    /// when none ran with progress kept (`berth serve`'s) or finished.
    pub async fn adoption_status(&self) -> Result<Option<AdoptCursor>> {
        Ok(self.meta.adopt.adopt_cursor().await?)
    }

    /// Whether blob `digest`'s bytes, as the blob store reads them, hash to it; `None` when it has none.
    async fn bytes_match(&self, digest: &Digest) -> Result<Option<bool>> {
        let Some(reader) = self.blobs.read(digest, None).await? else {
            return Ok(None);
        };
        let mut hasher = ResumableHasher::new(digest.algorithm());
        let mut body = reader.body;
        while let Some(chunk) = body.next().await {
            hasher.update(&chunk.map_err(blobs::Error::Io)?);
        }
        Ok(Some(hasher.finish() == *digest))
    }
}

/// `cursor` as `berth import --status` says it.
pub fn status_line(cursor: Option<&AdoptCursor>) -> String {
    let Some(c) = cursor else {
        return "registry:2's tree: no adoption has run".to_string();
    };
    let state = match (&c.after, c.finished) {
        (_, true) => "finished".to_string(),
        (Some(last), false) => format!("in progress, last repository adopted whole: {last}"),
        (None, false) => "started, no repository adopted whole yet".to_string(),
    };
    let started =
        crate::clock::utc_minute(c.started_at).unwrap_or_else(|| c.started_at.to_string());
    format!(
        "registry:2's tree: adoption {state}; {} repositories, {} manifests, {} tags adopted, {} things \
         skipped; started {started}",
        c.repositories, c.manifests, c.tags, c.skipped
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_says_how_far_it_got() {
        assert_eq!(status_line(None), "registry:2's tree: no adoption has run");
        let mut c = AdoptCursor {
            after: Some("team/app".into()),
            finished: false,
            started_at: 1_796_605_200,
            repositories: 120,
            manifests: 900,
            tags: 610,
            skipped: 3,
        };
        assert_eq!(
            status_line(Some(&c)),
            "registry:2's tree: adoption in progress, last repository adopted whole: team/app; 120 \
             repositories, 900 manifests, 610 tags adopted, 3 things skipped; started 2026-12-07 01:00 UTC"
        );
        c.finished = true;
        assert!(status_line(Some(&c)).starts_with("registry:2's tree: adoption finished; 120"));
    }
}
