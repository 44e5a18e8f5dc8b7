//! Content-addressed blob bytes, and the upload sessions that produce them.
//!
//! The registry above decides *whether* a blob may be read or written; this crate only stores bytes.
//! It knows nothing of HTTP, repositories or SQL. Every backend implements [`BlobStore`] and passes the
//! shared suite in [`testsuite`].
//!
//! Hashing is not done here: the registry hashes the stream as it flows into [`BlobStore::upload_write`]
//! and verifies the digest before it calls [`BlobStore::upload_commit`].

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;
use oci::Digest;

pub mod fs;
pub mod registry2;
pub mod s3;
#[cfg(any(test, feature = "testsuite"))]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code, built into the library for other crates' tests: a panic is a failed case"
)]
pub mod testsuite;

/// A stream of bytes, in or out. Chunks are bounded by the producer's buffer size: nothing here ever
/// collects a whole blob.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Identifies an upload session. Chosen by the registry (a UUID); a backend may use it as a path component,
/// so it is restricted to `[a-zA-Z0-9-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    /// A fresh random id.
    pub fn random() -> UploadId {
        UploadId(uuid::Uuid::new_v4().to_string())
    }

    /// Accepts an id from the outside world, or `None` if it cannot be one of ours.
    pub fn parse(s: &str) -> Option<UploadId> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        ok.then(|| UploadId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A committed blob being read.
pub struct BlobReader {
    /// Size of the whole blob (not of the range being read).
    pub size: u64,
    /// The requested bytes: the whole blob, or exactly the requested range.
    pub body: ByteStream,
    /// The same bytes as a range of an open local file, when the backend keeps blobs in files (the fs
    /// backend fills it; every other backend leaves `None`). A server may hand it to the kernel
    /// (`sendfile(2)`) instead of streaming `body`; a consumer uses one or the other, and `body` reads
    /// nothing until it is first polled, so the unused one costs nothing.
    pub file: Option<FileRange>,
}

/// Bytes of a committed blob as a range of its open file: what zero-copy serving sends from. Blobs are
/// immutable and only ever removed by unlinking, so the handle keeps serving the same bytes even if the
/// blob is deleted meanwhile.
#[derive(Clone, Debug)]
pub struct FileRange {
    pub file: std::sync::Arc<std::fs::File>,
    /// Position in the file of the first byte.
    pub offset: u64,
    pub len: u64,
}

/// A committed blob, as [`BlobStore::list_blobs`] names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedBlob {
    pub digest: Digest,
    pub size: u64,
    /// When its bytes were last written (fs: the file's mtime; S3: the object's `LastModified`): what a
    /// grace period is measured from. A backend that cannot tell says now, so nothing is judged old
    /// on a guess.
    pub modified: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upload session has no stored bytes (never written, committed or deleted).
    #[error("upload {0} not found")]
    UploadNotFound(UploadId),
    /// `upload_write` was asked to continue at an offset past the bytes the upload holds.
    #[error("upload {id} holds {have} bytes, cannot write at offset {offset}")]
    UploadOffset {
        id: UploadId,
        have: u64,
        offset: u64,
    },
    /// The range asked of `read` does not lie within the blob.
    #[error("range {range:?} is outside a blob of {size} bytes")]
    RangeNotSatisfiable { range: Range<u64>, size: u64 },
    /// Reading the request body failed (the client went away or sent garbage): not the storage's fault.
    #[error("reading the incoming data failed: {0}")]
    Source(io::Error),
    /// The storage engine cannot be reached right now (connection refused, timed out, 503 from an object
    /// store). Nothing became visible; the caller may retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The storage itself failed.
    #[error("storage: {0}")]
    Io(#[from] io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Storage for immutable, content-addressed blobs and for the bytes of uploads in progress.
///
/// No method has a default: a decorator implements every one, so none can be left to a default that
/// differs from what the store it wraps does.
///
/// Contract shared by all backends (checked by [`testsuite`]):
/// - A blob becomes visible to `stat`/`read` only through `upload_commit`, all at once and durably:
///   a crash at any moment leaves it either absent or whole.
/// - Committing a digest that already exists is harmless (content addressing makes the bytes identical).
/// - Upload bytes are only ever appended at the offset the caller recorded; anything beyond it (left by
///   a write that failed or crashed before the caller recorded it) is discarded by the next write.
/// - Every method is safe to call concurrently, from several processes sharing the storage.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size of the committed blob `digest`, or `None` if there is none.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Streams the committed blob `digest`, or the byte range `range` of it (end exclusive, non-empty,
    /// within the blob, else `RangeNotSatisfiable`). `None` if there is no such blob.
    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<Option<BlobReader>>;

    /// Removes the committed blob `digest`. Returns whether it existed.
    async fn delete(&self, digest: &Digest) -> Result<bool>;

    /// The committed blobs in digest order (`Digest`'s `Ord`: algorithm, then hex), strictly after
    /// `after`, at most `limit` of them: a page, so that a walk of the whole store (garbage collection's
    /// orphans, scrub) never holds every digest in memory. Fewer than `limit` means the walk is over.
    /// Upload bytes and temporary data are never listed, nor anything under the blobs' tree that is not a
    /// blob of the layout. A blob committed or deleted while a walk goes on may or may not be seen.
    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<ListedBlob>>;

    /// Moves the committed blob `digest` out of the served tree into the backend's quarantine (fs:
    /// `quarantine/`, S3: a `quarantine/` prefix), where nothing reads it but an operator: its bytes
    /// failed verification, and must never be served as the blob (nor kept from being pushed again).
    /// Once it returns the blob is gone for `stat`, `read` and `list_blobs`. Returns whether it existed.
    async fn quarantine(&self, digest: &Digest) -> Result<bool>;

    /// Appends `data` to upload `id` starting at `offset`, creating the upload if `offset` is 0.
    /// Bytes the upload holds past `offset` are discarded first. Returns the new length once the bytes are
    /// durable. Fails with `UploadOffset` if the upload holds fewer than `offset` bytes, `UploadNotFound`
    /// if `offset > 0` and it holds nothing, `Source` if `data` fails (the upload is then left at some
    /// length >= `offset` that the caller must not record).
    async fn upload_write(&self, id: &UploadId, offset: u64, data: ByteStream) -> Result<u64>;

    /// [`upload_write`](Self::upload_write) for an upload that is never resumed: when it returns, the
    /// bytes can be read back with `upload_read` but need not be durable yet; `upload_commit` makes them
    /// durable, as it does anyway. A pull-through cache's fetch writes this way: should the process die,
    /// its upload is purged rather than continued, so waiting for the disk after every segment would only
    /// make the clients reading the fetch wait for it too. A backend whose writes are durable anyway
    /// (S3: every part written is) answers it with `upload_write`.
    async fn upload_write_unsynced(
        &self,
        id: &UploadId,
        offset: u64,
        data: ByteStream,
    ) -> Result<u64>;

    /// Streams the first `len` bytes of upload `id` (used to hash with an algorithm that was not computed
    /// while the bytes streamed in).
    async fn upload_read(&self, id: &UploadId, len: u64) -> Result<ByteStream>;

    /// Streams bytes `from..len` of upload `id` (`from <= len`): [`upload_read`](Self::upload_read) for
    /// a reader that already has the first `from` bytes (a pull-through cache's client that fell behind
    /// the fetch's in-memory window). `UploadNotFound` as there. The filesystem seeks; a backend that
    /// cannot may read from the start and drop the first `from` bytes ([`skip_bytes`]).
    async fn upload_read_from(&self, id: &UploadId, from: u64, len: u64) -> Result<ByteStream>;

    /// Makes the first `len` bytes of upload `id` the committed blob `digest`, durably, and removes the
    /// upload. The caller has verified the digest. `UploadNotFound` if the upload holds fewer than `len` bytes
    /// (with `len == 0` an upload that holds nothing commits the empty blob).
    async fn upload_commit(&self, id: &UploadId, len: u64, digest: &Digest) -> Result<()>;

    /// Removes whatever upload `id` holds. Deleting an unknown upload is not an error.
    async fn upload_delete(&self, id: &UploadId) -> Result<()>;

    /// Removes the backend's own temporary data (what a commit interrupted by a crash left behind: fs
    /// `tmp/` files; an S3 backend's incomplete multipart uploads) that was last touched before
    /// `older_than`. Never touches committed blobs or upload bytes: uploads are removed by id, by the
    /// registry, which knows which are abandoned. With `dry_run` nothing is removed. Returns a name for
    /// each item removed (or that would be), for the log.
    async fn purge_temporary(&self, older_than: SystemTime, dry_run: bool) -> Result<Vec<String>>;

    /// Checks that the storage answers, for health checks: cheap, read-only, and an error whenever blobs
    /// could not be read or written right now (root missing, permission lost, server unreachable).
    async fn check(&self) -> Result<()>;

    /// A URL from which any client may GET the committed blob `digest` straight from the storage for
    /// about `expires`, bypassing this process (S3: a presigned URL); `None` when the backend has no
    /// such thing. Computed without checking that the blob exists: the caller knows.
    async fn redirect_url(&self, digest: &Digest, expires: Duration) -> Result<Option<String>>;
}

/// `stream` without its first `n` bytes.
pub fn skip_bytes(stream: ByteStream, n: u64) -> ByteStream {
    use futures_util::StreamExt;
    Box::pin(
        stream
            .scan(n, |left, item| {
                let item = item.map(|mut chunk| {
                    // At most the chunk's length, which is a usize.
                    let drop = (*left).min(chunk.len() as u64) as usize;
                    *left -= drop as u64;
                    chunk.split_off(drop)
                });
                futures_util::future::ready(Some(item))
            })
            .filter(|item| futures_util::future::ready(!matches!(item, Ok(b) if b.is_empty()))),
    )
}
