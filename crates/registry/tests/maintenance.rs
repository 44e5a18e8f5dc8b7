//! Housekeeping over real storage: purging abandoned uploads (by the age of their last update, in pages,
//! dry runs, stale temporary files, the periodic purger) and the health probes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use std::fs::File;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use berth_registry as registry;
use blobs::BlobStore;
use common::faulty::{FaultyBlobs, FaultyMeta};
use common::*;
use metadata::UploadSessions;
use registry::{Error, Registry, UploadPurging};

const HOUR: Duration = Duration::from_secs(3600);

fn in_an_hour() -> SystemTime {
    SystemTime::now() + HOUR
}

/// Whether the upload's bytes are still in the blob store.
async fn has_bytes(env: &Env, id: &registry::UploadId, len: u64) -> bool {
    env.blobs.upload_read(id, len).await.is_ok()
}

#[tokio::test]
async fn abandoned_uploads_are_purged_with_their_bytes() {
    let env = Env::new();
    let r = repo("team/app");
    let empty = env.reg.start_upload(&r).await.unwrap();
    let with_bytes = env.reg.start_upload(&r).await.unwrap();
    env.reg
        .upload_chunk(&r, &with_bytes.id, exact(&content(4000, 1), 0))
        .await
        .unwrap();
    let blob = push(&env.reg, &r, b"a committed blob").await;

    // A cutoff an hour ahead makes every upload abandoned.
    let report = env.reg.purge_uploads(in_an_hour(), false).await.unwrap();
    let mut purged = report.uploads.clone();
    purged.sort();
    let mut want = vec![empty.id.to_string(), with_bytes.id.to_string()];
    want.sort();
    assert_eq!(purged, want);

    for id in [&empty.id, &with_bytes.id] {
        assert!(matches!(
            env.reg.upload_status(&r, id).await,
            Err(Error::BlobUploadUnknown)
        ));
    }
    assert!(
        !has_bytes(&env, &with_bytes.id, 4000).await,
        "bytes removed"
    );
    assert_eq!(
        pull(&env.reg, &r, &blob).await.unwrap(),
        b"a committed blob"
    );
    let again = env.reg.purge_uploads(in_an_hour(), false).await.unwrap();
    assert!(again.uploads.is_empty(), "{again:?}");
}

