//! Three berth replicas over one storage and one PostgreSQL database, behind nginx round robin
//! (`harness::nginx`): what a user scaling out gets. Requests spread over the replicas (counted in each
//! replica's own access log); an upload started on one continues on another and finishes on a third;
//! a tag pushed through one is served by the others at once, and with the metadata cache on a push, a
//! tag move and a delete through one are seen by the others well within its TTL (the change feed);
//! skopeo and podman push and pull through the balancer; upload purging runs on one replica, another
//! taking over when it dies; a sweep beside them loses nothing. A replica killed mid-push: `killed.rs`.
//!
//! Each test runs over the filesystem (one data directory shared by the three processes) and over S3 (one
//! prefix of the test bucket), both with PostgreSQL.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::big_image::{file_digest, write_big_image_layout};
use crate::harness::clients::version;
use crate::harness::http::{ACCEPT_MANIFESTS, path_and_query};
use crate::harness::images::{Image, multi_platform_index, write_image_layout, write_layout};
use crate::harness::images::{by_digest, gunzip, layout_blobs, layout_ref, sample_image};
use crate::harness::nginx::{Balancer, cpu_time_of};
use crate::harness::{Api, BlobPush, Metadata, Options, Server, Storage, Tools, repo, sha256};

mod killed;

const REPLICAS: usize = 3;

/// The metadata cache off: "at once" means at once. (`limits.metadatacachettl`; a berth without the cache
/// warns about the key and goes on.)
const NO_CACHE: (&str, &str) = ("REGISTRY_LIMITS_METADATACACHETTL", "0");

/// The cache's default TTL (`limits.metadatacachettl`: 1 s): the bound when the change feed is lost.
const CACHE_BOUND: Duration = Duration::from_secs(1);

/// How late a replica may serve what another changed while the change feed works (PostgreSQL notifies
/// at commit; this leaves room for a loaded machine, and stays well under the TTL).
const CHANGE_BOUND: Duration = Duration::from_millis(500);

/// Three replicas and nginx in front.
struct Deployment {
    servers: Vec<Server>,
    balancer: Balancer,
}

fn deploy(test: &str, storage: Storage, env: &[(&str, &str)]) -> Option<Deployment> {
    let servers = Server::start_replicas(
        Options {
            metadata: Metadata::Postgres,
            storage,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Options::default()
        },
        REPLICAS,
    )?;
    let addrs: Vec<_> = servers.iter().map(Server::addr).collect();
    let balancer = Balancer::start(test, &addrs)?;
    Some(Deployment { servers, balancer })
}

impl Deployment {
    fn api(&self) -> Api {
        Api::new(&self.balancer.base_url())
    }

    /// Requests each replica has logged so far (its access log, one line per request).
    fn logged(&self) -> Vec<usize> {
        self.servers.iter().map(logged_requests).collect()
    }

