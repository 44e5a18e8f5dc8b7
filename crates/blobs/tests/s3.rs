//! The shared `BlobStore` suite against a real S3 server (Garage in `scripts/test`), each case under
//! its own random root in the bucket `BERTH_TEST_S3_BUCKET`. Without the `BERTH_TEST_S3_*` variables
//! every case prints that it skipped (and fails under CI).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use berth_blobs::s3::S3BlobStore;
use berth_blobs::s3::testing::test_server_settings;

berth_blobs::blob_store_tests!(optional: async {
    let settings = test_server_settings()?;
    let store = S3BlobStore::open(&settings).unwrap_or_else(|e| panic!("opening the S3 store: {e}"));
    Some(((), store))
});