#[tokio::test]
async fn uploads_that_moved_recently_are_kept() {
    let env = Env::new();
    let r = repo("team/app");
    let st = env.reg.start_upload(&r).await.unwrap();
    env.reg
        .upload_chunk(&r, &st.id, exact(b"some bytes", 0))
        .await
        .unwrap();
    let report = env
        .reg
        .purge_uploads(SystemTime::now() - HOUR, false)
        .await
        .unwrap();
    assert!(report.uploads.is_empty(), "{report:?}");
    // The upload goes on and finishes.
    let data = b"some bytes and more";
    env.reg
        .finish_upload(&r, &st.id, &sha256(data), Some(exact(&data[10..], 10)))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_age_counts_from_the_last_update() {
    let env = Env::new();
    let r = repo("team/app");
    let st = env.reg.start_upload(&r).await.unwrap();
    // Backdate the session by a day, as if it had been abandoned then; purging sessions older than an
    // hour takes it.
    let mut session = env.meta.upload(st.id.as_str()).await.unwrap().unwrap();
    let day_ago = session.updated_at - 24 * 3600;
    session.started_at = day_ago;
    session.updated_at = day_ago;
    assert!(env.meta.delete_upload(st.id.as_str()).await.unwrap());
    assert!(env.meta.save_upload(&session, None).await.unwrap());
    // One started a day ago but updated just now is kept.
    let live = env.reg.start_upload(&r).await.unwrap();
    let mut s = env.meta.upload(live.id.as_str()).await.unwrap().unwrap();
    s.started_at = day_ago;
    assert!(env.meta.delete_upload(live.id.as_str()).await.unwrap());
    assert!(env.meta.save_upload(&s, None).await.unwrap());

    let report = env
        .reg
        .purge_uploads(SystemTime::now() - HOUR, false)
        .await
        .unwrap();
    assert_eq!(report.uploads, [st.id.to_string()]);
    assert!(env.reg.upload_status(&r, &live.id).await.is_ok());
}

#[tokio::test]
async fn a_dry_run_reports_and_keeps_everything() {
    let env = Env::new();
    let r = repo("team/app");
    let st = env.reg.start_upload(&r).await.unwrap();
    env.reg
        .upload_chunk(&r, &st.id, exact(b"kept", 0))
        .await
        .unwrap();
    let report = env.reg.purge_uploads(in_an_hour(), true).await.unwrap();
    assert_eq!(report.uploads, [st.id.to_string()]);
    assert_eq!(env.reg.upload_status(&r, &st.id).await.unwrap().offset, 4);
    assert!(has_bytes(&env, &st.id, 4).await);
}

#[tokio::test]
async fn many_abandoned_uploads_are_purged_across_pages() {
    let env = Env::new();
    let r = repo("team/app");
    for _ in 0..250 {
        env.reg.start_upload(&r).await.unwrap();
    }
    let report = env.reg.purge_uploads(in_an_hour(), false).await.unwrap();
    assert_eq!(report.uploads.len(), 250);
    assert!(
        env.meta
            .stale_uploads(i64::MAX, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn stale_temporary_files_are_purged_too() {
    let env = Env::new();
    let tmp = env.blobs.root().join("tmp");
    let stale = tmp.join("left-by-a-crash");
    File::create(&stale)
        .and_then(|f| f.set_modified(SystemTime::now() - 2 * HOUR))
        .unwrap();
    let fresh = tmp.join("a-commit-in-progress");
    File::create(&fresh).unwrap();

    let report = env
        .reg
        .purge_uploads(SystemTime::now() - HOUR, false)
        .await
        .unwrap();
    assert_eq!(report.temporaries, ["tmp/left-by-a-crash"]);
    assert!(!stale.exists() && fresh.exists());
}

#[tokio::test]
async fn the_purger_runs_by_itself() {
    let env = Env::new();
    let r = repo("team/app");
    let st = env.reg.start_upload(&r).await.unwrap();
    // Sessions keep whole seconds, so an age of one second needs up to two to pass.
    let purger = tokio::spawn(env.reg.clone().run_upload_purger(UploadPurging {
        age: Duration::from_secs(1),
        interval: Duration::from_secs(1),
        dry_run: false,
    }));
    let deadline = Instant::now() + Duration::from_secs(15);
    while env.reg.upload_status(&r, &st.id).await.is_ok() {
        assert!(Instant::now() < deadline, "the upload was not purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!purger.is_finished(), "the purger keeps running");
    purger.abort();
}

#[tokio::test]
async fn health_probes_report_failing_stores() {
    let env = Env::new();
    let blobs = FaultyBlobs::new(env.blobs.clone());
    let meta = FaultyMeta::new(env.meta.clone());
    let reg = Registry::new(
        blobs.clone(),
        meta.metadata(),
        registry::Settings::default(),
    );
    assert!(reg.check_storage().await.is_ok());
    assert!(reg.check_metadata().await.is_ok());

    blobs.fail.store(true, Ordering::SeqCst);
    assert!(matches!(reg.check_storage().await, Err(Error::Internal(_))));
    assert!(reg.check_metadata().await.is_ok());
    blobs.fail.store(false, Ordering::SeqCst);
    meta.fail.store(true, Ordering::SeqCst);
    assert!(reg.check_storage().await.is_ok());
    assert!(matches!(
        reg.check_metadata().await,
        Err(Error::Internal(_))
    ));
    // A purge over a failing store fails as a whole and is retried later; it does not half-succeed.
    assert!(reg.purge_uploads(in_an_hour(), false).await.is_err());
}

#[tokio::test]
async fn the_storage_probe_notices_a_vanished_root() {
    let env = Env::new();
    assert!(env.reg.check_storage().await.is_ok());
    std::fs::remove_dir_all(env.blobs.root()).unwrap();
    assert!(env.reg.check_storage().await.is_err());
}
