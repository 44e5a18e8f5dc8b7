//! registry:3's `proxy.exec`: the upstream's credentials from a Docker credential helper, for the token
//! service and for a Basic challenge, asked about the host they go to, and used instead of
//! `username`/`password` when both are set.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use berth_upstream::{CredentialHelper, Credentials, HttpUpstream};
use registry::proxy::{Upstream, UpstreamError};

use crate::auth::{alice_and_bob, basic_upstream, gated};
use crate::harness::*;

/// A credential helper in `dir` answering `user`/`secret`, noting each run's input in `dir/asked`.
fn helper(dir: &Path, user: &str, secret: &str) -> CredentialHelper {
    let path = dir.join("docker-credential-test");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread host\necho \"$host\" >> {}\n\
         echo '{{\"ServerURL\":\"x\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}'\n",
        dir.join("asked").display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    CredentialHelper {
        command: path.display().to_string(),
        lifetime: Some(Duration::from_secs(3600)),
    }
}

fn asked(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("asked"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn with_helper(url: &str, helper: CredentialHelper, static_too: bool) -> HttpUpstream {
    let mut s = settings(url);
    s.credential_helper = Some(helper);
    if static_too {
        s.credentials = Some(Credentials {
            username: "bob".into(),
            password: "not-bobs-password".into(),
        });
    }
    HttpUpstream::new(&s).unwrap()
}

#[tokio::test]
async fn the_helpers_credentials_go_to_the_token_service() {
    let (origin, tokens, proxy) = gated(alice_and_bob()).await;
    origin.seed_image("team/app", "v1", b"layer").await;
    let dir = tempfile::tempdir().unwrap();
    // username/password are set too, and wrong: the helper wins, as in registry:3.
    let up = with_helper(&proxy.url(), helper(dir.path(), "alice", "secret"), true);
    let head = up.manifest_head(&name("team/app"), &tag("v1")).await;
    assert!(head.unwrap().is_some());
    assert_eq!(tokens.log()[0].user.as_deref(), Some("alice"));
    // Asked once, about the token service's host (the realm's, 127.0.0.1 here), and reused within its
    // lifetime.
    assert!(tokens.realm().starts_with("http://127.0.0.1:"));
    up.manifest_head(&name("team/app"), &tag("v1"))
        .await
        .unwrap();
    assert_eq!(asked(dir.path()), ["127.0.0.1"]);

    let wrong = tempfile::tempdir().unwrap();
    let up = with_helper(&proxy.url(), helper(wrong.path(), "alice", "nope"), false);
    match up.manifest_head(&name("team/app"), &tag("v1")).await {
        Err(UpstreamError::Denied(msg)) => assert!(msg.contains("configured credentials"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_helpers_credentials_answer_a_basic_challenge() {
    let (origin, proxy, _htpasswd) = basic_upstream().await;
    let image = origin.seed_image("team/app", "v1", b"layer").await;
    let dir = tempfile::tempdir().unwrap();
    let up = with_helper(&proxy.url(), helper(dir.path(), "alice", "secret"), false);
    let got = up
        .manifest_get(&name("team/app"), &tag("v1"), 4 << 20)
        .await
        .unwrap();
    assert_eq!(got.unwrap().digest, image.digest);
    assert_eq!(asked(dir.path()), ["127.0.0.1"]);
}

/// A helper that fails gives no credentials: the upstream is asked anonymously, as in registry:3.
#[tokio::test]
async fn a_failing_helper_means_anonymous() {
    let (origin, proxy, _htpasswd) = basic_upstream().await;
    origin.seed_image("team/app", "v1", b"layer").await;
    let up = with_helper(
        &proxy.url(),
        CredentialHelper {
            command: "/nonexistent/docker-credential-nothing".into(),
            lifetime: None,
        },
        true,
    );
    match up.manifest_head(&name("team/app"), &tag("v1")).await {
        Err(UpstreamError::Denied(msg)) => assert!(msg.contains("requires credentials"), "{msg}"),
        other => panic!("{other:?}"),
    }
}
