//! Deleting from the interface without a browser, to send what a browser would not: a POST from another
//! site or from a script, a user who may pull but not delete, a registry with deletes off. (The browser
//! test in `ui.rs` clicks through the real form.)

use crate::harness::http::Api;
use crate::harness::{Options, Server};

use super::push;

const ALICE: (&str, &str) = ("authorization", "Basic YWxpY2U6c2VjcmV0"); // alice:secret
const BOB: (&str, &str) = ("authorization", "Basic Ym9iOmJ1aWxkZXI="); // bob:builder
const SAME_ORIGIN: (&str, &str) = ("sec-fetch-site", "same-origin");

/// POSTs the delete form of `target` (`name:tag` or `name@digest`) with `headers`: status and
/// `Location`.
fn post(api: &Api, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let r = api
        .request("POST", &format!("/ui/delete/{target}"), headers, Some(b""))
        .unwrap();
    let location = r
        .headers
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (r.status, location)
}

fn page(api: &Api, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let r = api.get(path, headers).unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn a_delete_is_done_only_by_a_post_from_berths_own_page() {
    let server = Server::start();
    let api = server.api();
    let digest = push(&api, "e2e/ui/d", "v1", "x", "x");
    push(&api, "e2e/ui/d", "v2", "y", "y");
    let origin = server.base_url();
    let host = origin.trim_start_matches("http://").to_string();

    let (status, body) = page(&api, "/ui/delete/e2e/ui/d:v1", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#"method="post" action="/ui/delete/e2e/ui/d:v1""#),
        "{body}"
    );
    let (_, repo_page) = page(&api, "/ui/repo/e2e/ui/d", &[]);
    assert!(repo_page.contains(r#"href="/ui/delete/e2e/ui/d:v2""#));

    let foreign: [&[(&str, &str)]; 4] = [
        &[],
        &[("origin", "http://evil.example")],
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://evil.example"),
        ],
        &[("origin", "null")],
    ];
    for headers in foreign {
        assert_eq!(post(&api, "e2e/ui/d:v1", headers).0, 403, "{headers:?}");
        assert_eq!(api.get_manifest("e2e/ui/d", "v1").unwrap().status, 200);
    }

    // A tag, from the page's own form as a browser with Fetch Metadata sends it.
    let (status, location) = post(&api, "e2e/ui/d:v1", &[SAME_ORIGIN]);
    assert_eq!(
        (status, location.as_str()),
        (303, "/ui/repo/e2e/ui/d?deleted=v1")
    );
    assert_eq!(api.get_manifest("e2e/ui/d", "v1").unwrap().status, 404);
    assert_eq!(api.get_manifest("e2e/ui/d", &digest).unwrap().status, 200);
    let (_, after) = page(&api, &location, &[]);
    assert!(after.contains("Deleted"), "{after}");
    // A deleted note that is not a tag or digest is not shown.
    let (_, forged) = page(&api, "/ui/repo/e2e/ui/d?deleted=call+555-0100", &[]);
    assert!(!forged.contains("555"), "{forged}");

    // A manifest by digest, from a browser that sends only `Origin`.
    let origin_header = ("origin", origin.as_str());
    let (status, _) = post(
        &api,
        &format!("e2e/ui/d@{digest}"),
        &[origin_header, ("host", host.as_str())],
    );
    assert_eq!(status, 303);
    assert_eq!(api.get_manifest("e2e/ui/d", &digest).unwrap().status, 404);
    // Gone: the confirmation page of what is not there is a 404.
    assert_eq!(page(&api, "/ui/delete/e2e/ui/d:v1", &[]).0, 404);
}

#[test]
fn only_those_who_may_delete_are_offered_it_or_can() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    // alice:secret, bob:builder.
    std::fs::write(&htpasswd, crate::auth::HTPASSWD).unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "auth:\n  htpasswd:\n    realm: berth-e2e\n    path: {}\naccess:\n  rules:\n    \
             - repositories: [\"**\"]\n      anonymous: true\n      actions: [pull, push]\n    \
             - repositories: [\"**\"]\n      users: [bob]\n      actions: [pull]\n    \
             - repositories: [\"**\"]\n      users: [alice]\n      actions: [pull, push, delete]\n",
            htpasswd.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let api = server.api();
    push(&api, "e2e/ui/guarded", "v1", "x", "x");

    let (status, bobs) = page(&api, "/ui/repo/e2e/ui/guarded", &[BOB]);
    assert_eq!(status, 200, "{bobs}");
    assert!(!bobs.contains("/ui/delete/"), "bob is offered a delete");
    assert_eq!(page(&api, "/ui/delete/e2e/ui/guarded:v1", &[BOB]).0, 403);
    assert_eq!(post(&api, "e2e/ui/guarded:v1", &[BOB, SAME_ORIGIN]).0, 403);
    // Anonymous callers may pull and push here, not delete: they are asked to sign in.
    assert_eq!(post(&api, "e2e/ui/guarded:v1", &[SAME_ORIGIN]).0, 401);
    assert_eq!(
        api.get_manifest("e2e/ui/guarded", "v1").unwrap().status,
        200
    );

    let (_, alices) = page(&api, "/ui/repo/e2e/ui/guarded", &[ALICE]);
    assert!(alices.contains(r#"href="/ui/delete/e2e/ui/guarded:v1""#));
    assert_eq!(
        post(&api, "e2e/ui/guarded:v1", &[ALICE, SAME_ORIGIN]).0,
        303
    );
    assert_eq!(
        api.get_manifest("e2e/ui/guarded", "v1").unwrap().status,
        404
    );
}

#[test]
fn with_deletes_off_nothing_is_offered_and_a_post_is_refused() {
    let server = Server::start_with(Options {
        delete_enabled: false,
        ..Options::default()
    });
    let api = server.api();
    push(&api, "e2e/ui/kept", "v1", "x", "x");
    let (_, repo_page) = page(&api, "/ui/repo/e2e/ui/kept", &[]);
    assert!(!repo_page.contains("/ui/delete/"));
    assert_eq!(page(&api, "/ui/delete/e2e/ui/kept:v1", &[]).0, 405);
    assert_eq!(post(&api, "e2e/ui/kept:v1", &[SAME_ORIGIN]).0, 405);
    assert_eq!(api.get_manifest("e2e/ui/kept", "v1").unwrap().status, 200);
}
