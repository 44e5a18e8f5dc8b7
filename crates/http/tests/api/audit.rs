//! The audit log through the router (`berth_http::audit`), wired as `berth serve` wires it: the API and
//! the web interface guarded by the test policy (`auth::htpasswd_settings`: alice does everything, bob
//! pushes `team-a/*`, anyone pulls `public/**`), the handle installed around both. Each test reads the
//! lines back from the file and checks who, what and how it ended.

use std::path::PathBuf;
use std::time::Duration;

use axum::http::Method;
use berth_http::audit::Audit;
use berth_http::site::Site;
use oci::Digest;
use serde_json::Value;
use tempfile::TempDir;

use crate::auth::{basic, htpasswd_settings, key_file, token_settings};
use crate::harness::{Harness, OCI_MANIFEST, Resp};
use crate::ui::guarded_app;

struct Fixture {
    /// The guarded application, audited.
    app: Harness,
    audit: Audit,
    log: PathBuf,
    _dir: TempDir,
}

async fn fixture() -> Fixture {
    fixture_with(htpasswd_settings).await
}

/// The fixture with the authentication `settings` make (given the registry's directory).
async fn fixture_with(settings: fn(&std::path::Path) -> auth::Settings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let audit = Audit::file(&log).unwrap();
    let handle = audit.clone();
    let registry_settings = registry::Settings {
        delete_enabled: true,
        ..registry::Settings::default()
    };
    let app = Harness::with_app(registry_settings, |registry, dir| async move {
        let app = guarded_app(registry, &settings(&dir), &Site::default(), None);
        berth_http::audit::install(app, Some(handle))
    })
    .await;
    Fixture {
        app,
        audit,
        log,
        _dir: dir,
    }
}

const AGENT: &str = "test-client/1.0";

impl Fixture {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        who: Option<&str>,
        body: Option<&[u8]>,
    ) -> Resp {
        self.call_as(method, uri, who.map(credentials).as_deref(), AGENT, body)
            .await
    }

    async fn call_as(
        &self,
        method: Method,
        uri: &str,
        authorization: Option<&str>,
        agent: &str,
        body: Option<&[u8]>,
    ) -> Resp {
        let mut headers = vec![
            ("user-agent", agent),
            ("x-forwarded-for", "192.0.2.7, 10.0.0.1"),
            ("content-type", OCI_MANIFEST),
        ];
        if let Some(a) = authorization {
            headers.push(("authorization", a));
        }
        self.app.call(method, uri, &headers, body).await
    }

    /// Pushes a config and a layer to `repo` as `who` (one POST each) and the manifest under `tag`;
    /// returns the manifest's digest and the layer's.
    async fn push(&self, who: &str, repo: &str, tag: &str) -> (Digest, Digest) {
        let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
        let layer = format!("layer of {repo}").into_bytes();
        let mut digests = Vec::new();
        for data in [&config, &layer] {
            let d = Digest::sha256_of(data);
            self.call(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                Some(who),
                Some(data),
            )
            .await
            .assert_status(201);
            digests.push(d);
        }
        let m = crate::harness::image_manifest(
            (&digests[0], config.len()),
            (&digests[1], layer.len()),
            None,
        );
        self.call(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{tag}"),
            Some(who),
            Some(&m),
        )
        .await
        .assert_status(201);
        (Digest::sha256_of(&m), digests.swap_remove(1))
    }

    /// The web interface's delete form posted by `who` from berth's own page.
    async fn ui_delete(&self, who: &str, uri: &str) -> Resp {
        let auth = credentials(who);
        self.app
            .call(
                Method::POST,
                uri,
                &[
                    ("authorization", auth.as_str()),
                    ("sec-fetch-site", "same-origin"),
                    ("user-agent", AGENT),
                    ("x-forwarded-for", "192.0.2.7"),
                ],
                None,
            )
            .await
    }

    /// Every line written so far, each checked to be one JSON object.
    fn lines(&self) -> Vec<Value> {
        assert!(self.audit.flush(Duration::from_secs(5)));
        let text = std::fs::read_to_string(&self.log).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    }
}

/// `user:password` as a Basic header.
fn credentials(who: &str) -> String {
    let (u, p) = who.split_once(':').unwrap();
    basic(u, p)
}

const ALICE: &str = "alice:secret";
const BOB: &str = "bob:builder";

/// The fields every line has from the request.
#[track_caller]
fn assert_asked_by_the_client(line: &Value, method: &str) {
    assert_eq!(line["addr"], "192.0.2.7", "{line}");
    assert_eq!(line["method"], method, "{line}");
    assert_eq!(line["user_agent"], AGENT, "{line}");
    assert_eq!(line["request_id"].as_str().unwrap().len(), 32, "{line}");
    assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
}

