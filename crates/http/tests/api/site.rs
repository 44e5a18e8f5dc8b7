//! How the API looks from outside: `http.prefix` (routes under the prefix, nothing outside it),
//! `http.host` (absolute `Location` and `Link` URLs), `http.headers` (on every response, errors and probes
//! included).

use axum::http::Method;
use berth_http::health::Health;
use berth_http::site::{BaseUrl, ExtraHeaders, Prefix, Site, mount};
use oci::Digest;
use registry::Registry;

use crate::harness::{Harness, Resp};

/// A registry with deletes enabled, mounted per `site`, with unchecked health probes.
pub async fn mounted(site: Site) -> Harness {
    let config = registry::Settings {
        delete_enabled: true,
        ..registry::Settings::default()
    };
    Harness::with_app(config, |reg: Registry, _| async move {
        mount(berth_http::router(reg), &site, Health::unchecked())
    })
    .await
}

fn prefix(p: &str) -> Prefix {
    Prefix::parse(p).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> ExtraHeaders {
    let mut h = ExtraHeaders::default();
    for (n, v) in pairs {
        h.add(n, v).unwrap();
    }
    h
}

fn all(r: &Resp, name: &str) -> Vec<String> {
    r.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Pushes a blob in a session under `base` (`/v2` or `/<prefix>/v2`), following the Locations the
/// registry returns, as a client does. Returns the final Location.
async fn push_in_session(h: &Harness, base: &str, repo: &str, data: &[u8]) -> (Digest, Vec<Resp>) {
    let digest = Digest::sha256_of(data);
    let start = h
        .call(
            Method::POST,
            &format!("{base}/{repo}/blobs/uploads/"),
            &[],
            None,
        )
        .await;
    start.assert_status(202);
    let patch = h
        .call(Method::PATCH, start.header("location"), &[], Some(data))
        .await;
    patch.assert_status(202);
    let finish = h
        .call(
            Method::PUT,
            &format!("{}?digest={digest}", patch.header("location")),
            &[],
            None,
        )
        .await;
    finish.assert_status(201);
    (digest, vec![start, patch, finish])
}

#[tokio::test]
async fn extra_headers_are_on_every_response() {
    let h = mounted(Site {
        headers: headers(&[
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("X-Frame-Options", "SAMEORIGIN"),
        ]),
        ..Site::default()
    })
    .await;
    let (digest, session) = push_in_session(&h, "/v2", "a/b", b"bytes").await;
    let mut responses = session;
    responses.push(h.get("/v2/").await);
    responses.push(h.get(&format!("/v2/a/b/blobs/{digest}")).await);
    responses.push(h.get("/v2/unknown/tags/list").await); // 404 NAME_UNKNOWN
    responses.push(h.get("/not/the/api").await); // 404 outside /v2/
    responses.push(h.call(Method::PUT, "/v2/", &[], None).await); // 405
    responses.push(h.get("/healthz").await);
    responses.push(h.get("/readyz").await);
    for r in &responses {
        assert_eq!(
            all(r, "x-content-type-options"),
            ["nosniff"],
            "{}",
            r.status
        );
        assert_eq!(
            all(r, "x-frame-options"),
            ["DENY", "SAMEORIGIN"],
            "{}",
            r.status
        );
    }
}

#[tokio::test]
async fn the_api_lives_under_the_prefix_only() {
    let h = mounted(Site {
        prefix: prefix("/mirror/"),
        ..Site::default()
    })
    .await;
    let base = h.get("/mirror/v2/").await;
    base.assert_status(200);
    assert_eq!(base.body.as_ref(), b"{}");
    // Outside the prefix, including the plain /v2/: the spec's 404.
    h.get("/v2/").await.assert_error(404, "UNSUPPORTED");
    h.get("/v2/a/tags/list")
        .await
        .assert_error(404, "UNSUPPORTED");
    h.get("/mirrorv2/").await.assert_error(404, "UNSUPPORTED");
    h.get("/other/v2/").await.assert_error(404, "UNSUPPORTED");
    // Inside the prefix but no endpoint.
    h.get("/mirror/nothing")
        .await
        .assert_error(404, "UNSUPPORTED");

    // A whole push through the Locations handed out, which carry the prefix.
    let (digest, session) = push_in_session(&h, "/mirror/v2", "team/app", b"layer").await;
    for r in &session {
        assert!(
            r.header("location")
                .starts_with("/mirror/v2/team/app/blobs/"),
            "{}",
            r.header("location")
        );
    }
    assert_eq!(
        session[2].header("location"),
        format!("/mirror/v2/team/app/blobs/{digest}")
    );
    let blob = h.get(&format!("/mirror/v2/team/app/blobs/{digest}")).await;
    blob.assert_status(200);
    assert_eq!(blob.body.as_ref(), b"layer");
    // The probes stay at the root.
    h.get("/healthz").await.assert_status(200);
    h.get("/mirror/healthz")
        .await
        .assert_error(404, "UNSUPPORTED");
}

#[tokio::test]
async fn host_makes_locations_and_links_absolute() {
    let (url, _) = BaseUrl::parse("https://registry.example.com").unwrap();
    let h = mounted(Site {
        prefix: prefix("/r"),
        base_url: Some(url),
        ..Site::default()
    })
    .await;
    let (digest, session) = push_in_session(&h, "/r/v2", "app", b"config").await;
    assert!(
        session[0]
            .header("location")
            .starts_with("https://registry.example.com/r/v2/app/blobs/uploads/"),
        "{}",
        session[0].header("location")
    );
    // The absolute Location is what a client follows next; the harness sends its path.
    assert_eq!(
        session[2].header("location"),
        format!("https://registry.example.com/r/v2/app/blobs/{digest}")
    );

    let layer = h.get(&format!("/r/v2/app/blobs/{digest}")).await;
    layer.assert_status(200);
    let manifest = crate::harness::image_manifest((&digest, 6), (&digest, 6), None);
    for tag in ["one", "two"] {
        let put = h
            .call(
                Method::PUT,
                &format!("/r/v2/app/manifests/{tag}"),
                &[("content-type", crate::harness::OCI_MANIFEST)],
                Some(&manifest),
            )
            .await;
        put.assert_status(201);
        assert_eq!(
            put.header("location"),
            format!(
                "https://registry.example.com/r/v2/app/manifests/{}",
                Digest::sha256_of(&manifest)
            )
        );
    }
    let page = h.get("/r/v2/app/tags/list?n=1").await;
    page.assert_status(200);
    assert_eq!(
        page.header("link"),
        "<https://registry.example.com/r/v2/app/tags/list?n=1&last=one>; rel=\"next\""
    );
}

/// Without a prefix or host, URLs stay relative, as the spec allows and registry:2 does with
/// `relativeurls`.
#[tokio::test]
async fn by_default_locations_stay_relative() {
    let h = mounted(Site::default()).await;
    let (_, session) = push_in_session(&h, "/v2", "app", b"x").await;
    assert!(
        session[0]
            .header("location")
            .starts_with("/v2/app/blobs/uploads/")
    );
}

/// The mounted app still refuses what the plain router refuses: the mount changes where, not what.
#[tokio::test]
async fn mounting_keeps_the_api_behaviour() {
    let plain = Harness::new();
    let h = mounted(Site {
        prefix: prefix("/p/"),
        ..Site::default()
    })
    .await;
    for (method, path) in [
        (Method::GET, "/v2/a/manifests/latest"),
        (Method::GET, "/v2/A/tags/list"),
        (Method::DELETE, "/v2/"),
        (Method::GET, "/v2/a/blobs/sha256:zz"),
    ] {
        let want = plain.call(method.clone(), path, &[], None).await;
        let got = h.call(method, &format!("/p{path}"), &[], None).await;
        assert_eq!(
            (got.status, got.code()),
            (want.status, want.code()),
            "{path}"
        );
    }
}
