//! Manifests: push, pull, HEAD, by tag and by digest, the ways a push is refused, and deletes.

use axum::body::Body;
use axum::http::{Method, Request};
use bytes::Bytes;
use oci::Digest;

use crate::harness::{Harness, OCI_MANIFEST, image_manifest};

#[tokio::test]
async fn push_then_pull_by_tag_and_by_digest() {
    let h = Harness::new();
    let m = h.image("lib/app", "v1").await;
    let d = Digest::sha256_of(&m);

    let r = h.put_manifest("lib/app", "v1", &m).await;
    r.assert_status(201);
    assert_eq!(r.header("location"), format!("/v2/lib/app/manifests/{d}"));
    assert_eq!(r.header("docker-content-digest"), d.to_string());
    assert!(!r.has_header("oci-subject"));

    for reference in ["v1".to_string(), d.to_string()] {
        let r = h.get(&format!("/v2/lib/app/manifests/{reference}")).await;
        r.assert_status(200);
        assert_eq!(&r.body[..], &m[..], "stored byte for byte");
        assert_eq!(r.header("content-type"), OCI_MANIFEST);
        assert_eq!(r.header("docker-content-digest"), d.to_string());
        assert_eq!(r.header("content-length"), m.len().to_string());
        assert_eq!(r.header("etag"), format!("\"{d}\""));
    }
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let h = Harness::new();
    let m = h.image("a", "v1").await;
    h.put_manifest("a", "v1", &m).await.assert_status(201);
    let r = h.head("/v2/a/manifests/v1").await;
    r.assert_status(200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), m.len().to_string());
    assert_eq!(r.header("content-type"), OCI_MANIFEST);
    assert_eq!(
        r.header("docker-content-digest"),
        Digest::sha256_of(&m).to_string()
    );
}

#[tokio::test]
async fn push_by_digest_must_match_the_content() {
    let h = Harness::new();
    let m = h.image("a", "v1").await;
    let d = Digest::sha256_of(&m);
    h.put_manifest("a", &d.to_string(), &m)
        .await
        .assert_status(201);
    let wrong = Digest::sha256_of(b"something else");
    h.put_manifest("a", &wrong.to_string(), &m)
        .await
        .assert_error(400, "DIGEST_INVALID");
}

