//! Manifest pushes, pulls and deletes over real storage: validation, reference checks, digests, tags.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use berth_registry as registry;
use bytes::Bytes;
use common::*;
use oci::Reference;
use oci::media_type::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use registry::{Error, Settings};

const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;

#[tokio::test]
async fn pushed_manifest_is_served_byte_for_byte_by_tag_and_digest() {
    let env = Env::new();
    let r = repo("library/app");
    let c = push(&env.reg, &r, CONFIG).await;
    let layer = content(4096, 1);
    let l = push(&env.reg, &r, &layer).await;
    // Odd whitespace and key order: the digest is of these exact bytes, not of a re-serialisation.
    let manifest = format!(
        "{{\n  \"layers\": [{{\"size\": {}, \"digest\": \"{l}\", \"mediaType\": \"application/vnd.oci.image.layer.v1.tar\"}}],\n\t\"config\": {{\"mediaType\": \"application/vnd.oci.image.config.v1+json\", \"size\": {}, \"digest\": \"{c}\"}},\n  \"schemaVersion\": 2\n}}\n",
        layer.len(),
        CONFIG.len()
    );
    let out = env
        .reg
        .put_manifest(
            &r,
            &tag("1.0"),
            Some(OCI_MANIFEST),
            Bytes::from(manifest.clone()),
        )
        .await
        .unwrap();
    assert_eq!(out.digest, sha256(manifest.as_bytes()));
    assert_eq!(out.subject, None);
    for reference in [tag("1.0"), by_digest(&out.digest)] {
        let got = env.reg.get_manifest(&r, &reference).await.unwrap();
        assert_eq!(got.payload, manifest.as_bytes(), "{reference}");
        assert_eq!(got.digest, out.digest);
        // No mediaType field: the Content-Type it was pushed with is what it is served as.
        assert_eq!(got.media_type, OCI_MANIFEST);
    }
    assert!(matches!(
        env.reg.get_manifest(&r, &tag("2.0")).await,
        Err(Error::ManifestUnknown(t)) if t == "2.0"
    ));
    assert!(matches!(
        env.reg.get_manifest(&repo("other"), &tag("1.0")).await,
        Err(Error::ManifestUnknown(_))
    ));
}

#[tokio::test]
async fn push_by_digest_checks_the_digest_with_its_algorithm() {
    let env = Env::new();
    let r = repo("app");
    let c = push(&env.reg, &r, CONFIG).await;
    let manifest = image_manifest((&c, CONFIG.len()), &[]);
    let bytes = Bytes::from(manifest.clone());

    let wrong = Reference::Digest(sha256(b"not the manifest"));
    let res = env
        .reg
        .put_manifest(&r, &wrong, Some(OCI_MANIFEST), bytes.clone())
        .await;
    assert!(matches!(res, Err(Error::DigestInvalid(_))), "{res:?}");

    let d512 = sha512(manifest.as_bytes());
    let out = env
        .reg
        .put_manifest(&r, &by_digest(&d512), Some(OCI_MANIFEST), bytes.clone())
        .await
        .unwrap();
    assert_eq!(out.digest, d512);
    assert_eq!(
        env.reg
            .get_manifest(&r, &by_digest(&d512))
            .await
            .unwrap()
            .payload,
        bytes
    );

    let d256 = sha256(manifest.as_bytes());
    env.reg
        .put_manifest(&r, &by_digest(&d256), Some(OCI_MANIFEST), bytes)
        .await
        .unwrap();
    // A push by digest moves no tag.
    assert!(
        env.reg
            .list_tags(&r, &Default::default())
            .await
            .unwrap()
            .0
            .is_empty()
    );
}