#[tokio::test]
async fn a_push_a_mount_and_deletes_are_recorded_with_the_user_and_nothing_else_is() {
    let f = fixture().await;
    f.call(Method::GET, "/v2/", Some(ALICE), None)
        .await
        .assert_status(200);
    let (manifest, layer) = f.push(ALICE, "team-a/app", "v1").await;
    // Pulls are not recorded.
    f.call(Method::GET, "/v2/team-a/app/manifests/v1", Some(BOB), None)
        .await
        .assert_status(200);
    f.call(
        Method::POST,
        &format!("/v2/team-a/copy/blobs/uploads/?mount={layer}&from=team-a/app"),
        Some(BOB),
        None,
    )
    .await
    .assert_status(201);
    f.call(
        Method::DELETE,
        "/v2/team-a/app/manifests/v1",
        Some(ALICE),
        None,
    )
    .await
    .assert_status(202);
    f.call(
        Method::DELETE,
        &format!("/v2/team-a/app/manifests/{manifest}"),
        Some(ALICE),
        None,
    )
    .await
    .assert_status(202);
    f.call(
        Method::DELETE,
        &format!("/v2/team-a/copy/blobs/{layer}"),
        Some(ALICE),
        None,
    )
    .await
    .assert_status(202);
    // A delete of what is not there fails, and says so.
    f.call(
        Method::DELETE,
        "/v2/team-a/app/manifests/v1",
        Some(ALICE),
        None,
    )
    .await
    .assert_error(404, "MANIFEST_UNKNOWN");

    let lines = f.lines();
    let summary: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap(),
                l["outcome"].as_str().unwrap(),
                l["user"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("login", "ok", "alice"),
            ("push", "ok", "alice"),
            ("mount", "ok", "bob"),
            ("delete", "ok", "alice"),
            ("delete", "ok", "alice"),
            ("delete", "ok", "alice"),
            ("delete", "failed", "alice"),
        ],
        "{lines:#?}"
    );
    let push = &lines[1];
    assert_asked_by_the_client(push, "PUT");
    assert_eq!(push["status"], 201);
    assert_eq!(push["repository"], "team-a/app");
    assert_eq!(push["tag"], "v1");
    assert_eq!(push["digest"], manifest.to_string());
    assert_eq!(push["via"], "api");
    let mount = &lines[2];
    assert_eq!(mount["repository"], "team-a/copy");
    assert_eq!(mount["from"], "team-a/app");
    assert_eq!(mount["digest"], layer.to_string());
    assert_eq!(lines[3]["object"], "tag");
    assert_eq!(lines[3]["tag"], "v1");
    assert_eq!(lines[4]["object"], "manifest");
    assert_eq!(lines[4]["digest"], manifest.to_string());
    assert_eq!(lines[5]["object"], "blob");
    assert_eq!(lines[5]["repository"], "team-a/copy");
    assert_eq!(lines[6]["status"], 404);
    assert_eq!(lines[6]["why"], "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn a_denied_push_and_a_wrong_password_are_recorded_but_not_the_challenge() {
    let f = fixture().await;
    // Every client starts anonymous and is challenged: not a line.
    f.call(Method::GET, "/v2/", None, None)
        .await
        .assert_status(401);
    // bob may push to team-a/*, not to carol/*.
    f.call(
        Method::PUT,
        "/v2/carol/app/manifests/v1",
        Some(BOB),
        Some(b"{}"),
    )
    .await
    .assert_error(403, "DENIED");
    f.call(
        Method::DELETE,
        "/v2/team-a/app/manifests/v1",
        Some(BOB),
        None,
    )
    .await
    .assert_error(403, "DENIED");
    f.call(Method::GET, "/v2/", Some("alice:wrong"), None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    f.call(
        Method::PUT,
        "/v2/team-a/app/manifests/v1",
        Some("mallory:secret"),
        Some(b"{}"),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");

    let lines = f.lines();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let push = &lines[0];
    assert_asked_by_the_client(push, "PUT");
    assert_eq!(push["action"], "push");
    assert_eq!(push["outcome"], "denied");
    assert_eq!(push["status"], 403);
    assert_eq!(push["user"], "bob");
    assert_eq!(push["repository"], "carol/app");
    assert_eq!(push["tag"], "v1");
    assert_eq!(push["why"], "needs repository:carol/app:pull,push");
    let delete = &lines[1];
    assert_eq!(delete["action"], "delete");
    assert_eq!(delete["outcome"], "denied");
    assert_eq!(delete["why"], "needs repository:team-a/app:delete");
    let login = &lines[2];
    assert_asked_by_the_client(login, "GET");
    assert_eq!(login["action"], "login");
    assert_eq!(login["outcome"], "unauthorized");
    assert_eq!(login["status"], 401);
    assert_eq!(login["user"], "alice");
    assert_eq!(login["why"], "wrong password or unknown user");
    assert_eq!(login["repository"], Value::Null);
    let unknown = &lines[3];
    assert_eq!(unknown["action"], "push");
    assert_eq!(unknown["outcome"], "unauthorized");
    assert_eq!(unknown["user"], "mallory");
    assert_eq!(unknown["repository"], "team-a/app");
}

#[tokio::test]
async fn what_a_client_sent_cannot_break_a_line() {
    let f = fixture().await;
    // A Basic user name ends at the first `:`, but may hold anything else: a newline, quotes, braces.
    let evil = "x\"}\n{\"action\" \"login\", \"user\" \"root\"}\r\u{7f}</script>\\";
    // A user agent is a header: no newline in it, but quotes, braces and markup.
    let agent = "agent\"}{\"user\":\"root\"</script>";
    let who = basic(evil, "whatever");
    f.call_as(Method::GET, "/v2/", Some(&who), agent, None)
        .await
        .assert_status(401);
    let lines = f.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["user"], evil);
    assert_eq!(lines[0]["user_agent"], agent);
    assert_eq!(lines[0]["outcome"], "unauthorized");
}

#[tokio::test]
async fn a_delete_and_a_sign_in_through_the_web_interface_name_the_user() {
    let f = fixture().await;
    f.push(ALICE, "team-a/app", "v1").await;
    // bob may push team-a/* but not delete there.
    f.ui_delete(BOB, "/ui/delete/team-a/app:v1")
        .await
        .assert_status(403);
    f.ui_delete(ALICE, "/ui/delete/team-a/app:v1")
        .await
        .assert_status(303);
    // The pages' sign-in link, with credentials: a login through the pages.
    f.app
        .call(
            Method::GET,
            "/ui/login",
            &[
                ("authorization", credentials(BOB).as_str()),
                ("user-agent", AGENT),
            ],
            None,
        )
        .await
        .assert_status(302);
    let lines = f.lines();
    // The push's line, the two deletes, the login.
    assert_eq!(lines.len(), 1 + 2 + 1, "{lines:#?}");
    assert_eq!(lines[3]["action"], "login");
    assert_eq!(lines[3]["outcome"], "ok");
    assert_eq!(lines[3]["user"], "bob");
    assert_eq!(lines[3]["via"], "ui");
    let denied = &lines[1];
    assert_eq!(denied["via"], "ui");
    assert_eq!(denied["action"], "delete");
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["user"], "bob");
    let done = &lines[2];
    assert_asked_by_the_client(done, "POST");
    assert_eq!(done["via"], "ui");
    assert_eq!(done["action"], "delete");
    assert_eq!(done["outcome"], "ok");
    assert_eq!(done["user"], "alice");
    assert_eq!(done["repository"], "team-a/app");
    assert_eq!(done["object"], "tag");
    assert_eq!(done["tag"], "v1");
}

