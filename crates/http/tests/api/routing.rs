//! The base endpoint, unknown paths, wrong methods, and the names and digests the router refuses.

use axum::http::Method;

use crate::harness::Harness;

const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[tokio::test]
async fn base_answers_200_with_json() {
    let h = Harness::new();
    for uri in ["/v2/", "/v2"] {
        let r = h.get(uri).await;
        r.assert_status(200);
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.json(), serde_json::json!({}));
    }
    h.head("/v2/").await.assert_status(200);
}

#[tokio::test]
async fn unknown_paths_are_404_with_a_spec_body() {
    let h = Harness::new();
    for uri in [
        "/",
        "/v1/",
        "/v3/x",
        "/v2/a",
        "/v2/a/b/c",
        "/v2/a/tags/list/",
        "/v2/a/blobs",
    ] {
        h.get(uri).await.assert_error(404, "UNSUPPORTED");
    }
}

#[tokio::test]
async fn known_paths_refuse_other_methods_with_405() {
    let h = Harness::new();
    let cases = [
        (Method::POST, "/v2/".to_string()),
        (Method::POST, "/v2/a/manifests/latest".to_string()),
        (Method::PATCH, format!("/v2/a/blobs/{EMPTY}")),
        (Method::PUT, format!("/v2/a/blobs/{EMPTY}")),
        (Method::GET, "/v2/a/blobs/uploads/".to_string()),
        (Method::POST, "/v2/a/blobs/uploads/some-id".to_string()),
        (Method::DELETE, "/v2/a/tags/list".to_string()),
        (Method::PUT, "/v2/_catalog".to_string()),
        (Method::POST, format!("/v2/a/referrers/{EMPTY}")),
    ];
    for (method, uri) in cases {
        h.call(method, &uri, &[], None)
            .await
            .assert_error(405, "UNSUPPORTED");
    }
}

#[tokio::test]
async fn bad_names_and_path_tricks_are_name_invalid() {
    let h = Harness::new();
    for uri in [
        "/v2/a%2Fb/manifests/latest",
        "/v2/a%2fb/tags/list",
        "/v2/%2E%2E/manifests/latest",
        "/v2/a/%2e%2e/b/manifests/latest",
        "/v2/../v2/a/manifests/latest",
        "/v2/a/../b/manifests/latest",
        "/v2/a/./b/tags/list",
        "/v2/a//b/tags/list",
        "/v2/Alpine/manifests/latest",
        "/v2/a_-b/manifests/latest",
        "/v2/manifests/latest",
    ] {
        h.get(uri).await.assert_error(400, "NAME_INVALID");
    }
    let long = format!("/v2/{}/tags/list", "a".repeat(256));
    h.get(&long).await.assert_error(400, "NAME_INVALID");
    // Not only reads: a push to such a name is refused before anything is stored.
    h.call(Method::POST, "/v2/a%2F..%2Fb/blobs/uploads/", &[], None)
        .await
        .assert_error(400, "NAME_INVALID");
}

#[tokio::test]
async fn bad_digests_are_digest_invalid() {
    let h = Harness::new();
    for uri in [
        "/v2/a/blobs/sha256:totallywrong",
        "/v2/a/manifests/sha256:totallywrong",
        "/v2/a/referrers/sha256:totallywrong",
        "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e",
        "/v2/a/blobs/sha256%3A..%2F..%2Fetc",
    ] {
        h.get(uri).await.assert_error(400, "DIGEST_INVALID");
    }
    h.call(
        Method::POST,
        "/v2/a/blobs/uploads/?digest=sha256:totallywrong",
        &[],
        Some(b"x"),
    )
    .await
    .assert_error(400, "DIGEST_INVALID");
    h.call(
        Method::POST,
        "/v2/a/blobs/uploads/?mount=sha256:totallywrong&from=b",
        &[],
        None,
    )
    .await
    .assert_error(400, "DIGEST_INVALID");
}

/// A tag that breaks the grammar names no manifest: reading or deleting one is 404 MANIFEST_UNKNOWN (as
/// registry:2 answers, and the OCI conformance suite expects of `.INVALID_MANIFEST_NAME`); pushing one
/// is 400 MANIFEST_INVALID.
#[tokio::test]
async fn bad_tags_name_no_manifest_and_cannot_be_pushed() {
    let h = Harness::new();
    let long = format!("/v2/a/manifests/{}", "t".repeat(129));
    for uri in [
        "/v2/a/manifests/-x",
        "/v2/a/manifests/..",
        "/v2/a/manifests/a%2Fb",
        "/v2/a/manifests/.INVALID_MANIFEST_NAME",
        long.as_str(),
    ] {
        h.get(uri).await.assert_error(404, "MANIFEST_UNKNOWN");
        h.call(Method::HEAD, uri, &[], None)
            .await
            .assert_status(404);
        h.call(
            Method::PUT,
            uri,
            &[("content-type", crate::harness::OCI_MANIFEST)],
            Some(b"{}"),
        )
        .await
        .assert_error(400, "MANIFEST_INVALID");
    }
}

#[tokio::test]
async fn every_response_has_its_own_request_id() {
    let h = Harness::new();
    let a = h.get("/v2/").await;
    let b = h.get("/v2/nope/tags/list").await;
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}

#[tokio::test]
async fn escaped_colon_in_a_digest_is_accepted() {
    let h = Harness::new();
    let d = h.push_blob("a", b"escaped").await;
    let escaped = d.to_string().replace(':', "%3A");
    let r = h.get(&format!("/v2/a/blobs/{escaped}")).await;
    r.assert_status(200);
    assert_eq!(&r.body[..], b"escaped");
}
