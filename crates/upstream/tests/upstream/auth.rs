//! Authentication to the upstream: the bearer-token dance (anonymous and with credentials, both token
//! fields, tokens cached per scope and fetched again once expired), Basic against a berth with htpasswd,
//! refusals as `Denied`, and no secret in any log line, error or `Debug`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth::{Authority, HtpasswdSettings};
use berth_http::ServeSettings;
use berth_upstream::testkit::{
    FaultProxy, Kind, TokenField, TokenRequest, TokenServer, TokenServerConfig,
};
use berth_upstream::{Credentials, HttpUpstream};
use registry::proxy::{Upstream, UpstreamError};

use crate::harness::*;

/// A berth behind a proxy that demands tokens from `tokens`.
pub(crate) async fn gated(config: TokenServerConfig) -> (Origin, TokenServer, FaultProxy) {
    let origin = Origin::start().await;
    let tokens = TokenServer::start(config).await.unwrap();
    let proxy = FaultProxy::start(&origin.url).await.unwrap();
    proxy.require_bearer(&tokens);
    (origin, tokens, proxy)
}

fn with_credentials(url: &str, user: &str, password: &str) -> HttpUpstream {
    let mut s = settings(url);
    s.credentials = Some(Credentials {
        username: user.into(),
        password: password.into(),
    });
    HttpUpstream::new(&s).unwrap()
}

pub(crate) fn alice_and_bob() -> TokenServerConfig {
    TokenServerConfig {
        users: vec![
            ("alice".into(), "secret".into()),
            ("bob".into(), "builder".into()),
        ],
        anonymous: false,
        ..TokenServerConfig::default()
    }
}

