//! Blob uploads: start, chunk, status, finish, cancel, mount.
//!
//! The metadata's `UploadSession` is the source of truth for an upload: how many bytes it holds and the
//! hash state over them. A chunk is hashed as it streams into the blob store, and the session moves
//! forward (compare-and-swap on the offset) only once the bytes are durable and match what the client
//! declared. So an upload survives restarts and can move between replicas, and a failed or concurrent
//! write never leaves a recorded state that disagrees with the bytes.

use futures_util::StreamExt;
use metadata::UploadSession;
use oci::{Digest, DigestAlgorithm, RepoName, ResumableHasher};

use crate::clock::unix_now;
use crate::meter::Meter;
use crate::notify::event::Action;
use crate::{BlobInfo, ByteStream, Error, Registry, Result, UploadId};

/// Where an upload stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: UploadId,
    /// Bytes received so far (the `Range` header is `0-{offset-1}`).
    pub offset: u64,
}

/// Body of a PATCH or of a closing PUT, with what the client declared about it.
pub struct Chunk {
    /// `Content-Range: start-end` (inclusive), if sent.
    pub range: Option<(u64, u64)>,
    /// `Content-Length`, if sent.
    pub length: Option<u64>,
    pub body: ByteStream,
}

/// Result of a POST with `mount=`.
#[derive(Debug)]
pub enum MountOutcome {
    /// The blob is now linked to the repository (201).
    Mounted(BlobInfo),
    /// It could not be mounted; an ordinary upload was started instead (202).
    Started(UploadStatus),
}

impl Registry {
    /// POST: starts an upload.
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadStatus> {
        self.writable_in(repo)?;
        self.check_quotas(repo, None).await?;
        let id = UploadId::random();
        let now = unix_now();
        let session = UploadSession {
            id: id.as_str().to_string(),
            repo: repo.clone(),
            offset: 0,
            hash_state: ResumableHasher::new(DigestAlgorithm::Sha256).to_bytes(),
            started_at: now,
            updated_at: now,
        };
        // The blob store creates the upload's bytes on the first write; until then the session alone
        // stands for an empty upload.
        if !self.meta.uploads.save_upload(&session, None).await? {
            return Err(Error::internal(format!("upload id {id} already in use")));
        }
        Ok(UploadStatus { id, offset: 0 })
    }

