//! Three replicas on Garage and PostgreSQL behind nginx take pushes for seconds while `berth
//! garbage-collect --delete-untagged --grace 2s`, configured as a fourth member beside them, collects
//! again and again. The pushes are made to race the sweeps: each round pushes an image and deletes it
//! (so sweeps have blobs to take), and pushes a tagged image, or a multi-platform index whose children
//! go up by digest first (untagged until the index arrives), that reuses the layer of an image deleted
//! more than the grace period ago, which a sweep may be deleting at that very moment. Every push is
//! acknowledged, and at the end every acknowledged image pulls back whole, byte for byte.
//!
//! (`replicas.rs` has one sweep beside pushes of one image; this is the repeated collection under a
//! stream of pushes and deletions that issue 18 asks for.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::http::{OCI_INDEX, OCI_MANIFEST};
use crate::harness::images::{Blob, Image, host_arch, image};
use crate::harness::nginx::Balancer;
use crate::harness::rng::Rng;
use crate::harness::{Api, Metadata, Options, Server, Storage, push_image, repo};

const GRACE: &str = "2s";
/// Longer than the grace (counted in whole seconds by the sweep): a layer deleted this long ago may be
/// being swept when it is pushed again.
const PAST_GRACE: Duration = Duration::from_millis(3200);
/// How long the pushes go on.
const PUSHING: Duration = Duration::from_secs(9);

/// What was acknowledged: an image under a tag, or an index (under a tag) and its images.
enum Acked {
    Image(String, String, Image),
    Index(String, String, Blob, Vec<Image>),
}

#[test]
fn repeated_sweeps_beside_three_replicas_lose_nothing_pushed() {
    let test = std::thread::current().name().unwrap_or("gc").to_string();
    let Some(servers) = Server::start_replicas(
        Options {
            metadata: Metadata::Postgres,
            storage: Storage::S3,
            ..Options::default()
        },
        3,
    ) else {
        return;
    };
    let addrs: Vec<_> = servers.iter().map(Server::addr).collect();
    let Some(balancer) = Balancer::start(&test, &addrs) else {
        return;
    };
    let api = Api::new(&balancer.base_url());
    let seed = Rng::seed_from_env();
    eprintln!("seed {seed} (BERTH_E2E_SEED={seed} replays it)");
    let stop = AtomicBool::new(false);

    let (acked, runs) = std::thread::scope(|s| {
        let collector = s.spawn(|| collect_until(&servers[2], &stop));
        let acked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            push_for(&api, PUSHING, seed)
        }));
        stop.store(true, Ordering::SeqCst);
        let runs = collector.join();
        match (acked, runs) {
            (Ok(acked), Ok(runs)) => (acked, runs),
            (Err(panic), _) | (_, Err(panic)) => std::panic::resume_unwind(panic),
        }
    });

    let freed: usize = runs.iter().map(|out| freed_blobs(out)).sum();
    let recycled = acked.iter().filter(|(_, reused)| *reused).count();
    eprintln!(
        "{} pushes acknowledged ({recycled} reusing a deleted layer), {} sweeps freed {freed} blobs",
        acked.len(),
        runs.len()
    );
    assert!(runs.len() >= 3, "only {} sweeps ran", runs.len());
    assert!(freed > 0, "the sweeps freed nothing: {runs:?}");
    assert!(recycled > 0, "no push reused a deleted layer");
    for (acked, _) in &acked {
        check_whole(&api, acked);
    }
}

/// `berth garbage-collect` beside `server` until `stop`; the output of each run. Every run must have
/// the job lock: nothing else collects, and each run releases it before it exits.
fn collect_until(server: &Server, stop: &AtomicBool) -> Vec<String> {
    let mut runs = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let out = server
            .berth(&["garbage-collect", "--delete-untagged", "--grace", GRACE])
            .output()
            .unwrap_or_else(|e| panic!("cannot run berth: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "garbage-collect failed (run {}):\n{stdout}\n{}",
            runs.len() + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        runs.push(stdout);
    }
    runs
}

/// N of the summary's `freed N blobs`.
fn freed_blobs(out: &str) -> usize {
    out.split("freed ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line in {out}"))
}

