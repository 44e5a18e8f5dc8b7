//! registry:2's tree in a bucket: `<rootdirectory>/docker/registry/v2/` (registry:2's S3 driver keeps
//! the tree's paths as keys under its `rootdirectory`, without a leading `/`), read through the same
//! client as berth's own blobs, never written. Directories are ListObjectsV2's common prefixes.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci::Digest;

use super::S3BlobStore;
use crate::registry2::{Entry, Registry2Tree, TREE, blob_data_path, is_confined};
use crate::{BlobReader, Error, Result};

/// registry:2's tree under the bucket and `rootdirectory` of an [`S3BlobStore`].
#[derive(Clone, Debug)]
pub struct S3Registry2Tree {
    store: S3BlobStore,
    /// `<root>/docker/registry/v2/`.
    prefix: String,
}

impl S3BlobStore {
    /// registry:2's tree in this store's bucket, under the same `rootdirectory` (where registry:2 with
    /// the same `storage.s3` keeps it). Reads nothing until asked.
    pub fn registry2_tree(&self) -> S3Registry2Tree {
        S3Registry2Tree {
            prefix: format!("{}{TREE}/", self.keys.root()),
            store: self.clone(),
        }
    }
}

impl S3Registry2Tree {
    fn key(&self, path: &str) -> Result<String> {
        if !is_confined(path) {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("not a path inside registry:2's tree: {path:?}"),
            )));
        }
        Ok(format!("{}{path}", self.prefix))
    }
}

#[async_trait::async_trait]
impl Registry2Tree for S3Registry2Tree {
    async fn list(&self, path: &str) -> Result<Vec<Entry>> {
        let prefix = format!("{}/", self.key(path)?);
        let (dirs, files) = self.store.bucket.list_dir(&prefix).await?;
        let mut entries: Vec<Entry> = dirs
            .into_iter()
            .map(|name| Entry { name, dir: true })
            .chain(files.into_iter().map(|name| Entry { name, dir: false }))
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    async fn read_small(&self, path: &str, limit: u64) -> Result<Option<Bytes>> {
        let key = self.key(path)?;
        let Some(response) = self.store.bucket.get(&key, None).await? else {
            return Ok(None);
        };
        let mut body = response.stream();
        let mut bytes = BytesMut::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk?);
            if bytes.len() as u64 > limit {
                return Err(Error::Io(std::io::Error::other(format!(
                    "{key} holds more than the {limit} bytes expected"
                ))));
            }
        }
        Ok(Some(bytes.freeze()))
    }

    async fn stat_blob(&self, digest: &Digest) -> Result<Option<u64>> {
        let key = self.key(&blob_data_path(digest))?;
        Ok(self.store.bucket.head(&key).await?)
    }

    async fn read_blob(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<BlobReader>> {
        let key = self.key(&blob_data_path(digest))?;
        self.store.read_key(&key, range).await
    }

    async fn exists(&self) -> Result<bool> {
        let (dirs, _) = self.store.bucket.list_dir(&self.prefix).await?;
        Ok(dirs.iter().any(|d| d == "repositories" || d == "blobs"))
    }
}
