//! The pull-through cache end to end: a second berth process is the upstream (seeded by the test), the
//! fault-injecting proxy of `upstream::testkit` sits between it and the mirror (counting every request
//! and breaking them on demand), and the mirror is berth configured with registry:2's `proxy.remoteurl`
//! plus a `docker.io` prefix upstream. Everything is proved with the proxy's counters, not timing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use upstream::testkit::{Fault, FaultProxy, Kind};

use crate::harness::images::{layout_blobs, layout_ref, sample_image};
use crate::harness::{Api, BlobPush, Options, Server, Tools, push_image, sha256};

/// A mirror in front of an upstream berth, with the fault proxy between them (also the mirror of the
/// docker and containerd tests).
pub(crate) struct Mirror {
    // Dropped in this order: the mirror, the proxy (on the runtime), the runtime, the upstream.
    pub(crate) mirror: Server,
    /// The mirror's debug address, with its metrics.
    debug: Api,
    pub(crate) proxy: FaultProxy,
    _rt: tokio::runtime::Runtime,
    pub(crate) upstream: Server,
    _dir: tempfile::TempDir,
}

impl Mirror {
    /// `revalidate` is berth's `proxy.revalidate` (`0s`: every tag pull asks the upstream).
    fn start(revalidate: &str) -> Mirror {
        Mirror::start_with(revalidate, true, "")
    }

    /// [`Mirror::start`] with more of the mirror's configuration (`auth`, `access`), as YAML. Without
    /// `every_name` only the `docker.io` prefix is cached (no `remoteurl`): other names are local.
    pub(crate) fn start_with(revalidate: &str, every_name: bool, more: &str) -> Mirror {
        let upstream = Server::start();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let proxy = rt
            .block_on(FaultProxy::start(&upstream.base_url()))
            .unwrap_or_else(|e| panic!("fault proxy: {e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let config = dir.path().join("mirror.yml");
        let url = proxy.url();
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nproxy:\n{remote}  revalidate: {revalidate}\n  upstreams:\n    - prefix: docker.io\n      remoteurl: {url}\n{more}",
                remote = if every_name {
                    format!("  remoteurl: {url}\n")
                } else {
                    String::new()
                },
            ),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let mirror = Server::start_with(Options {
            config: Some(config),
            env: vec![
                (
                    "REGISTRY_HTTP_DEBUG_ADDR".into(),
                    format!("127.0.0.1:{port}"),
                ),
                (
                    "REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED".into(),
                    "true".into(),
                ),
            ],
            ..Options::default()
        });
        let debug = Api::new(&format!("http://127.0.0.1:{port}"));
        Mirror {
            mirror,
            debug,
            proxy,
            _rt: rt,
            upstream,
            _dir: dir,
        }
    }

    /// Blob GETs the upstream received.
    pub(crate) fn blob_gets(&self) -> usize {
        self.proxy.count("GET", Kind::Blob)
    }

    /// A sample of the mirror's metrics (0 when absent).
    pub(crate) fn metric(&self, key: &str) -> f64 {
        let r = self
            .debug
            .get("/metrics", &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200, "{}", r.describe());
        String::from_utf8_lossy(&r.body)
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Whether the mirror holds `digest` as a blob file, and how many upload files it has.
    fn stored(&self, digest: &str) -> (bool, usize) {
        (
            blob_file(self.mirror.root(), digest).exists(),
            uploads(self.mirror.root()),
        )
    }

    /// [`Mirror::stored`] once the blob is committed, waiting for it a while: a fetch ends its clients'
    /// responses as soon as the bytes are verified and commits the blob just after.
    fn committed(&self, digest: &str) -> (bool, usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.stored(digest);
            if now == (true, 0) || Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn blob_file(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    root.join("blobs").join("sha256").join(&hex[..2]).join(hex)
}

fn uploads(root: &Path) -> usize {
    std::fs::read_dir(root.join("uploads"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Deterministic bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

#[test]
fn skopeo_and_podman_pull_through_the_mirror_including_library_names() {
    let m = Mirror::start("1h");
    let img = sample_image("proxy-pull");
    let r = push_image(&m.upstream.api(), "library/alpine", "3", &img);
    assert_eq!(r.status, 201, "{}", r.describe());
    let host = m.mirror.host();
    let tools = Tools::new();

    // skopeo, as docker's registry-mirrors entry addresses a mirror: /v2/library/alpine/...
    let dest = tools.scratch("skopeo");
    tools.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/library/alpine:3"),
        &format!("oci:{}:v1", dest.display()),
    ]);
    assert_eq!(
        layout_ref(&dest, "v1")["digest"].as_str(),
        Some(img.manifest.digest.as_str())
    );
    let blobs = layout_blobs(&dest);
    for b in img.blobs() {
        assert_eq!(blobs.get(&b.digest), Some(&b.bytes), "blob {}", b.digest);
    }
    let fetched = m.blob_gets();
    assert_eq!(fetched, img.blobs().len(), "each blob fetched once");

    // podman with the mirror configured for docker.io, pulling docker.io/library/alpine: the same
    // cached repository, so no blob is fetched again.
    std::fs::write(
        tools.path("registries.conf"),
        format!(
            "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{host}\"\ninsecure = true\n"
        ),
    )
    .unwrap_or_else(|e| panic!("registries.conf: {e}"));
    tools.podman(&["pull", "-q", "docker.io/library/alpine:3"]);
    let digest = tools.podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Digest}}",
        "docker.io/library/alpine:3",
    ]);
    assert_eq!(digest.stdout.trim(), img.manifest.digest);
    assert_eq!(
        m.blob_gets(),
        fetched,
        "the second client was served from the cache"
    );
    // The metrics say the same.
    let gets = r#"berth_proxy_upstream_requests_total{request="blob_get",outcome="ok"}"#;
    assert_eq!(m.metric(gets), fetched as f64);
    assert!(m.metric(r#"berth_proxy_cache_lookups_total{kind="blob",result="hit"}"#) > 0.0);
    assert!(m.metric("berth_proxy_cache_served_bytes_total") > 0.0);

    // The prefix form with Docker Hub's short name: localhost/docker.io/alpine is library/alpine.
    let puller = Tools::new();
    puller.podman(&[
        "pull",
        "-q",
        "--tls-verify=false",
        &format!("{host}/docker.io/alpine:3"),
    ]);
    let digest = puller.podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Digest}}",
        &format!("{host}/docker.io/alpine:3"),
    ]);
    assert_eq!(digest.stdout.trim(), img.manifest.digest);
    // Within the interval, the tags were never asked again: one manifest GET per cached repository
    // (the remoteurl one and the docker.io one), and no HEAD.
    assert_eq!(m.proxy.count("HEAD", Kind::Manifest), 0);
}