    /// Waits until the replicas logged `at_least` requests since `before` (a line is written when its
    /// response ends, a moment after the client has it); returns each replica's count since.
    fn served_since(&self, before: &[usize], at_least: usize) -> Vec<usize> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.logged();
            let delta: Vec<usize> = now
                .iter()
                .zip(before)
                .map(|(n, b)| n.saturating_sub(*b))
                .collect();
            if delta.iter().sum::<usize>() >= at_least || Instant::now() > deadline {
                return delta;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn logged_requests(server: &Server) -> usize {
    std::fs::read_to_string(server.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("berth_http::middleware: request "))
        .count()
}

fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("replicas")
        .to_string()
}

#[test]
fn replicas_share_uploads_and_tags_behind_nginx() {
    share_uploads_and_tags(Storage::Filesystem);
}

#[test]
fn replicas_share_uploads_and_tags_behind_nginx_over_s3() {
    share_uploads_and_tags(Storage::S3);
}

fn share_uploads_and_tags(storage: Storage) {
    let Some(d) = deploy(&test_name(), storage, &[NO_CACHE]) else {
        return;
    };
    let [a, b, c] = [&d.servers[0], &d.servers[1], &d.servers[2]];

    // Round robin: requests through the balancer land on every replica.
    let before = d.logged();
    let api = d.api();
    for _ in 0..12 {
        let r = api
            .get("/v2/", &[])
            .unwrap_or_else(|e| panic!("GET /v2/: {e}"));
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    let served = d.served_since(&before, 12);
    assert!(
        served.iter().all(|n| *n >= 2),
        "12 requests through nginx were served {served:?} by the replicas"
    );

    // An upload started on A continues on B and finishes on C, with curl speaking to each directly.
    let tools = Tools::new();
    let repo = repo("replicas-upload");
    let first: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let last: Vec<u8> = (0..2 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect();
    let whole: Vec<u8> = first.iter().chain(&last).copied().collect();
    let digest = sha256(&whole);
    let (first_file, last_file) = (tools.path("first.bin"), tools.path("last.bin"));
    std::fs::write(&first_file, &first).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&last_file, &last).unwrap_or_else(|e| panic!("{e}"));

    let post = curl(
        &tools,
        "POST",
        &format!("{}/v2/{repo}/blobs/uploads/", a.base_url()),
        &[("Content-Length", "0")],
        None,
    );
    assert_eq!(post.status, 202, "POST on A: {post:?}");
    let location = path_and_query(post.header("location").unwrap_or_default());
    let patch = curl(
        &tools,
        "PATCH",
        &format!("{}{location}", b.base_url()),
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", &format!("0-{}", first.len() - 1)),
        ],
        Some(&first_file),
    );
    assert_eq!(patch.status, 202, "PATCH on B: {patch:?}");
    assert_eq!(
        patch.header("range"),
        Some(format!("0-{}", first.len() - 1).as_str())
    );
    let location = path_and_query(patch.header("location").unwrap_or(&location));
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = curl(
        &tools,
        "PUT",
        &format!("{}{location}{sep}digest={digest}", c.base_url()),
        &[("Content-Type", "application/octet-stream")],
        Some(&last_file),
    );
    assert_eq!(put.status, 201, "PUT on C: {put:?}");
    for server in &d.servers {
        let got = server.api().get_ok(&format!("/v2/{repo}/blobs/{digest}"));
        assert_eq!(
            sha256(&got),
            digest,
            "the blob read through {}",
            server.host()
        );
    }

    // A tag pushed through one replica is served by the others at once, and so is its move.
    let one = sample_image("replicas-tag-1");
    let two = sample_image("replicas-tag-2");
    for img in [&one, &two] {
        for blob in img.blobs() {
            api.push_blob(&repo, &blob.bytes, BlobPush::Monolithic)
                .unwrap_or_else(|e| panic!("push through nginx: {e}"));
        }
    }
    for (via, img, others) in [(a, &one, [b, c]), (b, &two, [a, c]), (c, &one, [a, b])] {
        put_manifest(via, &repo, "latest", img);
        for other in others {
            let got = other.api().manifest_ok(&repo, "latest");
            assert_eq!(
                sha256(&got),
                img.manifest.digest,
                "{} serves another manifest than {} was just given",
                other.host(),
                via.host()
            );
        }
    }
}

#[test]
fn replicas_read_each_others_writes_with_the_cache_on() {
    // The metadata cache at its default (1 s): the change feed, not the TTL, must make the others
    // forget, and a miss must never be remembered.
    let delete = [("REGISTRY_STORAGE_DELETE_ENABLED", "true")];
    let Some(d) = deploy(&test_name(), Storage::Filesystem, &delete) else {
        return;
    };
    let [a, b] = [&d.servers[0], &d.servers[1]];
    let repo = repo("replicas-cache");
    let one = sample_image("replicas-cache-1");
    let two = sample_image("replicas-cache-2");

    // A blob B was asked for before it existed: pushed through A, B has it at the first ask, and
    // a mount from it through B right after works.
    let layer = &two.blobs()[0];
    let path = format!("/v2/{repo}/blobs/{}", layer.digest);
    assert_eq!(b.api().head(&path).map(|r| r.status).unwrap_or(0), 404);
    a.api()
        .push_blob(&repo, &layer.bytes, BlobPush::Monolithic)
        .unwrap_or_else(|e| panic!("push: {e}"));
    let seen = b.api().head(&path).unwrap_or_else(|e| panic!("HEAD: {e}"));
    assert_eq!(seen.status, 200, "B remembered a miss: {}", seen.describe());
    let mount = b
        .api()
        .request(
            "POST",
            &format!(
                "/v2/{repo}-mounted/blobs/uploads/?mount={}&from={repo}",
                layer.digest
            ),
            &[],
            None,
        )
        .unwrap_or_else(|e| panic!("mount: {e}"));
    assert_eq!(mount.status, 201, "{}", mount.describe());

    for img in [&one, &two] {
        for blob in img.blobs() {
            a.api()
                .push_blob(&repo, &blob.bytes, BlobPush::Monolithic)
                .unwrap_or_else(|e| panic!("push: {e}"));
        }
    }
    // A tag moved through A while B holds the old one: B serves the new one well within the TTL.
    for round in 0..3 {
        let (old, new) = if round % 2 == 0 {
            (&one, &two)
        } else {
            (&two, &one)
        };
        put_manifest(a, &repo, "moving", old);
        wait_for_tag(b, &repo, "moving", old, CACHE_BOUND * 2);
        put_manifest(a, &repo, "moving", new);
        let took = wait_for_tag(b, &repo, "moving", new, CACHE_BOUND * 3);
        assert!(
            took < CHANGE_BOUND,
            "round {round}: B served the old tag for {took:?}; the change feed should make it forget \
             within {CHANGE_BOUND:?}, well before the cache's TTL of {CACHE_BOUND:?}"
        );
    }
    // A manifest deleted by digest through A: B stops serving it by tag as soon.
    let current = &two; // the last round moved it there
    wait_for_tag(b, &repo, "moving", current, CACHE_BOUND);
    let deleted = a
        .api()
        .delete(&format!("/v2/{repo}/manifests/{}", current.manifest.digest))
        .unwrap_or_else(|e| panic!("DELETE: {e}"));
    assert_eq!(deleted.status, 202, "{}", deleted.describe());
    let started = Instant::now();
    loop {
        let r = b
            .api()
            .get(
                &format!("/v2/{repo}/manifests/moving"),
                &[("Accept", ACCEPT_MANIFESTS)],
            )
            .unwrap_or_else(|e| panic!("GET: {e}"));
        if r.status == 404 {
            break;
        }
        assert!(
            started.elapsed() < CHANGE_BOUND,
            "B served a deleted manifest for {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn skopeo_and_podman_push_and_pull_through_nginx() {
    push_and_pull_through_nginx(Storage::Filesystem);
}

#[test]
fn skopeo_and_podman_push_and_pull_through_nginx_over_s3() {
    push_and_pull_through_nginx(Storage::S3);
}

fn push_and_pull_through_nginx(storage: Storage) {
    eprintln!("{}\n{}", version("skopeo"), version("podman"));
    // The metadata cache at its default: a client pushing and then pulling through the balancer must
    // see its push, whichever replica answers (a miss is never remembered).
    let Some(d) = deploy(&test_name(), storage, &[]) else {
        return;
    };
    let before = d.logged();
    let host = d.balancer.host();

    // skopeo: an OCI layout in and out, every digest kept.
    let tools = Tools::new();
    let img = sample_image("replicas-skopeo");
    let src = tools.scratch("src");
    write_image_layout(&src, "v1", &img);
    let remote = format!("docker://{host}/{}:v1", repo("replicas-skopeo"));
    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &remote,
    ]);
    let out = tools.scratch("out");
    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{}:v1", out.display()),
    ]);
    assert_eq!(layout_ref(&out, "v1")["digest"], img.manifest.digest);
    let mut expected = by_digest(img.blobs());
    expected.insert(img.manifest.digest.clone(), img.manifest.bytes.clone());
    assert_eq!(layout_blobs(&out), expected, "skopeo pulled other bytes");

    // A multi-platform index, pulled right after its push: every child and blob found at once.
    let multi = multi_platform_index("replicas-multi");
    let src = tools.scratch("multi-src");
    let blobs: Vec<_> = multi
        .images
        .iter()
        .flat_map(|i| std::iter::once(&i.manifest).chain(i.blobs()))
        .collect();
    write_layout(&src, &[("multi", &multi.index)], blobs.iter().copied());
    let remote = format!("docker://{host}/{}:multi", repo("replicas-multi"));
    tools.skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", src.display()),
        &remote,
    ]);
    let out = tools.scratch("multi-out");
    tools.skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{}:multi", out.display()),
    ]);
    assert_eq!(layout_ref(&out, "multi")["digest"], multi.index.digest);

    // podman: push from its store, pull into a fresh one.
    podman_round_trip(&host, &d);

    let served = d.served_since(&before, 20);
    assert!(
        served.iter().all(|n| *n >= 1),
        "the pushes and pulls through nginx were served {served:?} by the replicas"
    );
}

