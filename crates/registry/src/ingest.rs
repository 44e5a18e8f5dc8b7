//! One blob brought into a repository from a source of this process's own (an OCI layout being
//! imported, another registry being replicated): linked when the registry already holds its bytes
//! (anywhere: the mount of the API), else streamed in through an ordinary upload, whose commit checks
//! the digest. Nothing is copied twice (a digest is ingested by one task at a time in a process), and
//! nothing unverified is ever linked.

use std::future::Future;

use oci::{Digest, RepoName};

use crate::{ByteStream, Chunk, Error, MountOutcome, Registry, Result};

/// How a blob came to be linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingested {
    /// The registry held it already; nothing was read from the source.
    Linked,
    /// Its bytes were read from the source; how many.
    Copied(u64),
}

impl Registry {
    /// Links `digest` into `repo`, reading it from `source` only when the registry does not hold it.
    /// `source` answers the blob's length (if known) and bytes, or `None` when it does not have it
    /// (then `BlobUnknown`). An upload started for it is cancelled on any failure.
    pub async fn ingest_blob<F, Fut>(
        &self,
        repo: &RepoName,
        digest: &Digest,
        source: F,
    ) -> Result<Ingested>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<(Option<u64>, ByteStream)>>>,
    {
        // Repositories replicated at once often share a layer: the second waits for the first's copy
        // and mounts it, instead of reading the same bytes from the source again.
        let _one_at_a_time = self.ingest_locks.lock_digest(digest).await;
        if self.stat_blob(repo, digest).await.is_ok() {
            return Ok(Ingested::Linked);
        }
        let upload = match self.mount_blob(repo, digest, None).await? {
            MountOutcome::Mounted(_) => return Ok(Ingested::Linked),
            MountOutcome::Started(upload) => upload,
        };
        let copied = async {
            let (length, body) = source()
                .await?
                .ok_or_else(|| Error::BlobUnknown(digest.clone()))?;
            let chunk = Chunk {
                range: None,
                length,
                body,
            };
            self.finish_upload(repo, &upload.id, digest, Some(chunk))
                .await
        }
        .await;
        match copied {
            Ok(info) => Ok(Ingested::Copied(info.size)),
            Err(e) => {
                // Best effort: an upload left behind is purged with the stale ones anyway.
                let _ = self.cancel_upload(repo, &upload.id).await;
                Err(e)
            }
        }
    }
}