/// Pushes through `api` for `how_long`; every push must be acknowledged. Returns what was, and whether
/// it reused the layer of a deleted image.
fn push_for(api: &Api, how_long: Duration, seed: u64) -> Vec<(Acked, bool)> {
    let mut rng = Rng::new(seed);
    let mut deleted: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut acked = Vec::new();
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < how_long {
        // An image pushed and deleted: its blobs are the sweeps' to take once past the grace.
        let r = repo(&format!("gc-replicas-churn-{}", round % 3));
        let len = rng.range(1024, 64 * 1024) as usize;
        let layer = rng.bytes(len);
        let churn = layered(&format!("churn {seed} {round}"), &[&layer, &rng.bytes(512)]);
        let resp = push_image(api, &r, "churn", &churn);
        assert_eq!(resp.status, 201, "{r}: {}", resp.describe());
        let resp = api
            .delete(&format!("/v2/{r}/manifests/{}", churn.manifest.digest))
            .unwrap_or_else(|e| panic!("DELETE: {e}"));
        assert_eq!(resp.status, 202, "{}", resp.describe());
        deleted.push_back((Instant::now(), layer));

        // A tagged image, or every third round an index, reusing a deleted layer once past the grace.
        let reused = match deleted.front() {
            Some((at, _)) if at.elapsed() >= PAST_GRACE => deleted.pop_front().map(|(_, l)| l),
            _ => None,
        };
        let len = rng.range(1024, 16 * 1024) as usize;
        let own = rng.bytes(len);
        let mut layers: Vec<&[u8]> = vec![&own];
        layers.extend(reused.as_deref());
        let r = repo(&format!("gc-replicas-kept-{}", round % 4));
        let tag = format!("r{round}");
        let label = format!("kept {seed} {round}");
        let pushed = if round % 3 == 2 {
            let images: Vec<Image> = ["a", "b"]
                .iter()
                .map(|p| layered(&format!("{label} {p}"), &layers))
                .collect();
            let index = push_index(api, &r, &tag, &images);
            Acked::Index(r, tag, index, images)
        } else {
            let img = layered(&label, &layers);
            let resp = push_image(api, &r, &tag, &img);
            assert_eq!(resp.status, 201, "{r}:{tag}: {}", resp.describe());
            Acked::Image(r, tag, img)
        };
        acked.push((pushed, reused.is_some()));
        round += 1;
    }
    acked
}

/// An image with one layer per entry of `layers` (a file of those bytes each).
fn layered(label: &str, layers: &[&[u8]]) -> Image {
    let files: Vec<[(&str, &[u8]); 1]> = layers.iter().map(|l| [("data.bin", *l)]).collect();
    let files: Vec<&[(&str, &[u8])]> = files.iter().map(|f| &f[..]).collect();
    image(host_arch(), label, &files)
}

/// Pushes `images` by digest, then an index of them under `tag`; returns the index.
fn push_index(api: &Api, repo: &str, tag: &str, images: &[Image]) -> Blob {
    for img in images {
        let resp = push_image(api, repo, &img.manifest.digest, img);
        assert_eq!(
            resp.status,
            201,
            "{repo}@{}: {}",
            img.manifest.digest,
            resp.describe()
        );
    }
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|img| {
            let mut d = img.manifest.descriptor();
            d["platform"] = serde_json::json!({"architecture": host_arch(), "os": "linux"});
            d
        })
        .collect();
    let index = Blob::json(
        OCI_INDEX,
        &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
    );
    let resp = api
        .put_manifest(repo, tag, OCI_INDEX, &index.bytes)
        .unwrap_or_else(|e| panic!("PUT index {repo}:{tag}: {e}"));
    assert_eq!(resp.status, 201, "{}", resp.describe());
    index
}

fn check_whole(api: &Api, acked: &Acked) {
    let (r, images) = match acked {
        Acked::Image(r, tag, img) => {
            assert_eq!(api.manifest_ok(r, tag), img.manifest.bytes, "{r}:{tag}");
            (r, std::slice::from_ref(img))
        }
        Acked::Index(r, tag, index, images) => {
            assert_eq!(api.manifest_ok(r, tag), index.bytes, "{r}:{tag}");
            (r, &images[..])
        }
    };
    for img in images {
        assert_eq!(img.manifest.media_type, OCI_MANIFEST);
        assert_eq!(
            api.manifest_ok(r, &img.manifest.digest),
            img.manifest.bytes,
            "{r}@{}",
            img.manifest.digest
        );
        for b in img.blobs() {
            let got = api.get_ok(&format!("/v2/{r}/blobs/{}", b.digest));
            assert!(
                got == b.bytes,
                "{r}: {} came back other than pushed",
                b.digest
            );
        }
    }
}
