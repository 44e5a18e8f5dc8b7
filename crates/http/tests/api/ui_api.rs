//! `/api/v1/`: the interface's figures as JSON, with the pages' authorization: what a caller may not
//! pull is NAME_UNKNOWN, the registry's own figures are for those who may pull everything, refusals are
//! the distribution API's error bodies, and pushed strings come back as the same strings.

use berth_http::site::Site;
use serde_json::Value;

use crate::harness::Resp;
use crate::ui::{ALICE, BOB, Fixture, fixture};

impl Fixture {
    /// `GET uri` as `who`, expected to answer `status` with a JSON body.
    async fn api(&self, uri: &str, who: Option<&str>, status: u16) -> Value {
        let r = self.page(uri, who).await;
        r.assert_status(status);
        assert_eq!(r.header("content-type"), "application/json", "{uri}");
        r.json()
    }
}

fn error_code(v: &Value) -> &str {
    v["errors"][0]["code"].as_str().unwrap_or_default()
}

/// An RFC 3339 UTC time, as every time of the API is written.
fn is_time(v: &Value) -> bool {
    v.as_str().is_some_and(|t| {
        t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T' && t.starts_with("20")
    })
}

#[tokio::test]
async fn the_api_shows_a_caller_what_the_pages_show_them() {
    let f = fixture(Site::default()).await;
    let secret = f.push("carol/secret", "v1", "x", "x").await;
    let script = "<script>alert(\"1\")</script>\n";
    let digest = f.push("team-a/app", "v1", script, script).await;
    f.push("public/base", "v1", "x", "x").await;

    let list = f.api("/api/v1/repositories", Some(BOB), 200).await;
    let names: Vec<&str> = list["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["public/base", "team-a/app"], "{list}");
    let app = &list["repositories"][1];
    assert_eq!(
        (app["tags"].as_u64(), app["manifests"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(app["bytes"].as_u64().unwrap() > 0, "{app}");
    assert!(is_time(&app["last_push"]), "{app}");
    assert!(
        app["last_pull"].is_null(),
        "a page view is not a pull: {app}"
    );
    assert!(list["next"].is_null());

    let tags = f
        .api("/api/v1/repositories/team-a/app/tags", Some(BOB), 200)
        .await;
    assert_eq!(tags["count"], 1);
    let v1 = &tags["tags"][0];
    assert_eq!(v1["tag"], "v1");
    assert_eq!(v1["digest"], digest.to_string());
    assert_eq!(v1["kind"], "image");
    assert_eq!(
        v1["bytes"], app["bytes"],
        "one image: the repository's bytes"
    );

    let m = f
        .api(
            &format!("/api/v1/repositories/team-a/app/manifests/{digest}"),
            Some(BOB),
            200,
        )
        .await;
    assert_eq!(m["tags"], serde_json::json!(["v1"]));
    assert_eq!(m["index"], false);
    assert_eq!(m["layers"].as_array().map(Vec::len), Some(1), "{m}");
    // What the client pushed comes back as the very string it pushed: JSON-escaped, not mangled.
    assert_eq!(m["config"]["labels"]["org.example.note"], script, "{m}");
    assert_eq!(m["annotations"]["org.example.description"], script, "{m}");
    assert_eq!(
        m["config"]["entrypoint"],
        serde_json::json!(["/bin/app", "--serve"])
    );

    // carol's repository does not exist for bob, whatever he asks of it.
    for uri in [
        "/api/v1/repositories/carol/secret/tags".to_string(),
        format!("/api/v1/repositories/carol/secret/manifests/{secret}"),
        "/api/v1/repositories/carol/nothing/tags".to_string(),
    ] {
        let e = f.api(&uri, Some(BOB), 404).await;
        assert_eq!(error_code(&e), "NAME_UNKNOWN", "{uri}: {e}");
    }
    let searched = f.api("/api/v1/repositories?q=secret", Some(BOB), 200).await;
    assert_eq!(searched["repositories"], serde_json::json!([]));
    // Alice (admins) sees it.
    f.api(
        &format!("/api/v1/repositories/carol/secret/manifests/{secret}"),
        Some(ALICE),
        200,
    )
    .await;

    // Anonymous callers are challenged as by the API; wrong credentials are refused.
    for who in [None, Some("bob:wrong")] {
        let r: Resp = f.page("/api/v1/repositories", who).await;
        r.assert_status(401);
        assert!(r.header("www-authenticate").starts_with("Basic realm="));
        assert_eq!(error_code(&r.json()), "UNAUTHORIZED");
    }
    // A path that names no endpoint.
    for uri in [
        "/api/v1/nothing",
        "/api/v1/repositories/team-a/app",
        "/api/v1/repositories/team-a/app/manifests/sha256:00",
        "/api/v1/repositories/team-a%2Fapp/tags",
    ] {
        let e = f.api(uri, Some(BOB), 404).await;
        assert_eq!(error_code(&e), "UNSUPPORTED", "{uri}: {e}");
    }
}

#[tokio::test]
async fn lists_are_paged_by_next_links() {
    let f = fixture(Site::default()).await;
    for i in 0..52 {
        f.push(&format!("public/r{i:02}"), "v1", "x", "x").await;
    }
    let first = f.api("/api/v1/repositories", Some(BOB), 200).await;
    assert_eq!(first["repositories"].as_array().map(Vec::len), Some(50));
    let next = first["next"].as_str().unwrap();
    assert_eq!(next, "/api/v1/repositories?last=public%2Fr49");
    let second = f.api(next, Some(BOB), 200).await;
    let names: Vec<&str> = second["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["public/r50", "public/r51"]);
    assert!(second["next"].is_null());
    let found = f.api("/api/v1/repositories?q=R3", Some(BOB), 200).await;
    assert_eq!(found["repositories"].as_array().map(Vec::len), Some(10));
}

#[tokio::test]
async fn the_registry_figures_are_for_those_who_pull_everything() {
    let f = fixture(Site::default()).await;
    f.push("team-a/app", "v1", "x", "x").await;
    f.push("public/base", "v1", "x", "x").await;
    let loose = b"a blob no manifest references";
    f.open.push_blob("team-a/app", loose).await;

    let r = f.api("/api/v1/registry", Some(ALICE), 200).await;
    let s = &r["storage"];
    assert_eq!(s["repositories"], 2, "{r}");
    assert_eq!(
        (s["manifests"].as_u64(), s["tags"].as_u64()),
        (Some(2), Some(2))
    );
    // One config (both images have the same), two layers, and the loose blob.
    assert_eq!(s["blobs"], 4, "{r}");
    assert_eq!(s["unreferenced_blobs"], 1, "{r}");
    assert_eq!(s["unreferenced_bytes"], loose.len(), "{r}");
    assert!(s["bytes"].as_u64().unwrap() > loose.len() as u64);
    assert_eq!(r["healthy"], true);
    assert_eq!(r["gc"]["runs"], 0);
    assert!(r["gc"]["last_run"].is_null());
    assert_eq!(r["retention"]["runs"], 0);
    assert_eq!(r["replication"]["passes"], 0);
    assert!(r["cache"].is_null(), "no cache configured: {r}");

    let page = f.page("/ui/registry", Some(ALICE)).await;
    page.assert_status(200);
    let body = String::from_utf8_lossy(&page.body);
    assert!(body.contains("29 B in 1 blobs"), "{body}");

    // Bob pulls only some repositories: the totals would tell him of others.
    let e = f.api("/api/v1/registry", Some(BOB), 403).await;
    assert_eq!(error_code(&e), "DENIED");
    f.page("/ui/registry", Some(BOB)).await.assert_status(403);
    let r = f.page("/api/v1/registry", None).await;
    r.assert_status(401);
    assert_eq!(error_code(&r.json()), "UNAUTHORIZED");
}
