//! Garbage collection while serving: what no manifest references goes after the grace period, what
//! anything references stays, a dry run frees nothing, and a push racing a sweep on another replica
//! waits for it and keeps its bytes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_registry as registry;
use blobs::BlobStore;
use common::{Env, by_digest, content, pull, push, push_image, repo};
use metadata::sqlite::SqliteStore;
use metadata::{Catalog, GcMarks, Metadata};
use oci::Digest;
use registry::gc::{GcOptions, GcReport};
use registry::{Error, Registry, Settings};
use tokio::sync::Semaphore;

fn at_once() -> GcOptions {
    GcOptions {
        grace: Duration::ZERO,
        dry_run: false,
        delete_untagged: false,
    }
}

async fn collect(reg: &Registry, options: GcOptions) -> GcReport {
    reg.collect_garbage(options)
        .await
        .unwrap()
        .expect("the job lock was free")
}

async fn on_disk(env: &Env, d: &Digest) -> bool {
    env.blobs.stat(d).await.unwrap().is_some()
}

#[tokio::test]
async fn unreferenced_blobs_go_and_referenced_ones_stay() {
    let env = Env::new();
    let r = repo("app");
    let (_, manifest) = push_image(&env.reg, &r, "v1", 1).await;
    let loose = push(&env.reg, &r, &content(5000, 9)).await;

    let report = collect(&env.reg, at_once()).await;
    assert_eq!(report.blobs, vec![loose.clone()]);
    assert_eq!(report.bytes, 5000);
    assert!(!on_disk(&env, &loose).await, "its bytes are gone");
    assert!(matches!(
        pull(&env.reg, &r, &loose).await,
        Err(Error::BlobUnknown(_))
    ));
    // The image is whole: every blob it references pulls back.
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    for d in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
        let d: Digest = d.as_str().unwrap().parse().unwrap();
        assert!(pull(&env.reg, &r, &d).await.is_ok(), "{d}");
    }
    // Nothing left to do.
    assert!(collect(&env.reg, at_once()).await.blobs.is_empty());
    // The swept blob may be pushed again.
    assert_eq!(push(&env.reg, &r, &content(5000, 9)).await, loose);
    assert_eq!(pull(&env.reg, &r, &loose).await.unwrap(), content(5000, 9));
}

#[tokio::test]
async fn the_grace_period_and_a_dry_run_keep_everything() {
    let env = Env::new();
    let r = repo("app");
    let loose = push(&env.reg, &r, &content(700, 3)).await;
    let kept = collect(
        &env.reg,
        GcOptions {
            grace: Duration::from_secs(3600),
            ..at_once()
        },
    )
    .await;
    assert!(kept.blobs.is_empty());
    let dry = collect(
        &env.reg,
        GcOptions {
            dry_run: true,
            ..at_once()
        },
    )
    .await;
    assert_eq!(
        (dry.blobs.clone(), dry.bytes, dry.dry_run),
        (vec![loose.clone()], 700, true)
    );
    assert!(
        dry.to_string()
            .starts_with("garbage collection would free 1 blobs, 700 bytes")
    );
    assert!(on_disk(&env, &loose).await);
    assert!(pull(&env.reg, &r, &loose).await.is_ok());
}

/// Deleting a manifest frees the blobs only it referenced; one another image shares stays.
#[tokio::test]
async fn deleting_a_manifest_frees_what_only_it_referenced() {
    let env = Env::with_deletes();
    let (a, b) = (repo("team/a"), repo("team/b"));
    let (gone, manifest) = push_image(&env.reg, &a, "old", 4).await;
    // Team b pushes an image of the same layer with another config.
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let layer: Digest = m["layers"][0]["digest"].as_str().unwrap().parse().unwrap();
    let config: Digest = m["config"]["digest"].as_str().unwrap().parse().unwrap();
    push_image(&env.reg, &b, "v1", 4).await;
    let b_config = {
        let (_, mb) = push_image(&env.reg, &b, "v2", 5).await;
        let v: serde_json::Value = serde_json::from_str(&mb).unwrap();
        v["config"]["digest"].as_str().unwrap().to_string()
    };
    env.reg
        .delete_manifest(&a, &by_digest(&gone))
        .await
        .unwrap();

    let report = collect(&env.reg, at_once()).await;
    // a's config and layer are still referenced by b's v1 (the same seed, the same bytes).
    assert!(report.blobs.is_empty(), "{report:?}");
    assert!(on_disk(&env, &layer).await && on_disk(&env, &config).await);
    assert!(!b_config.is_empty());
    // Once b's v1 goes too, they go.
    let v1 = env
        .reg
        .get_manifest(&b, &common::tag("v1"))
        .await
        .unwrap()
        .digest;
    env.reg.delete_manifest(&b, &by_digest(&v1)).await.unwrap();
    let mut freed = collect(&env.reg, at_once()).await.blobs;
    freed.sort();
    let mut want = vec![layer.clone(), config.clone()];
    want.sort();
    assert_eq!(freed, want);
    // b's v2 still pulls.
    let d: Digest = b_config.parse().unwrap();
    assert!(pull(&env.reg, &b, &d).await.is_ok());
}

