//! `Registry::import_oci` over layouts written by hand: what goes where, what is linked rather than
//! copied, and what is left out with the reason.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use std::path::Path;

use common::*;
use oci::Digest;
use serde_json::json;

/// An OCI layout being written: blobs by digest, then `index.json`.
struct LayoutWriter<'a> {
    root: &'a Path,
    entries: Vec<serde_json::Value>,
}

impl<'a> LayoutWriter<'a> {
    fn new(root: &'a Path) -> LayoutWriter<'a> {
        std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        LayoutWriter {
            root,
            entries: Vec::new(),
        }
    }

    fn blob(&self, bytes: &[u8]) -> (Digest, usize) {
        let digest = sha256(bytes);
        std::fs::write(self.root.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
        (digest, bytes.len())
    }

    /// An image of one layer seeded by `seed`: its manifest's digest, size and bytes.
    fn image(&self, seed: u8) -> (Digest, usize, String) {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
        let c = self.blob(config.as_bytes());
        let l = self.blob(&content(5000, seed));
        let manifest = image_manifest((&c.0, c.1), &[(&l.0, l.1)]);
        let m = self.blob(manifest.as_bytes());
        (m.0, m.1, manifest)
    }

    fn entry(&mut self, media_type: &str, digest: &Digest, size: usize, ref_name: Option<&str>) {
        let mut e = json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size });
        if let Some(r) = ref_name {
            e["annotations"] = json!({ "org.opencontainers.image.ref.name": r });
        }
        self.entries.push(e);
    }

    fn finish(self) {
        let index = json!({ "schemaVersion": 2, "manifests": self.entries });
        std::fs::write(self.root.join("index.json"), index.to_string()).unwrap();
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[tokio::test]
async fn a_layout_imports_its_tags_indexes_and_referrers_and_links_what_is_there() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let mut w = LayoutWriter::new(dir.path());
    let (img, img_size, img_bytes) = w.image(1);
    let (amd, amd_size, _) = w.image(2);
    let (arm, arm_size, _) = w.image(3);
    let index = index_manifest(&[(&amd, amd_size), (&arm, arm_size)]);
    let (idx, idx_size) = w.blob(index.as_bytes());
    let sig_layer = w.blob(b"a signature");
    w.blob(b"{}");
    let sig = referrer_manifest(
        "application/vnd.example.sig",
        &img,
        (&sig_layer.0, sig_layer.1),
    );
    let (sig_digest, sig_size) = w.blob(sig.as_bytes());
    w.entry(OCI_MANIFEST, &img, img_size, Some("v1"));
    w.entry(OCI_INDEX, &idx, idx_size, Some("multi"));
    w.entry(OCI_MANIFEST, &sig_digest, sig_size, None);
    w.finish();

    let r = repo("team/app");
    let report = env.reg.import_oci(dir.path(), Some(&r)).await.unwrap();
    assert_eq!(report.skipped, vec![]);
    assert_eq!(report.layouts, 1);
    assert_eq!(report.tags, vec!["team/app:v1", "team/app:multi"]);
    // The image, the index and its two children, the signature.
    assert_eq!(report.manifests, 5);
    assert_eq!(report.blobs_copied, 8);
    let got = env.reg.get_manifest(&r, &tag("v1")).await.unwrap();
    assert_eq!(got.payload, img_bytes.as_bytes());
    let got = env.reg.get_manifest(&r, &tag("multi")).await.unwrap();
    assert_eq!((got.digest, got.payload.as_ref()), (idx, index.as_bytes()));
    let referrers = env.reg.referrers(&r, &img, None).await.unwrap();
    assert_eq!(referrers.manifests.len(), 1);
    assert_eq!(referrers.manifests[0].digest, sig_digest);

    // Again, into another repository: every blob is linked from the first, none copied.
    let again = env
        .reg
        .import_oci(dir.path(), Some(&repo("team/copy")))
        .await
        .unwrap();
    assert_eq!((again.blobs_copied, again.bytes_copied), (0, 0));
    assert_eq!(again.blobs_linked, 8);
    assert_eq!(again.manifests, 5);
}

#[tokio::test]
async fn a_tree_of_layouts_is_a_repository_per_path_and_full_references_name_their_own() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    for (path, seed) in [("a/one", 1), ("b", 2)] {
        let root = dir.path().join(path);
        let mut w = LayoutWriter::new(&root);
        let (m, size, _) = w.image(seed);
        w.entry(OCI_MANIFEST, &m, size, Some("latest"));
        w.finish();
    }
    let report = env.reg.import_oci(dir.path(), None).await.unwrap();
    assert_eq!(report.layouts, 2);
    assert_eq!(report.tags, vec!["a/one:latest", "b:latest"]);
    let report = env
        .reg
        .import_oci(dir.path(), Some(&repo("mirror")))
        .await
        .unwrap();
    assert_eq!(report.tags, vec!["mirror/a/one:latest", "mirror/b:latest"]);

