//! The audit log on the real binary (`audit.path`, set here by `REGISTRY_AUDIT_PATH`): skopeo pushes as
//! a user without the right, with a wrong password, then as alice, deletes, and logs in; the file holds
//! a line for each, with the user, the repository and skopeo's user agent, and is private to berth's
//! user. With `stderr`, the lines are in the server's log stream, each whole.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::images::{sample_image, write_image_layout};
use crate::harness::{Options, Server, Tools, repo};

/// The audit lines in `path` once `done` holds for them (at most 30 s), each checked to be JSON.
fn lines_when(path: &Path, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        if done(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {what} in the audit log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn find<'a>(lines: &'a [Value], action: &str, outcome: &str, user: &str) -> Option<&'a Value> {
    lines
        .iter()
        .find(|l| l["action"] == action && l["outcome"] == outcome && l["user"] == user)
}

#[test]
fn skopeo_pushes_deletes_and_refusals_are_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, crate::auth::HTPASSWD).unwrap_or_else(|e| panic!("htpasswd: {e}"));
    let config = dir.path().join("config.yml");
    let yaml = format!(
        "version: 0.1\nauth:\n  htpasswd:\n    realm: berth-e2e\n    path: {}\naccess:\n  rules:\n    \
         - repositories: [\"**\"]\n      anonymous: true\n      actions: [pull]\n    \
         - repositories: [\"**\"]\n      users: [alice]\n      actions: [pull, push, delete]\n",
        htpasswd.display()
    );
    std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("config: {e}"));
    let log = dir.path().join("audit.log");
    let server = Server::start_with(Options {
        config: Some(config),
        env: vec![("REGISTRY_AUDIT_PATH".into(), log.display().to_string())],
        ..Options::default()
    });

    let tools = Tools::new();
    let img = sample_image("audit");
    let src = tools.scratch("src");
    write_image_layout(&src, "v1", &img);
    let repo = repo("audit");
    let remote = format!("docker://{}/{repo}:v1", server.host());
    let source = format!("oci:{}:v1", src.display());
    let push = |creds: &str| {
        tools.try_skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            &source,
            &remote,
        ])
    };
    assert!(!push("bob:builder").success, "bob may not push");
    assert!(!push("alice:wrong").success, "a wrong password");
    let pushed = push("alice:secret");
    assert!(pushed.success, "{}", pushed.describe());
    tools.skopeo(&[
        "delete",
        "--tls-verify=false",
        "--creds",
        "alice:secret",
        &remote,
    ]);

    // A copy sends credentials only with the requests that need them; `login` checks them at
    // `GET /v2/`, which is the audit log's login.
    tools.skopeo(&[
        "login",
        "--tls-verify=false",
        "--username",
        "alice",
        "--password",
        "secret",
        &server.host(),
    ]);

    let manifest = img.manifest.digest.as_str();
    let lines = lines_when(&log, "the push, the delete and the login", |l| {
        find(l, "push", "ok", "alice").is_some()
            && find(l, "delete", "ok", "alice").is_some()
            && find(l, "login", "ok", "alice").is_some()
    });
    let pushed = find(&lines, "push", "ok", "alice").unwrap();
    assert_eq!(pushed["repository"], repo.as_str());
    assert_eq!(pushed["tag"], "v1");
    assert_eq!(pushed["digest"], manifest);
    assert_eq!(pushed["method"], "PUT");
    assert!(
        pushed["user_agent"].as_str().unwrap().contains("skopeo"),
        "{pushed}"
    );
    assert!(
        pushed["addr"].as_str().unwrap().starts_with("127.0.0.1"),
        "{pushed}"
    );
    let deleted = find(&lines, "delete", "ok", "alice").unwrap();
    assert_eq!(deleted["repository"], repo.as_str());
    assert_eq!(deleted["object"], "manifest");
    assert_eq!(deleted["digest"], manifest);

    let denied = lines
        .iter()
        .find(|l| l["outcome"] == "denied" && l["user"] == "bob")
        .unwrap_or_else(|| panic!("no refusal of bob in {lines:#?}"));
    assert_eq!(denied["action"], "push");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["repository"], repo.as_str());
    let wrong = lines
        .iter()
        .find(|l| l["outcome"] == "unauthorized" && l["user"] == "alice")
        .unwrap_or_else(|| panic!("no wrong password of alice in {lines:#?}"));
    assert_eq!(wrong["why"], "wrong password or unknown user");
    // Only alice's push wrote a manifest: one push line.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["action"] == "push" && l["outcome"] == "ok")
            .count(),
        1,
        "{lines:#?}"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn with_stderr_the_lines_join_the_log_whole() {
    let server = Server::start_with(Options {
        env: vec![("REGISTRY_AUDIT_PATH".into(), "stderr".into())],
        ..Options::default()
    });
    let img = sample_image("audit-stderr");
    let repo = repo("audit-stderr");
    let r = crate::harness::push_image(&server.api(), &repo, "v1", &img);
    assert_eq!(r.status, 201, "{}", r.describe());
    // Lines of the log's stream that are JSON objects with an action: the audit's, on an open registry
    // (anonymous: user null).
    let deadline = Instant::now() + Duration::from_secs(30);
    let push = loop {
        let text = std::fs::read_to_string(server.log_path()).unwrap_or_default();
        let found = text
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .find(|l| l["action"] == "push");
        if let Some(push) = found {
            break push;
        }
        assert!(
            Instant::now() < deadline,
            "no audit line in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(push["outcome"], "ok");
    assert_eq!(push["user"], Value::Null);
    assert_eq!(push["repository"], repo.as_str());
    assert_eq!(push["tag"], "v1");
    assert_eq!(push["digest"], img.manifest.digest.as_str());
}
