//! berth's image as users run it: `scripts/image` builds it (from this test's binary, so the test needs no
//! release build), the test's own dockerd loads the docker-archive and runs it with `--network host`
//! (only the address is overridden, to a free port), and docker pushes and pulls through it. What the
//! image promises is checked on the running container: the configuration at /etc/distribution/config.yml
//! read with no argument, data in /var/lib/registry, a non-root user, a HEALTHCHECK that `berth health`
//! answers inside the image, the labels.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::Api;
use crate::harness::dockerd::{Dockerd, DockerdSettings};
use crate::harness::images::{sample_image, write_image_layout};

/// The user the image runs as (scripts/image, Dockerfile).
const USER: &str = "65532:65532";

#[test]
fn the_image_runs_in_docker_and_serves_pushes_and_pulls() {
    let Some(docker) = Dockerd::start("image", &DockerdSettings::default()) else {
        return;
    };
    let tools = docker.tools();
    let archive = tools.path("tmp/berth-image.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/image");
    let name = "localhost/berth:e2e";
    let built = tools.run_with(
        &script.to_string_lossy(),
        &[
            "--binary",
            env!("CARGO_BIN_EXE_berth"),
            "--name",
            name,
            "--archive",
            &archive.to_string_lossy(),
        ],
        &[],
    );
    assert!(built.success, "{}", built.describe());
    docker.docker(&["load", "-i", &archive.to_string_lossy()]);
    only_what_berth_needs(&archive);

    // The image's configuration.
    let inspect = docker.docker(&["image", "inspect", name]);
    let image: Value = serde_json::from_str(&inspect.stdout).unwrap();
    let config = &image[0]["Config"];
    assert_eq!(config["User"], USER);
    assert_eq!(config["Entrypoint"], serde_json::json!(["/usr/bin/berth"]));
    assert_eq!(config["Cmd"], serde_json::json!(["serve"]));
    assert!(config["ExposedPorts"]["5000/tcp"].is_object(), "{config}");
    assert!(
        config["Volumes"]["/var/lib/registry"].is_object(),
        "{config}"
    );
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/usr/bin/berth", "health"])
    );
    let labels = &config["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(labels["org.opencontainers.image.revision"].is_string());
    dockerfile_agrees(config);

    // Run as a user would, but on a free port (the host's network is shared). The health check is the
    // image's own command, which follows the configured address; only its interval is shortened.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));
    let container = format!("berth-e2e-{}", std::process::id());
    docker.docker(&[
        "run",
        "-d",
        "--name",
        &container,
        "--network",
        "host",
        "-e",
        &format!("REGISTRY_HTTP_ADDR=127.0.0.1:{port}"),
        "--health-interval",
        "1s",
        // As deploy/kubernetes runs it: nothing written outside the data volume and /tmp, no
        // capabilities, no privilege gained.
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        name,
    ]);
    let _stop = RemoveOnDrop(&docker, &container);
    let api = Api::new(&format!("http://127.0.0.1:{port}"));
    wait_until(&docker, &container, "the registry to answer", || {
        api.get("/v2/", &[]).is_ok_and(|r| r.status == 200)
    });
    // The image's configuration file was read with no argument: its header is on every answer.
    let r = api.get("/v2/", &[]).unwrap();
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    wait_until(&docker, &container, "the health check to pass", || {
        docker
            .try_docker(&[
                "inspect",
                "--format",
                "{{.State.Health.Status}}",
                &container,
            ])
            .stdout
            .trim()
            == "healthy"
    });
    // Not root: the server process's real and effective ids.
    let pid = docker
        .docker(&["inspect", "--format", "{{.State.Pid}}", &container])
        .stdout
        .trim()
        .to_owned();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or_default();
    assert_eq!(
        uid.split_whitespace().nth(1),
        Some("65532"),
        "berth runs as {uid:?}"
    );

    // docker pushes and pulls through it; the blobs land in the volume at /var/lib/registry.
    let img = sample_image("image-run");
    let layout = tools.scratch("layout");
    write_image_layout(&layout, "v1", &img);
    let remote = format!("127.0.0.1:{port}/e2e/image:v1");
    docker.load_layout(&layout, "v1", &remote);
    let push = docker.docker(&["push", &remote]);
    docker.docker(&["rmi", &remote]);
    let pull = docker.docker(&["pull", &remote]);
    let digest = |out: &str, marker: &str| -> String {
        out.lines()
            .find_map(|l| {
                Some(
                    l.split_once(marker)?
                        .1
                        .split_whitespace()
                        .next()?
                        .to_owned(),
                )
            })
            .unwrap_or_else(|| panic!("no {marker:?} in:\n{out}"))
    };
    assert_eq!(
        digest(&pull.stdout, "Digest: "),
        digest(&push.stdout, "digest: ")
    );
    let mounts = docker
        .docker(&["inspect", "--format", "{{json .Mounts}}", &container])
        .stdout;
    let mounts: Value = serde_json::from_str(&mounts).unwrap();
    let volume = mounts
        .as_array()
        .and_then(|m| m.iter().find(|m| m["Destination"] == "/var/lib/registry"))
        .unwrap_or_else(|| panic!("no volume at /var/lib/registry: {mounts}"));
    let source = Path::new(volume["Source"].as_str().unwrap_or_default());
    assert!(
        source.join("blobs/sha256").is_dir() && source.join("metadata.sqlite").is_file(),
        "nothing stored in the volume {}",
        source.display()
    );
}

