//! The filesystem backend: blobs and uploads as plain files under one root directory, for single-node
//! deployments and for tests.
//!
//! The whole layout, the only place it is drawn (paths are built in `fs/layout.rs`):
//!
//! ```text
//! <root>/
//! ├── blobs/                      committed blobs, content-addressed; appear only by rename (see commit)
//! │   ├── sha256/
//! │   │   └── e3/                 fan-out: the first two hex digits of the digest
//! │   │       └── e3b0c442...b855 the blob's bytes, named by the full hex digest
//! │   └── sha512/
//! │       └── ab/
//! │           └── ab12...         (128 hex digits)
//! ├── uploads/
//! │   └── <upload id>             bytes an upload holds so far; renamed into blobs/ on commit
//! ├── tmp/
//! │   └── <random>                temporary files (the empty blob before it is published)
//! │                               (left behind only by a crash; purged by age, see maintenance)
//! └── quarantine/
//!     └── sha256-e3b0...b855      blobs whose bytes failed verification (`berth scrub --repair`),
//!                                 moved out of blobs/ so they are never served; for an operator
//! ```
//!
//! Everything sits on one filesystem, so moving a file from `uploads/` or `tmp/` into `blobs/` is an
//! atomic `rename(2)`. Durability rules (enforced in `fs/commit.rs` and `fs/durable.rs`): a file's bytes are
//! fsynced before it is renamed into `blobs/`, and every directory whose entries change on the way to a
//! visible blob (the fan-out directory, and the parent of any directory created) is fsynced after.
//!
//! Several processes may share one root: nothing here keeps in-memory state about the files, and every
//! race between them (two commits of one digest, a delete during a read) resolves through the
//! filesystem's own atomic operations. Writes to and the commit of one upload are serialised by an
//! advisory lock on the upload file (`fs/lock.rs`), so an abandoned write cannot land after its retry.
//!
//! Unix only: positioned writes (`pwrite`) and directory fsync are what the design relies on.

mod commit;
mod durable;
mod layout;
mod list;
mod lock;
mod maintenance;
mod read;
mod write;

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oci::Digest;

use self::durable::{create_dir_durable, remove_if_exists, sync_dir};
use self::layout::{ALGORITHMS, Layout};
use self::read::FileChunks;
use crate::{BlobReader, BlobStore, ByteStream, Error, FileRange, ListedBlob, Result, UploadId};

pub use self::read::READ_BUF;
pub use self::write::WRITE_BUF;

/// A [`BlobStore`] on a local (or any POSIX) filesystem. Cheap to clone; clones share the root.
#[derive(Clone, Debug)]
pub struct FsBlobStore {
    layout: Layout,
}

impl FsBlobStore {
    /// Opens the store rooted at `root`, creating the root and the layout's directories as needed.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FsBlobStore> {
        let root = std::path::absolute(root.into())?;
        create_dir_durable(&root)?;
        // Canonical, so that paths stay valid whatever the working directory and symlinks do later.
        let layout = Layout::new(root.canonicalize()?);
        for algorithm in ALGORITHMS {
            create_dir_durable(&layout.algorithm_dir(algorithm))?;
        }
        create_dir_durable(&layout.uploads_dir())?;
        create_dir_durable(&layout.tmp_dir())?;
        Ok(FsBlobStore { layout })
    }

    /// The (canonical) root directory.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        stat_file(self.layout.blob_path(digest)).await
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<Option<BlobReader>> {
        read_file(self.layout.blob_path(digest), range).await
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        let path = self.layout.blob_path(digest);
        let fanout = self.layout.fanout_dir(digest);
        let existed = blocking(move || {
            let existed = remove_if_exists(&path)?;
            if existed {
                // Make the removal stick: a blob that comes back after a crash would confuse GC.
                sync_dir(&fanout)?;
            }
            Ok::<_, io::Error>(existed)
        })
        .await??;
        Ok(existed)
    }

    async fn list_blobs(&self, after: Option<&Digest>, limit: usize) -> Result<Vec<ListedBlob>> {
        let (layout, after) = (self.layout.clone(), after.cloned());
        let page = blocking(move || list::list_blobs(&layout, after.as_ref(), limit)).await??;
        Ok(page)
    }

    async fn quarantine(&self, digest: &Digest) -> Result<bool> {
        let (layout, digest) = (self.layout.clone(), digest.clone());
        let moved = blocking(move || maintenance::quarantine(&layout, &digest)).await??;
        Ok(moved)
    }

    async fn upload_write(&self, id: &UploadId, offset: u64, data: ByteStream) -> Result<u64> {
        write::upload_write(&self.layout, id, offset, data, write::Sync::Durable).await
    }

    async fn upload_write_unsynced(
        &self,
        id: &UploadId,
        offset: u64,
        data: ByteStream,
    ) -> Result<u64> {
        write::upload_write(&self.layout, id, offset, data, write::Sync::Readable).await
    }

    /// `UploadNotFound` also when the upload holds fewer than `len` bytes, as in `upload_commit`.
    async fn upload_read(&self, id: &UploadId, len: u64) -> Result<ByteStream> {
        self.upload_read_from(id, 0, len).await
    }

    /// Seeks to `from` instead of reading what the caller already has.
    async fn upload_read_from(&self, id: &UploadId, from: u64, len: u64) -> Result<ByteStream> {
        let path = self.layout.upload_path(id);
        let owned_id = id.clone();
        let file = blocking(move || -> Result<File> {
            let mut file = match OpenOptions::new().read(true).open(path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::UploadNotFound(owned_id));
                }
                Err(e) => return Err(e.into()),
            };
            if file.metadata()?.len() < len {
                return Err(Error::UploadNotFound(owned_id));
            }
            file.seek(SeekFrom::Start(from.min(len)))?;
            Ok(file)
        })
        .await??;
        Ok(Box::pin(FileChunks::new(
            Arc::new(file),
            len.saturating_sub(from),
        )))
    }

    async fn upload_commit(&self, id: &UploadId, len: u64, digest: &Digest) -> Result<()> {
        commit::upload_commit(&self.layout, id, len, digest).await
    }

    async fn upload_delete(&self, id: &UploadId) -> Result<()> {
        let path = self.layout.upload_path(id);
        // No directory fsync: an upload that reappears after a crash is only garbage, never a blob.
        blocking(move || remove_if_exists(&path)).await??;
        Ok(())
    }

    async fn purge_temporary(&self, older_than: SystemTime, dry_run: bool) -> Result<Vec<String>> {
        let layout = self.layout.clone();
        let purged =
            blocking(move || maintenance::purge_temporary(&layout, older_than, dry_run)).await??;
        Ok(purged)
    }

    async fn check(&self) -> Result<()> {
        let layout = self.layout.clone();
        blocking(move || maintenance::check(&layout)).await??;
        Ok(())
    }
    /// No URL to hand out: every byte is served by this process (zero-copy where it can).
    async fn redirect_url(&self, _digest: &Digest, _expires: Duration) -> Result<Option<String>> {
        Ok(None)
    }
}

