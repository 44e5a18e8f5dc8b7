//! The referrers of a manifest (`Upstream::referrers`, for replication): the referrers API's index, and,
//! from a registry without that API (404, as registry:2), the index of the referrers tag schema.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_http::ServeSettings;
use registry::proxy::Upstream;
use serde_json::json;

use crate::harness::*;

/// An SBOM referring to `subject` (`size` bytes) in `repo`; its digest and manifest.
async fn sbom(
    origin: &Origin,
    repo: &str,
    subject: &oci::Digest,
    size: usize,
) -> (oci::Digest, Vec<u8>) {
    let empty = origin.push_blob(repo, b"{}").await;
    let payload = origin
        .push_blob(repo, br#"{"spdxVersion":"SPDX-2.3"}"#)
        .await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2 },
        "layers": [{ "mediaType": "application/spdx+json", "digest": payload.to_string(), "size": 26 }],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": size },
    }))
    .unwrap();
    let digest = oci::Digest::sha256_of(&manifest);
    origin
        .push_manifest(repo, &digest.to_string(), OCI_MANIFEST, &manifest)
        .await;
    (digest, manifest)
}

#[tokio::test]
async fn referrers_come_from_the_referrers_api() {
    let origin = Origin::start().await;
    let img = origin.seed_image("team/app", "v1", b"layer").await;
    let (sbom, _) = sbom(&origin, "team/app", &img.digest, img.manifest.len()).await;
    let up = client(&origin.url);
    assert_eq!(
        up.referrers(&name("team/app"), &img.digest).await.unwrap(),
        std::slice::from_ref(&sbom)
    );
    // Nothing refers to the SBOM; a repository the upstream lacks has none either.
    assert!(
        up.referrers(&name("team/app"), &sbom)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        up.referrers(&name("team/none"), &img.digest)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn without_the_api_the_tag_schema_is_read() {
    let mut origin = Origin::start().await;
    let img = origin.seed_image("team/app", "v1", b"layer").await;
    let (sbom, manifest) = sbom(&origin, "team/app", &img.digest, img.manifest.len()).await;
    // What a client pushing to registry:2 keeps: an index of the referrers under `sha256-<hex>`.
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": sbom.to_string(), "size": manifest.len(),
                        "artifactType": "application/spdx+json" }],
    });
    origin
        .push_manifest(
            "team/app",
            &format!("sha256-{}", img.digest.hex()),
            OCI_INDEX,
            &serde_json::to_vec(&index).unwrap(),
        )
        .await;
    // The same registry, its referrers API answering 404 as registry:2's does.
    let old = berth_http::router(origin.registry.clone()).layer(axum::middleware::map_request(
        |req: axum::extract::Request| async move {
            if req.uri().path().contains("/referrers/") {
                Err(StatusCode::NOT_FOUND.into_response())
            } else {
                Ok(req)
            }
        },
    ));
    let url = origin.serve(old, ServeSettings::default()).await;
    let up = client(&url);
    assert_eq!(
        up.referrers(&name("team/app"), &img.digest).await.unwrap(),
        std::slice::from_ref(&sbom)
    );
    // No tag of the schema: none.
    assert!(
        up.referrers(&name("team/app"), &sbom)
            .await
            .unwrap()
            .is_empty()
    );
}
