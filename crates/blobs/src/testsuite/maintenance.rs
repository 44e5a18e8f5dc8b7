//! Suite cases for housekeeping: purging temporary data never touches what the registry still needs, and
//! the health check passes on a working store.

use std::time::{Duration, SystemTime};

use super::data::{assert_same, chunked, pattern, put, read_all, read_upload};
use crate::{BlobStore, UploadId};

/// A purge that treats everything as stale (a cutoff an hour ahead) still leaves every committed blob
/// and every upload's bytes in place, dry run or not: those are not the backend's temporary data.
pub async fn purge_temporary_spares_blobs_and_uploads(store: &dyn BlobStore) {
    let blob = pattern(301, 0..70_000);
    let digest = put(store, &blob).await;
    let upload = pattern(302, 0..50_000);
    let id = UploadId::random();
    let written = store
        .upload_write(&id, 0, chunked(&upload, 8192))
        .await
        .unwrap_or_else(|e| panic!("upload_write: {e}"));
    assert_eq!(written, 50_000);

    let everything_is_old = SystemTime::now() + Duration::from_secs(3600);
    for dry_run in [true, false] {
        if let Err(e) = store.purge_temporary(everything_is_old, dry_run).await {
            panic!("purge_temporary (dry run: {dry_run}): {e}");
        }
        assert_same(
            &read_all(store, &digest).await,
            &blob,
            "committed blob after a purge",
        );
        assert_same(
            &read_upload(store, &id, 50_000).await,
            &upload,
            "upload bytes after a purge",
        );
    }
}

/// A store that works passes its health check.
pub async fn check_passes_on_a_working_store(store: &dyn BlobStore) {
    if let Err(e) = store.check().await {
        panic!("check on a working store: {e}");
    }
    put(store, b"after the check").await;
    if let Err(e) = store.check().await {
        panic!("check after a write: {e}");
    }
}
