//! `berth garbage-collect --delete-untagged` keeps everything a tag reaches: skopeo pushes a
//! multi-platform index under a tag, signature-like artifacts name the index and one of its children as
//! `subject`; an image pushed by digest only (sharing a layer with the index's children) and its own
//! signature are untagged. The collection deletes exactly those two manifests and the blobs only they
//! had, measured where the bytes are (the data directory, or the bucket's objects); every child of the
//! index, every referrer of a tagged manifest and all their blobs pull back with skopeo byte for byte,
//! and the dry run before changed nothing in the store. Over the filesystem with SQLite, and over S3
//! (Garage) with PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::gc;
use super::stored::Stored;
use crate::harness::http::OCI_MANIFEST;
use crate::harness::images::{
    Blob, artifact, by_digest, empty_config, host_arch, image, layout_blobs, layout_ref,
    multi_platform_index, write_layout,
};
use crate::harness::s3::S3Bucket;
use crate::harness::{Api, BlobPush, Metadata, Options, Server, Storage, Tools, push_image, repo};

#[test]
fn untagged_gc_keeps_what_a_tag_reaches() {
    untagged_gc(Storage::Filesystem, Metadata::Sqlite);
}

#[test]
fn untagged_gc_keeps_what_a_tag_reaches_over_s3_and_postgres() {
    untagged_gc(Storage::S3, Metadata::Postgres);
}

const SIGNATURE: &str = "application/vnd.example.signature.v1+json";

