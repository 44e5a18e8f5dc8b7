//! berth with `auth.htpasswd` and an `access` policy, driven by real clients: skopeo with `--creds`,
//! podman with `login`, and curl for what the clients do not show (the challenge, the status codes, the
//! server log). The policy is the common mirror set-up: anyone pulls, alice pushes; bob is a valid user
//! without push rights.

use std::path::Path;

use crate::harness::clients::version;
use crate::harness::images::{sample_image, write_image_layout};
use crate::harness::{Options, Server, Tools, repo, sha256};

pub(crate) mod token;

// alice:secret, bob:builder (bcrypt, made with the bcrypt crate).
pub(crate) const HTPASSWD: &str = "\
alice:$2y$05$NHXi441vNlrHIergnkVaCOtieAaKJwCHnk6qQA.uPSpkVQkXtjd1C
bob:$2y$04$XgDFieE2q.frxR1xK5HPDeLI3XzP43L0.hVuHDIUqZhDOzsk5QggK
";

/// A server with htpasswd auth and the policy above; the returned directory holds its files.
pub(crate) fn guarded_server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, HTPASSWD).unwrap_or_else(|e| panic!("htpasswd: {e}"));
    let config = dir.path().join("config.yml");
    let yaml = format!(
        r#"version: 0.1
auth:
  htpasswd:
    realm: berth-e2e
    path: {}
access:
  rules:
    - repositories: ["**"]
      anonymous: true
      actions: [pull]
    - repositories: ["**"]
      users: [alice]
      actions: [pull, push, delete]
"#,
        htpasswd.display()
    );
    std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("config: {e}"));
    let server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    (server, dir)
}

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

fn refused(out: &crate::harness::clients::Output, why: &[&str]) {
    assert!(!out.success, "should have failed: {}", out.describe());
    let text = out.stderr.to_lowercase();
    assert!(
        why.iter().any(|w| text.contains(w)),
        "expected one of {why:?} in: {}",
        out.describe()
    );
}

#[test]
fn skopeo_pushes_with_credentials_and_pulls_anonymously() {
    eprintln!("{}", version("skopeo"));
    let (server, _files) = guarded_server();
    let tools = Tools::new();
    let img = sample_image("auth-skopeo");
    let src = tools.scratch("src");
    write_image_layout(&src, "v1", &img);
    let repo = repo("auth-skopeo");
    let remote = format!("docker://{}/{repo}:v1", server.host());
    let push = |creds: Option<&str>| {
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        if let Some(c) = creds {
            args.extend(["--dest-creds", c]);
        }
        let source = oci(&src, "v1");
        args.extend([source.as_str(), remote.as_str()]);
        tools.try_skopeo(&args)
    };

    // Without credentials, with a wrong password, as an unknown user: unauthorized.
    let unauthorized = ["unauthorized", "authentication required", "401"];
    refused(&push(None), &unauthorized);
    refused(&push(Some("alice:wrong")), &unauthorized);
    refused(&push(Some("mallory:secret")), &unauthorized);
    // bob is a valid user without push rights: denied.
    refused(&push(Some("bob:builder")), &["denied", "403"]);
    let api = server.api();
    let r = api.get_manifest(&repo, "v1").unwrap();
    assert_eq!(r.status, 404, "nothing was stored by the refused pushes");

    let pushed = push(Some("alice:secret"));
    assert!(pushed.success, "{}", pushed.describe());
    let r = api.get_manifest(&repo, "v1").unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, img.manifest.bytes);

    // Anonymous pull, as the policy allows: copy back out with no credentials at all.
    let dst = tools.scratch("dst");
    tools.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        &remote,
        &oci(&dst, "v1"),
    ]);
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dst.join("index.json")).unwrap_or_else(|e| panic!("index.json: {e}")),
    )
    .unwrap_or_else(|e| panic!("index.json: {e}"));
    assert_eq!(
        index["manifests"][0]["digest"].as_str(),
        Some(img.manifest.digest.as_str())
    );
    let tags = tools.skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/{repo}", server.host()),
    ]);
    assert!(tags.stdout.contains("\"v1\""), "{}", tags.describe());
}

