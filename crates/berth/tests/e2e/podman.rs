//! podman against berth: push an image, pull it into a fresh store, and check that the digest podman
//! reports, the manifest berth stores and the unpacked layers all agree with what was built; over every
//! storage and metadata engine.

use crate::harness::clients::version;
use crate::harness::images::{gunzip, sample_image, write_image_layout};
use crate::harness::{Metadata, Options, Server, Storage, Tools, repo, sha256};

#[test]
fn podman_push_then_pull_keeps_the_digest() {
    push_then_pull(Storage::Filesystem, Metadata::Sqlite);
}

#[test]
fn podman_push_then_pull_keeps_the_digest_over_postgres() {
    push_then_pull(Storage::Filesystem, Metadata::Postgres);
}

#[test]
fn podman_push_then_pull_keeps_the_digest_over_s3() {
    push_then_pull(Storage::S3, Metadata::Sqlite);
}

#[test]
fn podman_push_then_pull_keeps_the_digest_over_s3_and_postgres() {
    push_then_pull(Storage::S3, Metadata::Postgres);
}

fn push_then_pull(storage: Storage, metadata: Metadata) {
    eprintln!("{}", version("podman"));
    let Some(server) = Server::try_start_with(Options {
        metadata,
        storage,
        ..Options::default()
    }) else {
        return;
    };
    let pusher = Tools::new();
    let img = sample_image("podman");
    let layout = pusher.scratch("layout");
    write_image_layout(&layout, "v1", &img);

    // Into podman's store from the layout (local, no network), under a name of ours.
    let pulled = pusher.podman(&["pull", "-q", &format!("oci:{}:v1", layout.display())]);
    let id = pulled
        .stdout
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(
        !id.is_empty(),
        "podman pull printed no image id: {}",
        pulled.describe()
    );
    pusher.podman(&["tag", &id, "localhost/berth-e2e/podman:v1"]);

    let repo = repo("podman");
    let remote = format!("{}/{repo}:v1", server.host());
    let digestfile = pusher.path("pushed.digest");
    pusher.podman(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        digestfile.to_str().unwrap_or_default(),
        "localhost/berth-e2e/podman:v1",
        &format!("docker://{remote}"),
    ]);
    let pushed =
        std::fs::read_to_string(&digestfile).unwrap_or_else(|e| panic!("no digest file: {e}"));
    let pushed = pushed.trim();
    assert!(
        pushed.starts_with("sha256:"),
        "digest file holds {pushed:?}"
    );

    // Server side: the stored manifest is the one podman pushed, and its layers unpack to what was built
    // (podman may recompress, so the uncompressed digests are what must match).
    let api = server.api();
    let r = api.get_manifest(&repo, "v1").unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(sha256(&r.body), pushed);
    assert_eq!(r.header("Docker-Content-Digest"), Some(pushed));
    let manifest = r.json();
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    assert_eq!(layers.len(), img.layers.len());
    for (layer, diff_id) in layers.iter().zip(&img.diff_ids) {
        let digest = layer["digest"].as_str().unwrap_or_default();
        let bytes = api.get_ok(&format!("/v2/{repo}/blobs/{digest}"));
        assert_eq!(sha256(&bytes), digest);
        assert_eq!(
            &sha256(&gunzip(&bytes)),
            diff_id,
            "layer {digest} unpacks to other content"
        );
    }

    // A fresh store pulls it back under the same digest and the same uncompressed layers.
    let puller = Tools::new();
    puller.podman(&["pull", "-q", "--tls-verify=false", &remote]);
    let digest = puller.podman(&["image", "inspect", "--format", "{{.Digest}}", &remote]);
    assert_eq!(
        digest.stdout.trim(),
        pushed,
        "pulled digest differs from pushed one"
    );
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
}
