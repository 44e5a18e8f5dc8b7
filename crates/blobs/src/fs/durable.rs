//! The few filesystem moves that make a change survive a crash: fsync a directory after an entry in it
//! changed, create directories so that their own entries are durable, and publish a file by rename.
//!
//! Blocking code: callers run it inside `spawn_blocking`.
//!
//! Why directories too: on Linux a file's fsync makes its bytes durable, but the name that points at
//! it lives in the parent directory, which must be fsynced separately for the rename (or creation) to
//! survive a power loss.

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// Makes the entries of `dir` (creations, renames, removals) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing ancestors, fsyncing the parent of each directory it creates so the new
/// entries survive a crash. Directories that already exist are left alone; losing a creation race to
/// another process or task is fine.
pub(super) fn create_dir_durable(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", dir.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let parent = dir.parent().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} has no parent", dir.display()),
        )
    })?;
    // Recursion depth is bounded by the number of missing ancestors (at most the layout's depth).
    create_dir_durable(parent)?;
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(parent),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether a regular file exists at `path`.
pub(super) fn file_exists(path: &Path) -> io::Result<bool> {
    match fs::metadata(path) {
        Ok(m) => Ok(m.is_file()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the file at `path`. Returns whether it existed.
pub(super) fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_missing_ancestors_and_tolerates_existing_ones() -> io::Result<()> {
        let tmp = tempfile::TempDir::new()?;
        let deep = tmp.path().join("a/b/c");
        create_dir_durable(&deep)?;
        assert!(deep.is_dir());
        // Second call: already there, still fine.
        create_dir_durable(&deep)?;
        Ok(())
    }

    #[test]
    fn refuses_a_file_in_the_way() -> io::Result<()> {
        let tmp = tempfile::TempDir::new()?;
        let f = tmp.path().join("f");
        fs::write(&f, b"x")?;
        assert!(create_dir_durable(&f).is_err());
        assert!(create_dir_durable(&f.join("below")).is_err());
        Ok(())
    }

    #[test]
    fn remove_reports_whether_it_existed() -> io::Result<()> {
        let tmp = tempfile::TempDir::new()?;
        let f = tmp.path().join("f");
        fs::write(&f, b"x")?;
        assert!(file_exists(&f)?);
        assert!(remove_if_exists(&f)?);
        assert!(!remove_if_exists(&f)?);
        assert!(!file_exists(&f)?);
        assert!(!file_exists(tmp.path())?, "a directory is not a blob");
        Ok(())
    }
}
