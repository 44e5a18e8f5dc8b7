//! Filesystem-specific behaviour that the shared suite cannot see: what lies on disk at each step, that
//! stray files never pose as blobs, that uploads survive reopening the store, and that nothing is ever
//! written outside the root.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::io;
use std::path::{Path, PathBuf};

use berth_blobs::fs::{FsBlobStore, WRITE_BUF};
use berth_blobs::testsuite::{
    Pattern, assert_same, chunked, chunks, failing, pattern, read_all, read_upload,
};
use berth_blobs::{BlobStore, Error, UploadId};
use bytes::Bytes;
use futures_util::StreamExt;
use oci::Digest;
use tempfile::TempDir;

/// Every regular file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                todo.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn open(dir: &TempDir) -> FsBlobStore {
    FsBlobStore::open(dir.path().join("root")).expect("open the store")
}

#[tokio::test]
async fn nothing_under_blobs_until_commit() -> io::Result<()> {
    let dir = TempDir::new()?;
    let store = open(&dir);
    let root = store.root().to_path_buf();
    let data = pattern(1, 0..3 * WRITE_BUF as u64 + 11);
    let digest = Digest::sha256_of(&data);
    let id = UploadId::random();

    let half = data.len() / 2;
    let len = store
        .upload_write(&id, 0, chunked(&data[..half], 10_000))
        .await;
    assert_eq!(len.ok(), Some(half as u64));
    assert!(
        files_under(&root.join("blobs"))?.is_empty(),
        "after the first write"
    );
    let len = store
        .upload_write(&id, half as u64, chunked(&data[half..], 70_000))
        .await;
    assert_eq!(len.ok(), Some(data.len() as u64));
    assert!(
        files_under(&root.join("blobs"))?.is_empty(),
        "after the last write"
    );
    assert_eq!(
        files_under(&root.join("uploads"))?,
        vec![root.join("uploads").join(id.as_str())]
    );

    assert!(
        store
            .upload_commit(&id, data.len() as u64, &digest)
            .await
            .is_ok()
    );
    let blob = root
        .join("blobs/sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex());
    assert_eq!(files_under(&root.join("blobs"))?, vec![blob.clone()]);
    assert_same(&std::fs::read(&blob)?, &data, "the blob file");
    assert!(
        files_under(&root.join("uploads"))?.is_empty(),
        "upload moved, not copied"
    );
    assert!(files_under(&root.join("tmp"))?.is_empty());
    Ok(())
}

#[tokio::test]
async fn stray_files_do_not_make_a_blob_visible() -> io::Result<()> {
    let dir = TempDir::new()?;
    let store = open(&dir);
    let root = store.root().to_path_buf();
    let data = pattern(2, 0..4096);
    let digest = Digest::sha256_of(&data);
    // What a crash could leave behind: a temporary file, upload bytes, an empty fan-out directory.
    std::fs::write(root.join("tmp").join(digest.hex()), &data)?;
    std::fs::write(
        root.join("uploads").join(UploadId::random().as_str()),
        &data,
    )?;
    std::fs::create_dir(root.join("blobs/sha256").join(&digest.hex()[..2]))?;

    for store in [store, open(&dir)] {
        assert!(matches!(store.stat(&digest).await, Ok(None)));
        assert!(matches!(store.read(&digest, None).await, Ok(None)));
        assert_eq!(store.delete(&digest).await.ok(), Some(false));
    }
    Ok(())
}

#[tokio::test]
async fn a_directory_where_a_blob_would_be_is_not_a_blob() -> io::Result<()> {
    let dir = TempDir::new()?;
    let store = open(&dir);
    let digest = Digest::sha256_of(b"dir");
    let fanout = store.root().join("blobs/sha256").join(&digest.hex()[..2]);
    std::fs::create_dir_all(fanout.join(digest.hex()))?;
    assert!(matches!(store.stat(&digest).await, Ok(None)));
    Ok(())
}

#[tokio::test]
async fn uploads_survive_reopening_the_store() -> io::Result<()> {
    let dir = TempDir::new()?;
    let data = pattern(3, 0..500_000);
    let id = UploadId::random();
    {
        let store = open(&dir);
        let len = store
            .upload_write(&id, 0, chunked(&data[..200_000], 4096))
            .await;
        assert_eq!(len.ok(), Some(200_000));
    }
    let store = open(&dir);
    let len = store
        .upload_write(&id, 200_000, chunked(&data[200_000..], 4096))
        .await;
    assert_eq!(len.ok(), Some(500_000));
    let digest = Digest::sha256_of(&data);
    assert!(store.upload_commit(&id, 500_000, &digest).await.is_ok());
    assert_same(
        &read_all(&open(&dir), &digest).await,
        &data,
        "blob seen after reopening",
    );
    Ok(())
}

#[tokio::test]
async fn open_creates_the_layout_and_refuses_a_file() -> io::Result<()> {
    let dir = TempDir::new()?;
    let nested = dir.path().join("a/b/root");
    let store = FsBlobStore::open(&nested)?;
    for sub in ["blobs/sha256", "blobs/sha512", "uploads", "tmp"] {
        assert!(nested.join(sub).is_dir(), "{sub}");
    }
    assert_eq!(store.root(), nested.canonicalize()?);
    // Opening again keeps what is there.
    let digest = berth_blobs::testsuite::put(&store, b"kept").await;
    assert_eq!(
        FsBlobStore::open(&nested)?.stat(&digest).await.ok(),
        Some(Some(4))
    );

    let file = dir.path().join("file");
    std::fs::write(&file, b"x")?;
    assert!(FsBlobStore::open(&file).is_err());
    Ok(())
}

#[tokio::test]
async fn everything_stays_under_the_root() -> io::Result<()> {
    let dir = TempDir::new()?;
    let store = open(&dir);
    let root = store.root().to_path_buf();
    let a = berth_blobs::testsuite::put(&store, &pattern(4, 0..10_000)).await;
    assert!(
        store
            .upload_commit(&UploadId::random(), 0, &Digest::sha256_of(b""))
            .await
            .is_ok()
    );
    let id = UploadId::random();
    let _ = store.upload_write(&id, 0, chunked(b"abc", 1)).await;
    let _ = store
        .upload_write(&id, 2, failing([Bytes::from_static(b"zz")]))
        .await;
    let _ = store
        .upload_commit(&id, 10, &Digest::sha256_of(b"nope"))
        .await;
    let _ = store.delete(&a).await;

    let top: Vec<_> = std::fs::read_dir(dir.path())?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    assert_eq!(
        top,
        vec![std::ffi::OsString::from("root")],
        "nothing beside the root"
    );
    for f in files_under(&root)? {
        let rel = f.strip_prefix(&root).map_err(io::Error::other)?;
        let top = rel.components().next().map(|c| c.as_os_str().to_owned());
        assert!(
            matches!(
                top.as_ref().and_then(|t| t.to_str()),
                Some("blobs" | "uploads" | "tmp")
            ),
            "{f:?}"
        );
    }
    assert!(
        files_under(&root.join("tmp"))?.is_empty(),
        "no temporary file left behind"
    );
    Ok(())
}

#[tokio::test]
async fn a_failed_commit_keeps_the_upload() -> io::Result<()> {
    let dir = TempDir::new()?;
    let store = open(&dir);
    let data = pattern(5, 0..1000);
    let id = UploadId::random();
    assert_eq!(
        store.upload_write(&id, 0, chunked(&data, 100)).await.ok(),
        Some(1000)
    );
    let r = store
        .upload_commit(&id, 1001, &Digest::sha256_of(b"x"))
        .await;
    assert!(matches!(r, Err(Error::UploadNotFound(_))), "{r:?}");
    assert_same(
        &read_upload(&store, &id, 1000).await,
        &data,
        "upload intact",
    );
    Ok(())
}

#[tokio::test]
async fn the_upload_file_is_exactly_as_long_as_reported() -> io::Result<()> {
    let dir = TempDir::new()?;
    let store = open(&dir);
    let id = UploadId::random();
    let path = store.root().join("uploads").join(id.as_str());
    let on_disk = || std::fs::metadata(&path).map(|m| m.len());

    let a = pattern(6, 0..100_000);
    assert_eq!(
        store.upload_write(&id, 0, chunked(&a, 9000)).await.ok(),
        Some(100_000)
    );
    assert_eq!(on_disk()?, 100_000);
    // A failed body leaves bytes past the recorded offset...
    let junk = vec![Bytes::from(vec![7u8; 3 * WRITE_BUF])];
    assert!(
        store
            .upload_write(&id, 100_000, failing(junk))
            .await
            .is_err()
    );
    assert!(
        on_disk()? > 100_000,
        "the big chunk was written before the failure"
    );
    // ...which the next write at the recorded offset cuts off.
    assert_eq!(
        store.upload_write(&id, 100_000, chunked(b"", 1)).await.ok(),
        Some(100_000)
    );
    assert_eq!(on_disk()?, 100_000);
    assert_same(&read_upload(&store, &id, 100_000).await, &a, "bytes kept");
    Ok(())
}

#[tokio::test]
async fn chunks_around_the_write_buffer_size_keep_their_order() -> io::Result<()> {
    let dir = TempDir::new()?;
    let store = open(&dir);
    let p = Pattern::new(7);
    let sizes = [
        2 * WRITE_BUF + 1,
        10,
        3 * WRITE_BUF,
        1,
        WRITE_BUF - 1,
        WRITE_BUF,
        0,
        5,
    ];
    let mut pos = 0u64;
    let mut parts = Vec::new();
    for n in sizes {
        parts.push(Bytes::from(p.bytes(pos..pos + n as u64)));
        pos += n as u64;
    }
    let id = UploadId::random();
    assert_eq!(
        store.upload_write(&id, 0, chunks(parts)).await.ok(),
        Some(pos)
    );
    let s = store
        .upload_read(&id, pos)
        .await
        .map_err(io::Error::other)?;
    p.assert_stream(s, 0..pos, "upload bytes").await;
    Ok(())
}

#[tokio::test]
async fn a_reader_finishes_after_delete() -> io::Result<()> {
    let dir = TempDir::new()?;
    let store = open(&dir);
    let data = pattern(8, 0..2 * 1024 * 1024 + 1);
    let digest = berth_blobs::testsuite::put(&store, &data).await;
    let reader = store.read(&digest, Some(1..data.len() as u64)).await;
    let mut body = reader
        .ok()
        .flatten()
        .map(|r| r.body)
        .ok_or_else(|| io::Error::other("no blob"))?;
    let mut got = body
        .next()
        .await
        .transpose()?
        .map(|b| b.to_vec())
        .unwrap_or_default();
    assert_eq!(store.delete(&digest).await.ok(), Some(true));
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk?);
    }
    assert_same(&got, &data[1..], "bytes of the deleted blob");
    Ok(())
}

