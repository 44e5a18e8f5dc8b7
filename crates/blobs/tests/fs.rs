//! The shared `BlobStore` suite, run against the filesystem backend exactly as another crate would run
//! it (through the `testsuite` feature and the exported macro), each case in its own temporary root.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

berth_blobs::blob_store_tests!(async {
    berth_blobs::testsuite::temp_fs_store().expect("a temporary store")
});