fn podman_round_trip(host: &str, d: &Deployment) {
    let pusher = Tools::new();
    let img = sample_image("replicas-podman");
    let layout = pusher.scratch("layout");
    write_image_layout(&layout, "v1", &img);
    let pulled = pusher.podman(&["pull", "-q", &format!("oci:{}:v1", layout.display())]);
    let id = pulled
        .stdout
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    pusher.podman(&["tag", &id, "localhost/berth-e2e/replicas:v1"]);
    let remote = format!("{host}/{}:v1", repo("replicas-podman"));
    let digestfile = pusher.path("pushed.digest");
    pusher.podman(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        digestfile.to_str().unwrap_or_default(),
        "localhost/berth-e2e/replicas:v1",
        &format!("docker://{remote}"),
    ]);
    let pushed = std::fs::read_to_string(&digestfile).unwrap_or_else(|e| panic!("{e}"));
    let pushed = pushed.trim();
    // Every replica serves what podman pushed.
    for server in &d.servers {
        let got = server.api().manifest_ok(&repo("replicas-podman"), "v1");
        assert_eq!(sha256(&got), pushed, "{}", server.host());
    }
    let puller = Tools::new();
    puller.podman(&["pull", "-q", "--tls-verify=false", &remote]);
    let digest = puller.podman(&["image", "inspect", "--format", "{{.Digest}}", &remote]);
    assert_eq!(digest.stdout.trim(), pushed);
    let rootfs = puller.podman(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        &remote,
    ]);
    let rootfs: Vec<String> = serde_json::from_str(rootfs.stdout.trim())
        .unwrap_or_else(|e| panic!("RootFS.Layers is not a JSON list ({e}): {}", rootfs.stdout));
    assert_eq!(rootfs, img.diff_ids);
    check_layers_unpack(&d.servers[0].api(), &img);
}

