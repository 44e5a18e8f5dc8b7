//! The errors a registry operation can end in: one variant per error code of the distribution spec, plus
//! the few outcomes the spec answers with a status but no code of its own. The HTTP layer maps each
//! variant to a status and a code in one exhaustive `match`.

use oci::{Digest, RepoName};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// BLOB_UNKNOWN: the blob is not readable through this repository.
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(Digest),
    /// BLOB_UPLOAD_INVALID: the upload request or its body is wrong (length mismatch, bad Content-Range).
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    /// BLOB_UPLOAD_UNKNOWN: no such upload in this repository (never started, finished or cancelled).
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    /// DIGEST_INVALID: a malformed digest, or content that does not match its digest.
    #[error("provided digest did not match uploaded content: {0}")]
    DigestInvalid(String),
    /// MANIFEST_BLOB_UNKNOWN: a manifest references a blob (or child manifest) the repository lacks.
    #[error("manifest references a blob unknown to the repository: {0}")]
    ManifestBlobUnknown(Digest),
    /// MANIFEST_INVALID: not valid JSON, not a manifest of a supported type, or inconsistent.
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    /// MANIFEST_UNKNOWN: no manifest under this tag or digest.
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    /// NAME_INVALID: the repository name breaks the grammar.
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    /// NAME_UNKNOWN: the repository does not exist.
    #[error("repository name not known to registry: {0}")]
    NameUnknown(RepoName),
    /// SIZE_INVALID: a declared length does not match the content.
    #[error("provided length did not match content length: {0}")]
    SizeInvalid(String),
    /// UNAUTHORIZED: authentication required.
    #[error("authentication required")]
    Unauthorized,
    /// DENIED: authenticated, but not allowed.
    #[error("requested access to the resource is denied")]
    Denied,
    /// DENIED, with the reason: the tag is immutable (`tags.immutable`), so it may not be moved to
    /// another manifest or deleted.
    #[error("tag {tag} of {repo} is immutable: it may not be moved or deleted")]
    TagImmutable { repo: RepoName, tag: oci::Tag },
    /// DENIED, with the reason: the push would take a set of repositories past its quota (`quotas`).
    /// The text names the quota, what it holds and what the push needed.
    #[error("quota exceeded: {0}")]
    OverQuota(String),
    /// UNSUPPORTED: the operation is not enabled here (deletes when deletion is off, and the like).
    #[error("the operation is unsupported: {0}")]
    Unsupported(String),
    /// TOOMANYREQUESTS.
    #[error("too many requests")]
    TooManyRequests,
    /// A blob range outside the blob (416; the response carries `Content-Range: bytes */size`).
    #[error("requested range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// A chunk that does not start where the upload ends (416; the response carries the upload's `Range`).
    #[error("chunk out of order: the upload holds {offset} bytes")]
    UploadOutOfOrder { offset: u64 },
    /// A manifest larger than the registry accepts (413).
    #[error("manifest of {size} bytes exceeds the limit of {limit} bytes")]
    ManifestTooLarge { size: u64, limit: usize },
    /// UNAVAILABLE (503, as registry:2's errcode): a storage engine, the metadata database or an upstream
    /// cannot be reached right now. Nothing was changed; the same request may succeed once it is back.
    /// The text is shown to clients: it names what is unavailable, never a host or an internal cause
    /// (those are logged where the error is converted).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a failing backend. Logged with its cause; the client sees only a generic 500.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn internal(e: impl Into<BoxError>) -> Error {
        Error::Internal(e.into())
    }
}

impl From<metadata::Error> for Error {
    fn from(e: metadata::Error) -> Self {
        match e {
            metadata::Error::MissingBlob(d) | metadata::Error::MissingManifest(d) => {
                Error::ManifestBlobUnknown(d)
            }
            // Only when a sweep with no grace period claims a blob between a push's reservation and its
            // link: the push's bytes may be gone, and the client pushing again is the way back.
            metadata::Error::BlobDeleting(d) => Error::Unavailable(format!(
                "blob {d} was being deleted by the garbage collector; push it again"
            )),
            metadata::Error::Full(e) => {
                tracing::warn!(cause = %e, "metadata storage is full");
                Error::Unavailable(STORAGE_FULL.into())
            }
            metadata::Error::Unavailable(e) => {
                tracing::warn!(cause = %e, "metadata database unavailable");
                Error::Unavailable("the metadata database cannot be reached".into())
            }
            other => Error::Internal(other.into()),
        }
    }
}

/// What a client is told when a write failed for want of space.
const STORAGE_FULL: &str = "the registry's storage is full; try again later";

/// Whether an IO error says the storage has no space left (or the user's quota is spent).
fn storage_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
}

/// The blob store's failures as the domain sees them. Only a range outside the blob is the client's doing;
/// the upload paths handle `Source` and `UploadNotFound` themselves, before this applies.
impl From<blobs::Error> for Error {
    fn from(e: blobs::Error) -> Self {
        match e {
            blobs::Error::RangeNotSatisfiable { size, .. } => Error::RangeNotSatisfiable { size },
            blobs::Error::Unavailable(e) => {
                tracing::warn!(cause = %e, "blob storage unavailable");
                Error::Unavailable("the blob storage cannot be reached".into())
            }
            // A full disk (or quota) is not a bug: nothing became visible, and the same request may
            // succeed once space is freed. The client is told so, with Retry-After.
            blobs::Error::Io(e) if storage_full(&e) => {
                tracing::warn!(cause = %e, "blob storage is full");
                Error::Unavailable(STORAGE_FULL.into())
            }
            other => Error::Internal(other.into()),
        }
    }
}
