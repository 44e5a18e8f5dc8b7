//! Suite cases about committed blobs: visibility, reads and ranges, commit edge cases, delete.

use std::ops::Range;

use futures_util::StreamExt;
use oci::{Digest, DigestAlgorithm};

use super::data::{assert_same, chunked, collect, pattern, put, read_all};
use crate::{BlobStore, Error, UploadId};

/// Nothing written to an upload is visible as a blob until it is committed; unknown blobs read as absent.
pub async fn not_visible_before_commit(store: &dyn BlobStore) {
    let data = pattern(101, 0..100_000);
    let digest = Digest::sha256_of(&data);
    let id = UploadId::random();
    let len = store.upload_write(&id, 0, chunked(&data, 4096)).await.ok();
    assert_eq!(len, Some(data.len() as u64));

    assert!(
        matches!(store.stat(&digest).await, Ok(None)),
        "stat before commit"
    );
    assert!(
        matches!(store.read(&digest, None).await, Ok(None)),
        "read before commit"
    );
    assert!(
        matches!(store.read(&digest, Some(0..1)).await, Ok(None)),
        "a range of a missing blob is a missing blob, not a bad range"
    );

    store
        .upload_commit(&id, data.len() as u64, &digest)
        .await
        .unwrap_or_else(|e| panic!("commit: {e}"));
    assert_eq!(
        store.stat(&digest).await.ok(),
        Some(Some(data.len() as u64))
    );
}

/// A committed blob is seen whole by `stat` and `read`, and its upload is gone.
pub async fn commit_then_stat_and_read(store: &dyn BlobStore) {
    let data = pattern(102, 0..3 * 1024 * 1024 + 17);
    let digest = Digest::sha256_of(&data);
    let id = UploadId::random();
    let len = store
        .upload_write(&id, 0, chunked(&data, 16 * 1024))
        .await
        .unwrap_or_else(|e| panic!("upload_write: {e}"));
    store
        .upload_commit(&id, len, &digest)
        .await
        .unwrap_or_else(|e| panic!("commit: {e}"));

    assert_eq!(
        store.stat(&digest).await.ok(),
        Some(Some(data.len() as u64))
    );
    assert_same(&read_all(store, &digest).await, &data, "whole blob");
    // The upload was consumed by the commit.
    assert!(
        matches!(
            store.upload_read(&id, 0).await,
            Err(Error::UploadNotFound(_))
        ),
        "upload still readable after commit"
    );
    assert!(
        matches!(
            store.upload_write(&id, len, chunked(b"more", 4)).await,
            Err(Error::UploadNotFound(_))
        ),
        "upload still writable after commit"
    );
}

/// The same bytes under a sha256 and a sha512 digest are two independent blobs.
pub async fn both_algorithms(store: &dyn BlobStore) {
    let data = pattern(103, 0..5000);
    let d256 = put(store, &data).await;
    let d512 = Digest::of(DigestAlgorithm::Sha512, &data);
    let id = UploadId::random();
    let len = store.upload_write(&id, 0, chunked(&data, 1000)).await.ok();
    assert_eq!(len, Some(5000));
    assert!(store.upload_commit(&id, 5000, &d512).await.is_ok());
    assert_same(&read_all(store, &d512).await, &data, "sha512 blob");

    assert_eq!(store.delete(&d256).await.ok(), Some(true));
    assert!(matches!(store.stat(&d256).await, Ok(None)));
    assert_eq!(
        store.stat(&d512).await.ok(),
        Some(Some(5000)),
        "the other algorithm's blob"
    );
}

async fn read_range(store: &dyn BlobStore, digest: &Digest, range: Range<u64>) -> (u64, Vec<u8>) {
    let reader = store
        .read(digest, Some(range.clone()))
        .await
        .unwrap_or_else(|e| panic!("read {range:?}: {e}"))
        .unwrap_or_else(|| panic!("read {range:?}: blob missing"));
    let bytes = collect(reader.body)
        .await
        .unwrap_or_else(|e| panic!("reading {range:?}: {e}"));
    (reader.size, bytes)
}

/// `read` with a range returns exactly that range (end exclusive), and the size of the whole blob.
pub async fn read_ranges(store: &dyn BlobStore) {
    // Past a few typical buffer sizes, so ranges straddle chunk boundaries.
    let size: u64 = 600 * 1024 + 3;
    let data = pattern(104, 0..size);
    let digest = put(store, &data).await;
    let ranges = [
        0..size,
        100..size,        // from an offset to the end
        0..500_000,       // from the start to an offset
        262_143..262_145, // across a 256 KiB boundary
        65_535..400_001,  // several chunks
        0..1,             // the first byte
        12_345..12_346,   // one byte inside
        size - 1..size,   // the last byte
    ];
    for r in ranges {
        let (reported, bytes) = read_range(store, &digest, r.clone()).await;
        assert_eq!(reported, size, "size reported for {r:?} is the blob's");
        let want = &data[r.start as usize..r.end as usize];
        assert_same(&bytes, want, &format!("range {r:?}"));
    }
}

/// Empty, inverted and out-of-bounds ranges are `RangeNotSatisfiable`, naming the range and the size.
#[allow(clippy::reversed_empty_ranges)] // Inverted ranges are exactly what is being tested.
pub async fn unsatisfiable_ranges(store: &dyn BlobStore) {
    let size: u64 = 1000;
    let digest = put(store, &pattern(105, 0..size)).await;
    let bad = [
        0..0,
        500..500,
        10..5,
        size..size + 1,
        999..1001,
        0..size + 1,
        u64::MAX - 1..u64::MAX,
    ];
    for r in bad {
        match store.read(&digest, Some(r.clone())).await {
            Err(Error::RangeNotSatisfiable { range, size: s }) => {
                assert_eq!((range, s), (r.clone(), size), "error details for {r:?}");
            }
            Err(e) => panic!("{r:?}: wrong error {e}"),
            Ok(r2) => panic!("{r:?}: accepted (found: {})", r2.is_some()),
        }
    }
}