#[tokio::test]
async fn the_anonymous_token_dance_caches_tokens_per_scope() {
    let (origin, tokens, proxy) = gated(TokenServerConfig::default()).await;
    let image = origin.seed_image("lib/app", "v1", b"layer").await;
    origin.seed_image("lib/other", "v1", b"other layer").await;
    let up = client(&proxy.url());
    let repo = name("lib/app");

    let got = up.manifest_get(&repo, &tag("v1"), 4 << 20).await.unwrap();
    assert_eq!(got.unwrap().digest, image.digest);
    assert_eq!(tokens.requests(), 1);
    assert_eq!(
        tokens.log()[0],
        TokenRequest {
            user: None,
            service: Some("berth.test".into()),
            scopes: vec!["repository:lib/app:pull".into()],
        }
    );
    assert_eq!(
        proxy.count("GET", Kind::Manifest),
        2,
        "a 401, then the retry"
    );

    // The same scope again: the cached token goes along at once.
    up.manifest_head(&repo, &tag("v1")).await.unwrap().unwrap();
    let blob = up.blob_get(&repo, &image.layer).await.unwrap().unwrap();
    drain(blob.body).await.unwrap();
    assert_eq!(tokens.requests(), 1);
    assert_eq!(proxy.count("HEAD", Kind::Manifest), 1);
    assert_eq!(proxy.count("GET", Kind::Blob), 1);
    assert_eq!(proxy.authorized(Kind::Blob), 1);

    // Another repository is another scope.
    up.manifest_head(&name("lib/other"), &tag("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tokens.requests(), 2);
    assert_eq!(tokens.log()[1].scopes, ["repository:lib/other:pull"]);
}

#[tokio::test]
async fn concurrent_requests_of_one_scope_fetch_one_token() {
    let (origin, tokens, proxy) = gated(TokenServerConfig::default()).await;
    let image = origin.seed_image("lib/app", "v1", b"layer").await;
    let up = client(&proxy.url());
    let (repo, v1) = (name("lib/app"), tag("v1"));
    // A cold cache: eight requests meet the 401 at once.
    let heads = (0..8).map(|_| up.manifest_head(&repo, &v1));
    for head in futures_util::future::join_all(heads).await {
        assert_eq!(head.unwrap().unwrap().digest, image.digest);
    }
    assert_eq!(
        proxy.count("HEAD", Kind::Manifest),
        16,
        "each: a 401 and a retry"
    );
    assert_eq!(
        tokens.requests(),
        1,
        "the others waited for the first one's token"
    );
}

#[tokio::test]
async fn credentials_go_to_the_token_service() {
    let (origin, tokens, proxy) = gated(alice_and_bob()).await;
    origin.seed_image("team/app", "v1", b"layer").await;
    let repo = name("team/app");

    let alice = with_credentials(&proxy.url(), "alice", "secret");
    assert!(
        alice
            .manifest_head(&repo, &tag("v1"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(tokens.log()[0].user.as_deref(), Some("alice"));
    assert_eq!(tokens.issued(), 1);

    let wrong = with_credentials(&proxy.url(), "alice", "not-the-password");
    match wrong.manifest_head(&repo, &tag("v1")).await {
        Err(UpstreamError::Denied(msg)) => assert!(msg.contains("credentials"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let anonymous = client(&proxy.url());
    match anonymous.manifest_head(&repo, &tag("v1")).await {
        Err(UpstreamError::Denied(msg)) => assert!(msg.contains("anonymous"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(tokens.refused(), 2);
    assert_eq!(tokens.issued(), 1);
}

#[tokio::test]
async fn an_access_token_without_expiry_is_used_and_reused() {
    let (origin, tokens, proxy) = gated(TokenServerConfig {
        field: TokenField::AccessToken,
        expires_in: None,
        ..TokenServerConfig::default()
    })
    .await;
    origin.seed_image("lib/app", "v1", b"layer").await;
    let up = client(&proxy.url());
    let repo = name("lib/app");
    for _ in 0..3 {
        assert!(up.manifest_head(&repo, &tag("v1")).await.unwrap().is_some());
    }
    // Without `expires_in` a token lasts 60 s: one fetch serves all three.
    assert_eq!(tokens.requests(), 1);
    assert_eq!(proxy.count("HEAD", Kind::Manifest), 4);
}

#[tokio::test]
async fn an_expired_token_is_fetched_again() {
    // The gate would still take the expired token: only the client's own bookkeeping refetches it.
    let (origin, tokens, proxy) = gated(TokenServerConfig {
        expires_in: Some(1),
        gate_checks_expiry: false,
        ..TokenServerConfig::default()
    })
    .await;
    origin.seed_image("lib/app", "v1", b"layer").await;
    let up = client(&proxy.url());
    let repo = name("lib/app");
    assert!(up.manifest_head(&repo, &tag("v1")).await.unwrap().is_some());
    assert_eq!(tokens.requests(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(up.manifest_head(&repo, &tag("v1")).await.unwrap().is_some());
    assert_eq!(tokens.requests(), 2);
    // Known expired, the old token was not tried: each call is a 401 and a retry.
    assert_eq!(proxy.count("HEAD", Kind::Manifest), 4);
}

// alice:secret (bcrypt, as in berth-http's tests).
pub(crate) const HTPASSWD: &str =
    "alice:$2y$05$NHXi441vNlrHIergnkVaCOtieAaKJwCHnk6qQA.uPSpkVQkXtjd1C\n";

/// A berth that wants Basic credentials (htpasswd), behind a counting proxy.
pub(crate) async fn basic_upstream() -> (Origin, FaultProxy, tempfile::TempDir) {
    let mut origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, HTPASSWD).unwrap();
    let settings = auth::Settings {
        htpasswd: Some(HtpasswdSettings {
            realm: "berth upstream test".into(),
            path,
        }),
        ..auth::Settings::default()
    };
    let authority = Authority::new(&settings).unwrap().unwrap();
    let router = berth_http::router_with_auth(origin.registry.clone(), Some(Arc::new(authority)));
    let url = origin.serve(router, ServeSettings::default()).await;
    let proxy = FaultProxy::start(&url).await.unwrap();
    (origin, proxy, dir)
}

#[tokio::test]
async fn basic_credentials_answer_a_basic_challenge() {
    let (origin, proxy, _dir) = basic_upstream().await;
    let image = origin.seed_image("team/app", "v1", b"layer").await;
    let repo = name("team/app");

    let alice = with_credentials(&proxy.url(), "alice", "secret");
    let got = alice
        .manifest_get(&repo, &tag("v1"), 4 << 20)
        .await
        .unwrap();
    assert_eq!(got.unwrap().digest, image.digest);
    assert_eq!(proxy.count("GET", Kind::Manifest), 2, "a 401, then Basic");
    // Once asked for, Basic goes along with every request.
    let blob = alice.blob_get(&repo, &image.layer).await.unwrap().unwrap();
    drain(blob.body).await.unwrap();
    assert_eq!(proxy.count("GET", Kind::Blob), 1);
    assert_eq!(proxy.authorized(Kind::Blob), 1);

    let wrong = with_credentials(&proxy.url(), "alice", "wrong");
    assert!(matches!(
        wrong.manifest_head(&repo, &tag("v1")).await,
        Err(UpstreamError::Denied(_))
    ));
    match client(&proxy.url()).manifest_head(&repo, &tag("v1")).await {
        Err(UpstreamError::Denied(msg)) => assert!(msg.contains("requires credentials"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

/// Every line logged on this thread while the guard lives.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_an_error_or_debug() {
    let capture = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    // The test runtime is single-threaded, so every task of the dance logs through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let (origin, tokens, proxy) = gated(alice_and_bob()).await;
    let image = origin.seed_image("team/app", "v1", b"layer").await;
    let alice = with_credentials(&proxy.url(), "alice", "secret");
    let repo = name("team/app");
    alice
        .manifest_get(&repo, &tag("v1"), 4 << 20)
        .await
        .unwrap();
    let blob = alice.blob_get(&repo, &image.layer).await.unwrap().unwrap();
    drain(blob.body).await.unwrap();
    let wrong = with_credentials(&proxy.url(), "bob", "hunter2-wrong");
    let err = wrong.manifest_head(&repo, &tag("v1")).await.unwrap_err();
    assert_eq!(tokens.issued(), 1);

    let mut seen = capture.0.lock().unwrap().clone();
    seen.extend_from_slice(format!("{err} {err:?} {alice:?} {wrong:?}").as_bytes());
    let seen = String::from_utf8_lossy(&seen);
    // The passwords, their Basic encodings, and any token the server issued.
    for secret in [
        "secret",
        "hunter2-wrong",
        "YWxpY2U6c2VjcmV0",
        "Ym9iOmh1bnRlcjItd3Jvbmc=",
        "berth-test-token-",
    ] {
        assert!(!seen.contains(secret), "{secret} leaked into: {seen}");
    }
}
