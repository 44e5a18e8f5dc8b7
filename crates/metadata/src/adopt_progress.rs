//! The adoption's role: how far the adoption of a registry:2 tree that `berth serve` runs in the
//! background got (`registry::adopt`), so that one stopped by a restart or a crash continues after the
//! last repository it finished instead of starting over, and one that finished is never run again (a
//! second run would bring back what was deleted in berth since). The repositories a request had adopted
//! ahead of the cursor are noted too, for the same reason: the cursor passes over them.

use crate::Result;

/// An adoption, finished or in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdoptCursor {
    /// The last repository adopted whole (repositories go in name order); `None` before the first.
    pub after: Option<String>,
    /// Every repository of the tree is adopted.
    pub finished: bool,
    /// When this adoption started (Unix seconds), across restarts.
    pub started_at: i64,
    /// What was adopted so far: repositories, manifests, tags; and things skipped.
    pub repositories: u64,
    pub manifests: u64,
    pub tags: u64,
    pub skipped: u64,
}

/// What adopting one repository ahead of the cursor brought in, so that the adoption's totals count it
/// when the cursor passes over it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdoptedAhead {
    pub manifests: u64,
    pub tags: u64,
    pub layer_links: u64,
    pub skipped: u64,
}

/// The one adoption of a registry (one runs at a time: the job lock `adopt-registry2`).
#[async_trait::async_trait]
pub trait AdoptProgress: Send + Sync + 'static {
    /// The cursor last saved, or `None` when no adoption ran.
    async fn adopt_cursor(&self) -> Result<Option<AdoptCursor>>;

    /// Saves `cursor` in place of the last one.
    async fn save_adopt_cursor(&self, cursor: &AdoptCursor) -> Result<()>;

    /// Notes that repository `repo` was adopted whole on its own, ahead of the cursor (a request named
    /// it first), and what that brought in. Noting it again keeps what was noted first.
    async fn note_adopted_ahead(&self, repo: &str, counts: &AdoptedAhead) -> Result<()>;

    /// What adopting `repo` ahead brought in, if [`note_adopted_ahead`](Self::note_adopted_ahead)
    /// noted it.
    async fn adopted_ahead(&self, repo: &str) -> Result<Option<AdoptedAhead>>;
}
