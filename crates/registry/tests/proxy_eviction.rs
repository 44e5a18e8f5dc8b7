//! Eviction of the pull-through cache: by age and by size (least recently pulled first), through the
//! same deletes a client would make, never touching local repositories, and counted in the metrics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;
mod proxy_common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_registry as registry;
use blobs::BlobStore;
use bytes::Bytes;
use common::{Env, content, pull, push, repo, tag};
use metadata::{Catalog, ProxyEntries, ProxyEntryKind};
use oci::{Digest, RepoName};
use proxy_common::{FakeUpstream, cache_with, linked};
use registry::proxy::{CacheEvent, Eviction};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: i64 = 24 * 3600;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn eviction(max_bytes: Option<u64>, max_age: Option<Duration>) -> Eviction {
    Eviction {
        max_bytes,
        max_age,
        interval: HOUR,
    }
}

/// An image in the upstream's `name`: a manifest over one layer of `layer_len` bytes (and a config).
async fn upstream_image(
    up: &FakeUpstream,
    name: &RepoName,
    seed: u8,
    layer_len: usize,
) -> (Digest, Vec<Digest>) {
    let config = format!(r#"{{"seed":{seed}}}"#);
    let layer = content(layer_len, seed);
    let c = push(up.reg(), name, config.as_bytes()).await;
    let l = push(up.reg(), name, &layer).await;
    let manifest = common::image_manifest((&c, config.len()), &[(&l, layer.len())]);
    let out = up
        .reg()
        .put_manifest(
            name,
            &tag("1"),
            Some("application/vnd.oci.image.manifest.v1+json"),
            Bytes::from(manifest),
        )
        .await
        .unwrap();
    (out.digest, vec![c, l])
}

/// Pulls the image's manifest and blobs through the cache.
async fn pull_image(env: &Env, name: &RepoName, blobs: &[Digest]) {
    env.reg.get_manifest(name, &tag("1")).await.unwrap();
    for b in blobs {
        pull(&env.reg, name, b).await.unwrap();
        // The fetch records and links the blob just after its reader finished.
        linked(env, name, b).await;
    }
}

#[tokio::test]
async fn content_not_pulled_within_the_age_limit_goes() {
    let up = FakeUpstream::new();
    let cached = repo("org/a");
    let (m, blobs) = upstream_image(&up, &cached, 1, 20_000).await;
    let limits = eviction(None, Some(Duration::from_secs(7 * DAY as u64)));
    let (env, events) = cache_with(&up, "", false, HOUR, Some(limits.clone()));
    pull_image(&env, &cached, &blobs).await;
    let entries = env.meta.oldest_proxy_entries(i64::MAX, 10).await.unwrap();
    assert_eq!(entries.len(), 3, "a manifest and two blobs: {entries:?}");

    // Within the limit: nothing goes.
    let report = env
        .reg
        .evict_cache_as_of(&limits, now() + DAY)
        .await
        .unwrap();
    assert_eq!(report.entries, 0);
    // Past it: all three.
    let report = env
        .reg
        .evict_cache_as_of(&limits, now() + 8 * DAY)
        .await
        .unwrap();
    assert_eq!(report.entries, 3);
    assert!(env.meta.manifest(&cached, &m).await.unwrap().is_none());
    for b in &blobs {
        assert!(env.meta.linked_blob(&cached, b).await.unwrap().is_none());
        assert!(env.blobs.stat(b).await.unwrap().is_none(), "bytes deleted");
    }
    assert!(
        env.meta
            .oldest_proxy_entries(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        events.count(|e| matches!(e, CacheEvent::Evicted { entries: 3, .. })),
        1
    );
    // The next pull fetches again.
    let before = up.calls.snapshot();
    pull_image(&env, &cached, &blobs).await;
    let after = up.calls.snapshot();
    assert_eq!((after.1 - before.1, after.2 - before.2), (1, 2));
}

#[tokio::test]
async fn the_least_recently_pulled_go_first_until_the_cache_fits() {
    let up = FakeUpstream::new();
    let (a, b) = (repo("org/a"), repo("org/b"));
    let (ma, blobs_a) = upstream_image(&up, &a, 1, 50_000).await;
    let (mb, blobs_b) = upstream_image(&up, &b, 2, 50_000).await;
    let limits = eviction(Some(60_000), None);
    let (env, _) = cache_with(&up, "hub", false, HOUR, Some(limits.clone()));
    let (ca, cb) = (repo("hub/org/a"), repo("hub/org/b"));
    pull_image(&env, &ca, &blobs_a).await;
    pull_image(&env, &cb, &blobs_b).await;
    // org/a is pulled again later (in a second's resolution, a later time is written here): org/b is
    // now the least recently pulled, although it sorts after org/a.
    env.reg.get_manifest(&ca, &tag("1")).await.unwrap();
    env.reg.flush_cache_pulls().await.unwrap();
    let later: Vec<_> = env
        .meta
        .oldest_proxy_entries(i64::MAX, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.repo == ca)
        .map(|e| metadata::ProxyEntry {
            pulled_at: now() + 60,
            ..e
        })
        .collect();
    env.meta.touch_proxy_entries(&later).await.unwrap();
    assert!(env.meta.proxy_entries_size().await.unwrap() > 100_000);

    let report = env.reg.evict_cache(&limits).await.unwrap();
    assert_eq!(report.entries, 3, "org/b's manifest and blobs");
    assert!(env.meta.proxy_entries_size().await.unwrap() <= 60_000);
    assert!(env.meta.manifest(&cb, &mb).await.unwrap().is_none());
    assert!(env.meta.manifest(&ca, &ma).await.unwrap().is_some());
    for d in &blobs_a {
        assert!(pull(&env.reg, &ca, d).await.is_ok());
    }
    let kinds: Vec<ProxyEntryKind> = env
        .meta
        .oldest_proxy_entries(i64::MAX, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.len(), 3);
}

#[tokio::test]
async fn eviction_never_touches_local_repositories() {
    let up = FakeUpstream::new();
    let cached = repo("org/a");
    let (_, blobs) = upstream_image(&up, &cached, 1, 30_000).await;
    let limits = eviction(Some(0), Some(Duration::ZERO));
    let (env, _) = cache_with(&up, "hub", false, HOUR, Some(limits.clone()));
    // A local repository holding one of the same blobs, and one of its own.
    let local = repo("team/app");
    let layer = content(30_000, 1);
    assert_eq!(push(&env.reg, &local, &layer).await, blobs[1]);
    let own = push(&env.reg, &local, b"local only").await;
    let (local_manifest, _) = common::push_image(&env.reg, &local, "v1", 9).await;

    let via = repo("hub/org/a");
    pull_image(&env, &via, &blobs).await;
    let report = env
        .reg
        .evict_cache_as_of(&limits, now() + DAY)
        .await
        .unwrap();
    assert_eq!(report.entries, 3);
    assert!(
        env.meta
            .linked_blob(&via, &blobs[1])
            .await
            .unwrap()
            .is_none()
    );
    // The shared blob's bytes stay for the local repository; its own content is untouched.
    assert_eq!(pull(&env.reg, &local, &blobs[1]).await.unwrap(), layer);
    assert_eq!(pull(&env.reg, &local, &own).await.unwrap(), b"local only");
    let m = env.reg.get_manifest(&local, &tag("v1")).await.unwrap();
    assert_eq!(m.digest, local_manifest);
}

#[tokio::test]
async fn without_eviction_what_is_fetched_is_recorded_but_not_pull_times() {
    let up = FakeUpstream::new();
    let cached = repo("org/a");
    let (_, blobs) = upstream_image(&up, &cached, 1, 1000).await;
    let (env, _) = cache_with(&up, "", false, HOUR, None);
    pull_image(&env, &cached, &blobs).await;
    // The entries keep the cache's blobs from the garbage collector, eviction or not.
    let fetched = env.meta.oldest_proxy_entries(i64::MAX, 10).await.unwrap();
    assert_eq!(fetched.len(), 3, "a manifest and two blobs: {fetched:?}");
    // A later pull moves no pull time: nothing reads them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    pull_image(&env, &cached, &blobs).await;
    env.reg.flush_cache_pulls().await.unwrap();
    assert_eq!(
        env.meta.oldest_proxy_entries(i64::MAX, 10).await.unwrap(),
        fetched
    );
}

/// A push of a blob the cache holds, caught between finding its bytes present and linking them, while
/// eviction removes the cache's link: the bytes must stay for the push (eviction waits for the link, or
/// the push would link bytes that are gone).
#[tokio::test]
async fn eviction_keeps_the_bytes_a_concurrent_push_is_linking() {
    eviction_racing(Link::Push).await;
}

/// The same with a mount from anywhere in the registry (which finds the blob through the cache's link).
#[tokio::test]
async fn eviction_keeps_the_bytes_a_concurrent_mount_is_linking() {
    eviction_racing(Link::Mount).await;
}

/// How a local repository comes to link a blob the cache holds.
#[derive(Clone, Copy)]
enum Link {
    Push,
    Mount,
}

async fn eviction_racing(how: Link) {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use common::faulty::FaultyMeta;
    use registry::MountOutcome;
    use registry::proxy::{Namespace, ProxySettings};
    use tokio::sync::Semaphore;

    let up = FakeUpstream::new();
    let cached = repo("org/a");
    let (_, blobs) = upstream_image(&up, &cached, 1, 30_000).await;
    let limits = eviction(Some(0), Some(Duration::ZERO));
    let mut env = Env::new();
    let meta = FaultyMeta::new(env.meta.clone());
    env.reg = registry::Registry::new(env.blobs.clone(), meta.metadata(), Default::default())
        .with_proxy(
            ProxySettings {
                namespaces: vec![Namespace {
                    prefix: "hub".into(),
                    upstream: up.clone(),
                    official_library: false,
                }],
                revalidate_after: HOUR,
                eviction: Some(limits.clone()),
            },
            None,
        );
    let via = repo("hub/org/a");
    pull_image(&env, &via, &blobs).await;

    // The local repository's link of the same layer stops just before it is made.
    let held = Arc::new(Semaphore::new(0));
    *meta.links.lock().unwrap() = Some(held.clone());
    let local = repo("team/app");
    let layer = content(30_000, 1);
    let linking = tokio::spawn({
        let (reg, local, layer, digest) = (
            env.reg.clone(),
            local.clone(),
            layer.clone(),
            blobs[1].clone(),
        );
        async move {
            match how {
                Link::Push => push(&reg, &local, &layer).await,
                Link::Mount => match reg.mount_blob(&local, &digest, None).await.unwrap() {
                    MountOutcome::Mounted(info) => info.digest,
                    MountOutcome::Started(_) => panic!("the blob was there to mount"),
                },
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), async {
        while meta.links_waiting.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the push never reached its link");

    // Eviction meanwhile: it must not delete the layer's bytes while they are about to be linked. It is
    // given a moment to do its worst (without the blob's lock it finishes in it), then the link goes on.
    let evict = tokio::spawn({
        let (reg, limits) = (env.reg.clone(), limits.clone());
        async move { reg.evict_cache_as_of(&limits, now() + DAY).await }
    });
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while !evict.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    *meta.links.lock().unwrap() = None;
    held.add_permits(1);
    assert_eq!(linking.await.unwrap(), blobs[1]);
    let report = evict.await.unwrap().unwrap();

    assert_eq!(report.entries, 3, "the cache's manifest and both its blobs");
    assert!(meta.linked_blob(&via, &blobs[1]).await.unwrap().is_none());
    assert_eq!(
        pull(&env.reg, &local, &blobs[1]).await.unwrap(),
        layer,
        "the linked blob's bytes are there"
    );
    assert!(
        env.blobs.stat(&blobs[0]).await.unwrap().is_none(),
        "the config, which nobody linked, went"
    );
}

/// The garbage collector leaves what the cache holds to eviction, with or without eviction configured:
/// a cached manifest records no references to blobs it had not fetched, so to the collector cached
/// layers looked unreferenced, and every sweep threw the cache away (and a pull racing the sweep got a
/// 404). Untagged cached manifests (an index's children) stay too. After eviction, the sweep frees
/// what is left.
#[tokio::test]
async fn garbage_collection_leaves_cached_content_to_eviction() {
    use registry::gc::GcOptions;
    for limits in [None, Some(eviction(None, Some(HOUR)))] {
        let up = FakeUpstream::new();
        let cached = repo("org/a");
        let (m, blobs) = upstream_image(&up, &cached, 1, 20_000).await;
        let (env, _) = cache_with(&up, "", false, HOUR, limits.clone());
        pull_image(&env, &cached, &blobs).await;
        // Fetched by digest only, as an index's child is: untagged.
        let (child, child_blobs) = upstream_image(&up, &repo("org/a"), 2, 5_000).await;
        env.reg
            .get_manifest(&cached, &common::by_digest(&child))
            .await
            .unwrap();
        for b in &child_blobs {
            pull(&env.reg, &cached, b).await.unwrap();
            linked(&env, &cached, b).await;
        }
        let sweep = GcOptions {
            grace: Duration::ZERO,
            dry_run: false,
            delete_untagged: true,
        };
        let report = env.reg.collect_garbage(sweep).await.unwrap().unwrap();
        assert_eq!(
            (report.blobs.len(), report.manifests.len()),
            (0, 0),
            "{limits:?}"
        );
        for b in blobs.iter().chain(&child_blobs) {
            assert!(
                env.blobs.stat(b).await.unwrap().is_some(),
                "{limits:?}: {b}"
            );
            assert!(env.meta.linked_blob(&cached, b).await.unwrap().is_some());
        }
        assert!(env.meta.manifest(&cached, &m).await.unwrap().is_some());
        assert!(env.meta.manifest(&cached, &child).await.unwrap().is_some());
        let before = up.calls.snapshot();
        pull_image(&env, &cached, &blobs).await;
        assert_eq!(up.calls.snapshot().2, before.2, "no blob fetched again");

        // Evicted (as eviction does, entry by entry): the next sweep frees what no one else holds.
        if let Some(limits) = &limits {
            env.reg
                .evict_cache_as_of(limits, now() + DAY)
                .await
                .unwrap();
            let report = env.reg.collect_garbage(sweep).await.unwrap().unwrap();
            for b in blobs.iter().chain(&child_blobs) {
                assert!(
                    env.blobs.stat(b).await.unwrap().is_none(),
                    "{b}: {report:?}"
                );
            }
        }
    }
}
