//! What a crash can leave between the blob store and the metadata, found by walking both side by side
//! (`crate::reconcile`): bytes no row records, and rows whose bytes are missing.
//!
//! Bytes without a row: every writer reserves a blob (a row) *before* its bytes become visible (see
//! `crate::gc`), so such bytes are what no writer will link: a crash of an older berth between commit
//! and record, a database restored from a backup older than the bytes. They go once they are older
//! than the grace period, by the sweep's own protocol: under the digest's lock, a claim that records
//! them as being deleted only if no row exists (a reservation that came first keeps them; one that
//! comes after waits for the release), then the bytes, then the release.
//!
//! Rows without bytes are reported, not deleted: the manifests that reference them are a user's images,
//! and whether to push the blob again or delete the image is theirs to decide. A row is reported only
//! once nothing touched it for the grace period, and only after a `stat` confirms the bytes are
//! absent: a push reserves its row before its bytes are committed, and the two sides of the walk are
//! read at different moments. (So a grace shorter than a commit may report a push in flight: a report,
//! never a deletion.) Bytes whose size is not the recorded one are logged; `berth scrub` checks them.

use blobs::ListedBlob;
use metadata::JobLock;

use super::{GC_JOB, GcReport, PAGE};
use crate::reconcile::{Pair, Walk};
use crate::{Registry, Result};

impl Registry {
    /// Deletes (or, in a dry run, lists) the orphaned bytes touched before `cutoff` (Unix seconds) and
    /// reports the rows without bytes.
    pub(super) async fn reconcile(
        &self,
        dry_run: bool,
        cutoff: i64,
        lock: &JobLock,
        report: &mut GcReport,
    ) -> Result<()> {
        let mut walk = Walk::new(&*self.blobs, &*self.meta.gc, None, PAGE);
        let mut seen = 0usize;
        while let Some(pair) = walk.next().await? {
            seen += 1;
            if seen.is_multiple_of(PAGE) && !lock.is_held().await {
                tracing::warn!(job = GC_JOB, "lost the job lock while collecting; stopping");
                return Ok(());
            }
            match pair {
                Pair::Both(stored, row) => {
                    if stored.size != row.size {
                        tracing::warn!(
                            digest = %stored.digest,
                            stored = stored.size,
                            recorded = row.size,
                            "a blob's bytes are not the size the metadata records: run berth scrub"
                        );
                    }
                }
                Pair::Stored(blob) => {
                    if crate::clock::unix_seconds(Some(blob.modified)) >= cutoff {
                        continue;
                    }
                    if dry_run || self.collect_orphan(&blob).await? {
                        report.orphan_bytes += blob.size;
                        report.orphans.push(blob.digest);
                    }
                }
                Pair::Recorded(row) => {
                    if row.deleting || row.touched_at >= cutoff {
                        continue;
                    }
                    if self.blobs.stat(&row.digest).await?.is_none() {
                        tracing::warn!(
                            digest = %row.digest,
                            size = row.size,
                            "the metadata records a blob whose bytes are missing: push it again, or delete the images that use it"
                        );
                        report.missing.push(row.digest);
                    }
                }
            }
        }
        Ok(())
    }

    /// Claims, deletes and releases bytes no row records. `false` when a writer reserved them first.
    async fn collect_orphan(&self, blob: &ListedBlob) -> Result<bool> {
        let _lock = self.lock_blob(&blob.digest).await;
        if !self
            .meta
            .gc
            .claim_unrecorded_blob(&blob.digest, blob.size)
            .await?
        {
            return Ok(false);
        }
        tracing::info!(digest = %blob.digest, size = blob.size, "deleting orphaned bytes no metadata records");
        self.delete_claimed(&blob.digest).await?;
        Ok(true)
    }
}