/// The image holds berth, the libraries ldd found, the files scripts/image-rootfs writes, and nothing
/// else; all of it but the binary is under 4 MB (3.4 MB: glibc's libraries, the CA bundle), so the image
/// stays under 30 MB while the release binary stays under 26 MB (it is 22.6 MB; the test runs on the
/// debug build, since CI builds no release).
fn only_what_berth_needs(archive: &Path) {
    let file =
        std::fs::File::open(archive).unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
    let mut outer = tar::Archive::new(file);
    let mut files = Vec::new();
    let mut rest_bytes = 0u64;
    for entry in outer.entries().unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let path = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The layers of a docker-archive are uncompressed tars at the top of it.
        if !path.ends_with(".tar") {
            continue;
        }
        let mut layer = tar::Archive::new(entry);
        for inner in layer.entries().unwrap_or_else(|e| panic!("{e}")) {
            let inner = inner.unwrap_or_else(|e| panic!("{e}"));
            if inner.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let name = inner
                .path()
                .map(|p| p.to_string_lossy().trim_start_matches("./").to_owned())
                .unwrap_or_default();
            if name != "usr/bin/berth" {
                rest_bytes += inner.header().size().unwrap_or(0);
            }
            files.push(name);
        }
    }
    files.sort();
    for file in &files {
        let expected = [
            "usr/bin/berth",
            "etc/passwd",
            "etc/group",
            "etc/nsswitch.conf",
            "etc/ssl/certs/ca-certificates.crt",
            "etc/distribution/config.yml",
        ]
        .contains(&file.as_str())
            // The C libraries and the loader ldd names.
            || ((file.starts_with("lib") || file.starts_with("usr/lib")) && file.contains(".so"));
        assert!(expected, "{file} is in the image: {files:?}");
    }
    assert!(files.iter().any(|f| f == "usr/bin/berth"), "{files:?}");
    assert!(
        rest_bytes < 4 * 1024 * 1024,
        "{rest_bytes} bytes beside the binary: {files:?}"
    );
}

/// `docker rm -f` of the container when the test ends, however it ends.
struct RemoveOnDrop<'a>(&'a Dockerd, &'a str);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.try_docker(&["rm", "-f", "-v", self.1]);
    }
}

