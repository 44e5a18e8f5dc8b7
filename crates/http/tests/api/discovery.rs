//! Tag lists, the catalog, and referrers.

use axum::http::Method;
use oci::Digest;

use crate::harness::{Harness, image_manifest};

/// Pushes one image to `repo` under each of `tags`.
async fn tagged(h: &Harness, repo: &str, tags: &[&str]) {
    let m = h.image(repo, repo).await;
    for tag in tags {
        h.put_manifest(repo, tag, &m).await.assert_status(201);
    }
}

#[tokio::test]
async fn tags_are_listed_in_order() {
    let h = Harness::new();
    tagged(&h, "lib/app", &["v2", "latest", "v1"]).await;
    let r = h.get("/v2/lib/app/tags/list").await;
    r.assert_status(200);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(
        r.json(),
        serde_json::json!({ "name": "lib/app", "tags": ["latest", "v1", "v2"] })
    );
    assert!(!r.has_header("link"));
}

#[tokio::test]
async fn tags_paginate_with_n_last_and_link() {
    let h = Harness::new();
    tagged(&h, "a", &["t1", "t2", "t3", "t4", "t5"]).await;

    let r = h.get("/v2/a/tags/list?n=2").await;
    r.assert_status(200);
    assert_eq!(r.json()["tags"], serde_json::json!(["t1", "t2"]));
    assert_eq!(
        r.header("link"),
        "</v2/a/tags/list?n=2&last=t2>; rel=\"next\""
    );

    // Follow the links to the end.
    let mut seen = vec!["t1".to_string(), "t2".to_string()];
    let mut link = r.header("link").to_string();
    loop {
        let url = link
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .map(|(u, _)| u.to_string())
            .unwrap();
        let r = h.get(&url).await;
        r.assert_status(200);
        for t in r.json()["tags"].as_array().unwrap() {
            seen.push(t.as_str().unwrap().to_string());
        }
        match r.headers.get("link") {
            Some(l) => link = l.to_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ["t1", "t2", "t3", "t4", "t5"]);

    // n=0: an empty list and no link.
    let r = h.get("/v2/a/tags/list?n=0").await;
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    assert!(!r.has_header("link"));

    // last alone.
    let r = h.get("/v2/a/tags/list?last=t3").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["t4", "t5"]));
}

#[tokio::test]
async fn bad_n_is_400() {
    let h = Harness::new();
    tagged(&h, "a", &["t1"]).await;
    for q in ["n=-1", "n=abc", "n=1.5", "n="] {
        h.get(&format!("/v2/a/tags/list?{q}"))
            .await
            .assert_error(400, "SIZE_INVALID");
        h.get(&format!("/v2/_catalog?{q}"))
            .await
            .assert_error(400, "SIZE_INVALID");
    }
}

#[tokio::test]
async fn tags_of_an_unknown_repository_are_404() {
    let h = Harness::new();
    h.get("/v2/nobody/tags/list")
        .await
        .assert_error(404, "NAME_UNKNOWN");
}

#[tokio::test]
async fn the_catalog_lists_and_paginates_repositories() {
    let h = Harness::new();
    let r = h.get("/v2/_catalog").await;
    r.assert_status(200);
    assert_eq!(r.json(), serde_json::json!({ "repositories": [] }));

    for repo in ["b", "a/x", "c", "a"] {
        tagged(&h, repo, &["v1"]).await;
    }
    let r = h.get("/v2/_catalog").await;
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["a", "a/x", "b", "c"])
    );
    assert!(!r.has_header("link"));

    let r = h.get("/v2/_catalog?n=3").await;
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["a", "a/x", "b"])
    );
    assert_eq!(r.header("link"), "</v2/_catalog?n=3&last=b>; rel=\"next\"");
    let r = h.get("/v2/_catalog?n=3&last=b").await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["c"]));
    assert!(!r.has_header("link"));
}

/// Pushes a base image to `a`, and two artifacts referring to it; returns the base's digest and the
/// artifacts' digests.
async fn with_referrers(h: &Harness) -> (Digest, Vec<Digest>) {
    let base = h.image("a", "base").await;
    h.put_manifest("a", "base", &base).await.assert_status(201);
    let subject = Digest::sha256_of(&base);
    let c = h.push_blob("a", b"{}").await;
    let mut digests = vec![];
    for payload in [&b"sig one"[..], b"sig two"] {
        let l = h.push_blob("a", payload).await;
        let m = image_manifest((&c, 2), (&l, payload.len()), Some((&subject, base.len())));
        let d = Digest::sha256_of(&m);
        h.put_manifest("a", &d.to_string(), &m)
            .await
            .assert_status(201);
        digests.push(d);
    }
    digests.sort();
    (subject, digests)
}

#[tokio::test]
async fn referrers_are_an_oci_index() {
    let h = Harness::new();
    let (subject, digests) = with_referrers(&h).await;
    let r = h.get(&format!("/v2/a/referrers/{subject}")).await;
    r.assert_status(200);
    assert_eq!(
        r.header("content-type"),
        "application/vnd.oci.image.index.v1+json"
    );
    assert!(!r.has_header("oci-filters-applied"));
    let index = r.json();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    let mut got: Vec<String> = manifests
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(
        got,
        digests.iter().map(|d| d.to_string()).collect::<Vec<_>>()
    );
    for m in manifests {
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert!(m["size"].as_u64().is_some_and(|s| s > 0));
        assert_eq!(m["artifactType"], "application/vnd.example.signature");
        assert_eq!(m["annotations"]["org.example.signed-by"], "tests");
    }
}

#[tokio::test]
async fn referrers_filter_by_artifact_type() {
    let h = Harness::new();
    let (subject, digests) = with_referrers(&h).await;
    let r = h
        .get(&format!(
            "/v2/a/referrers/{subject}?artifactType=application%2Fvnd.example.signature"
        ))
        .await;
    r.assert_status(200);
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    assert_eq!(
        r.json()["manifests"].as_array().unwrap().len(),
        digests.len()
    );

    let r = h
        .get(&format!(
            "/v2/a/referrers/{subject}?artifactType=application/vnd.example.sbom"
        ))
        .await;
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
}

#[tokio::test]
async fn referrers_of_an_unknown_subject_are_an_empty_index() {
    let h = Harness::new();
    let r = h
        .get(&format!(
            "/v2/a/referrers/{}",
            Digest::sha256_of(b"nothing")
        ))
        .await;
    r.assert_status(200);
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    h.call(Method::GET, "/v2/a/referrers/v1", &[], None)
        .await
        .assert_error(400, "DIGEST_INVALID");
}
