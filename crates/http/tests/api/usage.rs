//! `GET /v2/_berth/usage`: what each repository stores, paged like the catalog, and the quotas on the
//! first page; a quota refusal reaches the client as DENIED with the reason.

use axum::http::Method;
use oci::Pattern;
use registry::quota::Quota;

use crate::harness::Harness;

fn with_quota(bytes: u64) -> Harness {
    Harness::with(registry::Settings {
        quotas: vec![Quota {
            repositories: vec![Pattern::repository("team/**").unwrap()],
            bytes,
        }],
        ..registry::Settings::default()
    })
}

#[tokio::test]
async fn each_repository_and_the_quotas_are_reported() {
    let h = with_quota(1 << 20);
    let layer = vec![5u8; 1000];
    h.push_blob("team/a", &layer).await;
    h.push_blob("team/b", &layer).await;
    let m = h.image("team/b", "b").await;
    h.put_manifest("team/b", "v1", &m).await.assert_status(201);
    h.get("/v2/team/b/manifests/v1").await.assert_status(200);

    let r = h.get("/v2/_berth/usage").await;
    r.assert_status(200);
    assert_eq!(r.header("content-type"), "application/json");
    let body = r.json();
    let repos = body["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 2);
    assert_eq!(repos[0]["name"], "team/a");
    assert_eq!(repos[0]["bytes"], 1000);
    assert_eq!(repos[0]["sharedBytes"], 1000);
    assert_eq!(repos[0]["manifests"], 0);
    assert!(repos[0]["lastPush"].is_null());
    assert_eq!(repos[1]["manifests"], 1);
    assert_eq!(repos[1]["tags"], 1);
    assert!(
        repos[1]["bytes"].as_u64().unwrap() > 1000,
        "the image's blobs too"
    );
    assert!(repos[1]["lastPush"].as_i64().unwrap() > 1_600_000_000);
    let quota = &body["quotas"][0];
    assert_eq!(quota["repositories"], serde_json::json!(["team/**"]));
    assert_eq!(quota["limitBytes"], 1 << 20);
    assert_eq!(
        quota["usedBytes"].as_u64().unwrap(),
        repos[1]["bytes"].as_u64().unwrap(),
        "the shared layer once"
    );

    // Paged: a Link to the rest, and no quotas past the first page.
    let r = h.get("/v2/_berth/usage?n=1").await;
    assert_eq!(
        r.header("link"),
        "</v2/_berth/usage?n=1&last=team/a>; rel=\"next\""
    );
    let rest = h.get("/v2/_berth/usage?n=1&last=team/a").await.json();
    assert_eq!(rest["repositories"][0]["name"], "team/b");
    assert!(rest.get("quotas").is_none());
    h.call(Method::POST, "/v2/_berth/usage", &[], None)
        .await
        .assert_error(405, "UNSUPPORTED");
}

#[tokio::test]
async fn a_push_past_a_quota_is_denied_with_the_reason() {
    let h = with_quota(1500);
    h.push_blob("team/a", &[1u8; 1000]).await;
    let body = [2u8; 1000];
    let digest = oci::Digest::sha256_of(&body);
    let r = h
        .call(
            Method::POST,
            &format!("/v2/team/a/blobs/uploads/?digest={digest}"),
            &[("content-type", "application/octet-stream")],
            Some(&body),
        )
        .await;
    r.assert_error(403, "DENIED");
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("quota") && message.contains("team/**"),
        "{message}"
    );
}