/// A bearer token for `dave` from the test token service, granting `actions` on `repo`.
fn bearer(repo: &str, actions: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "test-issuer", "sub": "dave", "aud": "berth.test", "exp": now + 300, "nbf": now - 5,
        "access": [{"type": "repository", "name": repo, "actions": actions}],
    });
    let pem = std::fs::read(key_file("rsa-key.pem")).unwrap();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap();
    format!("Bearer {token}")
}

#[tokio::test]
async fn a_token_without_the_scope_is_denied_and_a_broken_one_unauthorized() {
    let f = fixture_with(token_settings).await;
    let pull_only = bearer("team/app", &["pull"]);
    f.call_as(
        Method::PUT,
        "/v2/team/app/manifests/v1",
        Some(&pull_only),
        AGENT,
        Some(b"{}"),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    let broken = format!("{}x", bearer("team/app", &["pull", "push"]));
    f.call_as(
        Method::PUT,
        "/v2/team/app/manifests/v1",
        Some(&broken),
        AGENT,
        Some(b"{}"),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");

    let lines = f.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let denied = &lines[0];
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["status"], 401);
    assert_eq!(denied["user"], "dave");
    assert_eq!(denied["action"], "push");
    assert_eq!(denied["why"], "needs repository:team/app:pull,push");
    let broken = &lines[1];
    assert_eq!(broken["outcome"], "unauthorized");
    // A token that does not verify names nobody.
    assert_eq!(broken["user"], Value::Null);
    assert!(
        broken["why"]
            .as_str()
            .unwrap()
            .starts_with("bearer token refused"),
        "{broken}"
    );
}
