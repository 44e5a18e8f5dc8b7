//! The web interface's sign-in with `auth.token` through the router, wired as `berth serve` wires it,
//! with a token service of the test's own (in process, RS256 with the auth crate's test key): alice gets
//! every scope she asks for, bob pull only and only under `team-b/`, carol signs in but is given no
//! refresh token. What is checked: the form and its refusals, the sealed cookie and what it lets a
//! browser see and do, that a page costs at most one token request, the audit lines, signing out, and a
//! second replica with the same secret taking the cookie (one with another secret not).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth::{IssueError, Issued, Scope, TokenService};
use axum::Router;
use axum::http::Method;
use berth_http::audit::Audit;
use berth_http::site::Site;
use berth_http::ui::SignIn;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use registry::Registry;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::auth::{key_file, token_settings};
use crate::harness::{Harness, Resp};
use crate::ui::guarded_app;

/// The token service.
#[derive(Default)]
struct Service {
    /// Refresh tokens issued: token -> user.
    refresh: Mutex<HashMap<String, String>>,
    /// Refresh exchanges answered.
    exchanges: AtomicUsize,
    /// The scopes of the last exchange.
    last_scopes: Mutex<Vec<String>>,
}

impl Service {
    fn token(user: &str, scopes: &[Scope]) -> String {
        let access: Vec<Value> = scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Repository { name, actions } => {
                    let granted: Vec<&str> = actions
                        .iter()
                        .map(|a| a.as_str())
                        .filter(|a| {
                            user == "alice" || (*a == "pull" && name.starts_with("team-b/"))
                        })
                        .collect();
                    Some(json!({"type": "repository", "name": name, "actions": granted}))
                }
                Scope::Catalog => (user == "alice")
                    .then(|| json!({"type": "registry", "name": "catalog", "actions": ["*"]})),
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({
            "iss": "test-issuer", "sub": user, "aud": "berth.test",
            "exp": now + 300, "nbf": now - 5, "access": access,
        });
        let pem = std::fs::read(key_file("rsa-key.pem")).unwrap();
        encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(&pem).unwrap(),
        )
        .unwrap()
    }
}

#[async_trait::async_trait]
impl TokenService for Service {
    async fn sign_in(&self, user: &str, password: &str) -> Result<Issued, IssueError> {
        let known = [
            ("alice", "secret"),
            ("bob", "builder"),
            ("carol", "carol-pw"),
        ];
        if !known.contains(&(user, password)) {
            return Err(IssueError::Refused);
        }
        let refresh_token = (user != "carol").then(|| {
            let t = format!("refresh-{}", uuid::Uuid::new_v4());
            self.refresh
                .lock()
                .unwrap()
                .insert(t.clone(), user.to_string());
            t
        });
        Ok(Issued {
            token: Service::token(user, &[]),
            refresh_token,
        })
    }

    async fn refresh(&self, refresh_token: &str, scopes: &[Scope]) -> Result<Issued, IssueError> {
        let user = self.refresh.lock().unwrap().get(refresh_token).cloned();
        let user = user.ok_or(IssueError::Refused)?;
        self.exchanges.fetch_add(1, Ordering::SeqCst);
        *self.last_scopes.lock().unwrap() = scopes.iter().map(Scope::to_string).collect();
        Ok(Issued {
            token: Service::token(&user, scopes),
            refresh_token: None,
        })
    }
}

struct Fixture {
    app: Harness,
    /// An open API over the same registry, to push with.
    open: Harness,
    service: Arc<Service>,
    audit: Audit,
    log: PathBuf,
    _dir: TempDir,
}

/// The API and the interface with token auth and the sign-in, audited, as `serve` mounts them.
fn app(registry: Registry, dir: &std::path::Path, service: Arc<Service>, secret: &[u8]) -> Router {
    let sign_in = SignIn {
        service,
        secret: Some(secret.to_vec()),
        secure: false,
    };
    guarded_app(
        registry,
        &token_settings(dir),
        &Site::default(),
        Some(sign_in),
    )
}

async fn fixture(secret: &'static [u8]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let audit = Audit::file(&log).unwrap();
    let handle = audit.clone();
    let service = Arc::new(Service::default());
    let mut open = Harness::new();
    let settings = registry::Settings {
        delete_enabled: true,
        ..registry::Settings::default()
    };
    let shared = service.clone();
    let app = Harness::with_app(settings, |registry, dir| {
        open.app = berth_http::router(registry.clone());
        async move { berth_http::audit::install(app(registry, &dir, shared, secret), Some(handle)) }
    })
    .await;
    Fixture {
        app,
        open,
        service,
        audit,
        log,
        _dir: dir,
    }
}

