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
use berth_blobs::registry2::{Entry, Registry2Tree, TREE, blob_data_path};
use berth_blobs::s3::S3BlobStore;
use berth_blobs::s3::testing::{put_object, test_server_settings};
use bytes::Bytes;
use futures_util::TryStreamExt;
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
    assert!(!tree.exists().await.unwrap());
    assert!(tree.list("repositories").await.unwrap().is_empty());

    let blob = b"layer bytes";
    let digest = Digest::sha256_of(blob);
    put(&store, &blob_data_path(&digest), blob).await;
    let link = format!("repositories/a/b/_layers/sha256/{}/link", digest.hex());
    put(&store, &link, digest.to_string().as_bytes()).await;
    put(
        &store,
        "repositories/a/c/_manifests/tags/x/current/link",
        b"x",
    )
    .await;
    assert!(tree.exists().await.unwrap());

    let entries = |v: Vec<Entry>| v.into_iter().map(|e| (e.name, e.dir)).collect::<Vec<_>>();
    let dir = |name: &str| (name.to_string(), true);
    assert_eq!(
        entries(tree.list("repositories").await.unwrap()),
        [dir("a")]
    );
    assert_eq!(
        entries(tree.list("repositories/a").await.unwrap()),
        [dir("b"), dir("c")]
    );
    let hex_dir = format!("repositories/a/b/_layers/sha256/{}", digest.hex());
    assert_eq!(
        entries(tree.list(&hex_dir).await.unwrap()),
        [("link".to_string(), false)]
    );
    assert_eq!(
        tree.read_small(&link, 100).await.unwrap().as_deref(),
        Some(digest.to_string().as_bytes())
    );
    assert!(
        tree.read_small(&link, 10).await.is_err(),
        "longer than the limit"
    );
    assert_eq!(
        tree.read_small("repositories/a/nope", 100).await.unwrap(),
        None
    );
    assert!(tree.list("repositories/../x").await.is_err());

    assert_eq!(
        tree.stat_blob(&digest).await.unwrap(),
        Some(blob.len() as u64)
    );
    assert_eq!(
        tree.stat_blob(&Digest::sha256_of(b"other")).await.unwrap(),
        None
    );
    let reader = tree.read_blob(&digest, Some(6..11)).await.unwrap().unwrap();
    assert_eq!(reader.size, blob.len() as u64);
    let got: Vec<Bytes> = reader.body.try_collect().await.unwrap();
    assert_eq!(got.concat(), b"bytes");
}

berth_blobs::blob_store_tests!(optional: async {
    let settings = test_server_settings()?;
    let store = S3BlobStore::open(&settings).unwrap_or_else(|e| panic!("opening the S3 store: {e}"));
    let legacy = b"a blob only registry:2 holds";
    put(&store, &blob_data_path(&Digest::sha256_of(legacy)), legacy).await;
    let tree = Arc::new(store.registry2_tree());
    Some(((), WithRegistry2::new(Arc::new(store), tree)))
});
