//! Publishing an upload as a committed blob: the one step where a blob becomes visible, so the one
//! place where the crash-safety invariant is enforced.
//!
//! Architecture invariant: a file appears under `blobs/` only by `rename(2)` of a file whose bytes were
//! fsynced first, and the rename is made durable by fsyncing the directory that holds it. A crash before
//! the rename leaves the blob absent; after it, whole.
//!
//! Blocking code: the caller runs it inside `spawn_blocking`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use oci::Digest;

use super::Layout;
use super::durable::{create_dir_durable, file_exists, remove_if_exists, sync_dir};
use crate::{Error, Result, UploadId};

/// [`crate::BlobStore::upload_commit`] for the filesystem.
pub(super) fn upload_commit(
    layout: &Layout,
    id: &UploadId,
    len: u64,
    digest: &Digest,
) -> Result<()> {
    let dest = layout.blob_path(digest);
    let fanout = layout.fanout_dir(digest);
    let upload = layout.upload_path(id);

    if file_exists(&dest)? {
        // Content addressing: the bytes there are the bytes we hold. Still fsync the directory, in
        // case the commit that put them there has not done so yet.
        sync_dir(&fanout)?;
        remove_if_exists(&upload)?;
        return Ok(());
    }

    let (src, file) = match OpenOptions::new().write(true).open(&upload) {
        Ok(file) => (upload, file),
        Err(e) if e.kind() == io::ErrorKind::NotFound && len == 0 => {
            // The empty blob needs no upload bytes: publish a fresh empty file the same careful way.
            let tmp = layout.tmp_path();
            let file = File::create_new(&tmp)?;
            (tmp, file)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Perhaps a concurrent commit of this very upload won the race and moved it into place.
            return if file_exists(&dest)? {
                sync_dir(&fanout).map_err(Error::from)
            } else {
                Err(Error::UploadNotFound(id.clone()))
            };
        }
        Err(e) => return Err(e.into()),
    };

    let published = publish(file, &src, len, id, &fanout, &dest);
    if published.is_err() && src.starts_with(layout.tmp_dir()) {
        // Our own temporary file: nobody else will clean it up. Best effort, the first error matters.
        let _ = fs::remove_file(&src);
    }
    published
}

/// Cuts `file` (at `src`) to `len` bytes, makes it durable, and renames it to `dest`.
fn publish(
    file: File,
    src: &Path,
    len: u64,
    id: &UploadId,
    fanout: &Path,
    dest: &Path,
) -> Result<()> {
    let have = file.metadata()?.len();
    if have < len {
        return Err(Error::UploadNotFound(id.clone()));
    }
    if have > len {
        file.set_len(len)?;
    }
    file.sync_all()?;
    drop(file);

    create_dir_durable(fanout)?;
    match fs::rename(src, dest) {
        Ok(()) => {}
        // The upload vanished between open and rename: a concurrent commit of the same upload took it.
        Err(e) if e.kind() == io::ErrorKind::NotFound && file_exists(dest)? => {}
        Err(e) => return Err(e.into()),
    }
    sync_dir(fanout)?;
    Ok(())
}
