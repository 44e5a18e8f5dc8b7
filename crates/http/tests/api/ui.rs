//! The web interface through the router, beside the API as `berth serve` wires it: what a caller may not
//! pull never appears, what a client pushed is shown as text, every page carries the security headers,
//! and links follow `http.prefix`.

use std::sync::Arc;

use auth::Authority;
use axum::Router;
use berth_http::site::{Prefix, Site};
use berth_http::ui::SignIn;
use oci::Digest;
use registry::Registry;
use serde_json::json;

use crate::auth::{basic, htpasswd_settings};
use crate::harness::{Harness, OCI_MANIFEST, Resp};

/// The API and the interface over `registry`, guarded by the authentication `settings` make, with the
/// sign-in form of `sign_in` if any, mounted at `site` as `serve` does.
pub(crate) fn guarded_app(
    registry: Registry,
    settings: &auth::Settings,
    site: &Site,
    sign_in: Option<SignIn>,
) -> Router {
    let authority = Arc::new(Authority::new(settings).unwrap().unwrap());
    let health = berth_http::health::Health::unchecked;
    let api = berth_http::router_with_auth(registry.clone(), Some(authority.clone())).merge(
        berth_http::ui::router(registry, Some(authority), site, health(), sign_in),
    );
    berth_http::site::mount(api, site, health())
}

/// The API and the interface over `registry`, guarded by the test policy (see `htpasswd_settings`).
fn app(registry: Registry, dir: &std::path::Path, site: &Site) -> Router {
    guarded_app(registry, &htpasswd_settings(dir), site, None)
}

pub(crate) struct Fixture {
    /// The guarded application.
    app: Harness,
    /// An open API over the same registry, to push with.
    pub(crate) open: Harness,
}

pub(crate) async fn fixture(site: Site) -> Fixture {
    let mut open = Harness::new();
    let app = Harness::with_app(registry::Settings::default(), |registry, dir| {
        open.app = berth_http::router(registry.clone());
        let site = site.clone();
        async move { app(registry, &dir, &site) }
    })
    .await;
    Fixture { app, open }
}

pub(crate) const ALICE: &str = "alice:secret";
pub(crate) const BOB: &str = "bob:builder";

impl Fixture {
    pub(crate) async fn page(&self, uri: &str, who: Option<&str>) -> Resp {
        let auth = who.map(|w| {
            let (u, p) = w.split_once(':').unwrap();
            basic(u, p)
        });
        let mut headers = vec![("host", "registry.test:5000")];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let r = self
            .app
            .call(axum::http::Method::GET, uri, &headers, None)
            .await;
        assert_secure(&r, uri);
        r
    }