/// Stands in for the last write of an abandoned `upload_write`, still running: it holds the upload
/// file open, and so its lock.
fn straggler(store: &FsBlobStore, id: &UploadId) -> io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(store.root().join("uploads").join(id.as_str()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
    Ok(file)
}

/// Waits for a spawned call, failing the test if it hangs.
async fn finish<T>(task: tokio::task::JoinHandle<T>) -> io::Result<T> {
    tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)
}

const PATIENCE: std::time::Duration = std::time::Duration::from_millis(150);

#[tokio::test]
async fn a_resumed_write_waits_for_a_straggling_write() -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new()?;
    let store = open(&dir);
    let id = UploadId::random();
    assert_eq!(
        store.upload_write(&id, 0, chunked(b"abcdef", 6)).await.ok(),
        Some(6)
    );

    let old = straggler(&store, &id)?;
    let (s, i) = (store.clone(), id.clone());
    let resumed = tokio::spawn(async move { s.upload_write(&i, 3, chunked(b"XYZ", 3)).await });
    tokio::time::sleep(PATIENCE).await;
    assert!(!resumed.is_finished(), "the retry did not wait");
    // The straggler lands late; the retry, still waiting, must cut it off.
    old.write_all_at(b"junkjunk", 3)?;
    drop(old);
    assert_eq!(finish(resumed).await?.ok(), Some(6));
    assert_same(
        &read_upload(&store, &id, 6).await,
        b"abcXYZ",
        "upload after the retry",
    );
    Ok(())
}