#[test]
fn podman_login_push_and_anonymous_pull() {
    eprintln!("{}", version("podman"));
    let (server, _files) = guarded_server();
    let host = server.host();
    let pusher = Tools::new();
    let img = sample_image("auth-podman");
    let layout = pusher.scratch("layout");
    write_image_layout(&layout, "v1", &img);
    let pulled = pusher.podman(&["pull", "-q", &oci(&layout, "v1")]);
    let id = pulled
        .stdout
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    pusher.podman(&["tag", &id, "localhost/berth-e2e/auth:v1"]);
    let repo = repo("auth-podman");
    let remote = format!("{host}/{repo}:v1");
    let push = |tools: &Tools| {
        tools.try_podman(&[
            "push",
            "--tls-verify=false",
            "localhost/berth-e2e/auth:v1",
            &format!("docker://{remote}"),
        ])
    };

    // Not logged in: the push is refused.
    refused(
        &push(&pusher),
        &["unauthorized", "authentication required", "401"],
    );

    // A wrong password does not log in; the right one does, and the push then works.
    let bad = pusher.try_podman(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "wrong",
        &host,
    ]);
    refused(&bad, &["unauthorized", "invalid username/password", "401"]);
    pusher.podman(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "secret",
        &host,
    ]);
    let pushed = push(&pusher);
    assert!(pushed.success, "{}", pushed.describe());

    // Another store, never logged in, pulls anonymously and gets the same image.
    let puller = Tools::new();
    puller.podman(&["pull", "-q", "--tls-verify=false", &remote]);
    let digest = puller.podman(&["image", "inspect", "--format", "{{.Digest}}", &remote]);
    let r = server.api().get_manifest(&repo, "v1").unwrap();
    assert_eq!(digest.stdout.trim(), sha256(&r.body));
    // ...but cannot push.
    puller.podman(&["tag", &remote, "localhost/berth-e2e/auth:v1"]);
    refused(
        &push(&puller),
        &["unauthorized", "authentication required", "401"],
    );
}

#[test]
fn curl_sees_the_challenge_and_the_log_holds_no_password() {
    let (server, files) = guarded_server();
    let tools = Tools::new();
    let base = server.base_url();
    let status_and_headers = |args: &[&str]| {
        let mut all = vec!["-i"];
        all.extend_from_slice(args);
        tools.curl(&all).stdout
    };
    let anon = status_and_headers(&[&format!("{base}/v2/")]);
    assert!(anon.starts_with("HTTP/1.1 401"), "{anon}");
    assert!(
        anon.to_lowercase()
            .contains("www-authenticate: basic realm=\"berth-e2e\""),
        "{anon}"
    );
    let good = status_and_headers(&["-u", "alice:secret", &format!("{base}/v2/")]);
    assert!(good.starts_with("HTTP/1.1 200"), "{good}");
    let bad = status_and_headers(&["-u", "alice:hunter2-wrong", &format!("{base}/v2/")]);
    assert!(bad.starts_with("HTTP/1.1 401"), "{bad}");
    let denied = status_and_headers(&[
        "-u",
        "bob:builder",
        "-X",
        "POST",
        &format!("{base}/v2/e2e/x/blobs/uploads/"),
    ]);
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(denied.contains("DENIED"), "{denied}");

    // Path tricks over the wire (hyper does not normalise paths, and neither does berth).
    for path in [
        "/v2/e2e/x/../../private/manifests/latest",
        "/v2/e2e%2F..%2Fprivate/manifests/latest",
        "//v2/private/manifests/latest",
    ] {
        let out = status_and_headers(&["--path-as-is", &format!("{base}{path}")]);
        assert!(!out.starts_with("HTTP/1.1 200"), "{path}: {out}");
    }

    let log = server.log_tail();
    for secret in [
        "secret",
        "hunter2-wrong",
        "builder",
        "YWxpY2U6c2VjcmV0",
        "$2y$",
    ] {
        assert!(
            !log.contains(secret),
            "the server log holds {secret:?}:\n{log}"
        );
    }
    // The htpasswd file is where the hashes live, not the log; it is still there, unchanged.
    let kept = std::fs::read_to_string(files.path().join("htpasswd")).unwrap_or_default();
    assert_eq!(kept, HTPASSWD);
}

