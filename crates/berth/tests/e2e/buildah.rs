//! buildah against berth: an image built `FROM scratch` with one copied file, pushed, then read back with
//! skopeo (file content checked inside the layer) and podman (digest checked).

use crate::harness::clients::version;
use crate::harness::images::{gunzip, layout_blobs, layout_ref, untar};
use crate::harness::{Server, Tools, repo, sha256};

#[test]
fn buildah_scratch_image_push_then_pull() {
    eprintln!("{}", version("buildah"));
    eprintln!("{}", version("skopeo"));
    eprintln!("{}", version("podman"));
    let server = Server::start();
    let builder = Tools::new();
    let greeting = format!(
        "built by buildah for berth at {:?}\n",
        std::time::SystemTime::now()
    );
    let file = builder.scratch("context").join("greeting.txt");
    std::fs::write(&file, &greeting).unwrap_or_else(|e| panic!("{}: {e}", file.display()));

    let ctr = builder
        .buildah(&["from", "scratch"])
        .stdout
        .trim()
        .to_owned();
    assert!(!ctr.is_empty(), "buildah from printed no container name");
    builder.buildah(&[
        "copy",
        &ctr,
        file.to_str().unwrap_or_default(),
        "/greeting.txt",
    ]);
    builder.buildah(&["config", "--cmd", "/greeting.txt", &ctr]);
    builder.buildah(&[
        "commit",
        "--format",
        "oci",
        &ctr,
        "localhost/berth-e2e/scratch:v1",
    ]);

    let repo = repo("buildah");
    let remote = format!("{}/{repo}:v1", server.host());
    let digestfile = builder.path("pushed.digest");
    builder.buildah(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        digestfile.to_str().unwrap_or_default(),
        "localhost/berth-e2e/scratch:v1",
        &format!("docker://{remote}"),
    ]);
    let pushed =
        std::fs::read_to_string(&digestfile).unwrap_or_else(|e| panic!("no digest file: {e}"));
    let pushed = pushed.trim().to_owned();
    assert_eq!(sha256(&server.api().manifest_ok(&repo, "v1")), pushed);

    // skopeo copies it out; the layer holds the file, byte for byte.
    let reader = Tools::new();
    let out = reader.scratch("out");
    reader.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{remote}"),
        &format!("oci:{}:v1", out.display()),
    ]);
    assert_eq!(layout_ref(&out, "v1")["digest"], pushed.as_str());
    let blobs = layout_blobs(&out);
    let manifest: serde_json::Value = serde_json::from_slice(&blobs[&pushed]).unwrap_or_default();
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    assert_eq!(layers.len(), 1, "one `buildah copy`, one layer: {manifest}");
    let layer = &blobs[layers[0]["digest"].as_str().unwrap_or_default()];
    let media_type = layers[0]["mediaType"].as_str().unwrap_or_default();
    let tar = if media_type.ends_with("gzip") {
        gunzip(layer)
    } else {
        layer.clone()
    };
    let files = untar(&tar);
    assert_eq!(
        files
            .get("greeting.txt")
            .map(|b| String::from_utf8_lossy(b).into_owned()),
        Some(greeting),
        "files in the layer: {:?}",
        files.keys().collect::<Vec<_>>()
    );

    // podman, in a store of its own, pulls the same digest.
    let puller = Tools::new();
    puller.podman(&["pull", "-q", "--tls-verify=false", &remote]);
    let digest = puller.podman(&["image", "inspect", "--format", "{{.Digest}}", &remote]);
    assert_eq!(digest.stdout.trim(), pushed);
}
