//! A full disk, for real: the data directory on a small tmpfs the test mounts (as root, as CI runs).
//! While it is full, `/readyz` fails and a push is answered 503 UNAVAILABLE saying the storage is full
//! (never 500); once space is freed, both recover and nothing that was acknowledged is lost. A
//! pull-through cache whose disk is full goes on serving from its upstream, without caching.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{BlobPush, Options, Server, repo};
use crate::proxy::Mirror;

/// A tmpfs mounted over a directory, unmounted (lazily, whatever still holds it) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (the test then skips) where mounting is not allowed, outside CI.
    fn mount_or_skip(dir: &Path, size: &str) -> Option<Tmpfs> {
        let mounted = Tmpfs::mount(dir, size);
        if mounted.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "mounting a tmpfs failed under CI (the suite runs as root there)"
            );
            eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        }
        mounted
    }

    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn wait_for_readiness(server: &Server, status: u16) {
    let api = server.api();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = api
            .get("/readyz", &[])
            .unwrap_or_else(|e| panic!("/readyz: {e}"));
        if r.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz answers {}, want {status}",
            r.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_disk_fails_readiness_and_pushes_with_503_until_space_is_freed() {
    let mut server = Server::start_with(Options {
        env: vec![(
            "REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL".into(),
            "200ms".into(),
        )],
        ..Options::default()
    });
    server.stop();
    let root = server.root().to_path_buf();
    let Some(_tmpfs) = Tmpfs::mount_or_skip(&root, "8m") else {
        return;
    };
    server.start_again();
    let api = server.api();
    let r = repo("full");
    let kept = vec![7u8; 100_000];
    let kept_digest = api
        .push_blob(&r, &kept, BlobPush::Monolithic)
        .unwrap_or_else(|e| panic!("push before the disk fills: {e}"));
    wait_for_readiness(&server, 200);

    let filler = fill(&root);
    wait_for_readiness(&server, 503);
    // Larger than the socket buffers: the client is still sending when the write fails, and reads the
    // 503 only because berth reads the rest of the body away before answering.
    let refused = vec![1u8; 4 << 20];
    let resp = api
        .request(
            "POST",
            &format!(
                "/v2/{r}/blobs/uploads/?digest={}",
                crate::harness::sha256(&refused)
            ),
            &[("content-type", "application/octet-stream")],
            Some(&refused),
        )
        .unwrap_or_else(|e| panic!("push while full: {e}"));
    assert_eq!(resp.status, 503, "{}", resp.describe());
    assert_eq!(resp.error_codes(), ["UNAVAILABLE"]);
    assert!(
        String::from_utf8_lossy(&resp.body).contains("storage is full"),
        "{}",
        resp.describe()
    );
    assert!(resp.header("retry-after").is_some(), "{}", resp.describe());

    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("removing the filler: {e}"));
    wait_for_readiness(&server, 200);
    let again = api
        .push_blob(&r, &refused, BlobPush::Monolithic)
        .unwrap_or_else(|e| panic!("push once space is back: {e}"));
    assert_eq!(again, crate::harness::sha256(&refused));
    assert_eq!(api.get_ok(&format!("/v2/{r}/blobs/{kept_digest}")), kept);
    server.stop();
}

