//! An upload's chunk is received, hashed and written at the same time (hashing on the blocking pool, see
//! the registry's meter): a store that fails part-way through a multi-MiB chunk, after some of its bytes
//! are on disk and while later batches are still being hashed, must leave the upload exactly where it was
//! recorded, and resumable from there to the right digest.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use std::sync::atomic::Ordering;

use berth_registry as registry;
use blobs::BlobStore;
use common::faulty::FaultyBlobs;
use common::*;
use registry::{Error, Registry};

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filling_mid_chunk_is_unavailable_records_nothing_and_the_upload_resumes() {
    let env = Env::new();
    let store = FaultyBlobs::new(env.blobs.clone());
    let reg = Registry::new(store.clone(), env.meta.clone(), env.reg.settings().clone());
    let r = repo("team/big");
    let data = content(5 * MIB + 777, 9);
    let first = 3 * MIB / 2;
    let st = reg.start_upload(&r).await.unwrap();
    reg.upload_chunk(&r, &st.id, exact(&data[..first], 0))
        .await
        .unwrap();

    // The next chunk (several hash batches) fails after 2 MiB and a bit of it are on disk.
    store
        .fail_write_after
        .store(2 * MIB as u64 + 123, Ordering::SeqCst);
    let failed = reg
        .upload_chunk(&r, &st.id, exact(&data[first..], first as u64))
        .await;
    // A full disk is no bug: 503 with Retry-After, saying why.
    assert!(
        matches!(&failed, Err(Error::Unavailable(m)) if m.contains("storage is full")),
        "{failed:?}"
    );
    assert_eq!(
        reg.upload_status(&r, &st.id).await.unwrap().offset,
        first as u64,
        "nothing of the failed chunk is recorded"
    );
    // Nor does it hold the disk: the bytes it left are cut at once, not at the next write or purge.
    let file = env.dir.path().join("blobs/uploads").join(st.id.as_str());
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        first as u64,
        "{}",
        file.display()
    );

    // The client resends it from the recorded offset; the bytes the failure left behind are cut off.
    let done = reg
        .upload_chunk(&r, &st.id, exact(&data[first..], first as u64))
        .await
        .unwrap();
    assert_eq!(done.offset, data.len() as u64);
    let digest = sha256(&data);
    let info = reg.finish_upload(&r, &st.id, &digest, None).await.unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(pull(&reg, &r, &digest).await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_broken_mid_chunk_records_nothing_and_a_wrong_digest_commits_nothing() {
    let env = Env::new();
    let r = repo("team/big");
    let data = content(3 * MIB + 5, 4);
    let st = env.reg.start_upload(&r).await.unwrap();
    // The connection breaks after several hash batches went through.
    let broken = registry::Chunk {
        range: None,
        length: None,
        body: broken_body(&data[..5 * MIB / 2]),
    };
    assert!(env.reg.upload_chunk(&r, &st.id, broken).await.is_err());
    assert_eq!(env.reg.upload_status(&r, &st.id).await.unwrap().offset, 0);

    // Resumed whole, but closed with the digest of other bytes: nothing is committed or linked.
    env.reg
        .upload_chunk(&r, &st.id, exact(&data, 0))
        .await
        .unwrap();
    let wrong = sha256(&data[1..]);
    let res = env.reg.finish_upload(&r, &st.id, &wrong, None).await;
    assert!(matches!(res, Err(Error::DigestInvalid(_))), "{res:?}");
    assert_eq!(env.blobs.stat(&sha256(&data)).await.unwrap(), None);
    assert_eq!(env.blobs.stat(&wrong).await.unwrap(), None);
}
