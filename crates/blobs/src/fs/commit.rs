//! Publishing an upload as a committed blob: the one step where a blob becomes visible, so the one
//! place where the crash-safety invariant is enforced.
//!
//! Architecture invariant: a file appears under `blobs/` only by `rename(2)` of a file whose bytes were
//! fsynced first, and the rename is made durable by fsyncing the directory that holds it. A crash before
//! the rename leaves the blob absent; after it, whole.
//!
//! The upload file is renamed while its lock (see [`super::lock`]) is held, so no straggling write of an
//! abandoned `upload_write` can land in it once it is a blob.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use oci::Digest;

use super::durable::{create_dir_durable, file_exists, remove_if_exists, sync_dir};
use super::lock::{Locked, lock};
use super::{Layout, blocking};
use crate::{Error, Result, UploadId};

/// [`crate::BlobStore::upload_commit`] for the filesystem.
pub(super) async fn upload_commit(
    layout: &Layout,
    id: &UploadId,
    len: u64,
    digest: &Digest,
) -> Result<()> {
    let target = Target {
        dest: layout.blob_path(digest),
        fanout: layout.fanout_dir(digest),
        id: id.clone(),
        len,
    };
    let upload = layout.upload_path(id);
    let tmp = layout.tmp_path();

    let (target, source) = {
        let upload = upload.clone();
        blocking(move || {
            let source = open_source(&target, &upload, tmp);
            (target, source)
        })
        .await?
    };
    match source? {
        Source::Done => Ok(()),
        Source::Empty(tmp, file) => {
            blocking(move || {
                let published = target.publish(file, &tmp);
                if published.is_err() {
                    // Our own temporary file: nobody else will clean it up.
                    if let Err(e) = fs::remove_file(&tmp) {
                        tracing::warn!(path = %tmp.display(), error = %e, "leaving a temporary file");
                    }
                }
                published
            })
            .await?
        }
        Source::Upload(file) => match lock(file, upload.clone()).await? {
            Locked::Held(file) => blocking(move || target.publish(file, &upload)).await?,
            // A concurrent commit of this very upload got there first, or it was deleted meanwhile.
            Locked::Moved => blocking(move || target.already_there()).await?,
        },
    }
}

/// Where a commit goes, and what it must check.
struct Target {
    dest: PathBuf,
    fanout: PathBuf,
    id: UploadId,
    len: u64,
}

/// What a commit publishes.
enum Source {
    /// Nothing to do: the blob already exists (content addressing makes its bytes ours).
    Done,
    /// The upload file, not yet locked.
    Upload(File),
    /// A fresh empty temporary file, for `len == 0` without an upload.
    Empty(PathBuf, File),
}

fn open_source(target: &Target, upload: &Path, tmp: PathBuf) -> Result<Source> {
    if file_exists(&target.dest)? {
        // Still fsync the directory, in case the commit that put the blob there has not done so yet.
        sync_dir(&target.fanout)?;
        remove_if_exists(upload)?;
        return Ok(Source::Done);
    }
    match OpenOptions::new().write(true).open(upload) {
        Ok(file) => Ok(Source::Upload(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound && target.len == 0 => {
            // The empty blob needs no upload bytes: publish a new empty file the same careful way.
            let file = File::create_new(&tmp)?;
            Ok(Source::Empty(tmp, file))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            target.already_there().map(|()| Source::Done)
        }
        Err(e) => Err(e.into()),
    }
}

impl Target {
    /// Cuts `file` (at `src`) to `len` bytes, makes it durable, and renames it into place. `file` stays
    /// open (and so locked, for an upload) until the rename is done.
    fn publish(&self, file: File, src: &Path) -> Result<()> {
        let have = file.metadata()?.len();
        if have < self.len {
            return Err(Error::UploadNotFound(self.id.clone()));
        }
        if have > self.len {
            file.set_len(self.len)?;
        }
        file.sync_all()?;

        create_dir_durable(&self.fanout)?;
        match fs::rename(src, &self.dest) {
            Ok(()) => {}
            // The upload was deleted between lock and rename.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.already_there(),
            Err(e) => return Err(e.into()),
        }
        drop(file);
        sync_dir(&self.fanout)?;
        Ok(())
    }

    /// Success if the blob exists (made durable), else `UploadNotFound`: for an upload that is gone.
    fn already_there(&self) -> Result<()> {
        if file_exists(&self.dest)? {
            sync_dir(&self.fanout)?;
            Ok(())
        } else {
            Err(Error::UploadNotFound(self.id.clone()))
        }
    }
}