#[test]
fn with_the_upstream_stopped_a_second_pull_is_served_stale_with_a_warning() {
    let mut m = Mirror::start("0s");
    let img = sample_image("proxy-stale");
    push_image(&m.upstream.api(), "org/app", "1", &img);
    let host = m.mirror.host();
    let tools = Tools::new();
    let first = tools.scratch("first");
    tools.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/org/app:1"),
        &format!("oci:{}:v1", first.display()),
    ]);
    let api = m.mirror.api();
    let fresh = api
        .get_manifest("org/app", "1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fresh.status, 200, "{}", fresh.describe());
    assert_eq!(fresh.header("Warning"), None);

    m.upstream.stop();
    let stale = api
        .get_manifest("org/app", "1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stale.status, 200, "{}", stale.describe());
    assert_eq!(stale.header("Warning"), Some("110 - \"Response is stale\""));
    assert_eq!(stale.body, img.manifest.bytes);
    assert_eq!(
        m.metric(r#"berth_proxy_cache_lookups_total{kind="manifest",result="stale"}"#),
        1.0
    );
    // A whole second pull works from the cache alone.
    let second = tools.scratch("second");
    tools.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/org/app:1"),
        &format!("oci:{}:v1", second.display()),
    ]);
    assert_eq!(layout_blobs(&second), layout_blobs(&first));
    // Nothing cached, nothing to fall back on: 503 UNAVAILABLE.
    let missing = api
        .get_manifest("org/other", "1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(missing.status, 503, "{}", missing.describe());
    assert_eq!(missing.error_codes(), ["UNAVAILABLE"]);
}

#[test]
fn rate_limits_drops_and_wrong_digests_never_leave_a_partial_blob() {
    let m = Mirror::start("0s");
    let img = sample_image("proxy-faults");
    push_image(&m.upstream.api(), "org/app", "1", &img);
    let data = noise(6 * 1024 * 1024, 1);
    let digest = m
        .upstream
        .api()
        .push_blob("org/app", &data, BlobPush::Chunked(1 << 20))
        .unwrap_or_else(|e| panic!("{e}"));
    let api = m.mirror.api();

    // 429 with nothing cached: the client sees TOOMANYREQUESTS; with a cached copy: the copy, stale.
    m.proxy.set_fault_on(
        Kind::Manifest,
        Fault::TooManyRequests {
            retry_after: Some(30),
        },
    );
    let r = api
        .get_manifest("org/app", "1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 429, "{}", r.describe());
    assert_eq!(r.error_codes(), ["TOOMANYREQUESTS"]);
    m.proxy.set_fault_on(Kind::Manifest, Fault::Pass);
    assert_eq!(api.get_manifest("org/app", "1").unwrap().status, 200);
    m.proxy
        .set_fault_on(Kind::Manifest, Fault::TooManyRequests { retry_after: None });
    let r = api
        .get_manifest("org/app", "1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("Warning"), Some("110 - \"Response is stale\""));

    // A blob dropped mid-transfer, then one with a flipped byte: the client's transfer fails, and the
    // mirror keeps neither the blob nor its upload.
    let tools = Tools::new();
    let url = format!("{}/v2/org/app/blobs/{digest}", m.mirror.base_url());
    for fault in [Fault::DropAfter(3 * 1024 * 1024), Fault::Corrupt] {
        m.proxy.set_fault_on(Kind::Blob, fault.clone());
        let out = tools.try_curl(&["--fail", "-o", "/dev/null", &url]);
        assert!(
            !out.success,
            "{fault:?}: curl succeeded: {}",
            out.describe()
        );
        assert_eq!(
            m.stored(&digest),
            (false, 0),
            "{fault:?}: something was cached"
        );
    }
    m.proxy.set_fault_on(Kind::Blob, Fault::Pass);
    let got = api.get_ok(&format!("/v2/org/app/blobs/{digest}"));
    assert!(got == data, "the bytes after the faults");
    assert_eq!(m.committed(&digest), (true, 0));
}

#[test]
fn fifty_concurrent_pulls_of_an_uncached_200mb_blob_make_one_upstream_request() {
    let m = Mirror::start("1h");
    let data = noise(200 * 1024 * 1024, 2);
    let digest = m
        .upstream
        .api()
        .push_blob("org/big", &data, BlobPush::Chunked(32 << 20))
        .unwrap_or_else(|e| panic!("{e}"));
    let want = hex_sha256(&data);
    drop(data);
    let url = format!("{}/v2/org/big/blobs/{digest}", m.mirror.base_url());

    let pulls: Vec<_> = (0..50)
        .map(|_| {
            Command::new("bash")
                .args([
                    "-c",
                    &format!(
                        "set -o pipefail; curl -q -sS --fail --max-time 170 '{url}' | sha256sum"
                    ),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawning curl: {e}"))
        })
        .collect();
    for mut p in pulls {
        let mut out = String::new();
        if let Some(mut s) = p.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        let status = p.wait().unwrap_or_else(|e| panic!("curl: {e}"));
        let mut err = String::new();
        if let Some(mut s) = p.stderr.take() {
            let _ = s.read_to_string(&mut err);
        }
        assert!(status.success(), "curl failed: {err}");
        assert_eq!(out.split_whitespace().next(), Some(want.as_str()), "{err}");
    }
    assert_eq!(m.blob_gets(), 1, "exactly one upstream blob request");
    assert_eq!(m.committed(&digest), (true, 0));
}

fn hex_sha256(data: &[u8]) -> String {
    sha256(data).trim_start_matches("sha256:").to_string()
}
