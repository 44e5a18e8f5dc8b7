//! Suite cases about upload sessions: appending at offsets, discarding tails, failures and resumption,
//! reading an upload back, deleting it.

use oci::Digest;

use super::data::{
    assert_same, chunked, failing, pattern, read_all, read_upload, read_upload_from,
};
use crate::{BlobStore, Error, UploadId};

#[track_caller]
fn expect_len(got: crate::Result<u64>, want: u64, what: &str) {
    match got {
        Ok(len) => assert_eq!(len, want, "{what}: new length"),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Writing at offset 0 creates the upload; writing at its length continues it; an empty body is a no-op.
pub async fn write_then_continue(store: &dyn BlobStore) {
    let data = pattern(201, 0..250_000);
    let id = UploadId::random();
    let first = store
        .upload_write(&id, 0, chunked(&data[..100_000], 7000))
        .await;
    expect_len(first, 100_000, "first write");
    let second = store
        .upload_write(&id, 100_000, chunked(&data[100_000..], 33_333))
        .await;
    expect_len(second, 250_000, "continuation");
    let empty = store.upload_write(&id, 250_000, chunked(b"", 1)).await;
    expect_len(empty, 250_000, "empty continuation");
    assert_same(
        &read_upload(store, &id, 250_000).await,
        &data,
        "upload bytes",
    );

    let digest = Digest::sha256_of(&data);
    assert!(store.upload_commit(&id, 250_000, &digest).await.is_ok());
    assert_same(&read_all(store, &digest).await, &data, "committed blob");
}

/// Writing at an offset below the upload's length discards everything past the offset first; offset 0
/// on an existing upload starts it over.
pub async fn write_below_length_discards_tail(store: &dyn BlobStore) {
    let a = pattern(202, 0..100);
    let b = pattern(203, 0..20);
    let id = UploadId::random();
    expect_len(
        store.upload_write(&id, 0, chunked(&a, 30)).await,
        100,
        "first",
    );
    expect_len(
        store.upload_write(&id, 60, chunked(&b, 7)).await,
        80,
        "rewrite at 60",
    );
    let want = [&a[..60], &b[..]].concat();
    assert_same(
        &read_upload(store, &id, 80).await,
        &want,
        "upload after rewrite",
    );
    // Bytes 80..100 of the first write are gone, not merely hidden.
    expect_offset_error(
        store.upload_write(&id, 90, chunked(b"x", 1)).await,
        &id,
        80,
        90,
    );

    let c = pattern(204, 0..10);
    expect_len(
        store.upload_write(&id, 0, chunked(&c, 10)).await,
        10,
        "restart at 0",
    );
    assert_same(
        &read_upload(store, &id, 10).await,
        &c,
        "upload after restart",
    );
    expect_offset_error(
        store.upload_write(&id, 11, chunked(b"x", 1)).await,
        &id,
        10,
        11,
    );
}

#[track_caller]
fn expect_offset_error(got: crate::Result<u64>, id: &UploadId, have: u64, offset: u64) {
    match got {
        Err(Error::UploadOffset {
            id: got_id,
            have: got_have,
            offset: got_offset,
        }) => assert_eq!((&got_id, got_have, got_offset), (id, have, offset)),
        other => panic!("want UploadOffset (have {have}, offset {offset}), got {other:?}"),
    }
}

/// Asking to write past the bytes an upload holds is `UploadOffset`, and changes nothing.
pub async fn write_past_end_is_upload_offset(store: &dyn BlobStore) {
    let a = pattern(205, 0..100);
    let id = UploadId::random();
    expect_len(
        store.upload_write(&id, 0, chunked(&a, 100)).await,
        100,
        "first",
    );
    let past = store.upload_write(&id, 101, chunked(b"xyz", 3)).await;
    expect_offset_error(past, &id, 100, 101);
    assert_same(&read_upload(store, &id, 100).await, &a, "upload unchanged");
    expect_len(
        store.upload_write(&id, 100, chunked(b"", 1)).await,
        100,
        "still 100 bytes",
    );
}

/// Continuing an upload that holds nothing is `UploadNotFound`, and does not create it.
pub async fn continue_unknown_upload_is_not_found(store: &dyn BlobStore) {
    let id = UploadId::random();
    assert!(matches!(
        store.upload_write(&id, 5, chunked(b"hello", 5)).await,
        Err(Error::UploadNotFound(got)) if got == id
    ));
    assert!(matches!(
        store.upload_read(&id, 0).await,
        Err(Error::UploadNotFound(_))
    ));
}

/// A failing body is `Source`; the upload then resumes from the offset recorded before the failure,
/// whatever part of the failed body reached storage.
pub async fn failing_source_then_resume(store: &dyn BlobStore) {
    let a = pattern(206, 0..300_000);
    let junk = pattern(207, 0..2_500_000);
    let c = pattern(208, 0..400_000);
    let id = UploadId::random();
    expect_len(
        store.upload_write(&id, 0, chunked(&a, 65_536)).await,
        300_000,
        "first",
    );

    // Enough junk that some of it is surely written before the failure shows up.
    let bad = failing(junk.chunks(512 * 1024).map(bytes::Bytes::copy_from_slice));
    match store.upload_write(&id, 300_000, bad).await {
        Err(Error::Source(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        other => panic!("want Source, got {other:?}"),
    }
    // The caller still records 300_000: what it had before the failure.
    assert_same(
        &read_upload(store, &id, 300_000).await,
        &a,
        "bytes before the failure",
    );
    let resumed = store.upload_write(&id, 300_000, chunked(&c, 100_000)).await;
    expect_len(resumed, 700_000, "resume");
    // Whatever junk reached storage past 300_000 was discarded, not just overwritten.
    let past = store.upload_write(&id, 700_001, chunked(b"x", 1)).await;
    expect_offset_error(past, &id, 700_000, 700_001);

    let want = [&a[..], &c[..]].concat();
    let digest = Digest::sha256_of(&want);
    assert!(store.upload_commit(&id, 700_000, &digest).await.is_ok());
    assert_same(&read_all(store, &digest).await, &want, "blob after resume");

    // A body that fails at once on a fresh upload: starting over at 0 works.
    let fresh = UploadId::random();
    let failed = store
        .upload_write(&fresh, 0, failing(Vec::<bytes::Bytes>::new()))
        .await;
    assert!(matches!(failed, Err(Error::Source(_))), "got {failed:?}");
    expect_len(
        store.upload_write(&fresh, 0, chunked(&c, 4096)).await,
        400_000,
        "restart",
    );
    assert_same(
        &read_upload(store, &fresh, 400_000).await,
        &c,
        "restarted upload",
    );
}

/// `upload_read` returns exactly the first `len` bytes; an unknown upload is `UploadNotFound`.
pub async fn upload_read_returns_prefix(store: &dyn BlobStore) {
    let data = pattern(209, 0..1024 * 1024 + 5);
    let id = UploadId::random();
    let len = data.len() as u64;
    expect_len(
        store.upload_write(&id, 0, chunked(&data, 100_000)).await,
        len,
        "write",
    );
    assert_same(
        &read_upload(store, &id, 1000).await,
        &data[..1000],
        "first 1000 bytes",
    );
    assert_same(&read_upload(store, &id, len).await, &data, "all bytes");
    assert!(read_upload(store, &id, 0).await.is_empty(), "zero bytes");
    // From an offset: only the bytes after it (within a chunk, at a chunk's edge, up to the end).
    for (from, to) in [
        (1, 1000),
        (999, 1000),
        (100_000, 250_001),
        (777_777, len),
        (len, len),
    ] {
        assert_same(
            &read_upload_from(store, &id, from, to).await,
            &data[from as usize..to as usize],
            &format!("bytes {from}..{to}"),
        );
    }
    // Reading does not consume: the upload goes on.
    expect_len(
        store.upload_write(&id, len, chunked(b"tail", 4)).await,
        len + 4,
        "append",
    );

    let unknown = UploadId::random();
    assert!(matches!(
        store.upload_read(&unknown, 1).await,
        Err(Error::UploadNotFound(_))
    ));
}

/// `upload_write_unsynced` writes like `upload_write`: what it wrote reads back at once, continues at
/// its length (with either kind of write), and commits into a blob that reads back whole.
pub async fn unsynced_writes_read_back_and_commit(store: &dyn BlobStore) {
    let data = pattern(211, 0..3 * 1024 * 1024 + 17);
    let (first, rest) = data.split_at(2 * 1024 * 1024 + 3);
    let id = UploadId::random();
    expect_len(
        store
            .upload_write_unsynced(&id, 0, chunked(first, 64 * 1024))
            .await,
        first.len() as u64,
        "first write",
    );
    assert_same(
        &read_upload(store, &id, first.len() as u64).await,
        first,
        "read back before any sync",
    );
    let len = data.len() as u64;
    expect_len(
        store
            .upload_write_unsynced(&id, first.len() as u64, chunked(rest, 100_000))
            .await,
        len,
        "second write",
    );
    let digest = Digest::sha256_of(&data);
    store
        .upload_commit(&id, len, &digest)
        .await
        .unwrap_or_else(|e| panic!("commit: {e}"));
    assert_eq!(store.stat(&digest).await.ok().flatten(), Some(len));
    assert_same(&read_all(store, &digest).await, &data, "the committed blob");
}

/// `upload_delete` removes an upload, and deleting one that is gone or never existed is not an error.
pub async fn upload_delete_is_idempotent(store: &dyn BlobStore) {
    let data = pattern(210, 0..5000);
    let id = UploadId::random();
    expect_len(
        store.upload_write(&id, 0, chunked(&data, 1000)).await,
        5000,
        "write",
    );
    store
        .upload_delete(&id)
        .await
        .unwrap_or_else(|e| panic!("upload_delete: {e}"));
    assert!(matches!(
        store.upload_read(&id, 0).await,
        Err(Error::UploadNotFound(_))
    ));
    assert!(matches!(
        store.upload_write(&id, 5000, chunked(b"x", 1)).await,
        Err(Error::UploadNotFound(_))
    ));
    let digest = Digest::sha256_of(&data);
    assert!(matches!(
        store.upload_commit(&id, 5000, &digest).await,
        Err(Error::UploadNotFound(_))
    ));
    assert!(store.upload_delete(&id).await.is_ok(), "second delete");
    assert!(
        store.upload_delete(&UploadId::random()).await.is_ok(),
        "delete of an unknown upload"
    );
}
