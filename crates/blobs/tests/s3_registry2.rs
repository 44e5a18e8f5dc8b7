//! registry:2's tree in a bucket (Garage in `scripts/test`): read as the filesystem's is, and under
//! `WithRegistry2` the shared `BlobStore` suite over an S3 store beside such a tree. Without the
//! `BERTH_TEST_S3_*` variables every case prints that it skipped (and fails under CI).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::sync::Arc;

use berth_blobs::registry2::fallback::WithRegistry2;
use berth_blobs::registry2::{TREE, blob_data_path};
use berth_blobs::s3::S3BlobStore;
use berth_blobs::s3::testing::{put_object, test_server_settings};
use bytes::Bytes;
use oci::Digest;

async fn put(store: &S3BlobStore, path: &str, bytes: &[u8]) {
    put_object(
        store,
        &format!("{TREE}/{path}"),
        Bytes::copy_from_slice(bytes),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn reads_a_tree_in_a_bucket() {
    let Some(settings) = test_server_settings() else {
        return;
    };
    let store = S3BlobStore::open(&settings).unwrap();
    let tree = store.registry2_tree();
    let store = &store;
    berth_blobs::testsuite::registry2_tree_reads_a_tree_made_by_hand(
        &tree,
        |path, bytes| async move { put(store, &path, &bytes).await },
    )
    .await;
}

berth_blobs::blob_store_tests!(optional: async {
    let settings = test_server_settings()?;
    let store = S3BlobStore::open(&settings).unwrap_or_else(|e| panic!("opening the S3 store: {e}"));
    let legacy = b"a blob only registry:2 holds";
    put(&store, &blob_data_path(&Digest::sha256_of(legacy)), legacy).await;
    let tree = Arc::new(store.registry2_tree());
    Some(((), WithRegistry2::new(Arc::new(store), tree)))
});