#[tokio::test]
async fn unknown_manifests_are_404() {
    let h = Harness::new();
    h.get("/v2/a/manifests/latest")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    h.head("/v2/a/manifests/latest").await.assert_status(404);
    let d = Digest::sha256_of(b"nothing");
    h.get(&format!("/v2/a/manifests/{d}"))
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn a_manifest_needs_its_blobs_in_the_repository() {
    let h = Harness::new();
    let c = h.push_blob("a", b"{}").await;
    let missing = Digest::sha256_of(b"layer never pushed");
    let m = image_manifest((&c, 2), (&missing, 18), None);
    h.put_manifest("a", "v1", &m)
        .await
        .assert_error(400, "MANIFEST_BLOB_UNKNOWN");
    // Blobs of another repository do not count.
    let m = h.image("other", "x").await;
    h.put_manifest("a", "v1", &m)
        .await
        .assert_error(400, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn invalid_manifests_are_manifest_invalid() {
    let h = Harness::new();
    let schema1 = serde_json::json!({
        "schemaVersion": 1,
        "name": "a",
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [],
        "history": [],
    })
    .to_string();
    let bodies: &[&[u8]] = &[
        b"not json at all",
        b"{\"schemaVersion\": 2,",
        b"[1, 2, 3]",
        b"{\"schemaVersion\": 3, \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\"}",
        schema1.as_bytes(),
    ];
    for body in bodies {
        h.put_manifest("a", "v1", body)
            .await
            .assert_error(400, "MANIFEST_INVALID");
    }
    // Schema1 announced by its media type.
    h.call(
        Method::PUT,
        "/v2/a/manifests/v1",
        &[(
            "content-type",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        )],
        Some(schema1.as_bytes()),
    )
    .await
    .assert_error(400, "MANIFEST_INVALID");
}

#[tokio::test]
async fn content_type_parameters_are_ignored() {
    let h = Harness::new();
    let m = h.image("a", "v1").await;
    h.call(
        Method::PUT,
        "/v2/a/manifests/v1",
        &[(
            "content-type",
            "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
        )],
        Some(&m),
    )
    .await
    .assert_status(201);
    assert_eq!(
        h.get("/v2/a/manifests/v1").await.header("content-type"),
        OCI_MANIFEST
    );
}

#[tokio::test]
async fn oversized_manifests_are_413_declared_or_streamed() {
    const LIMIT: usize = 1024;
    let h = Harness::with(registry::Settings {
        max_manifest_bytes: LIMIT,
        ..registry::Settings::default()
    });
    // A manifest within the limit goes in, and a body of exactly the limit is read (and judged as JSON).
    let m = h.image("a", "v1").await;
    assert!(m.len() <= LIMIT);
    h.put_manifest("a", "v1", &m).await.assert_status(201);
    h.put_manifest("a", "v2", &[b' '; LIMIT])
        .await
        .assert_error(400, "MANIFEST_INVALID");

    // One byte over, declared.
    h.put_manifest("a", "v2", &[b' '; LIMIT + 1])
        .await
        .assert_error(413, "MANIFEST_INVALID");

    // No Content-Length: the limit holds while reading.
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..1000)
        .map(|_| Ok(Bytes::from_static(b"0123456789")))
        .collect();
    let req = Request::put("/v2/a/manifests/v2")
        .header("content-type", OCI_MANIFEST)
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    h.send(req).await.assert_error(413, "MANIFEST_INVALID");
    h.get("/v2/a/manifests/v2")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn a_truncated_manifest_body_is_400() {
    let h = Harness::new();
    let m = h.image("a", "v1").await;
    let len = (m.len() + 10).to_string();
    h.call(
        Method::PUT,
        "/v2/a/manifests/v1",
        &[("content-type", OCI_MANIFEST), ("content-length", &len)],
        Some(&m),
    )
    .await
    .assert_error(400, "SIZE_INVALID");
    h.get("/v2/a/manifests/v1")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn a_manifest_with_a_subject_is_answered_with_oci_subject() {
    let h = Harness::new();
    let base = h.image("a", "base").await;
    h.put_manifest("a", "base", &base).await.assert_status(201);
    let subject = Digest::sha256_of(&base);

    let c = h.push_blob("a", b"{}").await;
    let l = h.push_blob("a", b"signature").await;
    let sig = image_manifest((&c, 2), (&l, 9), Some((&subject, base.len())));
    let r = h
        .put_manifest("a", &Digest::sha256_of(&sig).to_string(), &sig)
        .await;
    r.assert_status(201);
    assert_eq!(r.header("oci-subject"), subject.to_string());
}

#[tokio::test]
async fn deletes_are_refused_when_disabled() {
    let h = Harness::new();
    let m = h.image("a", "v1").await;
    h.put_manifest("a", "v1", &m).await.assert_status(201);
    let d = Digest::sha256_of(&m);
    h.delete(&format!("/v2/a/manifests/{d}"))
        .await
        .assert_error(405, "UNSUPPORTED");
    h.delete("/v2/a/manifests/v1")
        .await
        .assert_error(405, "UNSUPPORTED");
    h.get("/v2/a/manifests/v1").await.assert_status(200);
}

#[tokio::test]
async fn deleting_a_tag_keeps_the_manifest_and_deleting_the_digest_removes_both() {
    let h = Harness::with_deletes();
    let m = h.image("a", "v1").await;
    let d = Digest::sha256_of(&m);
    h.put_manifest("a", "v1", &m).await.assert_status(201);
    h.put_manifest("a", "v2", &m).await.assert_status(201);

    h.delete("/v2/a/manifests/v1").await.assert_status(202);
    h.get("/v2/a/manifests/v1")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    h.get(&format!("/v2/a/manifests/{d}"))
        .await
        .assert_status(200);

    h.delete(&format!("/v2/a/manifests/{d}"))
        .await
        .assert_status(202);
    h.get(&format!("/v2/a/manifests/{d}"))
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    h.get("/v2/a/manifests/v2")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    h.delete(&format!("/v2/a/manifests/{d}"))
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn the_method_decides_put_versus_get() {
    // A PUT without a body is an empty manifest, which is invalid, not a read.
    let h = Harness::new();
    h.call(Method::PUT, "/v2/a/manifests/v1", &[], None)
        .await
        .assert_error(400, "MANIFEST_INVALID");
}
