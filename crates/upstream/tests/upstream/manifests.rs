//! Manifest HEAD and GET against a real berth: by tag and by digest, every served media type through a
//! proxy that negotiates `Accept` like registry:2, 404s, and payloads that do not match their digest.

use berth_upstream::testkit::{Fault, FaultProxy, Kind};
use oci::Digest;
use registry::proxy::{Upstream, UpstreamError};

use crate::harness::*;

#[tokio::test]
async fn head_and_get_by_tag_and_by_digest() {
    let origin = Origin::start().await;
    let image = origin.seed_image("team/app", "v1", b"layer one").await;
    let up = client(&origin.url);
    let repo = name("team/app");

    for reference in [tag("v1"), by_digest(&image.digest)] {
        let head = up.manifest_head(&repo, &reference).await.unwrap().unwrap();
        assert_eq!(head.digest, image.digest, "{reference}");
        assert_eq!(head.media_type, OCI_MANIFEST);
        assert_eq!(head.size, image.manifest.len() as u64);

        let got = up
            .manifest_get(&repo, &reference, 4 << 20)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.payload, image.manifest, "{reference}");
        assert_eq!(got.digest, image.digest);
        assert_eq!(got.media_type, OCI_MANIFEST);
    }
    assert_eq!(up.name(), "test-upstream");
}

#[tokio::test]
async fn accept_lists_every_manifest_and_index_type() {
    let origin = Origin::start().await;
    let oci = origin.seed_image("lib/multi", "oci", b"oci layer").await;
    let docker = origin
        .seed_image_as("lib/multi", "docker", b"docker layer", DOCKER_MANIFEST)
        .await;
    let (_, index) = origin
        .seed_index(
            "lib/multi",
            "index",
            OCI_INDEX,
            &[(&oci.digest, oci.manifest.len(), OCI_MANIFEST)],
        )
        .await;
    let (_, list) = origin
        .seed_index(
            "lib/multi",
            "list",
            DOCKER_LIST,
            &[(&docker.digest, docker.manifest.len(), DOCKER_MANIFEST)],
        )
        .await;
    // The proxy answers 404 for a manifest whose type the request does not accept.
    let proxy = FaultProxy::start(&origin.url).await.unwrap();
    proxy.negotiate_accept(true);
    let up = client(&proxy.url());
    let repo = name("lib/multi");
    let cases = [
        ("oci", OCI_MANIFEST, &oci.digest),
        ("docker", DOCKER_MANIFEST, &docker.digest),
        ("index", OCI_INDEX, &index),
        ("list", DOCKER_LIST, &list),
    ];
    for (t, media_type, digest) in cases {
        let got = up
            .manifest_get(&repo, &tag(t), 4 << 20)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{t}: not found: Accept does not list {media_type}"));
        assert_eq!(got.media_type, media_type, "{t}");
        assert_eq!(&got.digest, digest, "{t}");
        let head = up.manifest_head(&repo, &tag(t)).await.unwrap().unwrap();
        assert_eq!(head.media_type, media_type, "{t}");
    }
    assert_eq!(proxy.count("GET", Kind::Manifest), 4);
    assert_eq!(proxy.count("HEAD", Kind::Manifest), 4);
}

#[tokio::test]
async fn missing_manifests_are_none() {
    let origin = Origin::start().await;
    origin.seed_image("team/app", "v1", b"layer").await;
    let up = client(&origin.url);
    let absent = Digest::sha256_of(b"never pushed");
    let cases = [
        ("team/app", tag("v2")),
        ("team/app", by_digest(&absent)),
        ("nobody/here", tag("latest")),
    ];
    for (repo, reference) in cases {
        let repo = name(repo);
        assert!(
            up.manifest_head(&repo, &reference).await.unwrap().is_none(),
            "{reference}"
        );
        assert!(
            up.manifest_get(&repo, &reference, 4 << 20)
                .await
                .unwrap()
                .is_none(),
            "{reference}"
        );
    }
}

#[tokio::test]
async fn a_corrupted_manifest_is_a_protocol_error() {
    let origin = Origin::start().await;
    let image = origin.seed_image("team/app", "v1", b"layer").await;
    let proxy = FaultProxy::start(&origin.url).await.unwrap();
    let up = client(&proxy.url());
    let repo = name("team/app");
    proxy.set_fault_on(Kind::Manifest, Fault::Corrupt);
    for reference in [tag("v1"), by_digest(&image.digest)] {
        match up.manifest_get(&repo, &reference, 4 << 20).await {
            Err(UpstreamError::Protocol(msg)) => assert!(msg.contains("hash"), "{msg}"),
            other => panic!("{reference}: {other:?}"),
        }
    }
    // The same requests pass once the bytes are intact: the error was the corruption.
    proxy.set_fault(Fault::Pass);
    assert!(
        up.manifest_get(&repo, &tag("v1"), 4 << 20)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_manifest_over_the_limit_is_a_protocol_error() {
    let origin = Origin::start().await;
    let image = origin.seed_image("team/app", "v1", b"layer").await;
    let up = client(&origin.url);
    let repo = name("team/app");
    let len = image.manifest.len();
    match up.manifest_get(&repo, &tag("v1"), len - 1).await {
        Err(UpstreamError::Protocol(msg)) => assert!(msg.contains("limit"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(
        up.manifest_get(&repo, &tag("v1"), len)
            .await
            .unwrap()
            .is_some()
    );
}