/// A `GcMarks` whose claims, once made, wait for a permit before they return: a sweep held between
/// claiming a blob and deleting its bytes.
struct HeldClaims {
    inner: Arc<dyn GcMarks>,
    gate: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl GcMarks for HeldClaims {
    async fn reserve_blob(&self, d: &Digest, size: u64) -> metadata::Result<bool> {
        self.inner.reserve_blob(d, size).await
    }
    async fn unreferenced_blobs(
        &self,
        before: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> metadata::Result<Vec<(Digest, u64)>> {
        self.inner.unreferenced_blobs(before, after, limit).await
    }
    async fn claim_blob(&self, d: &Digest, before: i64) -> metadata::Result<bool> {
        let claimed = self.inner.claim_blob(d, before).await?;
        self.gate.acquire().await.unwrap().forget();
        Ok(claimed)
    }
    async fn release_blob(&self, d: &Digest) -> metadata::Result<()> {
        self.inner.release_blob(d).await
    }
    async fn claimed_blobs(&self, limit: usize) -> metadata::Result<Vec<Digest>> {
        self.inner.claimed_blobs(limit).await
    }
    async fn recorded_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> metadata::Result<Vec<metadata::RecordedBlob>> {
        self.inner.recorded_blobs(after, limit).await
    }
    async fn claim_unrecorded_blob(&self, d: &Digest, size: u64) -> metadata::Result<bool> {
        let claimed = self.inner.claim_unrecorded_blob(d, size).await?;
        self.gate.acquire().await.unwrap().forget();
        Ok(claimed)
    }
    async fn unreachable_manifests(
        &self,
        r: &oci::RepoName,
        before: i64,
    ) -> metadata::Result<Vec<Digest>> {
        self.inner.unreachable_manifests(r, before).await
    }
    async fn delete_unreachable_manifest(
        &self,
        r: &oci::RepoName,
        d: &Digest,
        before: i64,
    ) -> metadata::Result<bool> {
        self.inner.delete_unreachable_manifest(r, d, before).await
    }
}

/// Two replicas over one store and one database. Replica A's sweep has claimed a blob and is held
/// before deleting its bytes; replica B pushes the same blob: B must not find the old bytes and link
/// them (they are about to go), but wait for the sweep and write them anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_on_another_replica_waits_for_a_sweep_and_keeps_its_bytes() {
    let env = Env::new();
    let r = repo("app");
    let data = content(4096, 7);
    let d = push(&env.reg, &r, &data).await;

    let gate = Arc::new(Semaphore::new(0));
    let sweeper_store = Arc::new(SqliteStore::open(&env.dir.path().join("metadata.db")).unwrap());
    let sweeper = Registry::new(
        env.blobs.clone(),
        Metadata {
            gc: Arc::new(HeldClaims {
                inner: sweeper_store.clone(),
                gate: gate.clone(),
            }),
            ..Metadata::of(sweeper_store)
        },
        Settings::default(),
    );
    let sweep = tokio::spawn(async move { sweeper.collect_garbage(at_once()).await });
    // Wait until the sweep holds its claim: the blob is unlinked.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pull(&env.reg, &r, &d).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep never claimed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(on_disk(&env, &d).await, "held before deleting the bytes");

    let pusher = env.reg.clone();
    let (pr, pdata) = (r.clone(), data.clone());
    let push = tokio::spawn(async move { common::push(&pusher, &pr, &pdata).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !push.is_finished(),
        "the push linked bytes a sweep was deleting"
    );

    gate.add_permits(1);
    let report = sweep.await.unwrap().unwrap().unwrap();
    assert_eq!(report.blobs, vec![d.clone()]);
    assert_eq!(push.await.unwrap(), d);
    assert!(on_disk(&env, &d).await, "the push wrote the bytes anew");
    assert_eq!(pull(&env.reg, &r, &d).await.unwrap(), data);
}

/// A sweep that stopped between a claim and its release leaves the claim; the next one finishes it.
#[tokio::test]
async fn the_next_sweep_finishes_a_stopped_one() {
    let env = Env::new();
    let r = repo("app");
    let d = push(&env.reg, &r, &content(100, 2)).await;
    let cutoff = i64::MAX;
    assert!(env.meta.claim_blob(&d, cutoff).await.unwrap());
    assert!(on_disk(&env, &d).await);
    let report = collect(&env.reg, at_once()).await;
    assert_eq!(report.resumed, 1);
    assert!(!on_disk(&env, &d).await);
    assert!(env.meta.claimed_blobs(10).await.unwrap().is_empty());
}

/// One sweep at a time: while the job lock is held elsewhere, a sweep does nothing.
#[tokio::test]
async fn a_sweep_is_skipped_while_another_holds_the_lock() {
    let env = Env::new();
    let r = repo("app");
    let d = push(&env.reg, &r, &content(100, 2)).await;
    let other = SqliteStore::open(&env.dir.path().join("metadata.db")).unwrap();
    let held = metadata::JobLocks::try_job_lock(&other, registry::gc::GC_JOB)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(env.reg.collect_garbage(at_once()).await.unwrap(), None);
    assert!(on_disk(&env, &d).await);
    drop(held);
    assert_eq!(collect(&env.reg, at_once()).await.blobs, vec![d]);
}

/// With `delete_untagged`, a manifest no tag reaches goes, and with a grace of zero its blobs in the
/// same run; a tagged image and the children of a tagged index stay; the dry run only lists.
#[tokio::test]
async fn untagged_manifests_go_with_their_blobs() {
    let env = Env::new();
    let r = repo("app");
    let (kept, _) = push_image(&env.reg, &r, "v1", 1).await;
    let (loose, loose_manifest) = push_image(&env.reg, &r, "temporary", 2).await;
    // Untag it: the same manifest stays, by digest only.
    env.meta
        .delete_tag(&r, &"temporary".parse().unwrap())
        .await
        .unwrap();
    let options = GcOptions {
        delete_untagged: true,
        ..at_once()
    };
    let dry = collect(
        &env.reg,
        GcOptions {
            dry_run: true,
            ..options
        },
    )
    .await;
    assert_eq!(dry.manifests, vec![(r.clone(), loose.clone())]);
    assert!(env.reg.get_manifest(&r, &by_digest(&loose)).await.is_ok());

    let report = collect(&env.reg, options).await;
    assert_eq!(report.manifests, vec![(r.clone(), loose.clone())]);
    let m: serde_json::Value = serde_json::from_str(&loose_manifest).unwrap();
    let mut blobs: Vec<Digest> = [&m["config"]["digest"], &m["layers"][0]["digest"]]
        .iter()
        .map(|d| d.as_str().unwrap().parse().unwrap())
        .collect();
    blobs.sort();
    let mut freed = report.blobs.clone();
    freed.sort();
    assert_eq!(freed, blobs, "its blobs went in the same run");
    assert!(matches!(
        env.reg.get_manifest(&r, &by_digest(&loose)).await,
        Err(Error::ManifestUnknown(_))
    ));
    assert!(env.reg.get_manifest(&r, &by_digest(&kept)).await.is_ok());
    assert!(collect(&env.reg, options).await.manifests.is_empty());
}

/// Bytes committed straight into the store, with no metadata row: what a crash between a commit and
/// its record leaves.
async fn orphan(env: &Env, data: &[u8]) -> Digest {
    let digest = Digest::sha256_of(data);
    let id = blobs::UploadId::random();
    let body: blobs::ByteStream = Box::pin(futures_util::stream::once(std::future::ready(Ok(
        bytes::Bytes::copy_from_slice(data),
    ))));
    let len = env.blobs.upload_write(&id, 0, body).await.unwrap();
    env.blobs.upload_commit(&id, len, &digest).await.unwrap();
    digest
}

/// Bytes no row records go once older than the grace period (listed, not deleted, by a dry run); the
/// blobs of an image, which rows record, stay.
#[tokio::test]
async fn orphaned_bytes_go_after_the_grace_period() {
    let env = Env::new();
    let r = repo("app");
    let (image, _) = push_image(&env.reg, &r, "v1", 3).await;
    let lost = orphan(&env, &content(7000, 4)).await;

    let within_grace = GcOptions {
        grace: Duration::from_secs(3600),
        ..at_once()
    };
    let report = collect(&env.reg, within_grace).await;
    assert!(report.orphans.is_empty(), "{report:?}");
    assert!(on_disk(&env, &lost).await, "younger than the grace period");

    let dry = collect(
        &env.reg,
        GcOptions {
            dry_run: true,
            ..at_once()
        },
    )
    .await;
    assert_eq!(
        (dry.orphans.clone(), dry.orphan_bytes),
        (vec![lost.clone()], 7000)
    );
    assert!(
        dry.to_string()
            .contains("would free 1 orphaned blobs (bytes no metadata records), 7000 bytes"),
        "{dry}"
    );
    assert!(on_disk(&env, &lost).await, "a dry run deletes nothing");

    let report = collect(&env.reg, at_once()).await;
    assert_eq!(
        (report.orphans.clone(), report.orphan_bytes),
        (vec![lost.clone()], 7000)
    );
    assert!(
        report
            .to_string()
            .contains("freed 1 orphaned blobs (bytes no metadata records), 7000 bytes"),
        "{report}"
    );
    assert!(!on_disk(&env, &lost).await);
    assert!(report.missing.is_empty());
    assert!(
        env.meta.claimed_blobs(10).await.unwrap().is_empty(),
        "released"
    );
    let totals = env.reg.gc_totals();
    assert_eq!((totals.orphans, totals.orphan_bytes), (1, 7000));
    // The image pulls back whole.
    let m = env.reg.get_manifest(&r, &by_digest(&image)).await.unwrap();
    assert_eq!(m.digest, image);
    let again = collect(&env.reg, at_once()).await;
    assert!(
        again.orphans.is_empty() && again.blobs.is_empty(),
        "{again:?}"
    );
}

/// A row whose bytes are gone is reported, every run, and nothing is deleted for it: the image that
/// references it stays.
#[tokio::test]
async fn rows_whose_bytes_are_missing_are_reported_not_deleted() {
    let env = Env::new();
    let r = repo("app");
    let layer_data = content(3000, 5);
    let (image, _) = push_image(&env.reg, &r, "v1", 5).await;
    let layer = Digest::sha256_of(&layer_data);
    assert!(env.blobs.delete(&layer).await.unwrap());

    for _ in 0..2 {
        let report = collect(&env.reg, at_once()).await;
        assert_eq!(report.missing, vec![layer.clone()]);
        assert!(
            report.blobs.is_empty() && report.orphans.is_empty(),
            "{report:?}"
        );
        assert!(
            report
                .to_string()
                .contains("1 blobs the metadata records have no bytes")
        );
    }
    assert_eq!(env.reg.gc_totals().missing, 1);
    assert!(env.reg.get_manifest(&r, &by_digest(&image)).await.is_ok());
    assert_eq!(env.meta.known_blob(&layer).await.unwrap(), Some(3000));
    // Within the grace period a row without bytes may be a push between reservation and commit.
    let report = collect(
        &env.reg,
        GcOptions {
            grace: Duration::from_secs(3600),
            ..at_once()
        },
    )
    .await;
    assert!(report.missing.is_empty(), "{report:?}");
}

/// A sweep has claimed orphaned bytes and is held before deleting them; a push of the same blob must
/// not find those bytes and link them (they are about to go) but wait, and write them anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_waits_for_an_orphan_being_deleted_and_keeps_its_bytes() {
    let env = Env::new();
    let r = repo("app");
    let data = content(4096, 8);
    let d = orphan(&env, &data).await;

    let gate = Arc::new(Semaphore::new(0));
    let sweeper_store = Arc::new(SqliteStore::open(&env.dir.path().join("metadata.db")).unwrap());
    let sweeper = Registry::new(
        env.blobs.clone(),
        Metadata {
            gc: Arc::new(HeldClaims {
                inner: sweeper_store.clone(),
                gate: gate.clone(),
            }),
            ..Metadata::of(sweeper_store)
        },
        Settings::default(),
    );
    let sweep = tokio::spawn(async move { sweeper.collect_garbage(at_once()).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.meta.claimed_blobs(10).await.unwrap() != vec![d.clone()] {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep never claimed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(on_disk(&env, &d).await, "held before deleting the bytes");

    let pusher = env.reg.clone();
    let (pr, pdata) = (r.clone(), data.clone());
    let push = tokio::spawn(async move { common::push(&pusher, &pr, &pdata).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !push.is_finished(),
        "the push linked bytes a sweep was deleting"
    );

    gate.add_permits(1);
    let report = sweep.await.unwrap().unwrap().unwrap();
    assert_eq!(report.orphans, vec![d.clone()]);
    assert_eq!(push.await.unwrap(), d);
    assert!(on_disk(&env, &d).await, "the push wrote the bytes anew");
    assert_eq!(pull(&env.reg, &r, &d).await.unwrap(), data);
}
