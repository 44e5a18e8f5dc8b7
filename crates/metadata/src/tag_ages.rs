//! What retention rules read and write: when each tag was pushed, when its manifest was last pulled, and
//! a delete that leaves a tag pushed again meanwhile.
//!
//! Pull times are recorded on manifests (a pull by tag and a pull by digest of the same image are the
//! same use of it), in batches the registry gathers off the request path.

use oci::{Digest, RepoName, Tag};

use crate::Result;

/// A tag, the manifest it points at, and the times retention judges it by (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagAge {
    pub tag: Tag,
    pub digest: Digest,
    /// When the tag was last pushed (created or moved).
    pub pushed_at: i64,
    /// When its manifest was last pulled, as recorded; `None`: never since pulls were recorded.
    pub pulled_at: Option<i64>,
}

/// A pull of manifest `digest` of `repo` at `at` (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ManifestPull {
    pub repo: RepoName,
    pub digest: Digest,
    pub at: i64,
}

/// Tag ages and manifest pull times.
#[async_trait::async_trait]
pub trait TagAges: Send + Sync + 'static {
    /// Records `pulls`: each manifest's last pull becomes the later of what was recorded and `at`.
    /// A pull of a manifest that is not stored (deleted meanwhile) is dropped.
    async fn record_pulls(&self, pulls: &[ManifestPull]) -> Result<()>;

    /// Every tag of `repo` with its manifest's digest, push time and last pull, in tag order.
    async fn tag_ages(&self, repo: &RepoName) -> Result<Vec<TagAge>>;

    /// Deletes `age.tag` of `repo` if it still points at `age.digest` and was pushed at `age.pushed_at`:
    /// a tag pushed again since it was read stays. Returns whether it was deleted.
    async fn delete_tag_unchanged(&self, repo: &RepoName, age: &TagAge) -> Result<bool>;
}