fn oci(dir: &std::path::Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// Pushes an artifact of `text` about `subject` by digest (no tag); returns its manifest and payload.
fn push_referrer(api: &Api, repo: &str, text: &str, subject: &Blob) -> (Blob, Blob) {
    let payload = Blob::new(SIGNATURE, text.as_bytes().to_vec());
    for blob in [&empty_config(), &payload] {
        api.push_blob(repo, &blob.bytes, BlobPush::Monolithic)
            .unwrap_or_else(|e| panic!("push of {}: {e}", blob.digest));
    }
    let manifest = artifact(SIGNATURE, &payload, subject);
    api.put_manifest(repo, &manifest.digest, OCI_MANIFEST, &manifest.bytes)
        .unwrap_or_else(|e| panic!("PUT of the artifact about {}: {e}", subject.digest));
    (manifest, payload)
}

fn untagged_gc(storage: Storage, metadata: Metadata) {
    let test = std::thread::current().name().unwrap_or("gc").to_string();
    let bucket = match storage {
        Storage::Filesystem => None,
        Storage::S3 => match S3Bucket::from_env(&test) {
            Some(b) => Some(b),
            None => return,
        },
    };
    let Some(server) = Server::try_start_with(Options {
        storage,
        metadata,
        s3: bucket.clone(),
        ..Options::default()
    }) else {
        return;
    };
    let stored = match bucket {
        Some(b) => Stored::Bucket(b),
        None => Stored::Dir(server.root().to_path_buf()),
    };
    let (api, tools, host) = (server.api(), Tools::new(), server.host());
    let r = repo("gc-untagged");

    // Tagged: the index, pushed by skopeo with every platform.
    let multi = multi_platform_index("gc-untagged");
    let children: Vec<&Blob> = multi
        .images
        .iter()
        .flat_map(|i| std::iter::once(&i.manifest).chain(i.blobs()))
        .collect();
    let src = tools.scratch("src");
    write_layout(&src, &[("multi", &multi.index)], children.iter().copied());
    tools.skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &oci(&src, "multi"),
        &format!("docker://{host}/{r}:multi"),
    ]);
    // Reached through the tag: a signature of the index, and one of its arm64 child.
    let (index_sig, index_sig_payload) = push_referrer(&api, &r, "signed: index", &multi.index);
    let arm64 = &multi.images[1].manifest;
    let (child_sig, child_sig_payload) = push_referrer(&api, &r, "signed: arm64", arm64);

    // Untagged: an image pushed by digest only, with the layer every child of the index has, and its
    // signature (which shares the empty config with the kept ones).
    let loose = image(
        host_arch(),
        "gc-untagged-loose",
        &[
            &[("etc/motd", b"multi\n")],
            &[("loose.txt", b"nothing tags me\n")],
        ],
    );
    let shared = &loose.layers[0];
    assert!(
        multi
            .images
            .iter()
            .all(|i| i.layers.iter().any(|l| l.digest == shared.digest)),
        "the loose image shares a layer with the index's children"
    );
    let resp = push_image(&api, &r, &loose.manifest.digest, &loose);
    assert_eq!(resp.status, 201, "{}", resp.describe());
    let (loose_sig, loose_sig_payload) = push_referrer(&api, &r, "signed: loose", &loose.manifest);

    let gone_manifests: BTreeSet<String> = [&loose.manifest, &loose_sig]
        .iter()
        .map(|m| format!("{r}@{}", m.digest))
        .collect();
    let gone_blobs: BTreeMap<String, u64> = [&loose.config, &loose.layers[1], &loose_sig_payload]
        .iter()
        .map(|b| (b.digest.clone(), b.bytes.len() as u64))
        .collect();
    let before = stored.blobs();
    for digest in gone_blobs.keys() {
        assert!(before.contains_key(digest), "{digest} was never stored");
    }

    // The dry run names the two manifests and changes nothing in the store, nor in the registry.
    let everything = stored.everything();
    let dry = gc(&server, &["--dry-run", "--delete-untagged", "--grace", "0"]);
    assert_eq!(
        deleted_manifests(&dry, "would delete"),
        gone_manifests,
        "{dry}"
    );
    assert_eq!(
        stored.everything(),
        everything,
        "the dry run changed the store"
    );
    assert_eq!(
        api.manifest_ok(&r, &loose.manifest.digest),
        loose.manifest.bytes
    );

    let out = gc(&server, &["--delete-untagged", "--grace", "0"]);
    assert_eq!(deleted_manifests(&out, "deleted"), gone_manifests, "{out}");
    let freed: u64 = gone_blobs.values().sum();
    assert!(
        out.contains(&format!(
            "freed {} blobs, {freed} bytes, 2 untagged manifests",
            gone_blobs.len()
        )),
        "{out}"
    );
    // Exactly the untagged manifests' own blobs left the store, and nothing else.
    let after = stored.blobs();
    let left: BTreeMap<String, u64> = before
        .iter()
        .filter(|(d, _)| !after.contains_key(*d))
        .map(|(d, s)| (d.clone(), *s))
        .collect();
    assert_eq!(
        left, gone_blobs,
        "what the collection deleted from the store"
    );
    for m in [&loose.manifest, &loose_sig] {
        wait_unknown(&api, &r, &m.digest);
    }

    // What the tag reaches pulls back whole: the index with every child, and both signatures.
    let out_dir = tools.scratch("out");
    tools.skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{host}/{r}:multi"),
        &oci(&out_dir, "multi"),
    ]);
    assert_eq!(layout_ref(&out_dir, "multi")["digest"], multi.index.digest);
    let mut expected = by_digest(children.iter().copied());
    expected.insert(multi.index.digest.clone(), multi.index.bytes.clone());
    for (sig, payload) in [
        (&index_sig, &index_sig_payload),
        (&child_sig, &child_sig_payload),
    ] {
        let tag = &sig.hex()[..12];
        tools.skopeo(&[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &format!("docker://{host}/{r}@{}", sig.digest),
            &oci(&out_dir, tag),
        ]);
        assert_eq!(layout_ref(&out_dir, tag)["digest"], sig.digest);
        expected.extend(by_digest([sig, payload, &empty_config()]));
    }
    assert_eq!(
        layout_blobs(&out_dir),
        expected,
        "what pulls back after the collection"
    );
    // The referrers API still lists both signatures.
    for (subject, sig) in [(&multi.index, &index_sig), (arm64, &child_sig)] {
        let list = api.get_ok(&format!("/v2/{r}/referrers/{}", subject.digest));
        let list: serde_json::Value = serde_json::from_slice(&list).unwrap_or_default();
        assert_eq!(
            list["manifests"][0]["digest"],
            sig.digest.as_str(),
            "{list}"
        );
    }

    // Nothing else is left to collect.
    let again = gc(&server, &["--delete-untagged", "--grace", "0"]);
    assert!(
        again.contains("freed 0 blobs, 0 bytes, 0 untagged manifests"),
        "{again}"
    );
}

/// The `<repo>@<digest>` of the lines `<verb> manifest <repo>@<digest>` of a collection's output.
fn deleted_manifests(out: &str, verb: &str) -> BTreeSet<String> {
    let prefix = format!("{verb} manifest ");
    out.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// Waits until manifest `digest` of `repo` answers 404: the serving registry may answer from its
/// metadata cache for `limits.metadatacachettl` (1 s) after another process deleted it.
fn wait_unknown(api: &Api, repo: &str, digest: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let resp = api
            .get_manifest(repo, digest)
            .unwrap_or_else(|e| panic!("GET {digest}: {e}"));
        if resp.status == 404 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{digest} is still served past the cache's bound: {}",
            resp.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
