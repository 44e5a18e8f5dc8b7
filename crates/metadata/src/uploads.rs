//! The upload sessions role: uploads in progress, with how many bytes the blob store holds for each and
//! the hash state over them, so that any replica (or a restarted one) continues any upload.

use oci::RepoName;

use crate::Result;

/// An upload in progress: how many bytes the blob store holds for it and the hash state over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSession {
    /// The id the blob store knows the bytes by (an `UploadId`'s string).
    pub id: String,
    pub repo: RepoName,
    /// Bytes received and made durable so far.
    pub offset: u64,
    /// `oci::ResumableHasher::to_bytes()` over those bytes.
    pub hash_state: Vec<u8>,
    /// Unix seconds of the session's creation and of its last update (for purging stale uploads).
    pub started_at: i64,
    pub updated_at: i64,
}

/// Uploads in progress.
#[async_trait::async_trait]
pub trait UploadSessions: Send + Sync + 'static {
    /// Creates upload session `session`, or replaces it if `session.offset` and the stored one match
    /// `expected_offset` (compare-and-swap: two concurrent writers to one upload cannot both win).
    /// `expected_offset: None` creates and fails if it exists. Returns whether the write happened.
    async fn save_upload(
        &self,
        session: &UploadSession,
        expected_offset: Option<u64>,
    ) -> Result<bool>;

    /// The upload session `id`.
    async fn upload(&self, id: &str) -> Result<Option<UploadSession>>;

    /// Removes upload session `id`. Returns whether it existed.
    async fn delete_upload(&self, id: &str) -> Result<bool>;

    /// Upload sessions last updated before `updated_before` (Unix seconds): the candidates for purging
    /// abandoned uploads. Ordered by id, at most `limit`, strictly after id `after` when given.
    async fn stale_uploads(
        &self,
        updated_before: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UploadSession>>;
}
