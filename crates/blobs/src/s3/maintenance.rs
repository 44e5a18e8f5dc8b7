//! Housekeeping of the S3 backend: aborting the multipart uploads that crashed commits left behind, and
//! the health check.
//!
//! Why age is enough: a multipart upload under `blobs/` only exists while `commit.rs` assembles a blob,
//! seconds to minutes; one older than the purge age belongs to a commit that will never finish (and
//! S3 bills its parts until it is aborted). Upload sessions' part objects live under `uploads/` and are
//! never touched here: the registry removes abandoned uploads by id.

use std::time::SystemTime;

use super::S3BlobStore;
use crate::Result;

impl S3BlobStore {
    pub(crate) async fn purge(&self, older_than: SystemTime, dry_run: bool) -> Result<Vec<String>> {
        let mut purged = Vec::new();
        for upload in self.bucket.list_multipart(&self.keys.blobs()).await? {
            // An upload whose age S3 did not say is left alone: better a leftover than a live commit cut.
            if upload.initiated.is_none_or(|t| t >= older_than) {
                continue;
            }
            if !dry_run {
                self.bucket.abort(&upload.key, &upload.upload_id).await?;
            }
            purged.push(format!(
                "multipart upload {} of {}",
                upload.upload_id, upload.key
            ));
        }
        Ok(purged)
    }

    pub(crate) async fn health(&self) -> Result<()> {
        Ok(self.bucket.probe(self.keys.root()).await?)
    }
}
