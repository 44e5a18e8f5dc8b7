//! Garbage collection against the real binary: skopeo pushes two images that share a layer into two
//! repositories, one is deleted, and `berth garbage-collect` run beside the serving registry frees
//! exactly the blobs only the deleted image had, on disk; the dry run frees nothing; the other image
//! pulls back byte for byte, and the deleted one can be pushed again.
//!
//! Beside it: `untagged` (what a tag reaches survives --delete-untagged, on fs + SQLite and S3 +
//! PostgreSQL), `killed` (kill -9 in the middle of a sweep, then the next run), `replicas` (repeated
//! sweeps beside three replicas taking pushes); `stored` reads a server's blob store beside berth.

mod killed;
mod replicas;
mod stored;
mod untagged;

use std::path::Path;

use crate::harness::clients::version;
use crate::harness::images::{layout_blobs, sample_image, write_image_layout};
use crate::harness::{Server, Tools, push_image, repo};

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// `berth garbage-collect` over the server's stores, with `args`; its stdout.
pub fn gc(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["garbage-collect"];
    all.extend_from_slice(args);
    let out = server
        .berth(&all)
        .output()
        .unwrap_or_else(|e| panic!("cannot run berth: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "garbage-collect {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn on_disk(server: &Server, digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    server
        .root()
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .exists()
}

#[test]
fn garbage_collect_frees_exactly_what_only_a_deleted_image_had() {
    eprintln!("{}", version("skopeo"));
    let server = Server::start();
    let tools = Tools::new();
    let host = server.host();
    let (doomed, kept) = (sample_image("gc-doomed"), sample_image("gc-kept"));
    let (ra, rb) = (repo("gc-a"), repo("gc-b"));
    for (img, r) in [(&doomed, &ra), (&kept, &rb)] {
        let src = tools.scratch(&format!("src-{r}"));
        write_image_layout(&src, "v1", img);
        tools.skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &oci(&src, "v1"),
            &format!("docker://{host}/{r}:v1"),
        ]);
    }
    let shared: Vec<&str> = doomed
        .layers
        .iter()
        .filter(|l| kept.layers.iter().any(|k| k.digest == l.digest))
        .map(|l| l.digest.as_str())
        .collect();
    assert_eq!(shared.len(), 1, "the two images share their big layer");
    let only_doomed: Vec<&crate::harness::images::Blob> = std::iter::once(&doomed.config)
        .chain(doomed.layers.iter())
        .filter(|b| !shared.contains(&b.digest.as_str()))
        .collect();

    // Everything is referenced: nothing to free.
    let before = gc(&server, &["--grace", "0"]);
    assert!(before.contains("freed 0 blobs, 0 bytes"), "{before}");

    tools.skopeo(&[
        "delete",
        "--tls-verify=false",
        &format!("docker://{host}/{ra}:v1"),
    ]);
    let dry = gc(&server, &["--dry-run", "--grace", "0"]);
    for b in &only_doomed {
        assert!(
            dry.contains(&format!("would delete blob {}", b.digest)),
            "{dry}"
        );
        assert!(
            on_disk(&server, &b.digest),
            "the dry run deleted {}",
            b.digest
        );
    }
    assert!(!dry.contains(shared[0]), "{dry}");

    // A grace period keeps what was wanted recently (the deletion just touched them).
    let graced = gc(&server, &["--grace", "1h"]);
    assert!(graced.contains("freed 0 blobs"), "{graced}");

    let freed = gc(&server, &["--grace", "0"]);
    let bytes: usize = only_doomed.iter().map(|b| b.bytes.len()).sum();
    assert!(
        freed.contains(&format!("freed {} blobs, {bytes} bytes", only_doomed.len())),
        "{freed}"
    );
    for b in &only_doomed {
        assert!(
            !on_disk(&server, &b.digest),
            "{} is still on disk",
            b.digest
        );
    }
    assert!(on_disk(&server, shared[0]));

    // The kept image pulls back byte for byte, while the registry keeps serving.
    let dst = tools.scratch("dst-kept");
    tools.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        &format!("docker://{host}/{rb}:v1"),
        &oci(&dst, "v1"),
    ]);
    let pulled = layout_blobs(&dst);
    for b in std::iter::once(&kept.config).chain(kept.layers.iter()) {
        assert_eq!(pulled.get(&b.digest), Some(&b.bytes), "{}", b.digest);
    }
    // The deleted image can be pushed again, and pulls back whole.
    let src = tools.scratch("src-again");
    write_image_layout(&src, "v1", &doomed);
    tools.skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &oci(&src, "v1"),
        &format!("docker://{host}/{ra}:v2"),
    ]);
    let dst = tools.scratch("dst-again");
    tools.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/{ra}:v2"),
        &oci(&dst, "v2"),
    ]);
    let pulled = layout_blobs(&dst);
    for b in &only_doomed {
        assert_eq!(pulled.get(&b.digest), Some(&b.bytes), "{}", b.digest);
    }
}

/// `--delete-untagged` deletes a manifest pushed by digest only (no tag reaches it) with its blobs,
/// and leaves a tagged one.
#[test]
fn delete_untagged_takes_a_manifest_pushed_by_digest_only() {
    let server = Server::start();
    let api = server.api();
    let r = repo("gc-untagged");
    let (loose, tagged) = (sample_image("gc-loose"), sample_image("gc-tagged"));
    let resp = push_image(&api, &r, &loose.manifest.digest, &loose);
    assert_eq!(resp.status, 201, "{}", resp.describe());
    let resp = push_image(&api, &r, "v1", &tagged);
    assert_eq!(resp.status, 201, "{}", resp.describe());

    let plain = gc(&server, &["--grace", "0"]);
    assert!(
        plain.contains("freed 0 blobs"),
        "without -m nothing goes: {plain}"
    );
    let out = gc(&server, &["-m", "--grace", "0"]);
    assert!(
        out.contains(&format!("deleted manifest {r}@{}", loose.manifest.digest)),
        "{out}"
    );
    assert!(out.contains("1 untagged manifests"), "{out}");
    assert_eq!(
        api.get_manifest(&r, &loose.manifest.digest).unwrap().status,
        404
    );
    assert!(!on_disk(&server, &loose.config.digest));
    assert_eq!(api.manifest_ok(&r, "v1"), tagged.manifest.bytes);
    for b in std::iter::once(&tagged.config).chain(tagged.layers.iter()) {
        assert!(on_disk(&server, &b.digest), "{}", b.digest);
    }
}