/// The metadata's writes on a full disk (SQLite's database and journal share the data directory): a
/// manifest put, a tag delete and a garbage collection either succeed or are refused as the storage
/// being full (503, never a 500 nor a half-done change), and everything works once space is freed.
#[test]
fn metadata_writes_on_a_full_disk_are_refused_cleanly() {
    let mut server = Server::start();
    server.stop();
    let root = server.root().to_path_buf();
    let Some(_tmpfs) = Tmpfs::mount_or_skip(&root, "8m") else {
        return;
    };
    server.start_again();
    let api = server.api();
    let r = repo("full-meta");
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = vec![3u8; 50_000];
    let c = api.push_blob(&r, &config, BlobPush::Monolithic).unwrap();
    let l = api.push_blob(&r, &layer, BlobPush::Monolithic).unwrap();
    let manifest = |n: usize| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{l}","size":{}}}],"annotations":{{"n":"{n}"}}}}"#,
            config.len(),
            layer.len(),
            OCI = crate::harness::http::OCI_MANIFEST
        )
        .into_bytes()
    };
    let put = |n: usize| {
        api.request(
            "PUT",
            &format!("/v2/{r}/manifests/t{n}"),
            &[("content-type", crate::harness::http::OCI_MANIFEST)],
            Some(&manifest(n)),
        )
        .unwrap()
    };
    assert_eq!(put(0).status, 201);

    let filler = fill(&root);
    // Until SQLite runs out of pages of its own: every answer a success or "storage is full".
    let mut refused = 0;
    for n in 1..200 {
        let resp = put(n);
        match resp.status {
            201 => {}
            503 => {
                assert_eq!(resp.error_codes(), ["UNAVAILABLE"], "{}", resp.describe());
                assert!(String::from_utf8_lossy(&resp.body).contains("storage is full"));
                refused += 1;
                break;
            }
            _ => panic!("a manifest put on a full disk: {}", resp.describe()),
        }
    }
    assert_eq!(refused, 1, "the disk never filled under SQLite");
    let deleted = api.delete(&format!("/v2/{r}/manifests/t0")).unwrap();
    assert!(
        deleted.status == 202 || deleted.status == 503,
        "{}",
        deleted.describe()
    );
    let gc = server.berth(&["gc", "--grace", "0"]).output().unwrap();
    let gc_err = String::from_utf8_lossy(&gc.stderr);
    assert!(!gc_err.contains("panicked"), "{gc_err}");

    std::fs::remove_file(&filler).unwrap();
    let after = put(1000);
    assert_eq!(after.status, 201, "{}", after.describe());
    assert_eq!(
        api.get_manifest(&r, "t1000").unwrap().body,
        manifest(1000),
        "once space is back"
    );
    // A put refused while full left no tag behind.
    if refused > 0 {
        let tags = api.get(&format!("/v2/{r}/tags/list"), &[]).unwrap();
        let listed: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
        for t in listed["tags"].as_array().unwrap() {
            let t = t.as_str().unwrap();
            assert_eq!(api.get_manifest(&r, t).unwrap().status, 200, "{t}");
        }
    }
    server.stop();
}

/// Fills what is left of the filesystem of `root` with a file, whose path it returns.
fn fill(root: &Path) -> PathBuf {
    let filler = root.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .output();
    filler
}

/// Files in the data directory's upload directory.
fn uploads(root: &Path) -> usize {
    std::fs::read_dir(root.join("uploads"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_cache_whose_disk_is_full_serves_a_blob_larger_than_the_disk_without_caching_it() {
    let mut m = Mirror::start_with("1h", true, "");
    m.mirror.stop();
    let root = m.mirror.root().to_path_buf();
    let Some(_tmpfs) = Tmpfs::mount_or_skip(&root, "8m") else {
        return;
    };
    m.mirror.start_again();
    // Larger than the whole disk, and than a segment of the fetch (8 MiB).
    let data: Vec<u8> = (0..12u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let digest = m
        .upstream
        .api()
        .push_blob("org/big", &data, BlobPush::Chunked(4 << 20))
        .unwrap_or_else(|e| panic!("push upstream: {e}"));
    let api = m.mirror.api();
    let path = format!("/v2/org/big/blobs/{digest}");

    // The disk fills during the fetch; then, full from the start, a second pull.
    let first = api.get_ok(&path);
    assert!(first == data, "the first pull's bytes");
    let filler = fill(&root);
    let second = api.get_ok(&path);
    assert!(
        second == data,
        "the second pull's bytes, with the disk full"
    );

    assert_eq!(m.blob_gets(), 2, "nothing cached: each pull fetched");
    let deadline = Instant::now() + Duration::from_secs(30);
    while uploads(&root) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(uploads(&root), 0, "an uncached fetch left its upload");
    assert_eq!(
        m.metric("berth_proxy_cache_uncached_fetches_total"),
        2.0,
        "each fetch counted as uncached"
    );
    // A HEAD while the disk is full: the size, from the upstream (never 404 or 500).
    let head = api
        .head(&path)
        .unwrap_or_else(|e| panic!("HEAD {path}: {e}"));
    assert_eq!(head.status, 200, "{}", head.describe());
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("removing the filler: {e}"));
    m.mirror.stop();
}