/// The stored layers unpack to what was built (podman may recompress on push).
fn check_layers_unpack(api: &Api, img: &Image) {
    let repo = repo("replicas-podman");
    let manifest = api.manifest_ok(&repo, "v1");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap_or_default();
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    assert_eq!(layers.len(), img.layers.len());
    for (layer, diff_id) in layers.iter().zip(&img.diff_ids) {
        let digest = layer["digest"].as_str().unwrap_or_default();
        let bytes = api.get_ok(&format!("/v2/{repo}/blobs/{digest}"));
        assert_eq!(&sha256(&gunzip(&bytes)), diff_id);
    }
}

#[test]
fn one_replica_purges_uploads_and_another_takes_over_when_it_dies() {
    let purging = [
        ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED", "true"),
        ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE", "2s"),
        ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL", "1s"),
    ];
    let Some(mut d) = deploy(&test_name(), Storage::Filesystem, &purging) else {
        return;
    };
    let repo = repo("replicas-purge");

    // An abandoned upload is purged, by one replica.
    let upload = d.servers[1]
        .api()
        .start_upload(&repo)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_until_purged(&d.servers[2].api(), &upload.location);
    let leaders = purgers(&d.servers);
    assert_eq!(
        leaders.len(),
        1,
        "replicas {leaders:?} all took the purge lock"
    );
    let leader = leaders[0];
    // Rounds later, still that one only.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(purgers(&d.servers), [leader]);

    // The purging replica dies: another takes over within a few intervals.
    d.servers[leader].kill9();
    let alive: Vec<usize> = (0..REPLICAS).filter(|i| *i != leader).collect();
    let upload = d.servers[alive[0]]
        .api()
        .start_upload(&repo)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_until_purged(&d.servers[alive[1]].api(), &upload.location);
    let now: Vec<usize> = purgers(&d.servers);
    let successors: Vec<&usize> = now.iter().filter(|i| **i != leader).collect();
    assert_eq!(
        successors.len(),
        1,
        "after replica {leader} died, {successors:?} took the purge lock"
    );
}

/// Replicas that logged taking the purge lock.
fn purgers(servers: &[Server]) -> Vec<usize> {
    servers
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            std::fs::read_to_string(s.log_path())
                .unwrap_or_default()
                .contains("this replica purges abandoned uploads")
        })
        .map(|(i, _)| i)
        .collect()
}

