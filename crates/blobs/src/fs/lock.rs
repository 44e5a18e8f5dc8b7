//! One writer at a time per upload file, across tasks and processes, with an advisory `flock(2)`.
//!
//! Why: a write cannot be cancelled once it runs on a blocking thread. When a request is dropped (the
//! client hung up) its last positioned write may still be running, possibly stalled by the kernel's
//! dirty-page throttling, when the client's retry truncates the upload and writes again, or when the
//! upload is committed. Landing after them, it would corrupt the upload, or even a committed blob (the
//! upload file *becomes* the blob by rename). So `upload_write` and `upload_commit` hold the upload
//! file's lock while they touch it; the lock lives in the open file, which every in-flight write keeps
//! open, so it is released only when the last write is done.
//!
//! Waiting is asynchronous (non-blocking attempts with a short sleep between them): a blocked request
//! holds no thread. After the lock is taken, the path is checked to still name the locked file: the
//! holder before us may have committed (renamed) or deleted the upload.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use super::blocking;

/// The outcome of [`lock`].
#[derive(Debug)]
pub(super) enum Locked {
    /// The lock is held for as long as this file (and any clone of it) stays open.
    Held(File),
    /// The path no longer names the file that was opened: it was committed, deleted, or replaced.
    Moved,
}

/// Longest pause between two attempts. Short: the holder is usually a write finishing its last buffer.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// Takes the exclusive lock on `file`, which was opened at `path`, waiting as long as another holder
/// keeps it.
pub(super) async fn lock(file: File, path: PathBuf) -> io::Result<Locked> {
    let mut file = file;
    let mut backoff = Duration::from_millis(1);
    loop {
        let p = path.clone();
        let (f, attempt) = blocking(move || {
            let attempt = try_lock(&file, &p);
            (file, attempt)
        })
        .await?;
        match attempt? {
            Attempt::Locked => return Ok(Locked::Held(f)),
            Attempt::Moved => return Ok(Locked::Moved),
            Attempt::Busy => {
                file = f;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

enum Attempt {
    Locked,
    Busy,
    Moved,
}

/// One non-blocking attempt, then the check that `path` still names `file`.
fn try_lock(file: &File, path: &Path) -> io::Result<Attempt> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == Errno::WOULDBLOCK => return Ok(Attempt::Busy),
        Err(e) => return Err(e.into()),
    }
    let ours = file.metadata()?;
    match fs::metadata(path) {
        Ok(there) if there.dev() == ours.dev() && there.ino() == ours.ino() => Ok(Attempt::Locked),
        Ok(_) => Ok(Attempt::Moved),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Attempt::Moved),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(l: io::Result<Locked>) -> File {
        match l {
            Ok(Locked::Held(f)) => f,
            other => panic!("want the lock, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_second_locker_waits_until_the_first_file_is_closed() -> io::Result<()> {
        let dir = tempfile::TempDir::new()?;
        let path = dir.path().join("u");
        fs::write(&path, b"x")?;
        let first = held(lock(File::open(&path)?, path.clone()).await);

        let second = tokio::spawn(lock(File::open(&path)?, path.clone()));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!second.is_finished(), "took a lock that was held");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
        held(second);
        Ok(())
    }

    #[tokio::test]
    async fn a_file_renamed_or_deleted_meanwhile_is_reported_moved() -> io::Result<()> {
        let dir = tempfile::TempDir::new()?;
        let path = dir.path().join("u");
        fs::write(&path, b"x")?;
        let renamed = File::open(&path)?;
        fs::rename(&path, dir.path().join("blob"))?;
        assert!(matches!(lock(renamed, path.clone()).await?, Locked::Moved));

        fs::write(&path, b"new")?;
        let replaced = File::open(&path)?;
        fs::remove_file(&path)?;
        fs::write(&path, b"another")?;
        assert!(matches!(lock(replaced, path.clone()).await?, Locked::Moved));
        held(lock(File::open(&path)?, path).await);
        Ok(())
    }
}