    /// Pushes an image to `repo` under `tag` whose config carries `label` and `env`, and whose manifest
    /// carries `annotation`; returns the manifest's digest.
    pub(crate) async fn push(
        &self,
        repo: &str,
        tag: &str,
        label: &str,
        annotation: &str,
    ) -> Digest {
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": {
                "Entrypoint": ["/bin/app", "--serve"],
                "Env": [format!("GREETING={label}")],
                "Labels": { "org.example.note": label },
            },
            "rootfs": { "type": "layers", "diff_ids": [] },
        }))
        .unwrap();
        let layer = format!("layer of {repo}").repeat(40);
        let c = self.open.push_blob(repo, &config).await;
        let l = self.open.push_blob(repo, layer.as_bytes()).await;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": c.to_string(), "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                         "digest": l.to_string(), "size": layer.len() }],
            "annotations": { "org.example.description": annotation },
        }))
        .unwrap();
        self.open
            .put_manifest(repo, tag, &manifest)
            .await
            .assert_status(201);
        Digest::sha256_of(&manifest)
    }
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Every answer of the interface, page, error or redirect, forbids script, sniffing and framing.
#[track_caller]
fn assert_secure(r: &Resp, uri: &str) {
    let csp = r.header("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{uri}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
    assert!(!csp.contains("script-src"), "{uri}: {csp}");
    assert_eq!(r.header("x-content-type-options"), "nosniff", "{uri}");
}

#[tokio::test]
async fn a_repository_the_caller_may_not_pull_never_appears() {
    let f = fixture(Site::default()).await;
    let secret = f.push("carol/secret", "v1", "x", "x").await;
    f.push("team-a/app", "v1", "x", "x").await;
    f.push("public/base", "v1", "x", "x").await;

    // Bob pulls team-a/* and public/**, not carol/*.
    for uri in ["/ui/", "/ui/?q=e", "/ui/?q=secret", "/ui/?last=a"] {
        let r = f.page(uri, Some(BOB)).await;
        r.assert_status(200);
        let body = text(&r);
        assert!(!body.contains("carol"), "{uri}: {body}");
        if uri != "/ui/?q=secret" {
            assert!(
                body.contains("team-a/app") && body.contains("public/base"),
                "{uri}: {body}"
            );
        }
    }
    for uri in [
        "/ui/repo/carol/secret".to_string(),
        format!("/ui/image/carol/secret@{secret}"),
    ] {
        let r = f.page(&uri, Some(BOB)).await;
        // As a repository that does not exist: nothing tells the two apart.
        r.assert_status(404);
        assert_eq!(
            text(&r),
            text(&f.page("/ui/repo/carol/nothing", Some(BOB)).await)
        );
    }
    // Alice (admins) sees it.
    assert!(text(&f.page("/ui/", Some(ALICE)).await).contains("carol/secret"));
    f.page(&format!("/ui/image/carol/secret@{secret}"), Some(ALICE))
        .await
        .assert_status(200);

    // Anonymous callers are asked for credentials, as by the API's base; wrong ones are refused.
    for who in [None, Some("bob:wrong")] {
        let r = f.page("/ui/", who).await;
        r.assert_status(401);
        assert!(
            r.header("www-authenticate").starts_with("Basic realm="),
            "{who:?}"
        );
        assert!(!text(&r).contains("public/base"));
    }
    // The sign-in link asks anonymous callers and sends users home.
    f.page("/ui/login", None).await.assert_status(401);
    let r = f.page("/ui/login", Some(BOB)).await;
    r.assert_status(302);
    assert_eq!(r.header("location"), "/ui/");
}

#[tokio::test]
async fn pushed_html_is_shown_as_text() {
    let f = fixture(Site::default()).await;
    let script = "<script>document.title='pwned'</script>";
    let img = "<img src=x onerror=alert(1)>";
    let digest = f.push("team-a/html", "v1", img, script).await;

    let r = f
        .page(&format!("/ui/image/team-a/html@{digest}"), Some(BOB))
        .await;
    r.assert_status(200);
    assert_eq!(r.header("content-type"), "text/html; charset=utf-8");
    let body = text(&r);
    assert!(!body.contains("<script"), "{body}");
    assert!(!body.contains("<img"), "{body}");
    assert!(
        body.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{body}"
    );
    assert!(
        body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{body}"
    );
    assert!(body.contains("GREETING=&lt;img"), "{body}");
    // The page's facts: the entrypoint, a layer's media type, the tag.
    assert!(body.contains("/bin/app --serve"), "{body}");
    assert!(
        body.contains("application/vnd.oci.image.layer.v1.tar+gzip"),
        "{body}"
    );

    let r = f.page("/ui/repo/team-a/html", Some(BOB)).await;
    r.assert_status(200);
    let body = text(&r);
    assert!(
        body.contains("docker pull registry.test:5000/team-a/html:v1"),
        "{body}"
    );
    assert!(
        body.contains(&format!("/ui/image/team-a/html@{digest}")),
        "{body}"
    );
}

#[tokio::test]
async fn referrers_are_listed_by_artifact_type() {
    let f = fixture(Site::default()).await;
    let subject = f.push("team-a/signed", "v1", "x", "x").await;
    let size = f
        .open
        .get(&format!("/v2/team-a/signed/manifests/{subject}"))
        .await
        .body
        .len();
    let empty = f.open.push_blob("team-a/signed", b"{}").await;
    let sig = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2 },
        "layers": [{ "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2 }],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": size },
        "annotations": { "org.example.signer": "<b>ci</b>" },
    }))
    .unwrap();
    let sig_digest = Digest::sha256_of(&sig);
    f.open
        .put_manifest("team-a/signed", &sig_digest.to_string(), &sig)
        .await
        .assert_status(201);
    let body = text(
        &f.page(&format!("/ui/image/team-a/signed@{subject}"), Some(BOB))
            .await,
    );
    assert!(body.contains("application/vnd.example.sig"), "{body}");
    assert!(
        body.contains(&format!("/ui/image/team-a/signed@{sig_digest}")),
        "{body}"
    );
    assert!(body.contains("&lt;b&gt;ci&lt;/b&gt;"), "{body}");
    // The signature's own page links back to its subject.
    let body = text(
        &f.page(&format!("/ui/image/team-a/signed@{sig_digest}"), Some(BOB))
            .await,
    );
    assert!(
        body.contains(&format!("/ui/image/team-a/signed@{subject}")),
        "{body}"
    );
}

