//! The scrub's role: where a scrub of the whole blob store stopped, so that a scrub stopped by a
//! restart, a crash or a lost job lock continues from there instead of from the first blob (hashing
//! every byte of a large registry takes hours at a gentle rate).

use oci::Digest;

use crate::Result;

/// A scrub in progress: every blob up to `after` is verified, with what was found so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubCursor {
    /// The last digest verified (blobs are walked in digest order).
    pub after: Digest,
    /// When this scrub started (Unix seconds), across restarts.
    pub started_at: i64,
    /// Blobs verified, their bytes, and what was found: bytes that are not their digest's, rows whose
    /// bytes are missing.
    pub checked: u64,
    pub bytes: u64,
    pub corrupt: u64,
    pub missing: u64,
}

/// The one scrub cursor of a registry (one scrub runs at a time: the job lock `scrub`).
#[async_trait::async_trait]
pub trait ScrubProgress: Send + Sync + 'static {
    /// The cursor a stopped scrub saved, or `None` when the last scrub finished (or none ran).
    async fn scrub_cursor(&self) -> Result<Option<ScrubCursor>>;

    /// Saves `cursor` in place of the last one; `None` forgets it (the scrub finished).
    async fn save_scrub_cursor(&self, cursor: Option<&ScrubCursor>) -> Result<()>;
}
