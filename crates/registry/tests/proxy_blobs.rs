//! The pull-through cache's blobs: one upstream fetch however many clients ask at once, every client
//! gets the right bytes (or an error, never wrong bytes), nothing is cached from a failed transfer,
//! ranges work while the blob is still being fetched, and cached blobs are served with no upstream
//! request at all.

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
use proxy_common::{FakeUpstream, Fault, cache, cache_over, linked};
use registry::ByteRange;
use registry::proxy::{CacheEvent, CacheKind};
use tokio::sync::{Barrier, Semaphore};

const HOUR: Duration = Duration::from_secs(3600);

/// Files under the cache's upload directory (bytes of fetches in progress or left behind).
fn upload_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("blobs").join("uploads"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_readers_make_one_upstream_fetch_and_get_identical_bytes() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    // Over two segments, so readers follow the tail, the durable upload and the committed blob.
    let data = content(20 * 1024 * 1024 + 12345, 7);
    let digest = push(up.reg(), &name, &data).await;
    let gate = up.hold_blobs();
    let (env, events) = cache(&up, "", false, HOUR);

    // Every reader has bytes in hand before the upstream sends its second half: all fifty are in
    // one flight together.
    let barrier = Arc::new(Barrier::new(51));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (reg, name, digest, barrier) = (
            env.reg.clone(),
            name.clone(),
            digest.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let content = reg.get_blob(&name, &digest, None).await.expect("get blob");
            let mut body = content.body;
            let first = body
                .next()
                .await
                .expect("a first chunk")
                .expect("first chunk");
            barrier.wait().await;
            let mut all = first.to_vec();
            all.extend(read_all(body).await);
            all
        }));
    }
    barrier.wait().await;
    gate.add_permits(1);
    for t in tasks {
        let got = t.await.unwrap();
        assert!(got == data, "a reader got {} bytes that differ", got.len());
    }
    assert_eq!(
        up.calls.snapshot().2,
        1,
        "exactly one upstream blob request"
    );
    assert_eq!(events.count(|e| *e == CacheEvent::Miss(CacheKind::Blob)), 1);

    // Cached now (once the fetch has linked it, just after its readers finished): linked, committed,
    // served without the upstream.
    assert_eq!(linked(&env, &name, &digest).await, data.len() as u64);
    assert_eq!(pull(&env.reg, &name, &digest).await.unwrap(), data);
    assert_eq!(up.calls.snapshot().2, 1);
    assert_eq!(
        upload_files(env.dir.path()),
        0,
        "the fetch's upload became the blob"
    );
    assert!(events.count(|e| matches!(e, CacheEvent::ServedBytes(_))) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_digest_fails_every_reader_and_caches_nothing() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(3 * 1024 * 1024, 3);
    let digest = push(up.reg(), &name, &data).await;
    up.set_fault(Fault::WrongBytes);
    let gate = up.hold_blobs();
    let (env, _) = cache(&up, "", false, HOUR);

    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (reg, name, digest) = (env.reg.clone(), name.clone(), digest.clone());
        tasks.push(tokio::spawn(async move {
            let content = reg.get_blob(&name, &digest, None).await.expect("get blob");
            let mut body = content.body;
            let mut got = 0usize;
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(c) => got += c.len(),
                    Err(_) => return got,
                }
            }
            panic!("a body with wrong bytes ended cleanly after {got} bytes");
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.add_permits(1);
    for t in tasks {
        let got = t.await.unwrap();
        assert!(
            got < data.len(),
            "the whole body was delivered before the verdict"
        );
    }
    assert_nothing_cached(&env, &name, &digest).await;
}

/// Nothing of a failed fetch remains: no blob, no link, no upload bytes, no repository.
async fn assert_nothing_cached(env: &common::Env, name: &oci::RepoName, digest: &oci::Digest) {
    assert_eq!(
        env.blobs.stat(digest).await.unwrap(),
        None,
        "no blob committed"
    );
    assert_eq!(env.meta.linked_blob(name, digest).await.unwrap(), None);
    assert_eq!(
        upload_files(env.dir.path()),
        0,
        "the aborted upload is gone"
    );
    let (repos, _) = env.reg.catalog(&Default::default()).await.unwrap();
    assert!(repos.is_empty(), "{repos:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_drops_mid_blob_fails_the_readers_and_caches_nothing() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(10 * 1024 * 1024, 4);
    let digest = push(up.reg(), &name, &data).await;
    up.set_fault(Fault::DropAfter(9 * 1024 * 1024));
    let (env, _) = cache(&up, "", false, HOUR);

    let content = env
        .reg
        .get_blob(&name, &digest, None)
        .await
        .expect("get blob");
    let mut body = content.body;
    let mut got = 0;
    let mut failed = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => got += c.len(),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        failed && got <= 9 * 1024 * 1024,
        "got {got} bytes, failed: {failed}"
    );
    assert_nothing_cached(&env, &name, &digest).await;

    // The next request starts a new fetch, which succeeds once the upstream behaves.
    up.set_fault(Fault::None);
    assert_eq!(pull(&env.reg, &name, &digest).await.unwrap(), data);
    assert_eq!(up.calls.snapshot().2, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_are_served_while_the_blob_is_being_fetched() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(12 * 1024 * 1024, 5);
    let digest = push(up.reg(), &name, &data).await;
    let gate = up.hold_blobs();
    let (env, _) = cache(&up, "", false, HOUR);

    // Starts the flight; the range readers join it.
    let whole = env.reg.get_blob(&name, &digest, None).await.unwrap();
    let ranges = [
        ByteRange::FromTo(100, 200),
        ByteRange::From(5 * 1024 * 1024),
        ByteRange::Last(1000),
        ByteRange::FromTo(0, 9 * 1024 * 1024),
    ];
    let mut tasks = Vec::new();
    for r in ranges {
        let (reg, name, digest) = (env.reg.clone(), name.clone(), digest.clone());
        tasks.push(tokio::spawn(async move {
            let c = reg.get_blob(&name, &digest, Some(r)).await.unwrap();
            (c.range.clone().unwrap(), read_all(c.body).await)
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.add_permits(1);
    for t in tasks {
        let (range, got) = t.await.unwrap();
        assert!(
            got == data[range.start as usize..range.end as usize],
            "range {range:?}"
        );
    }
    assert_eq!(read_all(whole.body).await, data);
    assert_eq!(up.calls.snapshot().2, 1);
}

#[tokio::test]
async fn a_head_learns_the_size_and_the_fetch_completes_without_a_reader() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(100_000, 6);
    let digest = push(up.reg(), &name, &data).await;
    let (env, _) = cache(&up, "", false, HOUR);

    let info = env.reg.stat_blob(&name, &digest).await.unwrap();
    assert_eq!(info.size, data.len() as u64);
    // The fetch the HEAD started finishes on its own; the GET after it finds the blob cached.
    linked(&env, &name, &digest).await;
    assert_eq!(pull(&env.reg, &name, &digest).await.unwrap(), data);
    assert_eq!(up.calls.snapshot().2, 1);
}

#[tokio::test]
async fn a_blob_already_stored_is_linked_after_the_upstream_confirms_it() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(50_000, 8);
    let digest = push(up.reg(), &name, &data).await;
    let (env, _) = cache(&up, "docker.io", false, HOUR);
    // The same bytes pushed to a local repository of the cache.
    push(&env.reg, &repo("team/app"), &data).await;

    let cached = repo("docker.io/org/app");
    assert_eq!(pull(&env.reg, &cached, &digest).await.unwrap(), data);
    assert_eq!(up.calls.snapshot().2, 1, "the upstream was asked");
    // But a repository the upstream lacks does not get it.
    let err = pull(&env.reg, &repo("docker.io/org/other"), &digest)
        .await
        .unwrap_err();
    assert!(matches!(err, registry::Error::BlobUnknown(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_holds_neither_the_fetch_nor_the_others() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(20 * 1024 * 1024, 9);
    let digest = push(up.reg(), &name, &data).await;
    let (env, _) = cache(&up, "", false, HOUR);

    // A takes one chunk and then stops reading.
    let slow = env.reg.get_blob(&name, &digest, None).await.unwrap();
    let mut slow_body = slow.body;
    let first = slow_body.next().await.unwrap().unwrap();
    // B reads everything, and the fetch commits and links the blob while A sits on its body.
    let fast = env.reg.get_blob(&name, &digest, None).await.unwrap();
    assert!(read_all(fast.body).await == data);
    assert_eq!(linked(&env, &name, &digest).await, data.len() as u64);
    // A resumes, from storage, and gets the right bytes.
    let mut got = first.to_vec();
    got.extend(read_all(slow_body).await);
    assert!(got == data, "the slow reader's bytes");
    assert_eq!(up.calls.snapshot().2, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_task_that_dies_fails_its_readers_instead_of_hanging_them() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(2 * 1024 * 1024, 10);
    let digest = push(up.reg(), &name, &data).await;
    up.set_fault(Fault::Panic);
    let (env, _) = cache(&up, "", false, HOUR);
    let content = env.reg.get_blob(&name, &digest, None).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut body = content.body;
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                return true;
            }
        }
        false
    });
    assert!(
        read.await.expect("the reader hung"),
        "the body ended cleanly"
    );
    assert_eq!(env.meta.linked_blob(&name, &digest).await.unwrap(), None);
    // The next request starts a new fetch.
    up.set_fault(Fault::None);
    assert_eq!(pull(&env.reg, &name, &digest).await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_disk_bounds_what_a_fetch_holds_in_memory() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(40 * 1024 * 1024, 11);
    let digest = push(up.reg(), &name, &data).await;
    let (env, _) = cache(&up, "", false, HOUR);
    let writes = Arc::new(tokio::sync::Semaphore::new(0));
    let disk = FaultyBlobs::holding(env.blobs.clone(), Some(writes.clone()), None);
    let reg = cache_over(&up, &env, disk);

    let reader = reg.get_blob(&name, &digest, None).await.unwrap();
    // The fetch receives until its memory bound, then waits for the disk.
    let bound = 16 * 1024 * 1024 + 64 * 1024;
    let mut last = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = up.sent.load(std::sync::atomic::Ordering::SeqCst);
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    let held = up.sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        held > 0 && held <= bound,
        "received {held} bytes with the disk stalled"
    );
    writes.add_permits(1000);
    assert!(read_all(reader.body).await == data);
}

/// A cache of `up` over `env` whose commits wait for permits of the returned semaphore, and its blob
/// store (which counts the durable upload writes).
fn held_commits(
    up: &Arc<FakeUpstream>,
    env: &common::Env,
) -> (registry::Registry, Arc<Semaphore>, Arc<FaultyBlobs>) {
    let commits = Arc::new(Semaphore::new(0));
    let disk = FaultyBlobs::holding(env.blobs.clone(), None, Some(commits.clone()));
    (cache_over(up, env, disk.clone()), commits, disk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_finishes_once_the_bytes_are_verified_without_waiting_for_the_commit() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(3 * 1024 * 1024, 11);
    let digest = push(up.reg(), &name, &data).await;
    let (env, _) = cache(&up, "", false, HOUR);
    let (reg, commits, disk) = held_commits(&up, &env);

    // The commit is held: the whole body (last byte included) still arrives.
    let got = tokio::time::timeout(Duration::from_secs(30), pull(&reg, &name, &digest))
        .await
        .expect("the reader waited for the commit")
        .unwrap();
    assert!(got == data, "the bytes");
    assert_eq!(
        env.meta.linked_blob(&name, &digest).await.unwrap(),
        None,
        "nothing is linked before the commit"
    );
    // A range ending at the last byte, asked while the commit is still held, finishes too.
    let tail = reg
        .get_blob(&name, &digest, Some(ByteRange::From(1000)))
        .await
        .unwrap();
    let tail = tokio::time::timeout(Duration::from_secs(30), read_all(tail.body))
        .await
        .expect("the range waited for the commit");
    assert!(tail == data[1000..], "the range's bytes");
    commits.add_permits(1);
    assert_eq!(linked(&env, &name, &digest).await, data.len() as u64);
    assert_eq!(up.calls.snapshot().2, 1);
    // The fetch's segments were written without waiting for the disk: the commit makes the blob
    // durable.
    assert_eq!(disk.synced_writes.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_fails_after_the_clients_got_their_bytes_caches_nothing() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(1024 * 1024, 12);
    let digest = push(up.reg(), &name, &data).await;
    let (env, _) = cache(&up, "", false, HOUR);
    let (reg, commits, _) = held_commits(&up, &env);

    assert!(pull(&reg, &name, &digest).await.unwrap() == data);
    // The fetch writes the whole upload before it commits.
    let dir = env.dir.path().to_path_buf();
    let uploads_become = |n: usize| {
        let dir = dir.clone();
        tokio::time::timeout(Duration::from_secs(30), async move {
            while (upload_files(&dir) > 0) != (n > 0) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    uploads_become(1).await.expect("the fetch wrote no upload");
    // The disk fails the commit: the client already had verified bytes; the cache keeps nothing.
    commits.close();
    uploads_become(0)
        .await
        .expect("the failed fetch's upload was never removed");
    assert_eq!(env.meta.linked_blob(&name, &digest).await.unwrap(), None);
    assert_eq!(env.blobs.stat(&digest).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_get_bytes_before_the_upload_session_is_saved_and_nothing_is_written_before_it() {
    use common::faulty::FaultyMeta;
    use registry::proxy::{Namespace, ProxySettings};

    let up = FakeUpstream::new();
    let name = repo("org/app");
    let data = content(3 * 1024 * 1024, 13);
    let digest = push(up.reg(), &name, &data).await;
    let (env, _) = cache(&up, "", false, HOUR);
    let meta = FaultyMeta::new(env.meta.clone());
    let saves = Arc::new(Semaphore::new(0));
    *meta.saves.lock().unwrap() = Some(saves.clone());
    let reg = registry::Registry::new(env.blobs.clone(), meta.metadata(), Default::default())
        .with_proxy(
            ProxySettings {
                namespaces: vec![Namespace {
                    prefix: String::new(),
                    upstream: up.clone(),
                    official_library: false,
                }],
                ..Default::default()
            },
            None,
        );

    // The session's save is held (a database commit waiting for a busy disk): the size and the first
    // bytes still come, from memory.
    let mut body =
        tokio::time::timeout(Duration::from_secs(10), reg.get_blob(&name, &digest, None))
            .await
            .expect("the response waited for the session's save")
            .unwrap()
            .body;
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("the first bytes waited for the session's save")
        .expect("a first chunk")
        .unwrap();
    assert!(
        !first.is_empty() && data.starts_with(&first),
        "the first bytes"
    );
    // Nothing reached the upload without its session (the purger's only way to it).
    assert_eq!(
        upload_files(env.dir.path()),
        0,
        "an upload written before its session"
    );

    saves.add_permits(1000);
    let mut got = first.to_vec();
    got.extend(read_all(body).await);
    assert!(got == data, "the bytes");
    assert_eq!(linked(&env, &name, &digest).await, data.len() as u64);
    assert_eq!(up.calls.snapshot().2, 1);
}
