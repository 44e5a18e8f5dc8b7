//! Scrub: bytes that are not their digest's are found and, with repair, quarantined so that a pull
//! answers BLOB_UNKNOWN instead of wrong bytes; rows without bytes are reported; a stopped scrub
//! continues from its cursor.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use std::time::Duration;

use berth_registry as registry;
use blobs::BlobStore;
use common::{Env, content, pull, push, repo};
use metadata::{ScrubCursor, ScrubProgress};
use oci::Digest;
use registry::Error;
use registry::scrub::{ScrubOptions, ScrubReport};

fn options(repair: bool) -> ScrubOptions {
    ScrubOptions {
        rate: None,
        repair,
        grace: Duration::ZERO,
    }
}

async fn scrub(env: &Env, repair: bool) -> ScrubReport {
    env.reg
        .scrub(options(repair))
        .await
        .unwrap()
        .expect("the job lock was free")
}

/// The file of blob `d` under the filesystem store's root.
fn blob_file(env: &Env, d: &Digest) -> std::path::PathBuf {
    env.blobs
        .root()
        .join("blobs")
        .join(d.algorithm().as_str())
        .join(&d.hex()[..2])
        .join(d.hex())
}

#[tokio::test]
async fn corrupt_bytes_are_found_and_repair_quarantines_them() {
    let env = Env::new();
    let r = repo("app");
    let good = push(&env.reg, &r, &content(5000, 1)).await;
    let data = content(6000, 2);
    let bad = push(&env.reg, &r, &data).await;
    let path = blob_file(&env, &bad);
    assert!(path.is_file(), "{path:?}");
    // One byte flipped on disk: the size is right, the bytes are not.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let report = scrub(&env, false).await;
    assert!(report.finished);
    assert_eq!(report.corrupt, vec![bad.clone()]);
    assert_eq!((report.checked, report.bytes), (2, 11000));
    assert!(report.quarantined.is_empty() && report.missing.is_empty());
    assert!(report.to_string().contains("1 corrupt"), "{report}");
    // Without repair the wrong bytes are still there.
    assert!(env.blobs.stat(&bad).await.unwrap().is_some());

    let report = scrub(&env, true).await;
    assert_eq!(report.quarantined, vec![bad.clone()]);
    assert!(env.blobs.stat(&bad).await.unwrap().is_none());
    assert!(
        env.blobs
            .root()
            .join("quarantine")
            .join(format!("sha256-{}", bad.hex()))
            .is_file(),
        "the bytes are kept for an operator"
    );
    assert!(matches!(
        pull(&env.reg, &r, &bad).await,
        Err(Error::BlobUnknown(_))
    ));
    assert_eq!(pull(&env.reg, &r, &good).await.unwrap(), content(5000, 1));

    // Now the row has no bytes: reported missing; pushed again, the blob is whole.
    let report = scrub(&env, false).await;
    assert_eq!(report.missing, vec![bad.clone()]);
    assert!(report.corrupt.is_empty());
    assert_eq!(push(&env.reg, &r, &data).await, bad);
    assert_eq!(pull(&env.reg, &r, &bad).await.unwrap(), data);
    let report = scrub(&env, false).await;
    assert!(
        report.missing.is_empty() && report.corrupt.is_empty(),
        "{report:?}"
    );
}

/// A saved cursor is where the next scrub starts, counting what the stopped one had found; a finished
/// scrub forgets it.
#[tokio::test]
async fn a_stopped_scrub_continues_from_its_cursor() {
    let env = Env::new();
    let r = repo("app");
    let mut digests = Vec::new();
    for seed in 0..5 {
        digests.push(push(&env.reg, &r, &content(1000, seed)).await);
    }
    digests.sort();
    env.meta
        .save_scrub_cursor(Some(&ScrubCursor {
            after: digests[1].clone(),
            started_at: 1,
            checked: 2,
            bytes: 2000,
            corrupt: 1,
            missing: 0,
        }))
        .await
        .unwrap();
    let report = scrub(&env, false).await;
    assert_eq!(report.resumed_after, Some(digests[1].clone()));
    assert_eq!(
        (report.checked, report.bytes),
        (5, 5000),
        "two before, three now"
    );
    assert_eq!(report.corrupt_total, 1, "the stopped run's finding counts");
    assert!(report.to_string().contains("continued after"), "{report}");
    assert_eq!(env.meta.scrub_cursor().await.unwrap(), None);
    let report = scrub(&env, false).await;
    assert_eq!((report.resumed_after, report.checked), (None, 5));
}

/// One scrub at a time.
#[tokio::test]
async fn a_scrub_is_skipped_while_another_holds_the_lock() {
    let env = Env::new();
    let other = metadata::sqlite::SqliteStore::open(&env.dir.path().join("metadata.db")).unwrap();
    let _held = metadata::JobLocks::try_job_lock(&other, registry::scrub::SCRUB_JOB)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(env.reg.scrub(options(false)).await.unwrap(), None);
}
