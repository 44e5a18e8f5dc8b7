//! Reading and deleting blobs through a repository.

use std::ops::Range;

use oci::{Digest, RepoName};

use crate::{ByteStream, Registry, Result};

/// A blob as a repository sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// A byte range as an HTTP `Range: bytes=...` header asks for it, before it is resolved against the size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive).
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Last(u64),
}

/// A blob (or part of it) being served.
pub struct BlobContent {
    pub digest: Digest,
    /// Size of the whole blob.
    pub size: u64,
    /// The range served, end exclusive, when a range was asked for.
    pub range: Option<Range<u64>>,
    pub body: ByteStream,
}

impl Registry {
    /// HEAD of a blob: BLOB_UNKNOWN unless it is linked to `repo`.
    pub async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<BlobInfo> {
        let _ = (repo, digest);
        todo!()
    }

    /// GET of a blob, whole or a range of it (RangeNotSatisfiable when the range misses the blob).
    pub async fn get_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobContent> {
        let _ = (repo, digest, range);
        todo!()
    }

    /// DELETE of a blob: unlinks it from `repo` (bytes are swept later by GC). Unsupported when deletes are off.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let _ = (repo, digest);
        todo!()
    }
}
