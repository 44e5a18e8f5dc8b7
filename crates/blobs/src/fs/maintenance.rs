//! Housekeeping of the filesystem backend: removing temporary files a crash left behind, and the health
//! check. Blocking code: callers run it inside `spawn_blocking`.
//!
//! Why age is enough to know a temporary file is garbage: `tmp/` only ever holds a file for the moments
//! between creating it and renaming it into `blobs/` (see `commit`), so a file untouched for longer than
//! the purge age belongs to a commit that will never finish.

use std::fs;
use std::io;
use std::time::SystemTime;

use super::durable::{create_dir_durable, remove_if_exists, sync_dir};
use super::layout::Layout;

/// Removes (unless `dry_run`) the regular files of `tmp/` last modified before `older_than`; returns their
/// names as `tmp/<name>`. Anything else in `tmp/` is not ours and is left alone.
pub(super) fn purge_temporary(
    layout: &Layout,
    older_than: SystemTime,
    dry_run: bool,
) -> io::Result<Vec<String>> {
    let mut purged = Vec::new();
    let entries = match fs::read_dir(layout.tmp_dir()) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(purged),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        // Not following symlinks: a link in tmp/ is nobody's temporary file.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // Renamed or removed since the listing: a commit finished, nothing to do.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.is_file() || meta.modified()? >= older_than {
            continue;
        }
        if !dry_run && !remove_if_exists(&entry.path())? {
            continue;
        }
        purged.push(format!("tmp/{}", entry.file_name().to_string_lossy()));
    }
    Ok(purged)
}

/// Moves blob `digest` into `quarantine/` (created as needed), durably: a rename on the same
/// filesystem, so the blob leaves `blobs/` at once and whole. Whether it existed.
pub(super) fn quarantine(layout: &Layout, digest: &oci::Digest) -> io::Result<bool> {
    create_dir_durable(&layout.quarantine_dir())?;
    match fs::rename(layout.blob_path(digest), layout.quarantine_path(digest)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    // Both directories changed: a blob that comes back after a crash would be served again.
    sync_dir(&layout.fanout_dir(digest))?;
    sync_dir(&layout.quarantine_dir())?;
    Ok(true)
}

/// Below this many bytes free (for an unprivileged writer), the storage counts as full: a blob write
/// would fail, so readiness fails too, until space is freed.
const FULL_BELOW: u64 = 64 * 1024;

/// The layout's directories are there, are directories, the root can be listed, and its filesystem has
/// room to write.
pub(super) fn check(layout: &Layout) -> io::Result<()> {
    for dir in [
        layout.root().to_path_buf(),
        layout.blobs_dir(),
        layout.uploads_dir(),
        layout.tmp_dir(),
    ] {
        if !fs::metadata(&dir)?.is_dir() {
            return Err(io::Error::other(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
    }
    // Listing proves the permissions still allow reading, which a metadata call does not.
    fs::read_dir(layout.root())?.next().transpose()?;
    let vfs = rustix::fs::statvfs(layout.root())?;
    let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
    if free < FULL_BELOW {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!("no space left on the blob storage ({free} bytes free)"),
        ));
    }
    Ok(())
}
