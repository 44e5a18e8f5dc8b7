//! The pull-through cache's manifests: fetched once, served from the cache within the revalidation
//! interval with no upstream request, revalidated with one HEAD after it, served stale (flagged) when the
//! upstream fails, upstream failures mapped to spec errors when nothing is cached; cached namespaces are
//! read-only while local repositories beside them keep working.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;
mod proxy_common;

use std::time::Duration;

use berth_registry as registry;
use bytes::Bytes;
use common::{push_image, repo, tag};
use metadata::Catalog;
use proxy_common::{FakeUpstream, Fault, cache};
use registry::Error;
use registry::proxy::{CacheEvent, CacheKind};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_tag_within_the_interval_makes_no_upstream_request() {
    let up = FakeUpstream::new();
    let (digest, manifest) = push_image(up.reg(), &repo("library/alpine"), "3", 1).await;
    let (env, events) = cache(&up, "", true, HOUR);

    let first = env
        .reg
        .get_manifest(&repo("library/alpine"), &tag("3"))
        .await
        .unwrap();
    assert_eq!(first.digest, digest);
    assert_eq!(first.payload, Bytes::from(manifest.clone()));
    assert!(!first.stale);
    assert_eq!(up.calls.snapshot(), (0, 1, 0), "one GET, no HEAD, no blob");

    for _ in 0..3 {
        let again = env
            .reg
            .get_manifest(&repo("library/alpine"), &tag("3"))
            .await
            .unwrap();
        assert_eq!(again.payload, Bytes::from(manifest.clone()));
    }
    assert_eq!(
        up.calls.snapshot(),
        (0, 1, 0),
        "nothing more within the interval"
    );
    assert_eq!(
        events.count(|e| *e == CacheEvent::Hit(CacheKind::Manifest)),
        3
    );
    assert_eq!(
        events.count(|e| *e == CacheEvent::Miss(CacheKind::Manifest)),
        1
    );

    // Stored like a local manifest: in the metadata store, under the tag.
    let stored = env
        .meta
        .tagged_manifest(&repo("library/alpine"), &"3".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(stored.unwrap().digest, digest);
}

#[tokio::test]
async fn after_the_interval_a_head_revalidates_and_a_new_digest_is_fetched() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let (d1, _) = push_image(up.reg(), &name, "1", 1).await;
    let (env, _) = cache(&up, "", false, Duration::ZERO);

    assert_eq!(
        env.reg.get_manifest(&name, &tag("1")).await.unwrap().digest,
        d1
    );
    assert_eq!(up.calls.snapshot(), (0, 1, 0));
    assert_eq!(
        env.reg.get_manifest(&name, &tag("1")).await.unwrap().digest,
        d1
    );
    assert_eq!(
        up.calls.snapshot(),
        (1, 1, 0),
        "one HEAD, same digest: no GET"
    );

    // The tag moves upstream: HEAD sees it, one GET by the new digest.
    let (d2, m2) = push_image(up.reg(), &name, "1", 2).await;
    let got = env.reg.get_manifest(&name, &tag("1")).await.unwrap();
    assert_eq!(
        (got.digest.clone(), got.payload),
        (d2.clone(), Bytes::from(m2))
    );
    assert_eq!(up.calls.snapshot(), (2, 2, 0));
    // Both stay readable by digest, without asking the upstream.
    env.reg
        .get_manifest(&name, &common::by_digest(&d1))
        .await
        .unwrap();
    env.reg
        .get_manifest(&name, &common::by_digest(&d2))
        .await
        .unwrap();
    assert_eq!(
        up.calls.snapshot(),
        (2, 2, 0),
        "manifests by digest never revalidate"
    );
}

#[tokio::test]
async fn a_manifest_by_digest_is_fetched_once() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let (d, m) = push_image(up.reg(), &name, "1", 1).await;
    let (env, _) = cache(&up, "", false, Duration::ZERO);
    for _ in 0..3 {
        let got = env
            .reg
            .get_manifest(&name, &common::by_digest(&d))
            .await
            .unwrap();
        assert_eq!(got.payload, Bytes::from(m.clone()));
    }
    assert_eq!(up.calls.snapshot(), (0, 1, 0));
    // A digest-only pull does not create a tag (the cached tags, listed with the upstream down).
    up.set_fault(Fault::Down);
    let (tags, _) = env.reg.list_tags(&name, &Default::default()).await.unwrap();
    assert!(tags.is_empty(), "{tags:?}");
}