#[tokio::test]
async fn a_commit_waits_for_a_straggling_write() -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new()?;
    let store = open(&dir);
    let id = UploadId::random();
    assert_eq!(
        store.upload_write(&id, 0, chunked(b"abcdef", 6)).await.ok(),
        Some(6)
    );
    let digest = Digest::sha256_of(b"abcdef");

    let old = straggler(&store, &id)?;
    let (s, i, d) = (store.clone(), id.clone(), digest.clone());
    let commit = tokio::spawn(async move { s.upload_commit(&i, 6, &d).await });
    tokio::time::sleep(PATIENCE).await;
    assert!(!commit.is_finished(), "the commit did not wait");
    assert!(matches!(store.stat(&digest).await, Ok(None)));
    // Without the wait, this would land in the committed blob.
    old.write_all_at(b"junk", 6)?;
    drop(old);
    assert!(finish(commit).await?.is_ok());
    assert_same(
        &read_all(&store, &digest).await,
        b"abcdef",
        "committed blob",
    );
    Ok(())
}

#[tokio::test]
async fn a_write_waiting_on_an_upload_that_is_deleted_meanwhile_finds_nothing() -> io::Result<()> {
    let dir = TempDir::new()?;
    let store = open(&dir);
    let id = UploadId::random();
    assert_eq!(
        store.upload_write(&id, 0, chunked(b"abcdef", 6)).await.ok(),
        Some(6)
    );

    let old = straggler(&store, &id)?;
    let (s, i) = (store.clone(), id.clone());
    let resumed = tokio::spawn(async move { s.upload_write(&i, 6, chunked(b"gh", 2)).await });
    tokio::time::sleep(PATIENCE).await;
    assert!(store.upload_delete(&id).await.is_ok());
    drop(old);
    let r = finish(resumed).await?;
    assert!(matches!(r, Err(Error::UploadNotFound(_))), "{r:?}");
    Ok(())
}