fn wait_until(docker: &Dockerd, container: &str, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        if Instant::now() > deadline {
            let logs = docker.try_docker(&["logs", container]);
            panic!("waited 60 s for {what}\n{}", logs.describe());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Dockerfile's final stage says what scripts/image did: each instruction against the image's config.
fn dockerfile_agrees(config: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Instructions with their continuation lines joined, from `FROM scratch` on.
    let joined = text.replace("\\\n", " ");
    let stage = joined
        .split_once("FROM scratch")
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no FROM scratch stage in the Dockerfile"));
    let mut seen = Vec::new();
    for line in stage.lines().map(str::trim) {
        let Some((instruction, rest)) = line.split_once(' ') else {
            continue;
        };
        let json = |s: &str| -> Value {
            serde_json::from_str(s).unwrap_or_else(|e| panic!("Dockerfile {instruction} {s}: {e}"))
        };
        match instruction {
            "USER" => assert_eq!(config["User"], rest),
            "EXPOSE" => assert!(config["ExposedPorts"][rest].is_object(), "EXPOSE {rest}"),
            "VOLUME" => assert!(config["Volumes"][rest].is_object(), "VOLUME {rest}"),
            "WORKDIR" => assert_eq!(config["WorkingDir"], rest),
            "ENTRYPOINT" => assert_eq!(config["Entrypoint"], json(rest)),
            "CMD" => assert_eq!(config["Cmd"], json(rest)),
            "HEALTHCHECK" => {
                let (flags, cmd) = rest
                    .split_once("CMD ")
                    .unwrap_or_else(|| panic!("HEALTHCHECK without CMD: {rest}"));
                let mut test = vec![Value::from("CMD")];
                test.extend(json(cmd).as_array().cloned().unwrap_or_default());
                assert_eq!(config["Healthcheck"]["Test"], Value::Array(test));
                for flag in flags.split_whitespace() {
                    let (key, value) = flag
                        .trim_start_matches("--")
                        .split_once('=')
                        .unwrap_or_else(|| panic!("HEALTHCHECK flag {flag}"));
                    let (field, want) = match key {
                        "interval" => ("Interval", seconds(value)),
                        "timeout" => ("Timeout", seconds(value)),
                        "start-period" => ("StartPeriod", seconds(value)),
                        "retries" => ("Retries", value.parse().unwrap_or_default()),
                        other => panic!("HEALTHCHECK flag {other} is not checked"),
                    };
                    assert_eq!(config["Healthcheck"][field], want, "HEALTHCHECK --{key}");
                }
            }
            "LABEL" => {
                for (key, value) in labels_of(rest) {
                    assert_eq!(config["Labels"][&key], value, "LABEL {key}");
                }
            }
            _ => continue,
        }
        seen.push(instruction);
    }
    for wanted in [
        "USER",
        "EXPOSE",
        "VOLUME",
        "WORKDIR",
        "ENTRYPOINT",
        "CMD",
        "HEALTHCHECK",
        "LABEL",
    ] {
        assert!(seen.contains(&wanted), "the Dockerfile has no {wanted}");
    }
}

/// `30s` as the nanoseconds docker stores.
fn seconds(value: &str) -> u64 {
    let secs: u64 = value
        .strip_suffix('s')
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a duration in seconds: {value}"));
    secs * 1_000_000_000
}

/// `key="value" key="value"` of a LABEL instruction.
fn labels_of(rest: &str) -> Vec<(String, String)> {
    rest.split('"')
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|pair| match pair {
            [key, value] => Some((
                key.trim().trim_end_matches('=').to_owned(),
                (*value).to_owned(),
            )),
            _ => None,
        })
        .collect()
}

/// `berth --version` names the version and the commit of the checkout it was built from (build.rs), or
/// `unknown` where git cannot tell (the image labels take it from there).
#[test]
fn berth_version_names_the_commit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("berth --version: {e}"));
    assert!(out.status.success());
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let commit = match std::env::var("BERTH_GIT_COMMIT") {
        Ok(set) if !set.trim().is_empty() => set.trim().to_owned(),
        _ => head.unwrap_or_else(|| "unknown".to_owned()),
    };
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("berth {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
}
