//! An upstream that rate-limits, fails, stops or stalls: each becomes the error the cache decides on
//! (`RateLimited` with its delay, `Unavailable`), and quickly.

use std::time::{Duration, Instant};

use berth_upstream::testkit::{Fault, FaultProxy, Kind};
use registry::proxy::{Upstream, UpstreamError};

use crate::harness::*;

#[tokio::test]
async fn a_rate_limit_is_reported_with_its_retry_after() {
    let origin = Origin::start().await;
    let image = origin.seed_image("lib/app", "v1", b"layer").await;
    let proxy = FaultProxy::start(&origin.url).await.unwrap();
    let up = client(&proxy.url());
    let repo = name("lib/app");

    proxy.set_fault(Fault::TooManyRequests {
        retry_after: Some(7),
    });
    let seven = Some(Duration::from_secs(7));
    match up.manifest_head(&repo, &tag("v1")).await {
        Err(UpstreamError::RateLimited { retry_after }) => assert_eq!(retry_after, seven),
        other => panic!("{other:?}"),
    }
    match up.blob_get(&repo, &image.layer).await {
        Err(UpstreamError::RateLimited { retry_after }) => assert_eq!(retry_after, seven),
        other => panic!("{:?}", other.map(|b| b.map(|b| b.size))),
    }
    proxy.set_fault(Fault::TooManyRequests { retry_after: None });
    match up.manifest_get(&repo, &tag("v1"), 4 << 20).await {
        Err(UpstreamError::RateLimited { retry_after }) => assert_eq!(retry_after, None),
        other => panic!("{other:?}"),
    }
    assert_eq!(proxy.requests(Kind::Manifest), 2);
    assert_eq!(proxy.requests(Kind::Blob), 1);
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    let origin = Origin::start().await;
    let image = origin.seed_image("lib/app", "v1", b"layer").await;
    let proxy = FaultProxy::start(&origin.url).await.unwrap();
    let up = client(&proxy.url());
    let repo = name("lib/app");
    proxy.set_fault(Fault::Unavailable);
    assert!(matches!(
        up.manifest_head(&repo, &tag("v1")).await,
        Err(UpstreamError::Unavailable(_))
    ));
    assert!(matches!(
        up.manifest_get(&repo, &tag("v1"), 4 << 20).await,
        Err(UpstreamError::Unavailable(_))
    ));
    assert!(matches!(
        up.blob_get(&repo, &image.layer).await,
        Err(UpstreamError::Unavailable(_))
    ));
    proxy.set_fault(Fault::Pass);
    assert!(up.manifest_head(&repo, &tag("v1")).await.unwrap().is_some());
}

#[tokio::test]
async fn a_stopped_upstream_is_unavailable_at_once() {
    let origin = Origin::start().await;
    origin.seed_image("lib/app", "v1", b"layer").await;
    let proxy = FaultProxy::start(&origin.url).await.unwrap();
    let up = client(&proxy.url()); // connect timeout 5 s, response timeout 2 s
    let repo = name("lib/app");
    // A first pull leaves a pooled connection, which the stop closes too.
    assert!(up.manifest_head(&repo, &tag("v1")).await.unwrap().is_some());
    proxy.stop().await;
    let started = Instant::now();
    match up.manifest_get(&repo, &tag("v1"), 4 << 20).await {
        Err(UpstreamError::Unavailable(msg)) => assert!(msg.contains("connect"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused connections must fail without waiting for a timeout: {:?}",
        started.elapsed()
    );
    proxy.restart().await.unwrap();
    assert!(up.manifest_head(&repo, &tag("v1")).await.unwrap().is_some());
}

#[tokio::test]
async fn a_silent_upstream_is_unavailable_after_the_response_timeout() {
    let origin = Origin::start().await;
    origin.seed_image("lib/app", "v1", b"layer").await;
    let proxy = FaultProxy::start(&origin.url).await.unwrap();
    let up = client(&proxy.url()); // response timeout 2 s
    proxy.set_fault(Fault::Stall);
    let started = Instant::now();
    match up.manifest_head(&name("lib/app"), &tag("v1")).await {
        Err(UpstreamError::Unavailable(msg)) => assert!(msg.contains("no response"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_manifest_body_that_stalls_is_unavailable() {
    let origin = Origin::start().await;
    origin.seed_image("lib/app", "v1", b"layer").await;
    let proxy = FaultProxy::start(&origin.url).await.unwrap();
    let up = client(&proxy.url()); // stall timeout 1 s
    proxy.set_fault_on(Kind::Manifest, Fault::StallAfter(10));
    let started = Instant::now();
    match up.manifest_get(&name("lib/app"), &tag("v1"), 4 << 20).await {
        Err(UpstreamError::Unavailable(msg)) => assert!(msg.contains("stalled"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}
