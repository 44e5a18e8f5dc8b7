//! Suite cases for listing committed blobs (`list_blobs`): digest order, pages after a cursor, sizes
//! and ages, and nothing listed that is not a committed blob.
//!
//! The cases check their own blobs within the listing rather than the listing's exact contents, so
//! that they hold on a store shared with other cases too.

use std::time::{Duration, SystemTime};

use oci::{Digest, DigestAlgorithm};

use super::data::{chunked, pattern, put};
use crate::{BlobStore, ListedBlob, UploadId};

/// Every page, `limit` at a time, from the start: the whole listing, checked to be strictly ascending
/// and each page full but the last.
async fn walk(store: &dyn BlobStore, limit: usize) -> Vec<ListedBlob> {
    let mut all: Vec<ListedBlob> = Vec::new();
    let mut after: Option<Digest> = None;
    loop {
        let page = store
            .list_blobs(after.as_ref(), limit)
            .await
            .unwrap_or_else(|e| panic!("list_blobs after {after:?}: {e}"));
        assert!(
            page.len() <= limit,
            "a page of {} for a limit of {limit}",
            page.len()
        );
        for blob in &page {
            if let Some(last) = all.last() {
                assert!(
                    last.digest < blob.digest,
                    "{} listed after {}",
                    blob.digest,
                    last.digest
                );
            }
            if let Some(after) = &after {
                assert!(
                    &blob.digest > after,
                    "{} is not after the cursor {after}",
                    blob.digest
                );
            }
        }
        let done = page.len() < limit;
        after = page.last().map(|b| b.digest.clone()).or(after);
        all.extend(page);
        if done {
            return all;
        }
    }
}

/// Committed blobs of both algorithms come back in digest order with their sizes and a recent
/// modification time, through pages of any size; an upload's bytes are not a blob and are not listed.
pub async fn list_blobs_in_digest_order(store: &dyn BlobStore) {
    let before = SystemTime::now() - Duration::from_secs(120);
    let mut ours: Vec<(Digest, u64)> = Vec::new();
    for i in 0..7u64 {
        let data = pattern(401 + i, 0..(1000 + i * 977));
        ours.push((put(store, &data).await, data.len() as u64));
    }
    let data = pattern(409, 0..3000);
    let d512 = Digest::of(DigestAlgorithm::Sha512, &data);
    let id = UploadId::random();
    let written = store.upload_write(&id, 0, chunked(&data, 1000)).await.ok();
    assert_eq!(written, Some(3000));
    assert!(store.upload_commit(&id, 3000, &d512).await.is_ok());
    ours.push((d512, 3000));
    ours.push((put(store, b"").await, 0));
    ours.sort();
    let pending = pattern(410, 0..2000);
    let upload = UploadId::random();
    let written = store
        .upload_write(&upload, 0, chunked(&pending, 500))
        .await
        .ok();
    assert_eq!(written, Some(2000));

    for limit in [1, 2, 3, 1000] {
        let listed = walk(store, limit).await;
        let mine: Vec<(Digest, u64)> = listed
            .iter()
            .filter(|b| ours.iter().any(|(d, _)| d == &b.digest))
            .map(|b| (b.digest.clone(), b.size))
            .collect();
        assert_eq!(mine, ours, "our blobs and their sizes, pages of {limit}");
        let upload_digest = Digest::sha256_of(&pending);
        assert!(
            listed.iter().all(|b| b.digest != upload_digest),
            "an upload's bytes are listed as a blob"
        );
        for blob in listed
            .iter()
            .filter(|b| ours.iter().any(|(d, _)| d == &b.digest))
        {
            let now = SystemTime::now() + Duration::from_secs(120);
            assert!(
                blob.modified > before && blob.modified < now,
                "{} modified at {:?}, not around now",
                blob.digest,
                blob.modified
            );
        }
    }
}

/// A page starts strictly after its cursor, whether or not the cursor is a blob; a deleted blob is no
/// longer listed; a limit of zero lists nothing.
pub async fn list_blobs_after_a_cursor(store: &dyn BlobStore) {
    let mut ours = Vec::new();
    for i in 0..5u64 {
        ours.push(put(store, &pattern(421 + i, 0..(500 + i))).await);
    }
    ours.sort();
    let mine = |page: Vec<ListedBlob>| -> Vec<Digest> {
        page.into_iter()
            .map(|b| b.digest)
            .filter(|d| ours.contains(d))
            .collect()
    };
    let page = store.list_blobs(Some(&ours[1]), 1000).await.ok().map(mine);
    assert_eq!(
        page.as_deref(),
        Some(&ours[2..]),
        "after the second of ours"
    );
    // A cursor that names no blob: the next digest in order follows it.
    let absent = Digest::sha256_of(b"never committed");
    let page = store.list_blobs(Some(&absent), 1000).await.ok();
    let page = page.unwrap_or_else(|| panic!("list_blobs after an absent digest"));
    assert!(page.iter().all(|b| b.digest > absent));
    let expected: Vec<&Digest> = ours.iter().filter(|d| **d > absent).collect();
    let got: Vec<Digest> = mine(page);
    assert_eq!(
        got.iter().collect::<Vec<_>>(),
        expected,
        "after an absent digest"
    );
    // Past every sha256 digest come the sha512 ones (none of ours).
    let last256: Digest = format!("sha256:{}", "f".repeat(64)).parse().unwrap();
    let page = store.list_blobs(Some(&last256), 1000).await.ok();
    assert!(page.is_some_and(|p| {
        p.iter()
            .all(|b| b.digest.algorithm() == DigestAlgorithm::Sha512)
    }));

    assert_eq!(store.delete(&ours[2]).await.ok(), Some(true));
    let page = store.list_blobs(None, 1000).await.ok().map(mine);
    let remaining: Vec<Digest> = ours.iter().filter(|d| *d != &ours[2]).cloned().collect();
    assert_eq!(page, Some(remaining), "after deleting one");
    assert_eq!(
        store.list_blobs(None, 0).await.ok().map(|p| p.len()),
        Some(0)
    );
}

/// A quarantined blob is gone for `stat`, `read` and the listing, and can be committed again; the
/// others stay. Quarantining what is not there says so.
pub async fn quarantine_takes_a_blob_out_of_service(store: &dyn BlobStore) {
    let bad = put(store, &pattern(431, 0..9000)).await;
    let good = put(store, &pattern(432, 0..100)).await;
    assert_eq!(store.quarantine(&bad).await.ok(), Some(true));
    assert!(matches!(store.stat(&bad).await, Ok(None)));
    assert!(matches!(store.read(&bad, None).await, Ok(None)));
    let listed = store.list_blobs(None, 1000).await.ok().unwrap_or_default();
    assert!(
        listed.iter().all(|b| b.digest != bad),
        "listed after quarantine"
    );
    assert!(listed.iter().any(|b| b.digest == good));
    assert_eq!(store.stat(&good).await.ok(), Some(Some(100)));
    assert_eq!(store.quarantine(&bad).await.ok(), Some(false));
    // Pushed again, the blob is served again.
    assert_eq!(put(store, &pattern(431, 0..9000)).await, bad);
    assert_eq!(store.stat(&bad).await.ok(), Some(Some(9000)));
}
