//! The shared `BlobStore` suite over `WithRegistry2`: a filesystem store beside a registry:2 tree (with
//! a blob of its own, which no case names) keeps every promise of a blob store, since every write,
//! delete and walk goes to berth's layout.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::sync::Arc;

use berth_blobs::registry2::fallback::WithRegistry2;
use berth_blobs::registry2::fs::FsRegistry2Tree;
use berth_blobs::registry2::{TREE, blob_data_path};

berth_blobs::blob_store_tests!(async {
    let (dir, store) = berth_blobs::testsuite::temp_fs_store().expect("a temporary store");
    let legacy = b"a blob only registry:2 holds";
    let data = dir
        .path()
        .join(TREE)
        .join(blob_data_path(&oci::Digest::sha256_of(legacy)));
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::write(data, legacy).unwrap();
    let tree = Arc::new(FsRegistry2Tree::new(dir.path()));
    (dir, WithRegistry2::new(Arc::new(store), tree))
});
