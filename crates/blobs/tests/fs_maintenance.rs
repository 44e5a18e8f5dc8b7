//! Filesystem housekeeping as it shows on disk: which files of `tmp/` a purge removes (stale ones only,
//! and none in a dry run), and that the health check notices a broken layout.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_blobs::BlobStore;
use berth_blobs::fs::FsBlobStore;
use tempfile::TempDir;

fn open(dir: &TempDir) -> FsBlobStore {
    FsBlobStore::open(dir.path().join("root")).expect("open the store")
}

/// Creates `path` with a modification time `age` in the past.
fn file_aged(path: &Path, age: Duration) -> io::Result<()> {
    let f = File::create(path)?;
    f.set_modified(SystemTime::now() - age)?;
    Ok(())
}

#[tokio::test]
async fn purge_removes_only_stale_temporary_files() -> io::Result<()> {
    let dir = TempDir::new()?;
    let store = open(&dir);
    let tmp = store.root().join("tmp");
    let day = Duration::from_secs(24 * 3600);
    file_aged(&tmp.join("stale"), 2 * day)?;
    file_aged(&tmp.join("fresh"), Duration::ZERO)?;
    fs::create_dir(tmp.join("a-directory"))?;
    file_aged(&store.root().join("uploads").join("old-upload"), 2 * day)?;
    let cutoff = SystemTime::now() - day;

    let dry = store
        .purge_temporary(cutoff, true)
        .await
        .map_err(io::Error::other)?;
    assert_eq!(dry, ["tmp/stale"]);
    assert!(tmp.join("stale").exists(), "a dry run removes nothing");

    let purged = store
        .purge_temporary(cutoff, false)
        .await
        .map_err(io::Error::other)?;
    assert_eq!(purged, ["tmp/stale"]);
    assert!(!tmp.join("stale").exists());
    assert!(
        tmp.join("fresh").exists(),
        "a fresh file may belong to a commit in progress"
    );
    assert!(tmp.join("a-directory").is_dir(), "not a file of ours");
    assert!(
        store.root().join("uploads/old-upload").exists(),
        "upload bytes are the registry's to remove, by id"
    );

    let again = store
        .purge_temporary(cutoff, false)
        .await
        .map_err(io::Error::other)?;
    assert!(again.is_empty(), "{again:?}");
    Ok(())
}

#[tokio::test]
async fn check_fails_when_the_layout_is_broken() -> io::Result<()> {
    let dir = TempDir::new()?;
    let store = open(&dir);
    assert!(store.check().await.is_ok());

    fs::remove_dir(store.root().join("tmp"))?;
    assert!(store.check().await.is_err(), "tmp/ is missing");
    File::create(store.root().join("tmp"))?;
    assert!(store.check().await.is_err(), "tmp/ is a file");
    fs::remove_file(store.root().join("tmp"))?;
    fs::create_dir(store.root().join("tmp"))?;
    assert!(store.check().await.is_ok(), "repaired");

    fs::remove_dir_all(store.root())?;
    assert!(store.check().await.is_err(), "the root is gone");
    Ok(())
}
