//! Blob uploads through the registry over real storage: chunking, ordering, declared lengths, digests,
//! restarts, repository ownership, mounts, and backend failures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_registry as registry;
use bytes::Bytes;
use common::faulty::{FaultyBlobs, FaultyMeta};
use common::*;
use futures_util::{StreamExt, stream};
use metadata::{Catalog, UploadSessions};
use registry::{Chunk, Error, MountOutcome, Registry, UploadId};

#[tokio::test]
async fn chunked_upload_in_order() {
    let env = Env::new();
    let r = repo("team/app");
    let data = content(10_000, 1);
    let st = env.reg.start_upload(&r).await.unwrap();
    assert_eq!(st.offset, 0);
    let mut offset = 0u64;
    for part in [&data[..4000], &data[4000..4001], &data[4001..9000]] {
        let got = env
            .reg
            .upload_chunk(&r, &st.id, exact(part, offset))
            .await
            .unwrap();
        offset += part.len() as u64;
        assert_eq!(got.offset, offset);
        assert_eq!(
            env.reg.upload_status(&r, &st.id).await.unwrap().offset,
            offset
        );
    }
    // The last chunk comes with the closing PUT.
    let digest = sha256(&data);
    let info = env
        .reg
        .finish_upload(&r, &st.id, &digest, Some(exact(&data[9000..], 9000)))
        .await
        .unwrap();
    assert_eq!(info.size, 10_000);
    assert_eq!(pull(&env.reg, &r, &digest).await.unwrap(), data);
    assert_eq!(
        env.meta.linked_blob(&r, &digest).await.unwrap(),
        Some(10_000)
    );
    // The upload is gone once finished.
    assert!(matches!(
        env.reg.upload_status(&r, &st.id).await,
        Err(Error::BlobUploadUnknown)
    ));
}

#[tokio::test]
async fn streamed_chunks_without_range_or_length() {
    let env = Env::new();
    let r = repo("app");
    let data = content(5000, 2);
    let st = env.reg.start_upload(&r).await.unwrap();
    env.reg
        .upload_chunk(&r, &st.id, bare(&data[..2500]))
        .await
        .unwrap();
    env.reg
        .upload_chunk(&r, &st.id, bare(&data[2500..]))
        .await
        .unwrap();
    let info = env
        .reg
        .finish_upload(&r, &st.id, &sha256(&data), None)
        .await
        .unwrap();
    assert_eq!(info.size, 5000);
    assert_eq!(pull(&env.reg, &r, &info.digest).await.unwrap(), data);
}

#[tokio::test]
async fn out_of_order_and_repeated_chunks_are_refused_with_the_offset() {
    let env = Env::new();
    let r = repo("app");
    let data = content(3000, 3);
    let st = env.reg.start_upload(&r).await.unwrap();
    env.reg
        .upload_chunk(&r, &st.id, exact(&data[..1000], 0))
        .await
        .unwrap();
    // A gap.
    let res = env
        .reg
        .upload_chunk(&r, &st.id, exact(&data[2000..], 2000))
        .await;
    assert!(
        matches!(res, Err(Error::UploadOutOfOrder { offset: 1000 })),
        "{res:?}"
    );
    // The same chunk again.
    let res = env
        .reg
        .upload_chunk(&r, &st.id, exact(&data[..1000], 0))
        .await;
    assert!(
        matches!(res, Err(Error::UploadOutOfOrder { offset: 1000 })),
        "{res:?}"
    );
    // Neither moved the upload, and the right chunk still fits.
    assert_eq!(
        env.reg.upload_status(&r, &st.id).await.unwrap().offset,
        1000
    );
    env.reg
        .upload_chunk(&r, &st.id, exact(&data[1000..], 1000))
        .await
        .unwrap();
    env.reg
        .finish_upload(&r, &st.id, &sha256(&data), None)
        .await
        .unwrap();
    assert_eq!(pull(&env.reg, &r, &sha256(&data)).await.unwrap(), data);
}