#[test]
fn a_changed_htpasswd_file_is_used_without_a_restart() {
    let (server, files) = guarded_server();
    let tools = Tools::new();
    let url = format!("{}/v2/", server.base_url());
    let status = |user: &str| {
        let out = tools.curl(&["-o", "/dev/null", "-w", "%{http_code}", "-u", user, &url]);
        out.stdout.trim().to_string()
    };
    assert_eq!(status("carol:carol-pw"), "401");
    assert_eq!(status("alice:secret"), "200");

    // carol added, alice removed: within a few seconds (the file is checked at most every 3 s) carol
    // gets in and alice's remembered success no longer counts.
    let carol = "carol:$2y$04$uXBlXEosibWkICVGh9UHbOUSv9pYf1gBQButjm7hJsqgk7SfzhHgy\n";
    std::fs::write(files.path().join("htpasswd"), carol)
        .unwrap_or_else(|e| panic!("htpasswd: {e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while status("carol:carol-pw") != "200" {
        assert!(
            std::time::Instant::now() < deadline,
            "the new htpasswd file was not picked up\n{}",
            server.log_tail()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(status("alice:secret"), "401");
    assert!(server.log_tail().contains("htpasswd file reloaded"));
}

#[test]
fn a_missing_htpasswd_file_stops_the_start_with_a_hint() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = dir.path().join("config.yml");
    let missing = dir.path().join("no-such-htpasswd");
    std::fs::write(
        &config,
        format!(
            "auth:\n  htpasswd:\n    realm: r\n    path: {}\n",
            missing.display()
        ),
    )
    .unwrap_or_else(|e| panic!("config: {e}"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .arg(&config)
        .env("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
        .env(
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
            dir.path().join("data"),
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run berth: {e}"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("auth.htpasswd.path") && stderr.contains("htpasswd -cB"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "no listening line"
    );
}

/// The access-policy bypass of the hostile-input review, against the real binary: bob may push
/// `team-a/**` only, and a mount whose query keys are escaped must not hand him a blob of `private/app`;
/// the access log shows the query as sent.
#[test]
fn an_escaped_mount_does_not_reach_a_repository_the_caller_may_not_read() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, HTPASSWD).unwrap_or_else(|e| panic!("htpasswd: {e}"));
    let config = dir.path().join("config.yml");
    let yaml = format!(
        "auth:\n  htpasswd:\n    realm: berth-e2e\n    path: {}\naccess:\n  rules:\n    \
         - repositories: [\"team-a/**\"]\n      users: [bob]\n      actions: [pull, push]\n    \
         - repositories: [\"**\"]\n      users: [alice]\n      actions: [pull, push, delete]\n",
        htpasswd.display()
    );
    std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("config: {e}"));
    let server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let tools = Tools::new();
    let base = server.base_url();
    let secret = b"the private layer's bytes".to_vec();
    let digest = sha256(&secret);
    let blob_file = dir.path().join("blob");
    std::fs::write(&blob_file, &secret).unwrap_or_else(|e| panic!("blob: {e}"));
    let pushed = tools.curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-u",
        "alice:secret",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", blob_file.display()),
        &format!("{base}/v2/private/app/blobs/uploads/?digest={digest}"),
    ]);
    assert_eq!(pushed.stdout.trim(), "201", "{}", pushed.describe());
    let status = |method: &str, url: &str| {
        let out = tools.curl(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            "bob:builder",
            "-X",
            method,
            "--path-as-is",
            url,
        ]);
        out.stdout.trim().to_string()
    };
    for query in [
        format!("%6Dount={digest}&%66rom=private/app"),
        format!("%6Dount={digest}"),
        format!("mount={digest}&from=private/app"),
    ] {
        let code = status(
            "POST",
            &format!("{base}/v2/team-a/x/blobs/uploads/?{query}"),
        );
        assert_eq!(code, "202", "{query}");
        assert_eq!(
            status("GET", &format!("{base}/v2/team-a/x/blobs/{digest}")),
            "404"
        );
    }
    let log = server.log_tail();
    assert!(
        log.contains(&format!("query=%6Dount={digest}&%66rom=private/app")),
        "{log}"
    );
}

/// An `auth` section berth cannot use stops the start, as in registry:2, rather than serving an open
/// registry; so does a storage driver berth lacks.
#[test]
fn a_misspelt_auth_provider_or_unknown_driver_stops_the_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    for (yaml, says) in [
        (
            "auth:\n  htpaswd:\n    realm: r\n    path: /etc/htpasswd\n",
            "htpaswd",
        ),
        ("storage:\n  gcs:\n    bucket: b\n", "gcs"),
    ] {
        let config = dir.path().join("config.yml");
        std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("config: {e}"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("serve")
            .arg(&config)
            .env("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run berth: {e}"));
        assert!(!out.status.success(), "{yaml}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
        assert!(
            String::from_utf8_lossy(&out.stdout).is_empty(),
            "no listening line"
        );
    }
}
