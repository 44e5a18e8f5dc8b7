//! The only place a blob becomes visible on S3: the upload's part objects are copied, on the server,
//! into the blob's key, and the blob appears all at once when S3 completes the copy.
//!
//! One part object and the whole of it: a CopyObject; the beginning of one part: a GET and a PUT (at
//! most one part in memory). Otherwise a multipart upload to the blob's key whose parts are
//! UploadPartCopy's of the part objects (each is at least `chunksize`, so at least S3's 5 MiB, but the
//! last; none above 5 GiB), completed in one request; a last piece under 5 MiB is sent as bytes
//! instead, since S3 copies no smaller part and Garage none from an object it stores inline. S3 makes an object visible
//! only when CopyObject or CompleteMultipartUpload succeeds, so a crash at any moment leaves either no
//! blob or the whole blob, plus, at worst, an incomplete multipart upload under `blobs/` that
//! `purge_temporary` aborts once it is old. The upload's objects are deleted only after the blob is
//! there.

use futures_util::{StreamExt, TryStreamExt, stream};
use oci::Digest;

use super::S3BlobStore;
use super::settings::MIN_CHUNK_SIZE;
use crate::{Error, Result, UploadId};

/// UploadPartCopy requests in flight at once for one commit.
const COPY_CONCURRENCY: usize = 4;

impl S3BlobStore {
    pub(crate) async fn commit(&self, id: &UploadId, len: u64, digest: &Digest) -> Result<()> {
        let target = self.keys.blob(digest);
        if len == 0 {
            self.bucket.put(&target, bytes::Bytes::new()).await?;
            return self.delete_upload(id).await;
        }
        let held = self.held(id).await?;
        if !held.exists() || held.len < len {
            return Err(Error::UploadNotFound(id.clone()));
        }
        let pieces = held.pieces(self, id, len);
        match pieces.as_slice() {
            [(key, take)] if held.run.first().is_some_and(|&(_, size)| size == *take) => {
                self.bucket.copy(key, &target).await?;
            }
            // The beginning of one part (at most a part in memory): CopyObject takes no range.
            [(key, take)] => {
                let bytes = self.read_piece(key, *take).await?;
                self.bucket.put(&target, bytes).await?;
            }
            _ => self.copy_parts(&target, &pieces, len).await?,
        }
        self.delete_upload(id).await
    }

    /// Assembles `target` from `pieces` (key, bytes from its start) with a multipart upload.
    async fn copy_parts(&self, target: &str, pieces: &[(String, u64)], len: u64) -> Result<()> {
        let upload_id = self.bucket.create_multipart(target).await?;
        // Owned values in each future (see `upload::delete_keys`).
        let last = pieces.len();
        let copies = stream::iter(pieces.iter().cloned().enumerate())
            .map(|(i, (key, take))| {
                let number = i as u32 + 1;
                let (store, target, upload_id) =
                    (self.clone(), target.to_string(), upload_id.clone());
                async move {
                    // A short last piece is sent as bytes: S3 copies only parts of at least 5 MiB,
                    // and Garage none from an object small enough to be stored inline.
                    let etag = if number as usize == last && take < MIN_CHUNK_SIZE {
                        let bytes = store.read_piece(&key, take).await?;
                        store
                            .bucket
                            .upload_part(&target, &upload_id, number, bytes)
                            .await?
                    } else {
                        store
                            .bucket
                            .upload_part_copy(&target, &upload_id, number, &key, 0..take)
                            .await?
                    };
                    Ok::<_, Error>((number, etag))
                }
            })
            .buffered(COPY_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await;
        let completed = match copies {
            Ok(parts) => self
                .bucket
                .complete(target, &upload_id, &parts)
                .await
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        match completed {
            Ok(()) => Ok(()),
            Err(e) => {
                // A retried completion whose first attempt succeeded finds its upload gone: the blob
                // is there if its size says so.
                if self.bucket.head(target).await.ok().flatten() == Some(len) {
                    return Ok(());
                }
                if let Err(abort) = self.bucket.abort(target, &upload_id).await {
                    tracing::warn!(key = target, error = %abort, "could not abort a failed commit; purging will");
                }
                Err(e)
            }
        }
    }
}
