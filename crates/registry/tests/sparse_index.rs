//! registry:3's `validation.manifests.indexes`: sparse indexes, whose children for some platforms are
//! absent, accepted as `index_children` allows, refused otherwise with MANIFEST_BLOB_UNKNOWN naming the
//! child.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use berth_registry as registry;
use bytes::Bytes;
use common::*;
use oci::Digest;
use oci::media_type::OCI_INDEX;
use registry::{Error, IndexChildren, RequiredPlatform, Settings};

/// An index of `(digest, size, os/architecture)` children.
fn index(children: &[(&Digest, usize, &str)]) -> Bytes {
    let entries: Vec<String> = children
        .iter()
        .map(|(d, s, platform)| {
            let (os, arch) = platform.split_once('/').unwrap();
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":{s},"platform":{{"architecture":"{arch}","os":"{os}"}}}}"#
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        entries.join(",")
    ))
}

fn env_with(rule: IndexChildren) -> Env {
    Env::with_config(Settings {
        index_children: rule,
        ..Settings::default()
    })
}

fn linux(arch: &str) -> RequiredPlatform {
    RequiredPlatform {
        os: "linux".into(),
        architecture: arch.into(),
    }
}

#[tokio::test]
async fn none_accepts_an_index_whose_children_are_absent() {
    let env = env_with(IndexChildren::None);
    let r = repo("mirror/app");
    let (amd, amd_json) = push_image(&env.reg, &r, "amd64", 1).await;
    let arm = sha256(b"an arm64 manifest never pushed");
    let idx = index(&[
        (&amd, amd_json.len(), "linux/amd64"),
        (&arm, 500, "linux/arm64"),
    ]);
    let out = env
        .reg
        .put_manifest(&r, &tag("latest"), Some(OCI_INDEX), idx.clone())
        .await
        .unwrap();
    let got = env.reg.get_manifest(&r, &tag("latest")).await.unwrap();
    assert_eq!((got.digest, got.payload), (out.digest, idx));
    // The absent child is not there to pull.
    assert!(matches!(
        env.reg.get_manifest(&r, &oci::Reference::Digest(arm)).await,
        Err(Error::ManifestUnknown(_))
    ));
}

#[tokio::test]
async fn a_platform_list_requires_its_platforms_children_only() {
    let env = env_with(IndexChildren::Platforms(vec![linux("amd64")]));
    let r = repo("mirror/app");
    let (amd, amd_json) = push_image(&env.reg, &r, "amd64", 1).await;
    let arm = sha256(b"an arm64 manifest never pushed");
    let ok = index(&[
        (&amd, amd_json.len(), "linux/amd64"),
        (&arm, 500, "linux/arm64"),
    ]);
    env.reg
        .put_manifest(&r, &tag("sparse"), Some(OCI_INDEX), ok)
        .await
        .unwrap();

    let absent_amd = sha256(b"an amd64 manifest never pushed");
    let refused = index(&[
        (&absent_amd, 500, "linux/amd64"),
        (&arm, 500, "linux/arm64"),
    ]);
    let res = env
        .reg
        .put_manifest(&r, &tag("broken"), Some(OCI_INDEX), refused)
        .await;
    assert!(
        matches!(&res, Err(Error::ManifestBlobUnknown(d)) if *d == absent_amd),
        "{res:?}"
    );
}

#[tokio::test]
async fn all_and_an_empty_list_require_every_child() {
    for rule in [IndexChildren::All, IndexChildren::Platforms(Vec::new())] {
        let env = env_with(rule.clone());
        let r = repo("app");
        let (amd, amd_json) = push_image(&env.reg, &r, "amd64", 1).await;
        let arm = sha256(b"an arm64 manifest never pushed");
        let idx = index(&[
            (&amd, amd_json.len(), "linux/amd64"),
            (&arm, 500, "linux/arm64"),
        ]);
        let res = env
            .reg
            .put_manifest(&r, &tag("latest"), Some(OCI_INDEX), idx)
            .await;
        assert!(
            matches!(&res, Err(Error::ManifestBlobUnknown(d)) if *d == arm),
            "{rule:?}: {res:?}"
        );
    }
}