#[tokio::test]
async fn the_cached_copy_is_served_stale_when_the_upstream_fails() {
    for fault in [Fault::Down, Fault::RateLimited] {
        let up = FakeUpstream::new();
        let name = repo("org/app");
        let (d, _) = push_image(up.reg(), &name, "1", 1).await;
        let (env, events) = cache(&up, "", false, Duration::ZERO);
        env.reg.get_manifest(&name, &tag("1")).await.unwrap();

        up.set_fault(fault);
        let got = env.reg.get_manifest(&name, &tag("1")).await.unwrap();
        assert_eq!(got.digest, d, "{fault:?}");
        assert!(got.stale, "{fault:?}: flagged for the Warning header");
        assert_eq!(up.calls.snapshot(), (1, 1, 0), "{fault:?}");
        assert_eq!(
            events.count(|e| *e == CacheEvent::Stale(CacheKind::Manifest)),
            1
        );

        // Back up: fresh again, no flag.
        up.set_fault(Fault::None);
        assert!(!env.reg.get_manifest(&name, &tag("1")).await.unwrap().stale);
    }
}

#[tokio::test]
async fn without_a_cached_copy_upstream_failures_are_spec_errors() {
    let up = FakeUpstream::new();
    push_image(up.reg(), &repo("org/app"), "1", 1).await;
    let (env, _) = cache(&up, "", false, Duration::ZERO);

    let err = env
        .reg
        .get_manifest(&repo("org/app"), &tag("nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestUnknown(_)), "{err:?}");
    let err = env
        .reg
        .get_manifest(&repo("org/none"), &tag("1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestUnknown(_)), "{err:?}");

    up.set_fault(Fault::RateLimited);
    let err = env
        .reg
        .get_manifest(&repo("org/app"), &tag("1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooManyRequests), "{err:?}");
    up.set_fault(Fault::Down);
    let err = env
        .reg
        .get_manifest(&repo("org/app"), &tag("1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    let d = common::sha256(b"x");
    let err = env
        .reg
        .get_blob(&repo("org/app"), &d, None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    up.set_fault(Fault::None);
    let err = env
        .reg
        .get_blob(&repo("org/app"), &d, None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::BlobUnknown(_)), "{err:?}");
}

#[tokio::test]
async fn a_tag_gone_upstream_is_gone_from_the_cache() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    push_image(up.reg(), &name, "1", 1).await;
    let (env, _) = cache(&up, "", false, Duration::ZERO);
    env.reg.get_manifest(&name, &tag("1")).await.unwrap();
    up.env
        .meta
        .delete_tag(&name, &"1".parse().unwrap())
        .await
        .unwrap();
    let err = env.reg.get_manifest(&name, &tag("1")).await.unwrap_err();
    assert!(matches!(err, Error::ManifestUnknown(_)), "{err:?}");
    let (tags, _) = env.reg.list_tags(&name, &Default::default()).await.unwrap();
    assert!(tags.is_empty());
}

#[tokio::test]
async fn a_prefix_namespace_maps_names_and_adds_library() {
    let up = FakeUpstream::new();
    let (d, _) = push_image(up.reg(), &repo("library/alpine"), "3", 1).await;
    let (env, _) = cache(&up, "docker.io", true, HOUR);

    // Both spellings are one cached repository, fetched once.
    let short = env
        .reg
        .get_manifest(&repo("docker.io/alpine"), &tag("3"))
        .await
        .unwrap();
    let long = env
        .reg
        .get_manifest(&repo("docker.io/library/alpine"), &tag("3"))
        .await
        .unwrap();
    assert_eq!((short.digest, long.digest), (d.clone(), d));
    assert_eq!(up.calls.snapshot(), (0, 1, 0));
    let (repos, _) = env.reg.catalog(&Default::default()).await.unwrap();
    assert_eq!(repos, vec!["docker.io/library/alpine".to_string()]);
    // containerd's form: the name without the namespace, plus ?ns=.
    let full = env
        .reg
        .proxy_namespace("docker.io", &repo("library/alpine"))
        .unwrap();
    assert_eq!(full.as_str(), "docker.io/library/alpine");
    assert!(
        env.reg
            .proxy_namespace("quay.io", &repo("library/alpine"))
            .is_none()
    );
}

#[tokio::test]
async fn cached_namespaces_are_read_only_and_local_repositories_work_beside_them() {
    let up = FakeUpstream::new();
    push_image(up.reg(), &repo("library/alpine"), "3", 1).await;
    let (env, _) = cache(&up, "docker.io", true, HOUR);

    let cached = repo("docker.io/library/alpine");
    let err = env.reg.start_upload(&cached).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    let err = env
        .reg
        .put_manifest(&cached, &tag("x"), None, Bytes::from_static(b"{}"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    let err = env
        .reg
        .delete_manifest(&cached, &tag("3"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    let err = env
        .reg
        .mount_blob(&cached, &common::sha256(b"x"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");

    // A local repository beside it: pushed and pulled as usual, never sent upstream.
    let local = repo("team/app");
    let (d, _) = push_image(&env.reg, &local, "1", 9).await;
    assert_eq!(
        env.reg
            .get_manifest(&local, &tag("1"))
            .await
            .unwrap()
            .digest,
        d
    );
    assert_eq!(up.calls.snapshot(), (0, 0, 0));
}
