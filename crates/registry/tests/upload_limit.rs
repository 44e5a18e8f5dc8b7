//! The cap on uploads in progress: a request streaming bytes into an upload holds a slot until it ends;
//! one more is refused with `TooManyRequests` and leaves its upload as it was, so the client can retry.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::io;
use std::sync::Arc;
use std::time::Duration;

use berth_registry as registry;
use bytes::Bytes;
use futures_util::StreamExt;
use oci::{Digest, RepoName};
use registry::{ByteStream, Chunk, Error, Registry, Settings};
use tokio::sync::mpsc;

fn registry_with_cap(dir: &std::path::Path, max: Option<usize>) -> Registry {
    let blobs = blobs::fs::FsBlobStore::open(dir.join("blobs")).unwrap();
    let meta = metadata::sqlite::SqliteStore::open(&dir.join("metadata.db")).unwrap();
    Registry::new(
        Arc::new(blobs),
        Arc::new(meta),
        Settings {
            max_concurrent_uploads: max,
            ..Settings::default()
        },
    )
}

fn chunk(data: &'static [u8]) -> Chunk {
    Chunk {
        range: None,
        length: Some(data.len() as u64),
        body: Box::pin(futures_util::stream::once(async move {
            Ok(Bytes::from_static(data))
        })),
    }
}

/// A body that yields what is sent on the returned sender, and ends when it is dropped.
fn held_body() -> (mpsc::Sender<Bytes>, ByteStream) {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let stream = receiver_stream(rx).map(Ok::<_, io::Error>);
    (tx, Box::pin(stream))
}

fn receiver_stream(mut rx: mpsc::Receiver<Bytes>) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn wait_for(reg: &Registry, n: usize) {
    for _ in 0..500 {
        if reg.uploads_in_progress() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "uploads in progress stayed at {}, expected {n}",
        reg.uploads_in_progress()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_cap_are_refused_and_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry_with_cap(dir.path(), Some(1));
    let repo: RepoName = "app".parse().unwrap();

    // Upload A streams a body that does not end until the test says so: it holds the only slot.
    let a = reg.start_upload(&repo).await.unwrap();
    let (send_a, body_a) = held_body();
    let in_flight = tokio::spawn({
        let (reg, repo, id) = (reg.clone(), repo.clone(), a.id.clone());
        async move {
            let c = Chunk {
                range: None,
                length: None,
                body: body_a,
            };
            reg.upload_chunk(&repo, &id, c).await
        }
    });
    send_a.send(Bytes::from_static(b"first ")).await.unwrap();
    wait_for(&reg, 1).await;

    // A chunk of upload B, and a monolithic push, are refused at once...
    let b = reg.start_upload(&repo).await.unwrap();
    let refused = reg.upload_chunk(&repo, &b.id, chunk(b"bbbb")).await;
    assert!(
        matches!(refused, Err(Error::TooManyRequests)),
        "{refused:?}"
    );
    let mono = reg
        .push_blob(&repo, &Digest::sha256_of(b"mono"), chunk(b"mono"))
        .await;
    assert!(matches!(mono, Err(Error::TooManyRequests)), "{mono:?}");
    // ...and B is untouched: nothing of the refused chunk was recorded.
    assert_eq!(reg.upload_status(&repo, &b.id).await.unwrap().offset, 0);
    assert_eq!(reg.uploads_in_progress(), 1);

    // A closing PUT without a body carries no bytes, so it is never refused.
    let empty = Digest::sha256_of(b"");
    let c = reg.start_upload(&repo).await.unwrap();
    reg.finish_upload(&repo, &c.id, &empty, Some(chunk(b"")))
        .await
        .unwrap();

    // Once A's body ends, its slot is free and B's retry goes through.
    drop(send_a);
    let a_status = in_flight.await.unwrap().unwrap();
    assert_eq!(a_status.offset, 6);
    wait_for(&reg, 0).await;
    let retried = reg
        .upload_chunk(&repo, &b.id, chunk(b"bbbb"))
        .await
        .unwrap();
    assert_eq!(retried.offset, 4);
    reg.push_blob(&repo, &Digest::sha256_of(b"mono"), chunk(b"mono"))
        .await
        .unwrap();
    assert_eq!(reg.uploads_in_progress(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_gives_its_slot_back() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry_with_cap(dir.path(), Some(1));
    let repo: RepoName = "app".parse().unwrap();
    let a = reg.start_upload(&repo).await.unwrap();
    // The body ends short of its declared length: the chunk fails, and the slot must come back.
    let short = Chunk {
        range: None,
        length: Some(100),
        body: Box::pin(futures_util::stream::once(async {
            Ok(Bytes::from_static(b"ten bytes!"))
        })),
    };
    assert!(reg.upload_chunk(&repo, &a.id, short).await.is_err());
    assert_eq!(reg.uploads_in_progress(), 0);
    reg.upload_chunk(&repo, &a.id, chunk(b"fine"))
        .await
        .unwrap();
}