#[tokio::test]
async fn declared_lengths_must_match_the_body() {
    let env = Env::new();
    let r = repo("app");
    let data = content(2000, 4);
    let st = env.reg.start_upload(&r).await.unwrap();
    let chunk = |range, length, part: &[u8]| Chunk {
        range,
        length,
        body: body(part),
    };
    type Check = fn(&Error) -> bool;
    let cases: Vec<(&str, Chunk, Check)> = vec![
        ("short body", chunk(None, Some(1500), &data[..1000]), |e| {
            matches!(e, Error::SizeInvalid(_))
        }),
        ("long body", chunk(None, Some(500), &data[..1000]), |e| {
            matches!(e, Error::SizeInvalid(_))
        }),
        // A size that is not what was declared is SIZE_INVALID whichever header declared it.
        (
            "range longer than body",
            chunk(Some((0, 1499)), None, &data[..1000]),
            |e| matches!(e, Error::SizeInvalid(_)),
        ),
        (
            "range shorter than body",
            chunk(Some((0, 99)), None, &data[..1000]),
            |e| matches!(e, Error::SizeInvalid(_)),
        ),
        (
            "length and range disagree",
            chunk(Some((0, 999)), Some(10), &data[..1000]),
            |e| matches!(e, Error::SizeInvalid(_)),
        ),
        (
            "a one-byte range with an empty body",
            chunk(Some((0, 0)), None, b""),
            |e| matches!(e, Error::SizeInvalid(_)),
        ),
        (
            "body that breaks off",
            Chunk {
                range: None,
                length: None,
                body: broken_body(&data[..700]),
            },
            |e| matches!(e, Error::BlobUploadInvalid(_)),
        ),
    ];
    for (name, c, check) in cases {
        let res = env.reg.upload_chunk(&r, &st.id, c).await;
        match res {
            Err(e) if check(&e) => {}
            other => panic!("{name}: {other:?}"),
        }
        // Nothing was recorded: the garbage the write left is cut off by the next write.
        assert_eq!(
            env.reg.upload_status(&r, &st.id).await.unwrap().offset,
            0,
            "{name}"
        );
    }
    env.reg
        .upload_chunk(&r, &st.id, exact(&data, 0))
        .await
        .unwrap();
    env.reg
        .finish_upload(&r, &st.id, &sha256(&data), None)
        .await
        .unwrap();
    assert_eq!(pull(&env.reg, &r, &sha256(&data)).await.unwrap(), data);
}

