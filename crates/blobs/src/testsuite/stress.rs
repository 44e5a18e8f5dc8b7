//! Suite cases that push harder: concurrency and a large blob streamed in odd-sized chunks.

use futures_util::future::join_all;
use oci::{Digest, DigestAlgorithm};

use super::data::{Pattern, assert_same, chunked, pattern, read_all};
use crate::{BlobStore, UploadId};

/// Two commits of the same digest from different uploads, at the same time, both succeed and the blob
/// is whole. Repeated so that the interleavings vary.
pub async fn concurrent_commits_of_one_digest(store: &dyn BlobStore) {
    for round in 0..8u64 {
        let data = pattern(301 + round, 0..200_000 + round);
        let digest = Digest::sha256_of(&data);
        let (a, b) = (UploadId::random(), UploadId::random());
        let len = data.len() as u64;
        for id in [&a, &b] {
            let written = store
                .upload_write(id, 0, chunked(&data, 64 * 1024))
                .await
                .ok();
            assert_eq!(written, Some(len), "round {round}: write");
        }
        let (ra, rb) = tokio::join!(
            store.upload_commit(&a, len, &digest),
            store.upload_commit(&b, len, &digest)
        );
        assert!(ra.is_ok() && rb.is_ok(), "round {round}: {ra:?} {rb:?}");
        assert_same(
            &read_all(store, &digest).await,
            &data,
            &format!("round {round}"),
        );
    }
}

/// Several uploads written at the same time do not see each other's bytes.
pub async fn concurrent_uploads_stay_apart(store: &dyn BlobStore) {
    let datas: Vec<Vec<u8>> = (0..4u64)
        .map(|i| pattern(320 + i, 0..1_500_000 + i))
        .collect();
    let ids: Vec<UploadId> = datas.iter().map(|_| UploadId::random()).collect();
    let writes = ids
        .iter()
        .zip(&datas)
        .map(|(id, data)| store.upload_write(id, 0, chunked(data, 16 * 1024)));
    for (i, result) in join_all(writes).await.into_iter().enumerate() {
        assert_eq!(result.ok(), Some(datas[i].len() as u64), "upload {i}");
    }
    let commits = ids.iter().zip(&datas).map(|(id, data)| async move {
        let digest = Digest::sha256_of(data);
        store
            .upload_commit(id, data.len() as u64, &digest)
            .await
            .map(|()| digest)
    });
    for (i, result) in join_all(commits).await.into_iter().enumerate() {
        let digest = result.unwrap_or_else(|e| panic!("commit {i}: {e}"));
        assert_same(
            &read_all(store, &digest).await,
            &datas[i],
            &format!("blob {i}"),
        );
    }
}

/// Chunk sizes for the large round trip: big, tiny, empty, and odd sizes that straddle any buffer.
const ODD_SIZES: &[usize] = &[
    1 << 20,
    16 * 1024,
    1,
    0,
    3 * (1 << 20) + 7,
    65_537,
    999_999,
    8191,
    (1 << 20) - 1,
];

/// 64 MiB streamed in as one body of odd-sized chunks comes back byte for byte, through `upload_read`,
/// a whole `read`, and a range `read`. Nothing here holds the whole blob in memory.
pub async fn many_chunks_round_trip(store: &dyn BlobStore) {
    const SIZE: u64 = 64 * 1024 * 1024;
    let pattern = Pattern::new(340);
    let digest = pattern.digest(DigestAlgorithm::Sha256, SIZE);
    let id = UploadId::random();
    // In two calls, the second at an offset that matches no buffer size.
    let split = 40 * 1024 * 1024 + 3;
    let first = store
        .upload_write(&id, 0, pattern.stream(0..split, ODD_SIZES))
        .await;
    assert_eq!(first.ok(), Some(split), "first write");
    let second = store
        .upload_write(&id, split, pattern.stream(split..SIZE, ODD_SIZES))
        .await;
    assert_eq!(second.ok(), Some(SIZE), "second write");

    let upload = store
        .upload_read(&id, SIZE)
        .await
        .unwrap_or_else(|e| panic!("upload_read: {e}"));
    pattern.assert_stream(upload, 0..SIZE, "upload_read").await;

    store
        .upload_commit(&id, SIZE, &digest)
        .await
        .unwrap_or_else(|e| panic!("commit: {e}"));
    assert_eq!(store.stat(&digest).await.ok(), Some(Some(SIZE)));
    let whole = store.read(&digest, None).await.ok().flatten();
    let whole = whole.unwrap_or_else(|| panic!("blob missing after commit"));
    assert_eq!(whole.size, SIZE);
    pattern.assert_stream(whole.body, 0..SIZE, "read").await;

    let range = 5_000_001..SIZE - 12_345;
    let part = store
        .read(&digest, Some(range.clone()))
        .await
        .ok()
        .flatten();
    let part = part.unwrap_or_else(|| panic!("blob missing for range read"));
    pattern.assert_stream(part.body, range, "range read").await;
}