fn wait_until_purged(api: &Api, location: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = api
            .get(location, &[])
            .unwrap_or_else(|e| panic!("GET {location}: {e}"));
        if r.status == 404 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned upload {location} was not purged: {}",
            r.describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn put_manifest(server: &Server, repo: &str, tag: &str, img: &Image) {
    server
        .api()
        .put_manifest(repo, tag, &img.manifest.media_type, &img.manifest.bytes)
        .unwrap_or_else(|e| panic!("PUT {repo}:{tag} on {}: {e}", server.host()));
}

/// Polls `server` until `tag` names `img`; returns how long that took.
fn wait_for_tag(server: &Server, repo: &str, tag: &str, img: &Image, bound: Duration) -> Duration {
    let api = server.api();
    let started = Instant::now();
    loop {
        let r = api
            .get(
                &format!("/v2/{repo}/manifests/{tag}"),
                &[("Accept", ACCEPT_MANIFESTS)],
            )
            .unwrap_or_else(|e| panic!("GET {repo}:{tag}: {e}"));
        if r.status == 200 && sha256(&r.body) == img.manifest.digest {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{} did not serve {repo}:{tag} = {} within {bound:?}: {}",
            server.host(),
            img.manifest.digest,
            r.describe()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An answer curl printed with `-D -`.
#[derive(Debug)]
struct CurlResp {
    status: u16,
    headers: Vec<(String, String)>,
}

impl CurlResp {
    /// The value of header `name` (lowercase).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn curl(
    tools: &Tools,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Path>,
) -> CurlResp {
    let headers: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let body = body.map(|p| format!("@{}", p.display()));
    let mut args = vec!["-X", method, "-D", "-", "-o", "/dev/null"];
    for h in &headers {
        args.extend(["-H", h.as_str()]);
    }
    if let Some(b) = &body {
        args.extend(["--data-binary", b.as_str()]);
    }
    args.push(url);
    let out = tools.curl(&args);
    // `-D -` prints every response head, a `100 Continue` before the real one: keep the last.
    let mut status = None;
    let mut headers = Vec::new();
    for line in out.stdout.lines() {
        if line.starts_with("HTTP/") {
            status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
            headers.clear();
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let status = status.unwrap_or_else(|| panic!("no status line: {}", out.describe()));
    CurlResp { status, headers }
}

#[test]
fn a_sweep_beside_the_replicas_loses_nothing_pushed_meanwhile() {
    sweep_beside_replicas(Storage::Filesystem);
}

#[test]
fn a_sweep_beside_the_replicas_loses_nothing_pushed_meanwhile_over_s3() {
    sweep_beside_replicas(Storage::S3);
}

/// An image is deleted, and once its blobs are past a short grace period, `berth garbage-collect`
/// sweeps them while the same image (the very same blobs) is pushed again into other repositories
/// through the balancer: whichever of the sweep and a push gets to a blob first, every image pushed
/// pulls back whole, byte for byte.
fn sweep_beside_replicas(storage: Storage) {
    let Some(d) = deploy(&test_name(), storage, &[]) else {
        return;
    };
    let api = d.api();
    let img = sample_image("gc-replicas");
    let old = repo("gc-old");
    let resp = crate::harness::push_image(&api, &old, "v1", &img);
    assert_eq!(resp.status, 201, "{}", resp.describe());
    let resp = api
        .delete(&format!("/v2/{old}/manifests/{}", img.manifest.digest))
        .unwrap_or_else(|e| panic!("DELETE: {e}"));
    assert_eq!(resp.status, 202, "{}", resp.describe());
    // Past the sweep's grace period (whole seconds), so its blobs are candidates.
    std::thread::sleep(Duration::from_millis(3200));

    let pushes: Vec<String> = (0..4).map(|i| repo(&format!("gc-new-{i}"))).collect();
    let pusher = {
        let (api, img, pushes) = (d.api(), img.clone(), pushes.clone());
        std::thread::spawn(move || {
            for r in &pushes {
                let resp = crate::harness::push_image(&api, r, "v1", &img);
                assert_eq!(resp.status, 201, "{r}: {}", resp.describe());
            }
        })
    };
    let out = d.servers[0]
        .berth(&["garbage-collect", "--grace", "2s"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run berth: {e}"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    pusher.join().unwrap_or_else(|_| panic!("a push failed"));

    for r in &pushes {
        assert_eq!(api.manifest_ok(r, "v1"), img.manifest.bytes, "{r}");
        for b in img.blobs() {
            let got = api.get_ok(&format!("/v2/{r}/blobs/{}", b.digest));
            assert_eq!(got, b.bytes, "{r} {}", b.digest);
        }
    }
    let gone = api
        .get_manifest(&old, "v1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gone.status, 404);
}