/// The size of the blob whose bytes are the file at `path`, `None` when there is no such file. Shared
/// with the reader of registry:2's tree (`crate::registry2::fs`), whose blobs are files too.
pub(crate) async fn stat_file(path: PathBuf) -> Result<Option<u64>> {
    let size = blocking(move || match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(m.len())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
    .await??;
    Ok(size)
}

/// Reads the blob whose bytes are the file at `path` (or `range` of it), streamed and as the open file
/// for zero-copy; `None` when there is no such file. Shared as [`stat_file`] is.
pub(crate) async fn read_file(
    path: PathBuf,
    range: Option<Range<u64>>,
) -> Result<Option<BlobReader>> {
    let opened = blocking(move || -> Result<Option<(File, u64, Range<u64>)>> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata()?.len();
        let wanted = satisfiable(range, size)?;
        file.seek(SeekFrom::Start(wanted.start))?;
        Ok(Some((file, size, wanted)))
    })
    .await??;
    Ok(opened.map(|(file, size, range)| {
        let file = Arc::new(file);
        BlobReader {
            size,
            body: Box::pin(FileChunks::new(Arc::clone(&file), range.end - range.start)),
            file: Some(FileRange {
                file,
                offset: range.start,
                len: range.end - range.start,
            }),
        }
    }))
}

/// The part of a blob of `size` bytes that `read` should return: all of it, or `range` if that is
/// non-empty and lies within the blob.
fn satisfiable(range: Option<Range<u64>>, size: u64) -> Result<Range<u64>> {
    match range {
        None => Ok(0..size),
        Some(r) if r.start < r.end && r.end <= size => Ok(r),
        Some(range) => Err(Error::RangeNotSatisfiable { range, size }),
    }
}

/// Runs blocking filesystem code off the async workers.
pub(crate) async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(join_error)
}

/// A blocking task that panicked or was cancelled (at runtime shutdown) is a storage failure.
fn join_error(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("blocking filesystem task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::reversed_empty_ranges)] // An inverted range is one of the inputs under test.
    fn satisfiable_ranges() {
        let ok = |r: Option<Range<u64>>, size| satisfiable(r, size).ok();
        assert_eq!(ok(None, 10), Some(0..10));
        assert_eq!(ok(None, 0), Some(0..0));
        assert_eq!(ok(Some(0..10), 10), Some(0..10));
        assert_eq!(ok(Some(9..10), 10), Some(9..10));
        assert_eq!(ok(Some(3..4), 10), Some(3..4));
        for (r, size) in [(5..5, 10), (6..5, 10), (0..11, 10), (10..11, 10), (0..1, 0)] {
            match satisfiable(Some(r.clone()), size) {
                Err(Error::RangeNotSatisfiable { range, size: s }) => {
                    assert_eq!((range, s), (r, size));
                }
                other => panic!("{r:?} of {size}: {other:?}"),
            }
        }
    }
}
