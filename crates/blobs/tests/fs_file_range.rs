//! The filesystem backend hands out the open file behind a read (`BlobReader::file`), for zero-copy
//! serving: its range must name exactly the bytes `body` would stream, whole blob or range, and keep
//! naming them after the blob is deleted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::os::unix::fs::FileExt;

use berth_blobs::fs::FsBlobStore;
use berth_blobs::{BlobReader, BlobStore, FileRange, UploadId};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use oci::Digest;

/// The bytes `range` names, read straight from its file.
fn read_range(range: &FileRange) -> Vec<u8> {
    let mut buf = vec![0u8; usize::try_from(range.len).unwrap()];
    range.file.read_exact_at(&mut buf, range.offset).unwrap();
    buf
}

async fn body_of(reader: BlobReader) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = reader.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test]
async fn the_file_range_names_the_bytes_the_body_streams() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = Digest::sha256_of(&data);
    let id = UploadId::random();
    let chunk = Bytes::from(data.clone());
    store
        .upload_write(&id, 0, Box::pin(stream::once(async move { Ok(chunk) })))
        .await
        .unwrap();
    store
        .upload_commit(&id, data.len() as u64, &digest)
        .await
        .unwrap();

    for range in [
        None,
        Some(0..1),
        Some(1000..250_000),
        Some(299_999..300_000),
    ] {
        let want = match &range {
            Some(r) => &data[r.start as usize..r.end as usize],
            None => &data[..],
        };
        let reader = store.read(&digest, range.clone()).await.unwrap().unwrap();
        let file = reader
            .file
            .clone()
            .expect("the fs backend hands out its file");
        assert_eq!(file.offset, range.as_ref().map_or(0, |r| r.start));
        assert_eq!(read_range(&file), want, "{range:?}: file");
        assert_eq!(body_of(reader).await, want, "{range:?}: body");
    }

    // Deleted while being served: the open file still holds the bytes.
    let reader = store.read(&digest, None).await.unwrap().unwrap();
    assert!(store.delete(&digest).await.unwrap());
    let file = reader.file.expect("the fs backend hands out its file");
    assert_eq!(read_range(&file), data);
}
