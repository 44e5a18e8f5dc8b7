//! Immutable tags: a covered tag is pushed once (and again with the same manifest), never moved, never
//! deleted, nor its manifest deleted by digest; tags no rule covers move as ever.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use berth_registry as registry;
use bytes::Bytes;
use common::{Env, by_digest, image_manifest, push, repo, tag};
use oci::Pattern;
use registry::{Error, ImmutableTags, Settings};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn env() -> Env {
    Env::with_config(Settings {
        delete_enabled: true,
        immutable_tags: vec![ImmutableTags {
            repositories: vec![Pattern::repository("prod/**").unwrap()],
            tags: vec![Pattern::tag("v*").unwrap()],
        }],
        ..Settings::default()
    })
}

/// A one-layer image's manifest, distinct per `seed`, its blobs pushed to `r`.
async fn manifest(env: &Env, r: &oci::RepoName, seed: u8) -> Bytes {
    let config = format!("{{\"seed\":{seed}}}");
    let c = push(&env.reg, r, config.as_bytes()).await;
    let layer = common::content(100, seed);
    let l = push(&env.reg, r, &layer).await;
    Bytes::from(image_manifest((&c, config.len()), &[(&l, layer.len())]))
}

#[tokio::test]
async fn a_covered_tag_is_never_moved_or_deleted() {
    let env = env();
    let r = repo("prod/app");
    let (one, two) = (manifest(&env, &r, 1).await, manifest(&env, &r, 2).await);
    let put = |m: &Bytes, t: &str| {
        let (reg, r, m, t) = (env.reg.clone(), r.clone(), m.clone(), tag(t));
        async move { reg.put_manifest(&r, &t, Some(OCI_MANIFEST), m).await }
    };
    let first = put(&one, "v1").await.unwrap().digest;
    // The same manifest again: fine (a client retrying its push).
    put(&one, "v1").await.unwrap();
    let moved = put(&two, "v1").await;
    assert!(
        matches!(&moved, Err(Error::TagImmutable { tag, .. }) if tag.as_str() == "v1"),
        "{moved:?}"
    );
    assert!(
        moved
            .unwrap_err()
            .to_string()
            .contains("tag v1 of prod/app is immutable")
    );
    assert_eq!(
        env.reg.get_manifest(&r, &tag("v1")).await.unwrap().digest,
        first
    );
    for reference in [tag("v1"), by_digest(&first)] {
        assert!(matches!(
            env.reg.delete_manifest(&r, &reference).await,
            Err(Error::TagImmutable { .. })
        ));
    }
    assert_eq!(
        env.reg.get_manifest(&r, &tag("v1")).await.unwrap().digest,
        first
    );

    // Tags the rule does not cover, and repositories it does not cover, move and go as ever.
    put(&one, "latest").await.unwrap();
    put(&two, "latest").await.unwrap();
    env.reg.delete_manifest(&r, &tag("latest")).await.unwrap();
    let dev = repo("dev/app");
    let (d1, d2) = (manifest(&env, &dev, 1).await, manifest(&env, &dev, 2).await);
    for m in [&d1, &d2] {
        env.reg
            .put_manifest(&dev, &tag("v1"), Some(OCI_MANIFEST), m.clone())
            .await
            .unwrap();
    }
}