#[tokio::test]
async fn wrong_digest_stores_nothing() {
    let env = Env::new();
    let r = repo("app");
    let data = content(4000, 5);
    let claimed = sha256(b"something else");
    let st = env.reg.start_upload(&r).await.unwrap();
    env.reg
        .upload_chunk(&r, &st.id, exact(&data, 0))
        .await
        .unwrap();
    let res = env.reg.finish_upload(&r, &st.id, &claimed, None).await;
    assert!(matches!(res, Err(Error::DigestInvalid(_))), "{res:?}");
    for d in [&claimed, &sha256(&data)] {
        assert!(matches!(
            env.reg.stat_blob(&r, d).await,
            Err(Error::BlobUnknown(_))
        ));
        assert_eq!(env.meta.known_blob(d).await.unwrap(), None);
        assert_eq!(
            blobs::BlobStore::stat(env.blobs.as_ref(), d).await.unwrap(),
            None
        );
    }
    // The upload was discarded.
    assert!(matches!(
        env.reg.upload_status(&r, &st.id).await,
        Err(Error::BlobUploadUnknown)
    ));
    assert_eq!(env.meta.upload(st.id.as_str()).await.unwrap(), None);

    // The same with a single-request push.
    let res = env.reg.push_blob(&r, &claimed, exact(&data, 0)).await;
    assert!(matches!(res, Err(Error::DigestInvalid(_))), "{res:?}");
    assert_eq!(env.meta.known_blob(&sha256(&data)).await.unwrap(), None);
    assert!(
        std::fs::read_dir(env.dir.path().join("blobs/uploads"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn upload_survives_a_restart() {
    let env = Env::new();
    let r = repo("app");
    let data = content(50_000, 6);
    let st = env.reg.start_upload(&r).await.unwrap();
    env.reg
        .upload_chunk(&r, &st.id, exact(&data[..20_001], 0))
        .await
        .unwrap();

    let env = env.restart();
    assert_eq!(
        env.reg.upload_status(&r, &st.id).await.unwrap().offset,
        20_001
    );
    env.reg
        .upload_chunk(&r, &st.id, exact(&data[20_001..40_000], 20_001))
        .await
        .unwrap();

    let env = env.restart();
    let info = env
        .reg
        .finish_upload(
            &r,
            &st.id,
            &sha256(&data),
            Some(exact(&data[40_000..], 40_000)),
        )
        .await
        .unwrap();
    assert_eq!(info.size, 50_000);
    assert_eq!(pull(&env.reg, &r, &info.digest).await.unwrap(), data);
}

#[tokio::test]
async fn another_repository_cannot_touch_an_upload() {
    let env = Env::new();
    let (mine, theirs) = (repo("alice/app"), repo("mallory/app"));
    let data = content(2000, 7);
    let st = env.reg.start_upload(&mine).await.unwrap();
    env.reg
        .upload_chunk(&mine, &st.id, exact(&data[..1000], 0))
        .await
        .unwrap();

    let unknown = |r: &registry::Result<_>| matches!(r, Err(Error::BlobUploadUnknown));
    assert!(unknown(
        &env.reg.upload_status(&theirs, &st.id).await.map(|_| ())
    ));
    let res = env
        .reg
        .upload_chunk(&theirs, &st.id, exact(&data[1000..], 1000))
        .await;
    assert!(unknown(&res.map(|_| ())));
    let res = env
        .reg
        .finish_upload(&theirs, &st.id, &sha256(&data), None)
        .await;
    assert!(unknown(&res.map(|_| ())));
    assert!(unknown(&env.reg.cancel_upload(&theirs, &st.id).await));

    // Untouched: the owner carries on.
    assert_eq!(
        env.reg.upload_status(&mine, &st.id).await.unwrap().offset,
        1000
    );
    env.reg
        .finish_upload(
            &mine,
            &st.id,
            &sha256(&data),
            Some(exact(&data[1000..], 1000)),
        )
        .await
        .unwrap();
    assert!(matches!(
        env.reg.stat_blob(&theirs, &sha256(&data)).await,
        Err(Error::BlobUnknown(_))
    ));
}

#[tokio::test]
async fn unknown_and_cancelled_uploads() {
    let env = Env::new();
    let r = repo("app");
    let never = UploadId::random();
    assert!(matches!(
        env.reg.upload_status(&r, &never).await,
        Err(Error::BlobUploadUnknown)
    ));
    assert!(matches!(
        env.reg.upload_chunk(&r, &never, bare(b"x")).await,
        Err(Error::BlobUploadUnknown)
    ));

    let st = env.reg.start_upload(&r).await.unwrap();
    env.reg
        .upload_chunk(&r, &st.id, bare(b"abc"))
        .await
        .unwrap();
    env.reg.cancel_upload(&r, &st.id).await.unwrap();
    assert!(matches!(
        env.reg.upload_status(&r, &st.id).await,
        Err(Error::BlobUploadUnknown)
    ));
    assert!(matches!(
        env.reg
            .finish_upload(&r, &st.id, &sha256(b"abc"), None)
            .await,
        Err(Error::BlobUploadUnknown)
    ));
    assert!(matches!(
        env.reg.cancel_upload(&r, &st.id).await,
        Err(Error::BlobUploadUnknown)
    ));
    assert!(
        std::fs::read_dir(env.dir.path().join("blobs/uploads"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn empty_blob_and_single_request_push() {
    let env = Env::new();
    let r = repo("app");
    let st = env.reg.start_upload(&r).await.unwrap();
    let info = env
        .reg
        .finish_upload(&r, &st.id, &sha256(b""), None)
        .await
        .unwrap();
    assert_eq!(info.size, 0);
    assert_eq!(pull(&env.reg, &r, &sha256(b"")).await.unwrap(), b"");

    let data = content(70_000, 8);
    let d = push(&env.reg, &r, &data).await;
    assert_eq!(pull(&env.reg, &r, &d).await.unwrap(), data);
}

#[tokio::test]
async fn pushing_a_blob_that_already_exists_links_it() {
    let env = Env::new();
    let (a, b) = (repo("a"), repo("b"));
    let data = content(3000, 9);
    let d = push(&env.reg, &a, &data).await;
    // An ordinary upload of the same bytes into another repository: no second copy is needed.
    let st = env.reg.start_upload(&b).await.unwrap();
    env.reg
        .upload_chunk(&b, &st.id, exact(&data, 0))
        .await
        .unwrap();
    env.reg.finish_upload(&b, &st.id, &d, None).await.unwrap();
    assert_eq!(pull(&env.reg, &b, &d).await.unwrap(), data);
    assert_eq!(pull(&env.reg, &a, &d).await.unwrap(), data);
    assert!(
        std::fs::read_dir(env.dir.path().join("blobs/uploads"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn sha512_uploads() {
    let env = Env::new();
    let r = repo("app");
    let data = content(9000, 10);
    let d = sha512(&data);
    let st = env.reg.start_upload(&r).await.unwrap();
    env.reg
        .upload_chunk(&r, &st.id, exact(&data[..5000], 0))
        .await
        .unwrap();
    let info = env
        .reg
        .finish_upload(&r, &st.id, &d, Some(exact(&data[5000..], 5000)))
        .await
        .unwrap();
    assert_eq!(info.digest, d);
    assert_eq!(pull(&env.reg, &r, &d).await.unwrap(), data);

    // Single request, and a sha512 digest that does not match.
    let other = content(100, 11);
    env.reg
        .push_blob(&r, &sha512(&other), exact(&other, 0))
        .await
        .unwrap();
    let res = env
        .reg
        .push_blob(&r, &sha512(b"nope"), exact(&other[..50], 0))
        .await;
    assert!(matches!(res, Err(Error::DigestInvalid(_))), "{res:?}");
    assert_eq!(
        env.meta.known_blob(&sha512(&other[..50])).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn mount_from_a_named_repository_or_from_anywhere() {
    let env = Env::new();
    let (a, b, c, d) = (repo("a"), repo("b"), repo("c"), repo("d"));
    let data = content(1234, 12);
    let digest = push(&env.reg, &a, &data).await;

    // From `a`, where it is.
    match env.reg.mount_blob(&b, &digest, Some(&a)).await.unwrap() {
        MountOutcome::Mounted(info) => assert_eq!(info.size, 1234),
        other => panic!("{other:?}"),
    }
    assert_eq!(pull(&env.reg, &b, &digest).await.unwrap(), data);

    // From `c`, where it is not: an upload starts instead, and it works.
    let st = match env.reg.mount_blob(&d, &digest, Some(&c)).await.unwrap() {
        MountOutcome::Started(st) => st,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        env.reg.stat_blob(&d, &digest).await,
        Err(Error::BlobUnknown(_))
    ));
    env.reg
        .finish_upload(&d, &st.id, &digest, Some(exact(&data, 0)))
        .await
        .unwrap();

    // Without `from`: from any repository that has it.
    assert!(matches!(
        env.reg.mount_blob(&c, &digest, None).await.unwrap(),
        MountOutcome::Mounted(_)
    ));
    assert_eq!(pull(&env.reg, &c, &digest).await.unwrap(), data);

    // Without `from`, a digest nobody has: an upload starts.
    let unknown = sha256(b"nobody has this");
    assert!(matches!(
        env.reg.mount_blob(&c, &unknown, None).await.unwrap(),
        MountOutcome::Started(_)
    ));
    assert!(matches!(
        env.reg.stat_blob(&c, &unknown).await,
        Err(Error::BlobUnknown(_))
    ));
}

#[tokio::test]
async fn mount_needs_the_bytes_not_only_the_link() {
    let env = Env::new();
    let (a, b) = (repo("a"), repo("b"));
    // A link whose bytes are gone (as after a bad restore).
    let ghost = sha256(b"ghost");
    env.meta.link_blob(&a, &ghost, 5).await.unwrap();
    for from in [Some(&a), None] {
        assert!(matches!(
            env.reg.mount_blob(&b, &ghost, from).await.unwrap(),
            MountOutcome::Started(_)
        ));
    }
    assert_eq!(env.meta.linked_blob(&b, &ghost).await.unwrap(), None);
}

/// A chunk whose body, halfway through, sends a second chunk for the same offset: the second must wait
/// and then be refused, and the bytes stored must be the ones whose hash was recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_chunks_for_one_upload_cannot_corrupt_it() {
    let env = Env::new();
    let r = repo("app");
    let winner = content(300_000, 13);
    let loser = content(200_000, 14);
    let st = env.reg.start_upload(&r).await.unwrap();

    let (reg, r2, id2, loser2) = (env.reg.clone(), r.clone(), st.id.clone(), loser.clone());
    let rival = Arc::new(tokio::sync::Mutex::new(None));
    let rival_slot = rival.clone();
    let first_half = Bytes::copy_from_slice(&winner[..150_000]);
    let second_half = Bytes::copy_from_slice(&winner[150_000..]);
    let slow_body = stream::iter([Ok(first_half)]).chain(stream::once(async move {
        let handle =
            tokio::spawn(async move { reg.upload_chunk(&r2, &id2, exact(&loser2, 0)).await });
        *rival_slot.lock().await = Some(handle);
        // Give the rival every chance to write while this body is still streaming.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(second_half)
    }));
    let chunk = Chunk {
        range: Some((0, 299_999)),
        length: Some(300_000),
        body: Box::pin(slow_body),
    };
    env.reg.upload_chunk(&r, &st.id, chunk).await.unwrap();
    let handle = rival.lock().await.take().unwrap();
    let res = handle.await.unwrap();
    assert!(
        matches!(res, Err(Error::UploadOutOfOrder { offset: 300_000 })),
        "{res:?}"
    );

    env.reg
        .finish_upload(&r, &st.id, &sha256(&winner), None)
        .await
        .unwrap();
    assert_eq!(pull(&env.reg, &r, &sha256(&winner)).await.unwrap(), winner);
}

#[tokio::test]
async fn a_lost_compare_and_swap_is_reported_as_out_of_order() {
    let env = Env::new();
    let faulty = FaultyMeta::new(env.meta.clone());
    let reg = env.registry_with_meta(faulty.metadata());
    let r = repo("app");
    let st = reg.start_upload(&r).await.unwrap();
    reg.upload_chunk(&r, &st.id, exact(b"hello", 0))
        .await
        .unwrap();
    // Another replica moves the upload while this one writes.
    faulty.race.store(true, Ordering::SeqCst);
    let res = reg.upload_chunk(&r, &st.id, exact(b" world", 5)).await;
    assert!(
        matches!(res, Err(Error::UploadOutOfOrder { offset: 6 })),
        "{res:?}"
    );
}

#[tokio::test]
async fn backend_failures_are_internal_errors() {
    let env = Env::new();
    let r = repo("app");
    let data = content(500, 15);
    let digest = push(&env.reg, &r, &data).await;
    let meta = FaultyMeta::new(env.meta.clone());
    let blobs = FaultyBlobs::new(env.blobs.clone());
    let reg = Registry::new(blobs.clone(), meta.metadata(), env.reg.settings().clone());
    let st = reg.start_upload(&r).await.unwrap();

    let internal = |res: registry::Result<()>| matches!(res, Err(Error::Internal(_)));
    meta.fail.store(true, Ordering::SeqCst);
    assert!(internal(reg.start_upload(&r).await.map(|_| ())));
    assert!(internal(reg.stat_blob(&r, &digest).await.map(|_| ())));
    assert!(internal(
        reg.get_manifest(&r, &tag("latest")).await.map(|_| ())
    ));
    assert!(internal(reg.catalog(&Default::default()).await.map(|_| ())));
    meta.fail.store(false, Ordering::SeqCst);

    blobs.fail.store(true, Ordering::SeqCst);
    assert!(internal(reg.get_blob(&r, &digest, None).await.map(|_| ())));
    assert!(internal(
        reg.upload_chunk(&r, &st.id, exact(b"abc", 0))
            .await
            .map(|_| ())
    ));
    assert!(internal(
        reg.mount_blob(&repo("other"), &digest, None)
            .await
            .map(|_| ())
    ));
    blobs.fail.store(false, Ordering::SeqCst);
    // The failed write recorded nothing.
    assert_eq!(reg.upload_status(&r, &st.id).await.unwrap().offset, 0);
}