    /// POST `?digest=` with a body: the whole blob in one request.
    pub async fn push_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        chunk: Chunk,
    ) -> Result<BlobInfo> {
        let status = self.start_upload(repo).await?;
        let result = self
            .finish_upload(repo, &status.id, digest, Some(chunk))
            .await;
        if result.is_err() {
            // The client never saw this upload's id, so nobody could resume it: drop it now.
            self.discard_upload(&status.id).await;
        }
        result
    }

    /// POST `?mount=digest[&from=repo]`: links an existing blob, from `from` or (without it) from anywhere
    /// in the registry, or else starts an upload.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<MountOutcome> {
        self.writable_in(repo)?;
        let size = match from {
            Some(from) => {
                self.adopt_ahead(from).await?;
                self.meta.catalog.linked_blob(from, digest).await?
            }
            None => self.meta.catalog.known_blob(digest).await?,
        };
        if let Some(size) = size {
            // The metadata says the blob exists; the bytes must too, or the mount would link a hole.
            // Holding the blob keeps eviction and the garbage collector from deleting them between the
            // check and the link.
            let _blob = self.hold_blob(digest, size).await?;
            if self.blobs.stat(digest).await?.is_some() {
                self.check_quotas(repo, Some((digest, size))).await?;
                let events = self.blob_events(Action::Mount, repo, digest, size, from);
                let link = self.meta.catalog.link_blob(repo, digest, size);
                self.noting(events, link).await?;
                return Ok(MountOutcome::Mounted(BlobInfo {
                    digest: digest.clone(),
                    size,
                }));
            }
        }
        Ok(MountOutcome::Started(self.start_upload(repo).await?))
    }

    /// GET of the upload URL.
    pub async fn upload_status(&self, repo: &RepoName, id: &UploadId) -> Result<UploadStatus> {
        let session = self.session(repo, id).await?;
        Ok(UploadStatus {
            id: id.clone(),
            offset: session.offset,
        })
    }

    /// PATCH: appends a chunk (UploadOutOfOrder when its range does not start at the offset).
    pub async fn upload_chunk(
        &self,
        repo: &RepoName,
        id: &UploadId,
        chunk: Chunk,
    ) -> Result<UploadStatus> {
        self.writable_in(repo)?;
        let _guard = self.upload_locks.lock(id.as_str()).await;
        let session = self.session(repo, id).await?;
        let session = self.append(id, session, chunk).await?;
        Ok(UploadStatus {
            id: id.clone(),
            offset: session.offset,
        })
    }

    /// PUT `?digest=`: appends the optional last chunk, verifies the digest, commits and links the blob.
    pub async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        chunk: Option<Chunk>,
    ) -> Result<BlobInfo> {
        self.writable_in(repo)?;
        // Held through the commit, so no write of this process is in flight while the bytes become a blob.
        let _guard = self.upload_locks.lock(id.as_str()).await;
        let mut session = self.session(repo, id).await?;
        if let Some(chunk) = chunk {
            session = self.append(id, session, chunk).await?;
        }
        let actual = self.upload_digest(id, &session, digest.algorithm()).await?;
        if actual != *digest {
            self.discard_upload(id).await;
            return Err(Error::DigestInvalid(format!(
                "the upload's content is {actual}, not {digest}"
            )));
        }
        let size = session.offset;
        if let Err(e) = self.check_quotas(repo, Some((digest, size))).await {
            self.discard_upload(id).await;
            return Err(e);
        }
        // Bytes first, durable, then the link: a crash in between leaves an unlinked blob for GC to
        // sweep, never a link to bytes that are not there. Holding the blob keeps eviction and the
        // garbage collector from deleting bytes found present (or just committed) before they are
        // linked (see `crate::gc`).
        let _blob = self.hold_blob(digest, size).await?;
        match self.blobs.stat(digest).await? {
            Some(_) => self.blobs.upload_delete(id).await?,
            None => match self.blobs.upload_commit(id, size, digest).await {
                Ok(()) => {}
                Err(blobs::Error::UploadNotFound(_)) => return Err(Error::BlobUploadUnknown),
                Err(e) => return Err(e.into()),
            },
        }
        let events = self.blob_events(Action::Push, repo, digest, size, None);
        let link = self.meta.catalog.link_blob(repo, digest, size);
        self.noting(events, link).await?;
        self.meta.uploads.delete_upload(&session.id).await?;
        Ok(BlobInfo {
            digest: digest.clone(),
            size,
        })
    }

    /// DELETE of the upload URL.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        self.writable_in(repo)?;
        let _guard = self.upload_locks.lock(id.as_str()).await;
        self.session(repo, id).await?;
        // Bytes before the session: if the second step fails, the session is left pointing at nothing and
        // its next write fails cleanly, rather than orphaned bytes nobody knows about.
        self.blobs.upload_delete(id).await?;
        self.meta.uploads.delete_upload(id.as_str()).await?;
        Ok(())
    }

    /// The session of upload `id`, if it belongs to `repo`. Another repository naming the id learns
    /// nothing: the answer is the same as for an id that does not exist.
    async fn session(&self, repo: &RepoName, id: &UploadId) -> Result<UploadSession> {
        match self.meta.uploads.upload(id.as_str()).await? {
            Some(s) if &s.repo == repo => Ok(s),
            _ => Err(Error::BlobUploadUnknown),
        }
    }

    /// Streams `chunk` into the upload at the session's offset, then records the new offset and hash state
    /// if the bytes arrived as declared. Returns the session as recorded. The caller holds the upload's
    /// lock and read `session` under it.
    async fn append(
        &self,
        id: &UploadId,
        session: UploadSession,
        chunk: Chunk,
    ) -> Result<UploadSession> {
        // Every byte of every upload flows through here, so this is where their number is capped; an
        // empty closing chunk carries nothing and is never refused.
        let _slot = match chunk.length {
            Some(0) => None,
            _ => Some(self.upload_slots.take()?),
        };
        let limit = declared_length(session.offset, &chunk)?;
        let hasher = ResumableHasher::from_bytes(&session.hash_state).map_err(Error::internal)?;
        let meter = Meter::new(hasher);
        let written = self
            .blobs
            .upload_write(id, session.offset, meter.wrap(chunk.body, limit))
            .await;
        let new_len = match written {
            Ok(n) => n,
            Err(e) => {
                let refusal = match e {
                    blobs::Error::Source(_) if meter.overflowed().await => {
                        Error::SizeInvalid(format!(
                            "the body is longer than the declared {} bytes",
                            limit.unwrap_or_default()
                        ))
                    }
                    blobs::Error::Source(e) => {
                        Error::BlobUploadInvalid(format!("reading the body failed: {e}"))
                    }
                    blobs::Error::UploadNotFound(_) => {
                        tracing::warn!(upload = %id, "upload session has no bytes in the blob store");
                        return Err(Error::BlobUploadUnknown);
                    }
                    e => e.into(),
                };
                self.cut_unrecorded(id, session.offset).await;
                return Err(refusal);
            }
        };
        // The bytes are durable; the hash of the last batch may still be running.
        let tally = meter
            .finish()
            .await
            .ok_or_else(|| Error::internal("upload tally lost"))?;
        if let Some(declared) = limit
            && tally.received != declared
        {
            self.cut_unrecorded(id, session.offset).await;
            return Err(Error::SizeInvalid(format!(
                "{} bytes received, {declared} declared",
                tally.received
            )));
        }
        if new_len != session.offset + tally.received {
            return Err(Error::internal(format!(
                "blob store holds {new_len} bytes for upload {id}, expected {}",
                session.offset + tally.received
            )));
        }
        let old_offset = session.offset;
        let next = UploadSession {
            offset: new_len,
            hash_state: tally.hasher.to_bytes(),
            updated_at: unix_now(),
            ..session
        };
        if self
            .meta
            .uploads
            .save_upload(&next, Some(old_offset))
            .await?
        {
            return Ok(next);
        }
        // Another request moved the upload while this one wrote: this chunk lost the race.
        match self.meta.uploads.upload(id.as_str()).await? {
            Some(current) => Err(Error::UploadOutOfOrder {
                offset: current.offset,
            }),
            None => Err(Error::BlobUploadUnknown),
        }
    }

    /// Cuts what a failed write left in upload `id` past its recorded `offset`. The next write would cut
    /// it anyway; cutting it now keeps a failure (a full disk above all) from holding the space until
    /// the upload is resumed or purged. Best effort: a failure here changes nothing the client sees.
    async fn cut_unrecorded(&self, id: &UploadId, offset: u64) {
        let nothing: ByteStream = Box::pin(futures_util::stream::empty());
        if let Err(e) = self.blobs.upload_write(id, offset, nothing).await {
            tracing::debug!(upload = %id, error = %e, "could not cut a failed write's bytes");
        }
    }

    /// The digest of the upload's bytes with `algorithm`: from the recorded hash state when it is that
    /// algorithm's, else by reading the bytes back (sha512 uploads, which are rare).
    async fn upload_digest(
        &self,
        id: &UploadId,
        session: &UploadSession,
        algorithm: DigestAlgorithm,
    ) -> Result<Digest> {
        let recorded = ResumableHasher::from_bytes(&session.hash_state).map_err(Error::internal)?;
        if recorded.algorithm() == algorithm {
            return Ok(recorded.finish());
        }
        let mut hasher = ResumableHasher::new(algorithm);
        if session.offset > 0 {
            let mut bytes = match self.blobs.upload_read(id, session.offset).await {
                Ok(s) => s,
                Err(blobs::Error::UploadNotFound(_)) => return Err(Error::BlobUploadUnknown),
                Err(e) => return Err(e.into()),
            };
            while let Some(chunk) = bytes.next().await {
                hasher.update(&chunk.map_err(Error::internal)?);
            }
        }
        if hasher.len() != session.offset {
            return Err(Error::internal(format!(
                "upload {id} read back {} bytes, expected {}",
                hasher.len(),
                session.offset
            )));
        }
        Ok(hasher.finish())
    }

    /// Drops an upload's bytes and session after a failure the client cannot recover from. Best effort:
    /// the caller is already answering with the failure that matters, so a cleanup error is only logged
    /// (stale uploads are purged later anyway).
    async fn discard_upload(&self, id: &UploadId) {
        if let Err(e) = self.blobs.upload_delete(id).await {
            tracing::warn!(upload = %id, error = %e, "could not delete upload bytes");
        }
        if let Err(e) = self.meta.uploads.delete_upload(id.as_str()).await {
            tracing::warn!(upload = %id, error = %e, "could not delete upload session");
        }
    }
}

/// How many bytes the chunk says it carries, after checking that what it says is consistent and starts
/// where the upload ends: the one home of the rules about a chunk's declaration. A range that is no
/// range is BLOB_UPLOAD_INVALID; a Content-Length that disagrees with the range, like a body that
/// disagrees with either (checked in `append`), is SIZE_INVALID.
fn declared_length(offset: u64, chunk: &Chunk) -> Result<Option<u64>> {
    let from_range = match chunk.range {
        None => None,
        Some((start, _)) if start != offset => return Err(Error::UploadOutOfOrder { offset }),
        Some((start, end)) => match end.checked_sub(start).and_then(|n| n.checked_add(1)) {
            Some(n) => Some(n),
            None => {
                return Err(Error::BlobUploadInvalid(format!(
                    "Content-Range {start}-{end} is not a range"
                )));
            }
        },
    };
    match (chunk.length, from_range) {
        (Some(len), Some(range)) if len != range => Err(Error::SizeInvalid(format!(
            "Content-Length {len} disagrees with a Content-Range of {range} bytes"
        ))),
        (len, range) => Ok(len.or(range)),
    }
}
