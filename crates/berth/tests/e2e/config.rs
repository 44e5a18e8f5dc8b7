//! The configuration as an operator meets it: a registry:2-style file given to `berth serve`, the
//! environment's `REGISTRY_*` variables winning over it, and what the file turns on (JSON logs with static
//! fields, extra headers, absolute URLs, health endpoints and the debug server, upload purging, the access
//! log switch, read-only mode); and `berth config check`.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use saphyr::{LoadableYamlNode, Yaml};

use crate::harness::{Options, Server, repo, sha256};

/// A port free at the time of asking, for the debug server (whose address is not printed on stdout).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn write_config(dir: &Path, yaml: &str) -> std::path::PathBuf {
    let path = dir.join("config.yml");
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// Everything the server logged so far (the harness keeps `server.log` beside the data directory).
fn full_log(server: &Server) -> String {
    let path = server
        .root()
        .parent()
        .map(|dir| dir.join("server.log"))
        .unwrap_or_default();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The JSON objects among the server's log lines.
fn json_lines(server: &Server) -> Vec<serde_json::Value> {
    full_log(server)
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls `check` for up to 15 s.
fn eventually(what: &str, server: &Server, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 15 s\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_config_file_takes_effect_and_the_environment_wins_over_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let debug_port = free_port();
    // The harness sets REGISTRY_HTTP_ADDR (127.0.0.1:0), REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY (its
    // own directory) and REGISTRY_STORAGE_DELETE_ENABLED (true): the file says otherwise on all three, and
    // its address could not even be bound, so a server that starts and deletes proves the variables won.
    let config = write_config(
        dir.path(),
        &format!(
            r#"version: 0.1
log:
  level: info
  formatter: json
  fields:
    service: berth-e2e
    environment: test
storage:
  filesystem:
    rootdirectory: /nonexistent/overridden-by-the-environment
  delete:
    enabled: false
  maintenance:
    uploadpurging:
      enabled: true
      age: 1s
      interval: 1s
http:
  addr: 192.0.2.1:5000
  host: https://registry.example.com
  headers:
    X-Berth-E2E: [from-the-file]
  debug:
    addr: 127.0.0.1:{debug_port}
health:
  storagedriver:
    enabled: true
    interval: 200ms
    threshold: 1
frobnicate: true
"#
        ),
    );
    let server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let api = server.api();

    // Headers from the file on every response, found or not.
    for path in ["/v2/", "/v2/nothing/tags/list", "/healthz"] {
        let r = api
            .get(path, &[])
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.header("X-Berth-E2E"), Some("from-the-file"), "{path}");
    }
    // http.host: Locations are absolute on the configured URL.
    let repo = repo("config-file");
    let data = b"a blob that the environment lets us delete";
    let post = api
        .request(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(data)),
            &[],
            Some(data),
        )
        .unwrap_or_else(|e| panic!("push: {e}"));
    assert_eq!(post.status, 201, "{}", post.describe());
    let location = post.header("Location").unwrap_or_default().to_string();
    assert!(
        location.starts_with("https://registry.example.com/v2/"),
        "{location}"
    );
    // storage.delete.enabled: the variable (true) beat the file (false).
    let deleted = api
        .delete(&format!("/v2/{repo}/blobs/{}", sha256(data)))
        .unwrap_or_else(|e| panic!("DELETE: {e}"));
    assert_eq!(deleted.status, 202, "{}", deleted.describe());

    // Health on the main address and on the debug server.
    assert_eq!(api.get_ok("/healthz"), b"ok\n");
    assert_eq!(api.get_ok("/readyz"), b"ok\n");
    let debug = crate::harness::Api::new(&format!("http://127.0.0.1:{debug_port}"));
    let health = debug
        .get("/debug/health", &[])
        .unwrap_or_else(|e| panic!("debug server: {e}"));
    assert_eq!(
        (health.status, health.body.as_slice()),
        (200, b"{}".as_slice())
    );

    // Upload purging with a short age: an abandoned upload disappears by itself.
    let upload = api
        .start_upload(&repo)
        .unwrap_or_else(|e| panic!("start upload: {e}"));
    eventually("purging the abandoned upload", &server, || {
        api.get(&upload.location, &[])
            .map(|r| r.status == 404 && r.error_codes() == ["BLOB_UPLOAD_UNKNOWN"])
            .unwrap_or(false)
    });

    // JSON lines, each with the static fields; the unknown key was named; requests were logged.
    let lines = json_lines(&server);
    assert!(
        !lines.is_empty(),
        "no JSON log lines\n{}",
        server.log_tail()
    );
    for line in &lines {
        assert_eq!(line["service"], "berth-e2e", "{line}");
        assert_eq!(line["environment"], "test", "{line}");
    }
    let all = full_log(&server);
    assert!(all.contains("frobnicate"), "{all}");
    assert!(
        lines.iter().any(|l| l["message"] == "request"),
        "the access log is on by default\n{all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "purged abandoned uploads"),
        "{all}"
    );
}

