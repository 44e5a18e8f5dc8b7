//! Listing the committed blobs in digest order, a page at a time (`BlobStore::list_blobs`).
//!
//! Why the order comes for free: a blob's key is `<root>/blobs/<algorithm>/<first two hex>/<hex>` and
//! S3 lists keys in byte order, which for these keys is `Digest`'s order; the cursor becomes
//! ListObjectsV2's `start-after`, so a page costs one request (more only when stray keys, which are
//! skipped, fill a page) and nothing is remembered between pages.

use std::time::SystemTime;

use oci::Digest;

use super::S3BlobStore;
use crate::{ListedBlob, Result};

impl S3BlobStore {
    pub(crate) async fn list_page(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ListedBlob>> {
        let mut page = Vec::new();
        let prefix = self.keys.blobs();
        let mut start = after.map(|d| self.keys.blob(d));
        while page.len() < limit {
            let (objects, truncated) = self
                .bucket
                .list_after(&prefix, start.as_deref(), limit - page.len())
                .await?;
            start = objects.last().map(|(o, _)| o.key.clone());
            for (object, modified) in objects {
                let Some(digest) = self.keys.parse_blob(&object.key) else {
                    continue;
                };
                page.push(ListedBlob {
                    digest,
                    size: object.size,
                    // Unknown age counts as young: better a leftover than a blob judged old by mistake.
                    modified: modified.unwrap_or_else(SystemTime::now),
                });
            }
            if !truncated || start.is_none() {
                break;
            }
        }
        Ok(page)
    }
}