#[tokio::test]
async fn invalid_and_oversized_manifests_are_refused() {
    let env = Env::with_config(Settings {
        max_manifest_bytes: 1000,
        ..Settings::default()
    });
    let r = repo("app");
    let c = push(&env.reg, &r, CONFIG).await;

    let big = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":37}},"annotations":{{"pad":"{}"}}}}"#,
        "x".repeat(1000)
    );
    let res = env
        .reg
        .put_manifest(&r, &tag("big"), Some(OCI_MANIFEST), Bytes::from(big))
        .await;
    assert!(
        matches!(res, Err(Error::ManifestTooLarge { limit: 1000, .. })),
        "{res:?}"
    );

    let cases: &[(&str, Option<&str>, &str)] = &[
        ("not JSON", Some(OCI_MANIFEST), "not valid JSON"),
        (
            r#"{"schemaVersion":1,"name":"app","tag":"v1","fsLayers":[]}"#,
            None,
            "schema1",
        ),
        (
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
            None,
            "config",
        ),
        (
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
            Some(OCI_MANIFEST),
            "disagrees",
        ),
    ];
    for (body, ct, words) in cases {
        let res = env
            .reg
            .put_manifest(&r, &tag("bad"), *ct, Bytes::from(body.to_string()))
            .await;
        match res {
            Err(Error::ManifestInvalid(msg)) if msg.contains(words) => {}
            other => panic!("{body}: {other:?}"),
        }
    }
    assert!(matches!(
        env.reg.get_manifest(&r, &tag("bad")).await,
        Err(Error::ManifestUnknown(_))
    ));
}

#[tokio::test]
async fn manifest_with_a_missing_layer_is_refused_and_nothing_is_stored() {
    let env = Env::new();
    let (r, other) = (repo("app"), repo("other"));
    let c = push(&env.reg, &r, CONFIG).await;
    let present = push(&env.reg, &r, b"layer one").await;
    // Pushed, but to another repository: it does not count.
    let elsewhere = push(&env.reg, &other, b"layer two").await;
    let never = sha256(b"never pushed");
    for missing in [&elsewhere, &never] {
        let manifest = image_manifest((&c, CONFIG.len()), &[(&present, 9), (missing, 9)]);
        let res = env
            .reg
            .put_manifest(&r, &tag("v1"), None, Bytes::from(manifest))
            .await;
        assert!(
            matches!(&res, Err(Error::ManifestBlobUnknown(d)) if d == missing),
            "{res:?}"
        );
    }
    // A missing config is as bad as a missing layer.
    let manifest = image_manifest((&never, 2), &[(&present, 9)]);
    let res = env
        .reg
        .put_manifest(&r, &tag("v1"), None, Bytes::from(manifest))
        .await;
    assert!(
        matches!(&res, Err(Error::ManifestBlobUnknown(d)) if *d == never),
        "{res:?}"
    );
    assert!(matches!(
        env.reg.get_manifest(&r, &tag("v1")).await,
        Err(Error::ManifestUnknown(_))
    ));
    assert!(matches!(
        env.reg.list_tags(&r, &Default::default()).await,
        Err(Error::NameUnknown(_))
    ));
}

#[tokio::test]
async fn foreign_layers_need_not_be_in_the_registry() {
    let env = Env::new();
    let r = repo("windows/app");
    let c = push(&env.reg, &r, CONFIG).await;
    let local = push(&env.reg, &r, b"local layer").await;
    let foreign = sha256(b"servercore base layer");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
  "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{c}"}},
  "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":21,"digest":"{foreign}","urls":["https://mcr.microsoft.com/v2/windows/servercore/blobs/{foreign}"]}},
            {{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":11,"digest":"{local}"}}]}}"#,
        CONFIG.len()
    );
    env.reg
        .put_manifest(
            &r,
            &tag("ltsc"),
            Some(DOCKER_MANIFEST),
            Bytes::from(manifest),
        )
        .await
        .unwrap();
    let got = env.reg.get_manifest(&r, &tag("ltsc")).await.unwrap();
    assert_eq!(got.media_type, DOCKER_MANIFEST);
}

#[tokio::test]
async fn index_needs_its_children_in_the_repository() {
    let env = Env::new();
    let r = repo("multi");
    let (amd, amd_json) = push_image(&env.reg, &r, "amd64", 1).await;
    let missing = sha256(b"an arm64 manifest never pushed");
    let index = index_manifest(&[(&amd, amd_json.len()), (&missing, 500)]);
    let res = env
        .reg
        .put_manifest(&r, &tag("latest"), Some(OCI_INDEX), Bytes::from(index))
        .await;
    assert!(
        matches!(&res, Err(Error::ManifestBlobUnknown(d)) if *d == missing),
        "{res:?}"
    );

    // A child present in another repository only does not count either.
    let (arm, arm_json) = push_image(&env.reg, &repo("elsewhere"), "arm64", 2).await;
    let index = index_manifest(&[(&amd, amd_json.len()), (&arm, arm_json.len())]);
    let res = env
        .reg
        .put_manifest(
            &r,
            &tag("latest"),
            Some(OCI_INDEX),
            Bytes::from(index.clone()),
        )
        .await;
    assert!(
        matches!(&res, Err(Error::ManifestBlobUnknown(d)) if *d == arm),
        "{res:?}"
    );

    let (arm, arm_json) = push_image(&env.reg, &r, "arm64", 2).await;
    let index = index_manifest(&[(&amd, amd_json.len()), (&arm, arm_json.len())]);
    let out = env
        .reg
        .put_manifest(
            &r,
            &tag("latest"),
            Some(OCI_INDEX),
            Bytes::from(index.clone()),
        )
        .await
        .unwrap();
    let got = env.reg.get_manifest(&r, &tag("latest")).await.unwrap();
    assert_eq!(
        (got.digest, got.media_type, got.payload),
        (out.digest, OCI_INDEX.to_string(), Bytes::from(index))
    );
}

