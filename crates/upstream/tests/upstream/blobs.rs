//! Blob GET against a real berth: a multi-MiB blob arrives as a stream of bounded chunks, a 404 is
//! `None`, transport failures mid-body are stream errors, and redirects are followed without handing the
//! registry's credentials to the redirect target.

use std::io;
use std::time::{Duration, Instant};

use berth_upstream::testkit::{Fault, FaultProxy, Kind, TokenServer, TokenServerConfig};
use oci::Digest;
use registry::proxy::Upstream;

use crate::harness::*;

const BIG: usize = 8 << 20;

#[tokio::test]
async fn a_multi_mib_blob_streams_in_bounded_chunks() {
    let origin = Origin::start().await;
    let data = noise(BIG, 7);
    let digest = origin.push_blob("team/app", &data).await;
    let up = client(&origin.url);
    let blob = up
        .blob_get(&name("team/app"), &digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(blob.size, Some(BIG as u64));
    let (got, chunks, largest) = drain(blob.body).await.unwrap();
    assert_eq!(Digest::sha256_of(&got), digest);
    // Streamed as read, never gathered whole: many chunks, none near the blob's size.
    assert!(chunks >= 8, "{chunks} chunks");
    assert!(largest <= 1 << 20, "a chunk of {largest} bytes");
}

#[tokio::test]
async fn a_blob_without_content_length_streams_with_an_unknown_size() {
    let origin = Origin::start().await;
    let data = noise(2 << 20, 11);
    let digest = origin.push_blob("team/app", &data).await;
    let proxy = FaultProxy::start(&origin.url).await.unwrap();
    proxy.set_fault(Fault::Chunked);
    let blob = client(&proxy.url())
        .blob_get(&name("team/app"), &digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(blob.size, None);
    let (got, _, _) = drain(blob.body).await.unwrap();
    assert_eq!(Digest::sha256_of(&got), digest);
}

#[tokio::test]
async fn a_missing_blob_is_none() {
    let origin = Origin::start().await;
    origin.push_blob("team/app", b"here").await;
    let up = client(&origin.url);
    let absent = Digest::sha256_of(b"not here");
    assert!(
        up.blob_get(&name("team/app"), &absent)
            .await
            .unwrap()
            .is_none()
    );
    // A blob of another repository is not readable through this one either.
    let other = origin.push_blob("team/other", b"elsewhere").await;
    assert!(
        up.blob_get(&name("team/app"), &other)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_connection_dropped_mid_blob_is_a_stream_error() {
    let origin = Origin::start().await;
    let data = noise(BIG, 8);
    let digest = origin.push_blob("team/app", &data).await;
    let proxy = FaultProxy::start(&origin.url).await.unwrap();
    proxy.set_fault_on(Kind::Blob, Fault::DropAfter(1 << 20));
    let up = client(&proxy.url());
    let blob = up
        .blob_get(&name("team/app"), &digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        blob.size,
        Some(BIG as u64),
        "the head announces the whole blob"
    );
    let (err, received) = drain(blob.body).await.expect_err("a short body must fail");
    assert!(received <= 1 << 20, "{received} bytes before the error");
    assert!(!err.to_string().is_empty());
}

#[tokio::test]
async fn a_stalled_blob_fails_after_the_stall_timeout() {
    let origin = Origin::start().await;
    let digest = origin.push_blob("team/app", &noise(1 << 20, 9)).await;
    let proxy = FaultProxy::start(&origin.url).await.unwrap();
    proxy.set_fault_on(Kind::Blob, Fault::StallAfter(64 << 10));
    let up = client(&proxy.url()); // stall timeout: 1 s
    let blob = up
        .blob_get(&name("team/app"), &digest)
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let (err, received) = drain(blob.body)
        .await
        .expect_err("a stalled body must fail");
    let waited = started.elapsed();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(received <= 64 << 10);
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn redirects_are_followed_without_the_registrys_authorization() {
    let origin = Origin::start().await;
    let data = noise(3 << 20, 10);
    let digest = origin.push_blob("team/app", &data).await;
    // "Object storage": a second proxy in front of the same registry, recording what it receives.
    let storage = FaultProxy::start(&origin.url).await.unwrap();
    // The registry demands bearer tokens and redirects blob GETs to the storage.
    let tokens = TokenServer::start(TokenServerConfig::default())
        .await
        .unwrap();
    let front = FaultProxy::start(&origin.url).await.unwrap();
    front.require_bearer(&tokens);
    front.set_fault_on(Kind::Blob, Fault::Redirect(storage.url()));

    let up = client(&front.url());
    let blob = up
        .blob_get(&name("team/app"), &digest)
        .await
        .unwrap()
        .unwrap();
    let (got, _, _) = drain(blob.body).await.unwrap();
    assert_eq!(Digest::sha256_of(&got), digest);
    // The registry saw the token (so there was a credential to leak), the storage never did.
    assert_eq!(
        front.requests(Kind::Blob),
        2,
        "a 401, then the request with the token"
    );
    assert_eq!(front.authorized(Kind::Blob), 1);
    assert_eq!(storage.requests(Kind::Blob), 1);
    assert_eq!(storage.authorized(Kind::Blob), 0);
}