#[test]
fn read_only_mode_and_a_silent_access_log() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = write_config(
        dir.path(),
        "version: 0.1\nlog:\n  accesslog:\n    disabled: true\nstorage:\n  maintenance:\n    readonly:\n      enabled: true\n",
    );
    let server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let api = server.api();
    let repo = repo("read-only");
    let data = b"refused";
    for (method, path, body) in [
        ("POST", format!("/v2/{repo}/blobs/uploads/"), None),
        (
            "POST",
            format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(data)),
            Some(&data[..]),
        ),
        (
            "PUT",
            format!("/v2/{repo}/manifests/latest"),
            Some(&b"{}"[..]),
        ),
        ("DELETE", format!("/v2/{repo}/manifests/latest"), None),
    ] {
        let r = api
            .request(method, &path, &[], body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(r.status, 405, "{method} {path}: {}", r.describe());
        assert_eq!(r.error_codes(), ["UNSUPPORTED"]);
        let message = r.json()["errors"][0]["message"].to_string();
        assert!(message.contains("read-only"), "{message}");
    }
    // Reads answer as usual.
    assert_eq!(api.get_ok("/v2/_catalog"), br#"{"repositories":[]}"#);
    let tags = api
        .get(&format!("/v2/{repo}/tags/list"), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tags.error_codes(), ["NAME_UNKNOWN"]);

    // Those requests left no access-log lines (the server logs its start, so the log is not empty).
    let log = full_log(&server);
    assert!(log.contains("serving"), "{log}");
    assert!(
        !log.contains("/v2/_catalog"),
        "the access log is disabled, yet:\n{log}"
    );
}

/// `berth config check`: the effective configuration with defaults and variables applied and secrets
/// masked; a bad value exits non-zero naming key, value and what is allowed.
#[test]
fn config_check_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = write_config(
        dir.path(),
        "version: 0.1\nhttp:\n  addr: :5000\n  secret: do-not-print-me\nproxy:\n  remoteurl: https://registry-1.docker.io\n  password: nor-me\nmystery: 1\n",
    );
    let run = |extra_env: &[(&str, &str)], path: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(["config", "check"]).arg(path);
        for (key, _) in std::env::vars() {
            if key.starts_with("REGISTRY_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(extra_env.iter().copied());
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run berth: {e}"))
    };

    let out = run(&[("REGISTRY_STORAGE_DELETE_ENABLED", "true")], &config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let docs = Yaml::load_from_str(&stdout).unwrap_or_else(|e| panic!("not YAML ({e}):\n{stdout}"));
    let [printed] = docs.as_slice() else {
        panic!("not one YAML document:\n{stdout}")
    };
    assert_eq!(printed["http"]["addr"].as_str(), Some("0.0.0.0:5000"));
    assert_eq!(
        printed["storage"]["delete"]["enabled"].as_bool(),
        Some(true),
        "the variable applies"
    );
    assert_eq!(
        printed["storage"]["maintenance"]["uploadpurging"]["age"].as_str(),
        Some("168h")
    );
    assert_eq!(printed["http"]["secret"].as_str(), Some("********"));
    assert_eq!(printed["proxy"]["password"].as_str(), Some("********"));
    assert!(
        !stdout.contains("do-not-print-me") && !stdout.contains("nor-me"),
        "{stdout}"
    );
    assert!(stderr.contains("warning: mystery:"), "{stderr}");
    // The proxy section is implemented now: only the unknown key is warned about.
    assert!(!stderr.contains("warning: proxy"), "{stderr}");

    let bad = write_config(dir.path(), "http:\n  addr: localhost:99999\n");
    let out = run(&[], &bad);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"http.addr: "localhost:99999": not a valid port (0-65535)"#),
        "{stderr}"
    );
    let out = run(&[("REGISTRY_LOG_LEVEL", "loud")], &config);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("REGISTRY_LOG_LEVEL (log.level): \"loud\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