#[tokio::test]
async fn subject_need_not_exist_yet() {
    let env = Env::new();
    let r = repo("app");
    let subject = sha256(b"the image this signs, pushed later");
    let empty = push(&env.reg, &r, b"{}").await;
    assert_eq!(empty, sha256(b"{}"));
    let sig = push(&env.reg, &r, b"signature").await;
    let manifest = referrer_manifest("application/vnd.example.sig", &subject, (&sig, 9));
    let out = env
        .reg
        .put_manifest(
            &r,
            &by_digest(&sha256(manifest.as_bytes())),
            Some(OCI_MANIFEST),
            Bytes::from(manifest),
        )
        .await
        .unwrap();
    assert_eq!(out.subject, Some(subject));
}

#[tokio::test]
async fn pushing_a_tag_again_moves_it() {
    let env = Env::new();
    let r = repo("app");
    let (first, _) = push_image(&env.reg, &r, "latest", 1).await;
    let (second, _) = push_image(&env.reg, &r, "latest", 2).await;
    assert_ne!(first, second);
    assert_eq!(
        env.reg
            .get_manifest(&r, &tag("latest"))
            .await
            .unwrap()
            .digest,
        second
    );
    // The old manifest stays, by digest.
    assert_eq!(
        env.reg
            .get_manifest(&r, &by_digest(&first))
            .await
            .unwrap()
            .digest,
        first
    );
    assert_eq!(
        env.reg.list_tags(&r, &Default::default()).await.unwrap().0,
        vec!["latest"]
    );
}

#[tokio::test]
async fn manifest_deletes_are_unsupported_unless_enabled() {
    let env = Env::new();
    let r = repo("app");
    let (d, _) = push_image(&env.reg, &r, "v1", 1).await;
    for reference in [tag("v1"), by_digest(&d)] {
        assert!(matches!(
            env.reg.delete_manifest(&r, &reference).await,
            Err(Error::Unsupported(_))
        ));
    }
    assert!(env.reg.get_manifest(&r, &tag("v1")).await.is_ok());
}

#[tokio::test]
async fn deleting_a_tag_keeps_the_manifest_and_deleting_a_digest_removes_its_tags() {
    let env = Env::with_deletes();
    let r = repo("app");
    let (d, _) = push_image(&env.reg, &r, "v1", 1).await;
    let m = env.reg.get_manifest(&r, &tag("v1")).await.unwrap();
    for t in ["v1.0", "stable"] {
        env.reg
            .put_manifest(&r, &tag(t), Some(OCI_MANIFEST), m.payload.clone())
            .await
            .unwrap();
    }

    env.reg.delete_manifest(&r, &tag("stable")).await.unwrap();
    assert!(matches!(
        env.reg.get_manifest(&r, &tag("stable")).await,
        Err(Error::ManifestUnknown(_))
    ));
    assert!(env.reg.get_manifest(&r, &by_digest(&d)).await.is_ok());
    assert!(matches!(
        env.reg.delete_manifest(&r, &tag("stable")).await,
        Err(Error::ManifestUnknown(_))
    ));

    env.reg.delete_manifest(&r, &by_digest(&d)).await.unwrap();
    for reference in [tag("v1"), tag("v1.0"), by_digest(&d)] {
        assert!(matches!(
            env.reg.get_manifest(&r, &reference).await,
            Err(Error::ManifestUnknown(_))
        ));
    }
    assert!(matches!(
        env.reg.delete_manifest(&r, &by_digest(&d)).await,
        Err(Error::ManifestUnknown(_))
    ));
}
