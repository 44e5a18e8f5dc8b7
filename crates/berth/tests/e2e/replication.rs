//! Replication from another registry, against the real binary: the real registry:2 (Debian's
//! `docker-registry`) holds images; a berth configured with a `replication` source copies the tags its
//! patterns keep under a prefix, byte for byte, at start; a tag moved upstream is followed by the next
//! pass (a restart's, since passes are at least a minute apart), a tag outside the patterns never
//! arrives, and an SBOM of an image comes with it, found through the referrers tag schema (registry:2 has
//! no referrers API).

use std::time::{Duration, Instant};

use crate::harness::BlobPush;
use crate::harness::http::Api;
use crate::harness::http::OCI_INDEX;
use crate::harness::images::{Blob, artifact, empty_config, multi_platform_index, sample_image};
use crate::harness::registry2::Registry2;
use crate::harness::{Options, Server, push_image};

/// Waits (30 s at most) until `repo:tag` answers with `want`'s bytes.
fn wait_for_manifest(api: &Api, repo: &str, tag: &str, want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = api.get_manifest(repo, tag)
            && r.status == 200
            && r.body == want
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{repo}:{tag} never arrived as pushed upstream"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_registry2_upstream_is_replicated_and_followed() {
    let Some(upstream) =
        Registry2::start("replication::a_registry2_upstream_is_replicated_and_followed")
    else {
        return;
    };
    let up = Api::new(&format!("http://{}", upstream.host()));
    let v1 = sample_image("replicated-v1");
    let v2 = sample_image("replicated-v2");
    assert_eq!(push_image(&up, "team/app", "v1", &v1).status, 201);
    assert_eq!(push_image(&up, "team/app", "nightly", &v2).status, 201);
    let multi = multi_platform_index("replicated-multi");
    for img in &multi.images {
        let digest = img.manifest.digest.clone();
        assert_eq!(push_image(&up, "team/app", &digest, img).status, 201);
    }
    let r = up
        .put_manifest(
            "team/app",
            "v2-multi",
            &multi.index.media_type,
            &multi.index.bytes,
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.describe());
    // An SBOM of v1, kept as a client keeps referrers in a registry without the referrers API: the
    // artifact by digest, and an index of v1's referrers under the tag `sha256-<hex>`.
    let payload = Blob::json(
        "application/spdx+json",
        &serde_json::json!({ "spdxVersion": "SPDX-2.3", "name": "v1" }),
    );
    for blob in [&payload, &empty_config()] {
        up.push_blob("team/app", &blob.bytes, BlobPush::Monolithic)
            .unwrap();
    }
    let sbom = artifact("application/spdx+json", &payload, &v1.manifest);
    up.put_manifest("team/app", &sbom.digest, &sbom.media_type, &sbom.bytes)
        .unwrap();
    let mut entry = sbom.descriptor();
    entry["artifactType"] = "application/spdx+json".into();
    let referrers = Blob::json(
        OCI_INDEX,
        &serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry] }),
    );
    let schema_tag = format!("sha256-{}", v1.manifest.hex());
    up.put_manifest("team/app", &schema_tag, OCI_INDEX, &referrers.bytes)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "replication:\n  sources:\n    - remoteurl: http://{}\n      repositories: [team/app]\n      prefix: copies\n      tags: [\"v*\"]\n",
            upstream.host()
        ),
    )
    .unwrap();
    let mut server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let api = server.api();
    wait_for_manifest(&api, "copies/team/app", "v1", &v1.manifest.bytes);
    wait_for_manifest(&api, "copies/team/app", "v2-multi", &multi.index.bytes);
    for img in &multi.images {
        assert_eq!(
            api.manifest_ok("copies/team/app", &img.manifest.digest),
            img.manifest.bytes
        );
        for blob in img.blobs() {
            assert_eq!(
                api.get_ok(&format!("/v2/copies/team/app/blobs/{}", blob.digest)),
                blob.bytes
            );
        }
    }
    assert_eq!(
        api.get_manifest("copies/team/app", "nightly")
            .unwrap()
            .status,
        404,
        "outside the patterns"
    );
    // v1's SBOM came along, a referrer here as pushed (berth answers the referrers API itself).
    assert_eq!(api.manifest_ok("copies/team/app", &sbom.digest), sbom.bytes);
    let listed = api.get_ok(&format!(
        "/v2/copies/team/app/referrers/{}",
        v1.manifest.digest
    ));
    let listed: serde_json::Value = serde_json::from_slice(&listed).unwrap();
    assert_eq!(
        listed["manifests"][0]["digest"],
        sbom.digest.as_str(),
        "{listed}"
    );
    assert_eq!(
        listed["manifests"][0]["artifactType"],
        "application/spdx+json"
    );

    // v1 moved upstream: the next pass (at the restart) follows it.
    assert_eq!(push_image(&up, "team/app", "v1", &v2).status, 201);
    server.stop();
    server.start_again();
    let api = server.api();
    wait_for_manifest(&api, "copies/team/app", "v1", &v2.manifest.bytes);
}
