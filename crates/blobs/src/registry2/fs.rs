//! registry:2's tree on a filesystem: `<rootdirectory>/docker/registry/v2/`, opened read-only. Blob
//! bytes are read with the filesystem backend's own reader, so an adopted blob is served like one of
//! berth's (zero-copy included).

use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use oci::Digest;

use super::{Entry, Registry2Tree, TREE, blob_data_path, is_confined};
use crate::fs::{blocking, read_file, stat_file};
use crate::{BlobReader, Result};

/// registry:2's tree under the filesystem root `root` (registry:2's `rootdirectory`).
#[derive(Clone, Debug)]
pub struct FsRegistry2Tree {
    base: PathBuf,
}

impl FsRegistry2Tree {
    /// The tree under `root`; opening reads nothing (see [`Registry2Tree::exists`]).
    pub fn new(root: &Path) -> FsRegistry2Tree {
        FsRegistry2Tree {
            base: root.join(TREE),
        }
    }

    fn path(&self, relative: &str) -> io::Result<PathBuf> {
        if !is_confined(relative) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a path inside registry:2's tree: {relative:?}"),
            ));
        }
        Ok(self.base.join(relative))
    }
}

#[async_trait::async_trait]
impl Registry2Tree for FsRegistry2Tree {
    async fn list(&self, path: &str) -> Result<Vec<Entry>> {
        let dir = self.path(path)?;
        let entries = blocking(move || -> io::Result<Vec<Entry>> {
            let read = match std::fs::read_dir(&dir) {
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut entries = Vec::new();
            for entry in read {
                let entry = entry?;
                // Names registry:2 wrote are ASCII; anything else cannot be one of its names.
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                // Follows symlinks, as registry:2's driver does (a volume mounted inside the tree).
                let dir = std::fs::metadata(entry.path())?.is_dir();
                entries.push(Entry { name, dir });
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(entries)
        })
        .await??;
        Ok(entries)
    }

    async fn read_small(&self, path: &str, limit: u64) -> Result<Option<Bytes>> {
        let file = self.path(path)?;
        let bytes = blocking(move || -> io::Result<Option<Bytes>> {
            let f = match std::fs::File::open(&file) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let size = f.metadata()?.len();
            if size > limit {
                return Err(io::Error::other(format!(
                    "{} holds {size} bytes, more than the {limit} expected",
                    file.display()
                )));
            }
            let mut buf = Vec::with_capacity(usize::try_from(size).map_err(io::Error::other)?);
            f.take(limit).read_to_end(&mut buf)?;
            Ok(Some(Bytes::from(buf)))
        })
        .await??;
        Ok(bytes)
    }

    async fn stat_blob(&self, digest: &Digest) -> Result<Option<u64>> {
        stat_file(self.path(&blob_data_path(digest))?).await
    }

    async fn read_blob(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<BlobReader>> {
        read_file(self.path(&blob_data_path(digest))?, range).await
    }

    async fn exists(&self) -> Result<bool> {
        let base = self.base.clone();
        let found =
            blocking(move || base.join("repositories").is_dir() || base.join("blobs").is_dir())
                .await?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_a_tree_made_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let tree = FsRegistry2Tree::new(dir.path());
        let root = dir.path().join(TREE);
        let put = |relative: String, bytes: Vec<u8>| {
            let path = root.join(relative);
            async move {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
        };
        crate::testsuite::registry2_tree_reads_a_tree_made_by_hand(&tree, put).await;
    }
}
