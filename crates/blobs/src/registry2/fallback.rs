//! A blob store over berth's own layout that reads, besides, the blobs of an adopted registry:2 tree:
//! what berth's layout lacks is read from registry:2's `blobs/<alg>/<2>/<hex>/data`, so an adopted
//! store is served without copying a byte.
//!
//! The tree is only ever read. Every write goes to the primary store, as without the tree; what this
//! decides for the legacy blobs:
//! - `delete` (garbage collection, eviction) removes berth's own copy if there is one and never the
//!   tree's: registry:2 may be started again on the same volume, and its manifests need their bytes.
//!   A legacy blob no metadata row links any more is simply no longer served (the registry reads a blob
//!   only through a repository it is linked to); its bytes stay until registry:2's own
//!   `garbage-collect` or the operator's removal of the tree.
//! - `list_blobs` lists the primary's blobs only: garbage collection's orphan walk must not try to
//!   delete, run after run, bytes it may not delete, and scrub hashes berth's own bytes
//!   (`berth import --verify` hashes the tree's).
//! - `quarantine` moves only the primary's copy: a corrupt legacy blob cannot be moved out of a tree
//!   berth does not write; its links are what the operator removes.
//! - `redirect_url` is the primary's only for a blob the primary holds: a presigned URL to berth's key
//!   of a blob that lies only in the tree would answer 404, so such a blob is served by berth itself.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oci::Digest;

use super::Registry2Tree;
use crate::{BlobReader, BlobStore, ByteStream, ListedBlob, Result, UploadId};

/// `primary`, falling back to `tree` to stat and read a blob it lacks.
pub struct WithRegistry2 {
    primary: Arc<dyn BlobStore>,
    tree: Arc<dyn Registry2Tree>,
}

impl WithRegistry2 {
    pub fn new(primary: Arc<dyn BlobStore>, tree: Arc<dyn Registry2Tree>) -> WithRegistry2 {
        WithRegistry2 { primary, tree }
    }
}

#[async_trait::async_trait]
impl BlobStore for WithRegistry2 {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.primary.stat(digest).await? {
            Some(size) => Ok(Some(size)),
            None => self.tree.stat_blob(digest).await,
        }
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<Option<BlobReader>> {
        match self.primary.read(digest, range.clone()).await? {
            Some(reader) => Ok(Some(reader)),
            None => self.tree.read_blob(digest, range).await,
        }
    }

    /// berth's copy only; see the module's comment.
    async fn delete(&self, digest: &Digest) -> Result<bool> {
        self.primary.delete(digest).await
    }

    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<ListedBlob>> {
        self.primary.list_blobs(after, limit).await
    }

    async fn quarantine(&self, digest: &Digest) -> Result<bool> {
        self.primary.quarantine(digest).await
    }

    async fn upload_write(&self, id: &UploadId, offset: u64, data: ByteStream) -> Result<u64> {
        self.primary.upload_write(id, offset, data).await
    }

    async fn upload_write_unsynced(
        &self,
        id: &UploadId,
        offset: u64,
        data: ByteStream,
    ) -> Result<u64> {
        self.primary.upload_write_unsynced(id, offset, data).await
    }

    async fn upload_read(&self, id: &UploadId, len: u64) -> Result<ByteStream> {
        self.primary.upload_read(id, len).await
    }

    async fn upload_read_from(&self, id: &UploadId, from: u64, len: u64) -> Result<ByteStream> {
        self.primary.upload_read_from(id, from, len).await
    }

    async fn upload_commit(&self, id: &UploadId, len: u64, digest: &Digest) -> Result<()> {
        self.primary.upload_commit(id, len, digest).await
    }

    async fn upload_delete(&self, id: &UploadId) -> Result<()> {
        self.primary.upload_delete(id).await
    }

    async fn purge_temporary(&self, older_than: SystemTime, dry_run: bool) -> Result<Vec<String>> {
        self.primary.purge_temporary(older_than, dry_run).await
    }

    async fn check(&self) -> Result<()> {
        self.primary.check().await
    }

    async fn redirect_url(&self, digest: &Digest, expires: Duration) -> Result<Option<String>> {
        if self.primary.stat(digest).await?.is_none() {
            return Ok(None);
        }
        self.primary.redirect_url(digest, expires).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FsBlobStore;
    use crate::registry2::fs::FsRegistry2Tree;
    use crate::registry2::{TREE, blob_data_path};
    use bytes::Bytes;
    use futures_util::TryStreamExt;

    async fn body(store: &dyn BlobStore, digest: &Digest) -> Option<Vec<u8>> {
        let reader = store.read(digest, None).await.unwrap()?;
        let chunks: Vec<Bytes> = reader.body.try_collect().await.unwrap();
        Some(chunks.concat())
    }

    #[tokio::test]
    async fn reads_the_tree_where_berth_lacks_a_blob_and_never_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = b"registry:2's bytes";
        let digest = Digest::sha256_of(legacy);
        let data = dir.path().join(TREE).join(blob_data_path(&digest));
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        std::fs::write(&data, legacy).unwrap();

        let primary: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path()).unwrap());
        let store = WithRegistry2::new(
            Arc::clone(&primary),
            Arc::new(FsRegistry2Tree::new(dir.path())),
        );
        assert_eq!(primary.stat(&digest).await.unwrap(), None);
        assert_eq!(
            store.stat(&digest).await.unwrap(),
            Some(legacy.len() as u64)
        );
        assert_eq!(body(&store, &digest).await.as_deref(), Some(&legacy[..]));
        let part = store.read(&digest, Some(0..8)).await.unwrap().unwrap();
        assert!(
            part.file.is_some(),
            "served zero-copy like berth's own blobs"
        );
        assert_eq!(
            store
                .redirect_url(&digest, Duration::from_secs(60))
                .await
                .unwrap(),
            None
        );

        // Walks, deletes and quarantines touch berth's layout only: the tree stays as it was.
        assert!(store.list_blobs(None, 10).await.unwrap().is_empty());
        assert!(!store.delete(&digest).await.unwrap());
        assert!(!store.quarantine(&digest).await.unwrap());
        assert_eq!(std::fs::read(&data).unwrap(), legacy);
        assert_eq!(
            store.stat(&digest).await.unwrap(),
            Some(legacy.len() as u64)
        );

        // A blob pushed to berth is berth's: read from its layout, and deleted there.
        let id = UploadId::random();
        let pushed = b"pushed to berth";
        let pushed_digest = Digest::sha256_of(pushed);
        let stream: ByteStream =
            Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(pushed))]));
        store.upload_write(&id, 0, stream).await.unwrap();
        store
            .upload_commit(&id, pushed.len() as u64, &pushed_digest)
            .await
            .unwrap();
        assert_eq!(
            primary.stat(&pushed_digest).await.unwrap(),
            Some(pushed.len() as u64)
        );
        assert_eq!(
            body(&store, &pushed_digest).await.as_deref(),
            Some(&pushed[..])
        );
        assert!(store.delete(&pushed_digest).await.unwrap());
        assert_eq!(store.stat(&pushed_digest).await.unwrap(), None);
    }
}
