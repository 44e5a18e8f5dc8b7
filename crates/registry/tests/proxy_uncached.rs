//! The pull-through cache on a failing disk degrades to not caching, not to serving nothing: a fetch
//! whose storage fails goes on from the upstream, serves the readers that keep up from memory (the
//! right bytes, the last one after the digest check), caches nothing and leaves no upload behind; a
//! reader that fell behind what memory holds fails (never wrong bytes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;
mod proxy_common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_registry as registry;
use blobs::BlobStore;
use common::faulty::FaultyBlobs;
use common::{content, pull, push, read_all, repo};
use futures_util::StreamExt;
use metadata::Catalog;
use proxy_common::{FakeUpstream, cache, linked};
use registry::proxy::{CacheEvent, CacheObserver, Namespace, ProxySettings};
use tokio::sync::Semaphore;

const HOUR: Duration = Duration::from_secs(3600);

/// Files under the cache's upload directory.
fn upload_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("blobs").join("uploads"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A cache of `up` over `env`'s metadata and `disk`, reporting to `events`.
fn cache_on(
    up: &Arc<FakeUpstream>,
    env: &common::Env,
    disk: Arc<FaultyBlobs>,
    events: Arc<proxy_common::Events>,
) -> registry::Registry {
    registry::Registry::new(disk, env.meta.clone(), Default::default()).with_proxy(
        ProxySettings {
            namespaces: vec![Namespace {
                prefix: String::new(),
                upstream: up.clone(),
                official_library: false,
            }],
            ..Default::default()
        },
        Some(events as Arc<dyn CacheObserver>),
    )
}

/// Waits until the cache holds no upload file.
async fn no_uploads_left(root: &Path) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while upload_files(root) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("an upload of an uncached fetch was left behind");
}

fn uncached(e: &CacheEvent) -> bool {
    matches!(e, CacheEvent::Uncached)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_mid_fetch_still_serves_every_reader_and_caches_nothing() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    // Three segments; the disk fills 3 MiB into the first.
    let data = content(20 * 1024 * 1024 + 99, 31);
    let digest = push(up.reg(), &name, &data).await;
    let (env, _) = cache(&up, "", false, HOUR);
    // Writes wait until both readers are in.
    let writes = Arc::new(Semaphore::new(0));
    let disk = FaultyBlobs::holding(env.blobs.clone(), Some(writes.clone()), None);
    disk.fail_write_after.store(3 << 20, Ordering::SeqCst);
    let events = Arc::new(proxy_common::Events::default());
    let reg = cache_on(&up, &env, disk.clone(), events.clone());

    let a = reg.get_blob(&name, &digest, None).await.unwrap();
    let b = reg.get_blob(&name, &digest, None).await.unwrap();
    writes.add_permits(1000);
    let (a, b) = tokio::join!(read_all(a.body), read_all(b.body));
    assert!(a == data, "the first reader's bytes");
    assert!(b == data, "the second reader's bytes");
    assert_eq!(up.calls.snapshot().2, 1, "one upstream fetch for both");
    no_uploads_left(env.dir.path()).await;
    assert_eq!(env.meta.linked_blob(&name, &digest).await.unwrap(), None);
    assert_eq!(env.blobs.stat(&digest).await.unwrap(), None);
    assert_eq!(events.count(uncached), 1, "counted once per flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fails_everything_still_serves_each_request_from_the_upstream() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(9 * 1024 * 1024 + 5, 32);
    let digest = push(up.reg(), &name, &data).await;
    let (env, _) = cache(&up, "", false, HOUR);
    let disk = FaultyBlobs::new(env.blobs.clone());
    // Every call of the blob store fails, from the look for the bytes to the upload's removal.
    disk.fail.store(true, Ordering::SeqCst);
    let events = Arc::new(proxy_common::Events::default());
    let reg = cache_on(&up, &env, disk.clone(), events.clone());

    for n in 1..=2 {
        let got = tokio::time::timeout(Duration::from_secs(60), pull(&reg, &name, &digest))
            .await
            .expect("the pull hung")
            .unwrap_or_else(|e| panic!("pull {n}: {e}"));
        assert!(got == data, "pull {n}'s bytes");
    }
    assert_eq!(
        up.calls.snapshot().2,
        2,
        "nothing cached: each pull fetched"
    );
    assert_eq!(events.count(uncached), 2);
    disk.fail.store(false, Ordering::SeqCst);
    assert_eq!(env.meta.linked_blob(&name, &digest).await.unwrap(), None);
    // Once the disk is back, the next pull caches the blob again.
    assert!(pull(&reg, &name, &digest).await.unwrap() == data);
    assert_eq!(linked(&env, &name, &digest).await, data.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_behind_the_window_of_an_uncached_fetch_fails_and_the_others_are_served() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    // Well over the window (64 MiB), so the stalled reader's next bytes leave memory.
    let data = content(80 * 1024 * 1024 + 7, 33);
    let digest = push(up.reg(), &name, &data).await;
    let (env, _) = cache(&up, "", false, HOUR);
    // The disk fails its first write, once both readers are in; the upstream holds the body at half
    // way until the keeping-up reader has that half.
    let writes = Arc::new(Semaphore::new(0));
    let disk = FaultyBlobs::holding(env.blobs.clone(), Some(writes.clone()), None);
    disk.fail_write_after.store(0, Ordering::SeqCst);
    let gate = up.hold_blobs();
    let events = Arc::new(proxy_common::Events::default());
    let reg = cache_on(&up, &env, disk.clone(), events.clone());

    let mut stalled = reg.get_blob(&name, &digest, None).await.unwrap().body;
    let first = stalled.next().await.expect("a first chunk").unwrap();
    let mut keeping_up = reg.get_blob(&name, &digest, None).await.unwrap().body;
    writes.add_permits(1);
    // The bytes before the piece the upstream holds: in memory, never written.
    let half = (data.len() / 2) / (64 * 1024) * (64 * 1024);
    let mut got = Vec::new();
    while got.len() < half {
        let b = keeping_up.next().await.expect("more bytes").unwrap();
        got.extend_from_slice(&b);
    }
    // The rest: the window moves on past the stalled reader.
    gate.add_permits(1);
    got.extend(read_all(keeping_up).await);
    assert!(got == data, "the keeping-up reader's bytes");
    // The stalled one resumes: what it gets is right, and it ends with an error, never complete.
    let mut got = first.to_vec();
    let mut failed = false;
    while let Some(item) = stalled.next().await {
        match item {
            Ok(b) => got.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        failed,
        "the stalled reader got {} bytes and no error",
        got.len()
    );
    assert!(got.len() < data.len() && data.starts_with(&got), "a prefix");
    no_uploads_left(env.dir.path()).await;
    assert_eq!(env.meta.linked_blob(&name, &digest).await.unwrap(), None);
    assert_eq!(up.calls.snapshot().2, 1);
    assert_eq!(events.count(uncached), 1);
}