/// What a browser sends: berth's own host, and its Fetch Metadata on posts.
const HOST: (&str, &str) = ("host", "registry.test:5000");
const SAME_ORIGIN: (&str, &str) = ("sec-fetch-site", "same-origin");

impl Fixture {
    async fn sign_in(&self, user: &str, password: &str) -> Resp {
        let body = format!("username={user}&password={password}");
        self.app
            .call(
                Method::POST,
                "/ui/login",
                &[
                    HOST,
                    SAME_ORIGIN,
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                Some(body.as_bytes()),
            )
            .await
    }

    /// Signs in and returns the cookie (`name=value`).
    async fn cookie(&self, user: &str, password: &str) -> String {
        let r = self.sign_in(user, password).await;
        assert_eq!(r.status, 303, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("location"), "/ui/");
        let set = r.header("set-cookie").to_string();
        set.split(';').next().unwrap().to_string()
    }

    async fn page(&self, method: Method, uri: &str, cookie: &str) -> Resp {
        self.app
            .call(method, uri, &[HOST, SAME_ORIGIN, ("cookie", cookie)], None)
            .await
    }

    async fn push(&self, repo: &str, tag: &str) {
        let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}";
        let layer = format!("layer of {repo}").into_bytes();
        let c = self.open.push_blob(repo, config).await;
        let l = self.open.push_blob(repo, &layer).await;
        let m = crate::harness::image_manifest((&c, config.len()), (&l, layer.len()), None);
        self.open
            .put_manifest(repo, tag, &m)
            .await
            .assert_status(201);
    }