    // One layout of whole references (podman's), without --repository.
    let single = tempfile::tempdir().unwrap();
    let mut w = LayoutWriter::new(single.path());
    let (m, size, _) = w.image(4);
    w.entry(OCI_MANIFEST, &m, size, Some("localhost/tools/cli:1.0"));
    w.entry(OCI_MANIFEST, &m, size, Some("bare-tag"));
    w.finish();
    let report = env.reg.import_oci(single.path(), None).await.unwrap();
    assert_eq!(report.tags, vec!["tools/cli:1.0"]);
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].why.contains("--repository"),
        "{:?}",
        report.skipped
    );
}

#[tokio::test]
async fn what_cannot_be_imported_is_reported_and_the_rest_goes_in() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let mut w = LayoutWriter::new(dir.path());
    let (good, good_size, _) = w.image(1);
    // A sparse index: one child's manifest is not in the layout.
    let (amd, amd_size, _) = w.image(2);
    let absent = sha256(b"a manifest the layout does not hold");
    let index = index_manifest(&[(&amd, amd_size), (&absent, 300)]);
    let (idx, idx_size) = w.blob(index.as_bytes());
    // A layer whose bytes are not those of its digest.
    let (bad, bad_size, bad_manifest) = w.image(5);
    let layer = content(5000, 5);
    std::fs::write(
        dir.path().join("blobs/sha256").join(sha256(&layer).hex()),
        b"tampered",
    )
    .unwrap();
    assert!(bad_manifest.contains(&sha256(&layer).to_string()));
    w.entry(OCI_MANIFEST, &good, good_size, Some("good"));
    w.entry(OCI_INDEX, &idx, idx_size, Some("sparse"));
    w.entry(OCI_MANIFEST, &bad, bad_size, Some("tampered"));
    w.finish();

    let r = repo("app");
    let report = env.reg.import_oci(dir.path(), Some(&r)).await.unwrap();
    assert_eq!(report.tags, vec!["app:good"]);
    let reasons: Vec<(&str, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.what.rsplit(": ").next().unwrap(), s.why.as_str()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, "sparse");
    assert!(reasons[0].1.contains(&absent.to_string()), "{reasons:?}");
    assert_eq!(reasons[1].0, "tampered");
    assert!(
        reasons[1].1.contains(&sha256(&layer).to_string()),
        "{reasons:?}"
    );
    assert!(env.reg.get_manifest(&r, &tag("sparse")).await.is_err());
    assert!(env.reg.get_manifest(&r, &tag("tampered")).await.is_err());
    // No tampered bytes were stored under the layer's digest.
    assert!(env.reg.stat_blob(&r, &sha256(&layer)).await.is_err());
}

#[tokio::test]
async fn a_directory_without_a_layout_is_an_error() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let e = env.reg.import_oci(dir.path(), None).await.unwrap_err();
    assert!(e.to_string().contains("no OCI image layout"), "{e}");
}
