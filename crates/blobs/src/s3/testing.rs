//! The S3 server the tests run against, from `BERTH_TEST_S3_*` (`scripts/garage.sh` starts one and
//! prints them; `scripts/test` exports them). Shared with other crates' tests by the `testsuite` feature.

use super::S3Settings;

/// The variables, in the order they are reported when missing.
pub const TEST_ENV: [&str; 5] = [
    "BERTH_TEST_S3_ENDPOINT",
    "BERTH_TEST_S3_REGION",
    "BERTH_TEST_S3_ACCESS_KEY",
    "BERTH_TEST_S3_SECRET_KEY",
    "BERTH_TEST_S3_BUCKET",
];

/// Settings for the test server under a fresh random `rootdirectory` (every test its own, in the one
/// bucket), or `None`, after saying so, when the variables are unset. Under CI (`CI` set) missing
/// variables fail instead, so CI cannot skip the S3 tests by accident.
pub fn test_server_settings() -> Option<S3Settings> {
    let values: Vec<Option<String>> = TEST_ENV
        .iter()
        .map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .collect();
    let [
        Some(endpoint),
        Some(region),
        Some(access),
        Some(secret),
        Some(bucket),
    ] = values.as_slice()
    else {
        let missing: Vec<&str> = TEST_ENV
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(name, _)| *name)
            .collect();
        assert!(
            std::env::var_os("CI").is_none(),
            "{} not set under CI: the S3 tests must run there (scripts/test starts Garage)",
            missing.join(", ")
        );
        eprintln!(
            "SKIPPED: {} not set, so there is no S3 server to test against (scripts/test starts one)",
            missing.join(", ")
        );
        return None;
    };
    let root = format!("test-{}", uuid::Uuid::new_v4());
    Some(S3Settings::for_test_server(
        endpoint, region, bucket, access, secret, &root,
    ))
}

/// Leaves behind what a commit that crashed half-way leaves: an incomplete multipart upload to the key
/// of blob `digest`. Returns its upload id.
pub async fn start_abandoned_commit(
    store: &super::S3BlobStore,
    digest: &oci::Digest,
) -> crate::Result<String> {
    Ok(store
        .bucket
        .create_multipart(&store.keys.blob(digest))
        .await?)
}

/// The upload ids of the incomplete multipart uploads under the store's root.
pub async fn multipart_uploads(store: &super::S3BlobStore) -> crate::Result<Vec<String>> {
    let uploads = store.bucket.list_multipart(store.keys.root()).await?;
    Ok(uploads.into_iter().map(|u| u.upload_id).collect())
}

/// The keys of every object under the store's root (to check what an operation left behind).
pub async fn object_keys(store: &super::S3BlobStore) -> crate::Result<Vec<String>> {
    let objects = store.bucket.list(store.keys.root()).await?;
    Ok(objects.into_iter().map(|o| o.key).collect())
}

/// Writes object `key` (under the store's root) as it is: how a test lays out what another program
/// (registry:2) left in the bucket.
pub async fn put_object(
    store: &super::S3BlobStore,
    key: &str,
    bytes: bytes::Bytes,
) -> crate::Result<()> {
    let key = format!("{}{key}", store.keys.root());
    Ok(store.bucket.put(&key, bytes).await?)
}
