//! The pull-through cache serves a fetch's readers from memory while the bytes are there: a client
//! keeping up with the fetch never reads back from storage what the fetch just wrote, and a stalled
//! client neither holds the fetch back nor keeps the in-memory window from moving on (it then reads
//! storage, and still gets the right bytes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;
mod proxy_common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_registry as registry;
use common::faulty::FaultyBlobs;
use common::{content, push, read_all, repo};
use futures_util::StreamExt;
use proxy_common::{FakeUpstream, cache, cache_over, linked};
use tokio::sync::Semaphore;

const HOUR: Duration = Duration::from_secs(3600);

/// A cache of `up` whose blob store counts its reads.
fn counting_cache(up: &Arc<FakeUpstream>) -> (registry::Registry, common::Env, Arc<FaultyBlobs>) {
    let (env, _) = cache(up, "", false, HOUR);
    let disk = FaultyBlobs::new(env.blobs.clone());
    let reg = cache_over(up, &env, disk.clone());
    (reg, env, disk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_keeping_up_with_the_fetch_reads_nothing_back_from_storage() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    // Three segments: the first two are written (and out of the not-yet-written part) long before the
    // end; all of it fits in the window.
    let data = content(24 * 1024 * 1024 - 100, 21);
    let digest = push(up.reg(), &name, &data).await;
    let (reg, env, disk) = counting_cache(&up);

    let got = reg.get_blob(&name, &digest, None).await.unwrap();
    assert!(read_all(got.body).await == data, "the reader's bytes");
    assert_eq!(linked(&env, &name, &digest).await, data.len() as u64);
    assert_eq!(
        disk.reads.load(Ordering::SeqCst),
        0,
        "blob store reads during a pull that kept up with the fetch"
    );
    assert_eq!(up.calls.snapshot().2, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_hold_the_fetch_or_the_window_back() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    // Well over the window (64 MiB): its first bytes must leave memory while the reader sits on them.
    let data = content(80 * 1024 * 1024 + 777, 22);
    let digest = push(up.reg(), &name, &data).await;
    let (reg, env, disk) = counting_cache(&up);

    let got = reg.get_blob(&name, &digest, None).await.unwrap();
    let mut body = got.body;
    let first = body
        .next()
        .await
        .expect("a first chunk")
        .expect("first chunk");
    // The fetch finishes while the reader reads nothing.
    assert_eq!(linked(&env, &name, &digest).await, data.len() as u64);
    assert_eq!(disk.reads.load(Ordering::SeqCst), 0, "nothing read yet");
    // The reader resumes: its next bytes left the window, so they come from storage, and are right.
    let mut all = first.to_vec();
    all.extend(read_all(body).await);
    assert!(all == data, "the stalled reader's bytes");
    assert!(
        disk.reads.load(Ordering::SeqCst) >= 1,
        "the stalled reader's bytes stayed in memory: the window did not move on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_behind_the_window_reads_the_upload_from_its_position() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    // Well over the window, so the reader's next bytes leave memory while it stalls.
    let data = content(80 * 1024 * 1024 + 333, 23);
    let digest = push(up.reg(), &name, &data).await;
    let (env, _) = cache(&up, "", false, HOUR);
    // The commit is held, so the reader that falls behind must read the upload, not the blob.
    let commits = Arc::new(Semaphore::new(0));
    let disk = FaultyBlobs::holding(env.blobs.clone(), None, Some(commits.clone()));
    let reg = cache_over(&up, &env, disk.clone());

    let got = reg.get_blob(&name, &digest, None).await.unwrap();
    let mut body = got.body;
    let first = body
        .next()
        .await
        .expect("a first chunk")
        .expect("first chunk");
    // Wait until the whole blob went through the window (the fetch now waits for its commit).
    tokio::time::timeout(Duration::from_secs(60), async {
        while up.sent.load(Ordering::SeqCst) < data.len() as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the upstream never sent everything");
    let mut all = first.to_vec();
    all.extend(read_all(body).await);
    assert!(all == data, "the stalled reader's bytes");
    let offsets = disk
        .upload_read_offsets
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    // From where the reader was, never from the start (the window may move on while the reader
    // catches up, so a later read from further on is fine).
    assert_eq!(
        offsets.first(),
        Some(&(first.len() as u64)),
        "the upload read from where the reader was: {offsets:?}"
    );
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "each read further on: {offsets:?}"
    );
    commits.add_permits(1);
    assert_eq!(linked(&env, &name, &digest).await, data.len() as u64);
}