/// Committing a digest that already exists succeeds, leaves the blob intact, and removes the upload.
pub async fn commit_existing_digest_is_harmless(store: &dyn BlobStore) {
    let data = pattern(106, 0..300_000);
    let digest = put(store, &data).await;
    let id = UploadId::random();
    let len = store
        .upload_write(&id, 0, chunked(&data, 50_000))
        .await
        .ok();
    assert_eq!(len, Some(data.len() as u64));
    store
        .upload_commit(&id, data.len() as u64, &digest)
        .await
        .unwrap_or_else(|e| panic!("second commit: {e}"));
    assert_same(
        &read_all(store, &digest).await,
        &data,
        "blob after second commit",
    );
    assert!(
        matches!(
            store.upload_read(&id, 0).await,
            Err(Error::UploadNotFound(_))
        ),
        "the second upload is removed"
    );
}

/// `len == 0` commits the empty blob even if nothing was ever written; an empty upload works too.
pub async fn commit_empty_blob(store: &dyn BlobStore) {
    let empty = Digest::sha256_of(b"");
    let id = UploadId::random();
    store
        .upload_commit(&id, 0, &empty)
        .await
        .unwrap_or_else(|e| panic!("commit of the empty blob: {e}"));
    assert_eq!(store.stat(&empty).await.ok(), Some(Some(0)));
    assert!(read_all(store, &empty).await.is_empty());
    assert!(matches!(
        store.read(&empty, Some(0..1)).await,
        Err(Error::RangeNotSatisfiable { size: 0, .. })
    ));

    // Through an upload that received an empty body, under the sha512 digest (not there yet).
    let empty512 = Digest::of(DigestAlgorithm::Sha512, b"");
    let id = UploadId::random();
    let len = store.upload_write(&id, 0, chunked(b"", 1)).await.ok();
    assert_eq!(len, Some(0), "an empty body creates an empty upload");
    assert!(store.upload_commit(&id, 0, &empty512).await.is_ok());
    assert_eq!(store.stat(&empty512).await.ok(), Some(Some(0)));
}

/// `len` shorter than what the upload holds commits only the first `len` bytes.
pub async fn commit_shorter_than_written(store: &dyn BlobStore) {
    let data = pattern(107, 0..100_000);
    let id = UploadId::random();
    let len = store.upload_write(&id, 0, chunked(&data, 8192)).await.ok();
    assert_eq!(len, Some(100_000));
    let digest = Digest::sha256_of(&data[..60_000]);
    assert!(store.upload_commit(&id, 60_000, &digest).await.is_ok());
    assert_eq!(store.stat(&digest).await.ok(), Some(Some(60_000)));
    assert_same(
        &read_all(store, &digest).await,
        &data[..60_000],
        "prefix blob",
    );
}

/// `len` longer than what the upload holds, or an unknown upload, is `UploadNotFound`, and commits nothing.
pub async fn commit_longer_than_held_is_not_found(store: &dyn BlobStore) {
    let data = pattern(108, 0..1000);
    let id = UploadId::random();
    let len = store.upload_write(&id, 0, chunked(&data, 100)).await.ok();
    assert_eq!(len, Some(1000));
    let digest = Digest::sha256_of(&pattern(108, 0..1001));
    assert!(matches!(
        store.upload_commit(&id, 1001, &digest).await,
        Err(Error::UploadNotFound(_))
    ));
    assert!(matches!(store.stat(&digest).await, Ok(None)));

    let unknown = UploadId::random();
    let d = Digest::sha256_of(b"x");
    assert!(matches!(
        store.upload_commit(&unknown, 1, &d).await,
        Err(Error::UploadNotFound(_))
    ));
    assert!(matches!(store.stat(&d).await, Ok(None)));
}

/// `delete` removes a blob (true), then reports it absent (false); the digest can be committed again.
pub async fn delete_blob(store: &dyn BlobStore) {
    let data = pattern(109, 0..70_000);
    let digest = put(store, &data).await;
    assert_eq!(store.delete(&digest).await.ok(), Some(true));
    assert!(matches!(store.stat(&digest).await, Ok(None)));
    assert!(matches!(store.read(&digest, None).await, Ok(None)));
    assert_eq!(store.delete(&digest).await.ok(), Some(false));

    let again = put(store, &data).await;
    assert_eq!(again, digest);
    assert_same(
        &read_all(store, &digest).await,
        &data,
        "blob committed again",
    );
}

/// A read that began before the blob was deleted either finishes with the right bytes or fails cleanly.
pub async fn reader_outlives_delete(store: &dyn BlobStore) {
    let size = 3 * 1024 * 1024 + 5;
    let data = pattern(110, 0..size);
    let digest = put(store, &data).await;
    let reader = store
        .read(&digest, None)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("blob missing"));
    let mut body = reader.body;
    let mut got = Vec::new();
    if let Some(first) = body.next().await {
        got.extend_from_slice(&first.unwrap_or_else(|e| panic!("first chunk: {e}")));
    }
    assert_eq!(store.delete(&digest).await.ok(), Some(true));
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => got.extend_from_slice(&chunk),
            Err(_) => {
                // A clean error is an acceptable outcome; a panic or garbage is not.
                assert!(got.len() < data.len(), "more bytes than the blob holds");
                assert_same(&got, &data[..got.len()], "bytes read before the error");
                return;
            }
        }
    }
    assert_same(&got, &data, "bytes read across a delete");
    assert!(matches!(store.stat(&digest).await, Ok(None)));
}
