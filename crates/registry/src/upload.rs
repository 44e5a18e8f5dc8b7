//! Blob uploads: start, chunk, status, finish, cancel, mount.

use oci::{Digest, RepoName};

use crate::{BlobInfo, ByteStream, Registry, Result, UploadId};

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
        let _ = repo;
        todo!()
    }

    /// POST `?digest=` with a body: the whole blob in one request.
    pub async fn push_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        chunk: Chunk,
    ) -> Result<BlobInfo> {
        let _ = (repo, digest, chunk);
        todo!()
    }

    /// POST `?mount=digest[&from=repo]`: links an existing blob, from `from` or (without it) from anywhere
    /// in the registry, or else starts an upload.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<MountOutcome> {
        let _ = (repo, digest, from);
        todo!()
    }

    /// GET of the upload URL.
    pub async fn upload_status(&self, repo: &RepoName, id: &UploadId) -> Result<UploadStatus> {
        let _ = (repo, id);
        todo!()
    }

    /// PATCH: appends a chunk (UploadOutOfOrder when its range does not start at the offset).
    pub async fn upload_chunk(
        &self,
        repo: &RepoName,
        id: &UploadId,
        chunk: Chunk,
    ) -> Result<UploadStatus> {
        let _ = (repo, id, chunk);
        todo!()
    }

    /// PUT `?digest=`: appends the optional last chunk, verifies the digest, commits and links the blob.
    pub async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        chunk: Option<Chunk>,
    ) -> Result<BlobInfo> {
        let _ = (repo, id, digest, chunk);
        todo!()
    }

    /// DELETE of the upload URL.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        let _ = (repo, id);
        todo!()
    }
}