    fn lines(&self) -> Vec<Value> {
        assert!(self.audit.flush(Duration::from_secs(5)));
        let text = std::fs::read_to_string(&self.log).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[tokio::test]
async fn the_form_signs_in_through_the_token_service_and_refuses_wrong_passwords() {
    let f = fixture(b"the replicas' secret").await;
    let form = f.app.call(Method::GET, "/ui/login", &[HOST], None).await;
    form.assert_status(200);
    let html = text(&form);
    assert!(
        html.contains(r#"<form class="signin" method="post" action="/ui/login">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<label for="username">"#) && html.contains(r#"<label for="password">"#)
    );
    assert!(html.contains(r#"type="password""#), "{html}");

    let wrong = f.sign_in("alice", "wrong").await;
    assert_eq!(wrong.status, 401);
    assert!(text(&wrong).contains("Wrong user name or password"));
    assert!(!wrong.has_header("set-cookie"));

    // Only from berth's own page (the delete form's rule).
    let foreign = f
        .app
        .call(
            Method::POST,
            "/ui/login",
            &[HOST, ("origin", "https://evil.example")],
            Some(b"username=alice&password=secret"),
        )
        .await;
    assert_eq!(foreign.status, 403);
    assert!(!foreign.has_header("set-cookie"));

    let r = f.sign_in("alice", "secret").await;
    assert_eq!(r.status, 303);
    let set = r.header("set-cookie");
    assert!(set.starts_with("berth_session="), "{set}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/;", "Max-Age=28800"] {
        assert!(set.contains(attribute), "{attribute}: {set}");
    }
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    // Nothing readable: neither the user, the password, nor the refresh token.
    let refresh = f
        .service
        .refresh
        .lock()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    for secret in ["alice", "secret", refresh.as_str()] {
        assert!(!set.contains(secret), "{secret} in {set}");
    }

    // A service that gives no refresh token: no session (berth could not ask for a page's rights).
    let carol = f.sign_in("carol", "carol-pw").await;
    assert_eq!(carol.status, 502);
    assert!(text(&carol).contains("no refresh token"));
    assert!(!carol.has_header("set-cookie"));

    let logins: Vec<(Value, Value, Value)> = f
        .lines()
        .into_iter()
        .filter(|l| l["action"] == "login")
        .map(|l| (l["user"].clone(), l["outcome"].clone(), l["via"].clone()))
        .collect();
    assert_eq!(
        logins,
        [
            (json!("alice"), json!("unauthorized"), json!("ui")),
            (json!("alice"), json!("ok"), json!("ui")),
            (json!("carol"), json!("failed"), json!("ui")),
        ]
    );
}

#[tokio::test]
async fn a_session_sees_and_deletes_exactly_what_the_token_service_grants() {
    let f = fixture(b"the replicas' secret").await;
    f.push("team-a/app", "v1").await;
    f.push("team-a/app", "v2").await;
    f.push("team-b/lib", "v1").await;
    let alice = f.cookie("alice", "secret").await;
    let bob = f.cookie("bob", "builder").await;

    // Without a session, token auth's anonymous callers see nothing here.
    assert_eq!(
        f.app.call(Method::GET, "/ui/", &[HOST], None).await.status,
        401
    );

    let list = text(&f.page(Method::GET, "/ui/", &alice).await);
    assert!(
        list.contains("team-a/app") && list.contains("team-b/lib"),
        "{list}"
    );
    assert!(list.contains("Sign out"), "{list}");
    // One token request for the whole page, naming every repository it may show.
    assert_eq!(f.service.exchanges.load(Ordering::SeqCst), 1);
    assert_eq!(
        *f.service.last_scopes.lock().unwrap(),
        [
            "repository:team-a/app:pull,delete",
            "repository:team-b/lib:pull,delete"
        ]
    );
    // The rights are remembered a while: the repository's page asks nothing more.
    let repo = text(&f.page(Method::GET, "/ui/repo/team-a/app", &alice).await);
    assert!(repo.contains("/ui/delete/team-a/app:v1"), "{repo}");
    assert_eq!(f.service.exchanges.load(Ordering::SeqCst), 1);

    let list = text(&f.page(Method::GET, "/ui/", &bob).await);
    assert!(list.contains("team-b/lib"), "{list}");
    assert!(!list.contains("team-a"), "{list}");
    let search = text(&f.page(Method::GET, "/ui/?q=app", &bob).await);
    assert!(!search.contains("team-a"), "{search}");
    assert_eq!(
        f.page(Method::GET, "/ui/repo/team-a/app", &bob)
            .await
            .status,
        404
    );
    let api = f.page(Method::GET, "/api/v1/repositories", &bob).await;
    api.assert_status(200);
    assert_eq!(
        api.json()["repositories"].as_array().unwrap().len(),
        1,
        "{}",
        text(&api)
    );
    // Bob may pull team-b/lib but not delete there: no delete link, and a posted delete is refused.
    let lib = text(&f.page(Method::GET, "/ui/repo/team-b/lib", &bob).await);
    assert!(lib.contains("v1") && !lib.contains("/ui/delete/"), "{lib}");
    assert_eq!(
        f.page(Method::POST, "/ui/delete/team-b/lib:v1", &bob)
            .await
            .status,
        403
    );
    assert_eq!(
        f.page(Method::POST, "/ui/delete/team-a/app:v1", &bob)
            .await
            .status,
        404
    );
    // The registry's figures need the catalog scope, which only alice is granted.
    assert_eq!(f.page(Method::GET, "/ui/registry", &bob).await.status, 403);
    f.page(Method::GET, "/ui/registry", &alice)
        .await
        .assert_status(200);

    // Alice deletes a tag.
    let deleted = f
        .page(Method::POST, "/ui/delete/team-a/app:v1", &alice)
        .await;
    assert_eq!(deleted.status, 303, "{}", text(&deleted));
    f.open
        .get("/v2/team-a/app/manifests/v1")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");

    // A changed cookie is no session; signing out clears it.
    let (name, value) = alice.split_once('=').unwrap();
    let mut changed: Vec<char> = value.chars().collect();
    changed[20] = if changed[20] == 'A' { 'B' } else { 'A' };
    let changed = format!("{name}={}", changed.into_iter().collect::<String>());
    assert_eq!(f.page(Method::GET, "/ui/", &changed).await.status, 401);
    let out = f.page(Method::GET, "/ui/logout", &alice).await;
    assert_eq!(out.status, 303);
    assert!(
        out.header("set-cookie")
            .starts_with("berth_session=; Max-Age=0")
    );
    // And forgets the session's rights: a copy of the cookie kept from before asks the token service
    // again (which may have stopped honouring it) instead of seeing what was remembered.
    let before = f.service.exchanges.load(Ordering::SeqCst);
    assert_eq!(f.page(Method::GET, "/ui/", &alice).await.status, 200);
    assert_eq!(f.service.exchanges.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn a_replica_with_the_same_secret_takes_the_session_and_one_with_another_does_not() {
    let f = fixture(b"the replicas' secret").await;
    f.push("team-b/lib", "v1").await;
    let bob = f.cookie("bob", "builder").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for (secret, status) in [
        (&b"the replicas' secret"[..], 200),
        (b"another secret", 401),
    ] {
        // The other replica shares the token service (its refresh tokens), not the process.
        let replica = {
            let service = f.service.clone();
            Harness::with_app(registry::Settings::default(), |registry, _| async move {
                app(registry, dir, service, secret)
            })
            .await
        };
        let r = replica
            .call(Method::GET, "/ui/", &[HOST, ("cookie", bob.as_str())], None)
            .await;
        assert_eq!(r.status, status, "{}", text(&r));
    }
}
