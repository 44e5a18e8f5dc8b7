//! The timing decorators: they keep every backend's contract (the shared suites run through them), and
//! they report each call once, with its store, backend, method and outcome.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_registry as registry;
use blobs::BlobStore;
use metadata::Catalog;
use metadata::sqlite::SqliteStore;
use oci::Digest;
use registry::instrumented::{
    InstrumentedBlobStore, InstrumentedMetadata, StorageObserver, StorageOp,
};

/// Remembers every observation.
#[derive(Default)]
struct Recorder(Mutex<Vec<(StorageOp, bool)>>);

impl StorageObserver for Recorder {
    fn observe(&self, op: StorageOp, _elapsed: Duration, ok: bool) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push((op, ok));
        }
    }
}

impl Recorder {
    fn seen(&self) -> Vec<(&'static str, &'static str, &'static str, bool)> {
        self.0
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(op, ok)| (op.store, op.backend, op.operation, *ok))
                    .collect()
            })
            .unwrap_or_default()
    }
}

mod blob_suite {
    use super::*;

    blobs::blob_store_tests!(async {
        let (dir, fs) = blobs::testsuite::temp_fs_store().expect("temp dir");
        let store = InstrumentedBlobStore::new(Arc::new(fs), "fs", Arc::new(Recorder::default()));
        (dir, store)
    });
}

/// Every role the decorator times passes its suite through it (job locks it leaves to the backend).
mod metadata_suite {
    use super::*;

    fn timed_sqlite() -> InstrumentedMetadata {
        let sqlite = SqliteStore::open_temporary().expect("temporary sqlite store");
        InstrumentedMetadata::new(
            metadata::Metadata::of(Arc::new(sqlite)),
            "sqlite",
            Arc::new(Recorder::default()),
        )
    }

    metadata::catalog_tests!(async { timed_sqlite() });
    metadata::upload_session_tests!(async { timed_sqlite() });
    metadata::proxy_entry_tests!(async { timed_sqlite() });
    metadata::gc_mark_tests!(async { timed_sqlite() });
    metadata::tag_age_tests!(async { timed_sqlite() });
    metadata::usage_tests!(async { timed_sqlite() });
}

#[tokio::test]
async fn blob_calls_are_reported_once_with_their_outcome() {
    let (_dir, fs) = blobs::testsuite::temp_fs_store().unwrap();
    let recorder = Arc::new(Recorder::default());
    let store = InstrumentedBlobStore::new(Arc::new(fs), "fs", recorder.clone());
    let missing = Digest::sha256_of(b"nothing");

    assert_eq!(store.stat(&missing).await.unwrap(), None);
    let id = blobs::UploadId::random();
    // Continuing an upload that holds nothing is an error of the store: reported as not ok.
    let empty: blobs::ByteStream = Box::pin(futures_util::stream::empty());
    assert!(store.upload_write(&id, 5, empty).await.is_err());
    assert!(!store.delete(&missing).await.unwrap());

    assert_eq!(
        recorder.seen(),
        [
            ("blobs", "fs", "stat", true),
            ("blobs", "fs", "upload_write", false),
            ("blobs", "fs", "delete", true),
        ]
    );
}

#[tokio::test]
async fn metadata_calls_are_reported_once_with_their_outcome() {
    let recorder = Arc::new(Recorder::default());
    let store = InstrumentedMetadata::new(
        metadata::Metadata::of(Arc::new(SqliteStore::open_temporary().unwrap())),
        "sqlite",
        recorder.clone(),
    );
    let repo: oci::RepoName = "a/b".parse().unwrap();
    let d = Digest::sha256_of(b"layer");
    store.link_blob(&repo, &d, 5).await.unwrap();
    assert_eq!(store.linked_blob(&repo, &d).await.unwrap(), Some(5));
    assert!(store.list_repos(None, 10).await.unwrap().is_empty());

    assert_eq!(
        recorder.seen(),
        [
            ("metadata", "sqlite", "link_blob", true),
            ("metadata", "sqlite", "linked_blob", true),
            ("metadata", "sqlite", "list_repos", true),
        ]
    );
}
