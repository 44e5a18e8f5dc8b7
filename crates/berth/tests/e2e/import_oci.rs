//! `berth import oci` against the real binary: layouts written by skopeo (an image and a multi-platform
//! index in one layout; a zot-like tree of layouts) go into a running berth's stores, and skopeo pulls
//! them back with every digest kept.

use std::path::Path;

use crate::harness::images::{
    multi_platform_index, sample_image, write_image_layout, write_layout,
};
use crate::harness::{Server, Tools};

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

#[test]
fn skopeos_layouts_import_and_pull_back_identical() {
    let server = Server::start();
    let tools = Tools::new();

    // The test's own layouts, rewritten by skopeo into one layout of two tags: what users have.
    let single = sample_image("import-single");
    let multi = multi_platform_index("import-multi");
    let src_single = tools.scratch("src-single");
    write_image_layout(&src_single, "v1", &single);
    let src_multi = tools.scratch("src-multi");
    let blobs: Vec<_> = multi
        .images
        .iter()
        .flat_map(|i| std::iter::once(&i.manifest).chain(i.blobs()))
        .collect();
    write_layout(
        &src_multi,
        &[("multi", &multi.index)],
        blobs.iter().copied(),
    );
    let made = tools.scratch("made");
    for (src, tag) in [(&src_single, "v1"), (&src_multi, "multi")] {
        tools.skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            &oci(src, tag),
            &oci(&made, tag),
        ]);
    }

    let out = server.berth_ok(&[
        "import",
        "oci",
        &made.display().to_string(),
        "--repository",
        "e2e/imported",
    ]);
    assert!(out.contains("2 tags imported"), "{out}");
    assert!(out.contains("0 entries left out"), "{out}");

    let api = server.api();
    let got = api.manifest_ok("e2e/imported", "v1");
    assert_eq!(got, single.manifest.bytes);
    let got = api.manifest_ok("e2e/imported", "multi");
    assert_eq!(got, multi.index.bytes);

    // Pulled back by skopeo into a layout: every digest as pushed.
    let back = tools.scratch("back");
    tools.skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}/e2e/imported:multi", server.host()),
        &oci(&back, "multi"),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"].as_str(),
        Some(multi.index.digest.as_str())
    );
    for img in &multi.images {
        for blob in img.blobs() {
            let hex = blob.digest.trim_start_matches("sha256:");
            assert!(
                back.join("blobs/sha256").join(hex).is_file(),
                "{}",
                blob.digest
            );
        }
    }

    // A tree of layouts, one per repository, as zot keeps them: the paths name the repositories,
    // and nothing already held is copied again.
    let tree = tools.scratch("tree");
    for path in ["team/one", "two"] {
        let dir = tree.join(path);
        std::fs::create_dir_all(&dir).unwrap();
        tools.skopeo(&[
            "copy",
            "--preserve-digests",
            &oci(&src_single, "v1"),
            &oci(&dir, "latest"),
        ]);
    }
    let out = server.berth_ok(&["import", "oci", &tree.display().to_string()]);
    assert!(out.contains("0 blobs copied (0 bytes)"), "{out}");
    assert_eq!(api.manifest_ok("team/one", "latest"), single.manifest.bytes);
    assert_eq!(api.manifest_ok("two", "latest"), single.manifest.bytes);
}
