//! registry:2's storage tree, read where it lies: what adopting a registry:2 store needs of the
//! storage, and nothing more. berth never writes to this tree, so an operator can stop berth and start
//! registry:2 again on the same volume (or bucket) and find it as registry:2 left it.
//!
//! The tree, as distribution's `registry/storage/paths.go` draws it (only what berth reads; every path
//! below is relative to `<rootdirectory>/docker/registry/v2/`, the [`TREE`]):
//!
//! ```text
//! blobs/<alg>/<first 2 hex>/<hex>/data           a blob's bytes (layers, configs and manifests alike)
//! repositories/<name>/                            <name> may have several components (a/b/c)
//!   _layers/<alg>/<hex>/link                      "<alg>:<hex>": the repository may read this blob
//!   _manifests/revisions/<alg>/<hex>/link         a manifest of the repository (bytes under blobs/)
//!   _manifests/tags/<tag>/current/link            the manifest the tag points to now
//!   _manifests/tags/<tag>/index/<alg>/<hex>/link  every manifest the tag ever pointed to (not read)
//!   _uploads/<id>/                                uploads in progress (not read)
//! ```
//!
//! A deleted tag is a removed `tags/<tag>/` directory and a deleted manifest a removed revision link, so
//! what is absent stays absent. Blob bytes outlive both until registry:2's own garbage collection.
//!
//! [`Registry2Tree`] is the reading: [`fs::FsRegistry2Tree`] on a filesystem, `s3::S3Registry2Tree`
//! (`S3BlobStore::registry2_tree`) in a bucket. [`fallback::WithRegistry2`]
//! is a [`BlobStore`](crate::BlobStore) that reads a blob from the tree when its own layout lacks it, so
//! adopted images are served without a copy of their bytes.

use std::ops::Range;

use bytes::Bytes;
use oci::Digest;

use crate::{BlobReader, Result};

pub mod fallback;
pub mod fs;

/// Where registry:2's tree starts under its `rootdirectory` (fs) or its S3 `rootdirectory` prefix.
pub const TREE: &str = "docker/registry/v2";

/// An entry of a directory of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// A directory (on S3: a common prefix), else a file.
    pub dir: bool,
}

/// Read-only access to a registry:2 tree. Paths are relative to [`TREE`], `/`-separated, without a
/// leading `/`; the caller builds them from names it read from the tree itself or from parsed digests
/// and repository names, and an implementation refuses a path with a `..` or empty component anyway.
#[async_trait::async_trait]
pub trait Registry2Tree: Send + Sync + 'static {
    /// The entries of directory `path`, sorted by name; empty when there is no such directory.
    async fn list(&self, path: &str) -> Result<Vec<Entry>>;

    /// The bytes of the file `path`, `None` when there is none. A file larger than `limit` bytes is an
    /// error, not read (links are a few dozen bytes; a manifest a few KiB).
    async fn read_small(&self, path: &str, limit: u64) -> Result<Option<Bytes>>;

    /// The size of the blob `digest` (`blobs/<alg>/<2>/<hex>/data`), `None` when it has no bytes.
    async fn stat_blob(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Streams the blob `digest`, or `range` of it, as `BlobStore::read` does.
    async fn read_blob(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<BlobReader>>;

    /// Whether the tree is there at all (its `repositories/` or `blobs/`): when it is not, there is
    /// nothing to adopt and no blob to fall back to.
    async fn exists(&self) -> Result<bool>;
}

/// `blobs/<alg>/<first 2 hex>/<hex>/data`: where the tree keeps the bytes of `digest`.
pub fn blob_data_path(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("blobs/{}/{}/{hex}/data", digest.algorithm(), &hex[..2])
}

/// Whether `path` is one an implementation may read: relative, no empty, `.` or `..` component.
pub fn is_confined(path: &str) -> bool {
    path.split('/')
        .all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths_fan_out_by_the_first_two_hex_digits() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            blob_data_path(&d),
            "blobs/sha256/e3/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/data"
        );
    }

    #[test]
    fn paths_stay_in_the_tree() {
        assert!(is_confined("repositories/a/b/_layers"));
        for bad in ["", "/etc", "a//b", "a/../b", "..", "a/.", "a/"] {
            assert!(!is_confined(bad), "{bad:?}");
        }
    }
}
