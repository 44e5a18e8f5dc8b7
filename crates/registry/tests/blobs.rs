//! Reading and deleting blobs through repositories: repository-scoped access, ranges, manifests served
//! through the blob endpoints, deletes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use berth_registry as registry;
use bytes::Bytes;
use common::*;
use metadata::Catalog;
use registry::{ByteRange, Error};

#[tokio::test]
async fn blobs_are_readable_only_through_repositories_they_are_linked_to() {
    let env = Env::new();
    let (a, b) = (repo("org/a"), repo("org/b"));
    let data = content(2048, 1);
    let d = push(&env.reg, &a, &data).await;

    let info = env.reg.stat_blob(&a, &d).await.unwrap();
    assert_eq!((info.digest.clone(), info.size), (d.clone(), 2048));
    let got = env.reg.get_blob(&a, &d, None).await.unwrap();
    assert_eq!((got.size, got.range.clone()), (2048, None));
    assert_eq!(read_all(got.body).await, data);

    // The bytes exist, but `b` never pushed nor mounted them.
    assert!(matches!(env.reg.stat_blob(&b, &d).await, Err(Error::BlobUnknown(x)) if x == d));
    assert!(matches!(
        env.reg.get_blob(&b, &d, None).await,
        Err(Error::BlobUnknown(_))
    ));
    // A digest nobody has.
    let none = sha256(b"none");
    assert!(matches!(
        env.reg.stat_blob(&a, &none).await,
        Err(Error::BlobUnknown(_))
    ));
}

#[tokio::test]
async fn ranges_are_served_and_checked_against_the_size() {
    let env = Env::new();
    let r = repo("app");
    let data = content(10_000, 2);
    let d = push(&env.reg, &r, &data).await;
    let cases = [
        (ByteRange::FromTo(0, 99), 0..100),
        (ByteRange::FromTo(9_990, 20_000), 9_990..10_000),
        (ByteRange::From(5_000), 5_000..10_000),
        (ByteRange::Last(10), 9_990..10_000),
    ];
    for (range, want) in cases {
        let got = env.reg.get_blob(&r, &d, Some(range)).await.unwrap();
        assert_eq!(got.size, 10_000, "{range:?}");
        assert_eq!(got.range, Some(want.clone()), "{range:?}");
        assert_eq!(
            read_all(got.body).await,
            &data[want.start as usize..want.end as usize]
        );
    }
    for range in [
        ByteRange::From(10_000),
        ByteRange::FromTo(10_000, 10_001),
        ByteRange::Last(0),
    ] {
        let res = env.reg.get_blob(&r, &d, Some(range)).await;
        assert!(
            matches!(res, Err(Error::RangeNotSatisfiable { size: 10_000 })),
            "{range:?}: {:?}",
            res.map(|c| c.range)
        );
    }
}

#[tokio::test]
async fn a_manifest_is_readable_through_the_blob_endpoints() {
    let env = Env::new();
    let r = repo("app");
    let (digest, manifest) = push_image(&env.reg, &r, "v1", 3).await;
    let info = env.reg.stat_blob(&r, &digest).await.unwrap();
    assert_eq!(info.size, manifest.len() as u64);
    assert_eq!(
        pull(&env.reg, &r, &digest).await.unwrap(),
        manifest.as_bytes()
    );
    let part = env
        .reg
        .get_blob(&r, &digest, Some(ByteRange::FromTo(2, 5)))
        .await
        .unwrap();
    assert_eq!(read_all(part.body).await, &manifest.as_bytes()[2..6]);
    assert!(matches!(
        env.reg
            .get_blob(&r, &digest, Some(ByteRange::From(100_000)))
            .await,
        Err(Error::RangeNotSatisfiable { .. })
    ));
    // Not through another repository.
    assert!(matches!(
        env.reg.stat_blob(&repo("other"), &digest).await,
        Err(Error::BlobUnknown(_))
    ));
}

#[tokio::test]
async fn a_linked_blob_whose_bytes_are_gone_is_unknown_not_a_crash() {
    let env = Env::new();
    let r = repo("app");
    let ghost = sha256(b"ghost");
    env.meta.link_blob(&r, &ghost, 5).await.unwrap();
    assert!(matches!(
        env.reg.get_blob(&r, &ghost, None).await,
        Err(Error::BlobUnknown(_))
    ));
}

#[tokio::test]
async fn blob_deletes_are_unsupported_unless_enabled() {
    let env = Env::new();
    let r = repo("app");
    let d = push(&env.reg, &r, b"some bytes").await;
    assert!(matches!(
        env.reg.delete_blob(&r, &d).await,
        Err(Error::Unsupported(_))
    ));
    assert!(env.reg.stat_blob(&r, &d).await.is_ok());
}

#[tokio::test]
async fn deleting_a_blob_unlinks_it_from_that_repository_only() {
    let env = Env::with_deletes();
    let (a, b) = (repo("a"), repo("b"));
    let data = Bytes::from_static(b"shared layer");
    let d = push(&env.reg, &a, &data).await;
    push(&env.reg, &b, &data).await;
    env.reg.delete_blob(&a, &d).await.unwrap();
    assert!(matches!(
        env.reg.stat_blob(&a, &d).await,
        Err(Error::BlobUnknown(_))
    ));
    assert_eq!(pull(&env.reg, &b, &d).await.unwrap(), data);
    assert!(matches!(
        env.reg.delete_blob(&a, &d).await,
        Err(Error::BlobUnknown(_))
    ));
    assert!(matches!(
        env.reg.delete_blob(&a, &sha256(b"never")).await,
        Err(Error::BlobUnknown(_))
    ));
}
