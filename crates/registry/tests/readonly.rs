//! Read-only mode (registry:2's `storage.maintenance.readonly`): every write is refused with UNSUPPORTED
//! and a message saying why, every read still works, and nothing in storage changes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use std::time::SystemTime;

use berth_registry as registry;
use bytes::Bytes;
use common::*;
use metadata::{Catalog, UploadSessions};
use oci::media_type::OCI_MANIFEST;
use registry::{Error, Page, Registry, Settings};

/// A registry over `env`'s stores in read-only mode (deletes enabled, so only the mode refuses them).
fn read_only(env: &Env) -> Registry {
    Registry::new(
        env.blobs.clone(),
        env.meta.clone(),
        Settings {
            read_only: true,
            delete_enabled: true,
            ..Settings::default()
        },
    )
}

#[track_caller]
fn assert_read_only<T: std::fmt::Debug>(result: registry::Result<T>, what: &str) {
    match result {
        Err(Error::Unsupported(msg)) => assert!(msg.contains("read-only"), "{what}: {msg}"),
        other => panic!("{what}: expected UNSUPPORTED (read-only), got {other:?}"),
    }
}

#[tokio::test]
async fn every_write_is_refused() {
    let env = Env::with_deletes();
    let r = repo("team/app");
    let (manifest_digest, manifest) = push_image(&env.reg, &r, "v1", 1).await;
    let layer = push(&env.reg, &r, b"a layer pushed while writable").await;
    // An upload started before the switch to read-only may not continue either.
    let open = env.reg.start_upload(&r).await.unwrap();
    let ro = read_only(&env);

    let data = b"new blob";
    let digest = sha256(data);
    assert_read_only(ro.start_upload(&r).await, "start upload");
    assert_read_only(
        ro.push_blob(&r, &digest, exact(data, 0)).await,
        "monolithic push",
    );
    assert_read_only(
        ro.mount_blob(&repo("other"), &layer, Some(&r)).await,
        "mount",
    );
    assert_read_only(ro.upload_chunk(&r, &open.id, exact(data, 0)).await, "PATCH");
    assert_read_only(
        ro.finish_upload(&r, &open.id, &digest, Some(exact(data, 0)))
            .await,
        "PUT to finish",
    );
    assert_read_only(ro.cancel_upload(&r, &open.id).await, "cancel upload");
    assert_read_only(
        ro.put_manifest(
            &r,
            &tag("v2"),
            Some(OCI_MANIFEST),
            Bytes::from(manifest.clone()),
        )
        .await,
        "manifest PUT",
    );
    assert_read_only(ro.delete_manifest(&r, &tag("v1")).await, "tag DELETE");
    assert_read_only(
        ro.delete_manifest(&r, &by_digest(&manifest_digest)).await,
        "manifest DELETE",
    );
    assert_read_only(ro.delete_blob(&r, &layer).await, "blob DELETE");
    assert_read_only(
        ro.purge_uploads(SystemTime::now(), false).await,
        "upload purge",
    );

    // Nothing changed underneath.
    assert_eq!(env.meta.list_tags(&r, None, 10).await.unwrap(), ["v1"]);
    assert!(env.meta.linked_blob(&r, &layer).await.unwrap().is_some());
    assert!(
        env.meta
            .linked_blob(&repo("other"), &layer)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        env.meta
            .upload(open.id.as_str())
            .await
            .unwrap()
            .map(|s| s.offset),
        Some(0),
        "the open upload is left as it was"
    );
}

#[tokio::test]
async fn reads_keep_working() {
    let env = Env::with_deletes();
    let r = repo("team/app");
    let (manifest_digest, manifest) = push_image(&env.reg, &r, "v1", 2).await;
    let data = content(5000, 9);
    let blob = push(&env.reg, &r, &data).await;
    let open = env.reg.start_upload(&r).await.unwrap();
    let ro = read_only(&env);

    let m = ro.get_manifest(&r, &tag("v1")).await.unwrap();
    assert_eq!(m.digest, manifest_digest);
    assert_eq!(m.payload, Bytes::from(manifest));
    assert!(
        ro.get_manifest(&r, &by_digest(&manifest_digest))
            .await
            .is_ok()
    );
    assert_eq!(pull(&ro, &r, &blob).await.unwrap(), data);
    assert_eq!(ro.stat_blob(&r, &blob).await.unwrap().size, 5000);
    assert_eq!(ro.list_tags(&r, &Page::default()).await.unwrap().0, ["v1"]);
    assert_eq!(ro.catalog(&Page::default()).await.unwrap().0, ["team/app"]);
    assert!(ro.referrers(&r, &manifest_digest, None).await.is_ok());
    assert_eq!(ro.upload_status(&r, &open.id).await.unwrap().offset, 0);
    // Probes and a dry-run purge write nothing, so they are allowed.
    assert!(ro.check_storage().await.is_ok());
    assert!(ro.check_metadata().await.is_ok());
    assert!(ro.purge_uploads(SystemTime::now(), true).await.is_ok());
}

#[tokio::test]
async fn the_purger_does_not_run_in_read_only_mode() {
    let env = Env::new();
    let ro = read_only(&env);
    // It returns at once instead of looping (it would otherwise sleep for its first delay).
    let settings = registry::UploadPurging {
        interval: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        ro.run_upload_purger(settings),
    )
    .await
    .expect("the purger returns in read-only mode");
}