#[tokio::test]
async fn an_index_lists_its_platforms() {
    let f = fixture(Site::default()).await;
    let amd = f.push("team-a/multi", "amd64", "x", "x").await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": amd.to_string(), "size": 1,
                        "platform": { "os": "linux", "architecture": "amd64" } }],
    }))
    .unwrap();
    let r = f
        .open
        .call(
            axum::http::Method::PUT,
            "/v2/team-a/multi/manifests/latest",
            &[("content-type", "application/vnd.oci.image.index.v1+json")],
            Some(&index),
        )
        .await;
    r.assert_status(201);
    let body = text(&f.page("/ui/repo/team-a/multi", Some(BOB)).await);
    assert!(body.contains("index: linux/amd64"), "{body}");
    let body = text(
        &f.page(
            &format!("/ui/image/team-a/multi@{}", Digest::sha256_of(&index)),
            Some(BOB),
        )
        .await,
    );
    assert!(
        body.contains("Platforms") && body.contains("linux/amd64"),
        "{body}"
    );
    assert!(
        body.contains(&format!("/ui/image/team-a/multi@{amd}")),
        "{body}"
    );
}

#[tokio::test]
async fn the_list_is_searched_and_paged() {
    let f = fixture(Site::default()).await;
    for i in 0..52 {
        f.push(&format!("public/r{i:02}"), "v1", "x", "x").await;
    }
    let first = text(&f.page("/ui/", Some(BOB)).await);
    assert!(
        first.contains("public/r49") && !first.contains("public/r50"),
        "{first}"
    );
    assert!(first.contains("href=\"/ui/?last=public%2Fr49\""), "{first}");
    let second = text(&f.page("/ui/?last=public%2Fr49", Some(BOB)).await);
    assert!(
        second.contains("public/r51") && !second.contains("public/r49<"),
        "{second}"
    );
    assert!(!second.contains("rel=\"next\""), "{second}");
    let found = text(&f.page("/ui/?q=R3", Some(BOB)).await);
    let rows = found.matches("/ui/repo/public/r3").count();
    assert_eq!(rows, 10, "{found}");
}

#[tokio::test]
async fn pages_follow_the_prefix() {
    let site = Site {
        prefix: Prefix::parse("/registry/").unwrap(),
        ..Site::default()
    };
    let f = fixture(site).await;
    f.push("public/base", "v1", "x", "x").await;
    // The prefix, with or without its slash, as a browser is given the registry's address.
    for home in ["/registry", "/registry/"] {
        let r = f.page(home, Some(BOB)).await;
        r.assert_status(302);
        assert_eq!(r.header("location"), "/registry/ui/", "{home}");
    }
    let body = text(&f.page("/registry/ui/", Some(BOB)).await);
    assert!(
        body.contains("href=\"/registry/ui/repo/public/base\""),
        "{body}"
    );
    assert!(body.contains("href=\"/registry/ui/style.css\""), "{body}");
    f.page("/registry/ui/repo/public/base", Some(BOB))
        .await
        .assert_status(200);
    let css = f.page("/registry/ui/style.css", None).await;
    css.assert_status(200);
    assert!(css.header("content-type").starts_with("text/css"));
    // The API is where it was.
    f.app
        .call(
            axum::http::Method::GET,
            "/registry/v2/public/base/tags/list",
            &[],
            None,
        )
        .await
        .assert_status(200);
}
