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

use std::collections::HashMap;

use blobs::registry2::Registry2Tree;
use futures_util::StreamExt;
use oci::{Digest, ResumableHasher};

use crate::{Registry, Result};

mod repo;
mod report;
mod walk;

pub use report::{AdoptReport, SkipKind, Skipped};

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
        let result = self.adopt_unlocked(tree, options).await;
        lock.release().await;
        result.map(Some)
    }

    async fn adopt_unlocked(
        &self,
        tree: &dyn Registry2Tree,
        options: AdoptOptions,
    ) -> Result<AdoptReport> {
        let started = std::time::Instant::now();
        let mut report = AdoptReport {
            verified: options.verify,
            ..AdoptReport::default()
        };
        let mut adoption = repo::Adoption {
            registry: self,
            tree,
            options,
            verdicts: HashMap::new(),
            report: &mut report,
        };
        for name in walk::repositories(tree).await? {
            adoption.repository(&name).await?;
        }
        report.seconds = started.elapsed().as_secs_f64();
        tracing::info!("{report}");
        Ok(report)
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
