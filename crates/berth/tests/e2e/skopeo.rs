//! skopeo against berth: copies in and out of OCI layouts (single image and multi-platform index) with
//! every digest kept, inspect, list-tags, and delete with deletion enabled and disabled.

use crate::harness::clients::version;
use crate::harness::http::OCI_INDEX;
use crate::harness::images::{
    by_digest, layout_blobs, layout_ref, multi_platform_index, sample_image, write_image_layout,
    write_layout,
};
use crate::harness::{Metadata, Options, Server, Storage, Tools, push_image, repo, sha256};

fn oci(dir: &std::path::Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

#[test]
fn skopeo_copy_layout_round_trip_keeps_every_digest() {
    copy_layout_round_trip(Storage::Filesystem, Metadata::Sqlite);
}

#[test]
fn skopeo_copy_layout_round_trip_keeps_every_digest_over_postgres() {
    copy_layout_round_trip(Storage::Filesystem, Metadata::Postgres);
}

#[test]
fn skopeo_copy_layout_round_trip_keeps_every_digest_over_s3() {
    copy_layout_round_trip(Storage::S3, Metadata::Sqlite);
}

#[test]
fn skopeo_copy_layout_round_trip_keeps_every_digest_over_s3_and_postgres() {
    copy_layout_round_trip(Storage::S3, Metadata::Postgres);
}

fn copy_layout_round_trip(storage: Storage, metadata: Metadata) {
    eprintln!("{}", version("skopeo"));
    let Some(server) = Server::try_start_with(Options {
        metadata,
        storage,
        ..Options::default()
    }) else {
        return;
    };
    let tools = Tools::new();
    let img = sample_image("skopeo-copy");
    let src = tools.scratch("src");
    write_image_layout(&src, "v1", &img);
    let repo = repo("skopeo-copy");
    let remote = format!("docker://{}/{repo}:v1", server.host());

    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &oci(&src, "v1"),
        &remote,
    ]);

    // What berth stored is exactly what was sent.
    let api = server.api();
    let r = api.get_manifest(&repo, "v1").unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.body, img.manifest.bytes,
        "manifest bytes changed on the way in"
    );
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(img.manifest.digest.as_str())
    );
    for blob in img.blobs() {
        let bytes = api.get_ok(&format!("/v2/{repo}/blobs/{}", blob.digest));
        assert_eq!(
            sha256(&bytes),
            blob.digest,
            "blob {} corrupt on the server",
            blob.digest
        );
    }

    let out = tools.scratch("out");
    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &remote,
        &oci(&out, "v1"),
    ]);

    assert_eq!(layout_ref(&out, "v1")["digest"], img.manifest.digest);
    let mut expected = by_digest(img.blobs());
    expected.insert(img.manifest.digest.clone(), img.manifest.bytes.clone());
    assert_eq!(
        layout_blobs(&out).keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the copy out holds other blobs than the copy in"
    );
}

#[test]
fn skopeo_copy_all_keeps_the_index_digest() {
    eprintln!("{}", version("skopeo"));
    let server = Server::start();
    let tools = Tools::new();
    let multi = multi_platform_index("skopeo-all");
    let src = tools.scratch("src");
    let blobs: Vec<_> = multi
        .images
        .iter()
        .flat_map(|i| std::iter::once(&i.manifest).chain(i.blobs()))
        .collect();
    write_layout(&src, &[("multi", &multi.index)], blobs.iter().copied());
    let repo = repo("skopeo-all");
    let remote = format!("docker://{}/{repo}:multi", server.host());

    tools.skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &oci(&src, "multi"),
        &remote,
    ]);

    let api = server.api();
    let r = api.get_manifest(&repo, "multi").unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.body, multi.index.bytes,
        "index bytes changed on the way in"
    );
    assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
    for img in &multi.images {
        let child = api.manifest_ok(&repo, &img.manifest.digest);
        assert_eq!(child, img.manifest.bytes);
    }

    let out = tools.scratch("out");
    tools.skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &remote,
        &oci(&out, "multi"),
    ]);

    assert_eq!(
        layout_ref(&out, "multi")["digest"],
        multi.index.digest,
        "index digest not preserved"
    );
    let mut expected = by_digest(blobs.iter().copied());
    expected.insert(multi.index.digest.clone(), multi.index.bytes.clone());
    assert_eq!(
        layout_blobs(&out),
        expected,
        "the copy out differs from the copy in"
    );
}

#[test]
fn skopeo_inspect_shows_the_pushed_manifest() {
    eprintln!("{}", version("skopeo"));
    let server = Server::start();
    let tools = Tools::new();
    let img = sample_image("skopeo-inspect");
    let repo = repo("skopeo-inspect");
    push_image(&server.api(), &repo, "v1", &img);
    let remote = format!("docker://{}/{repo}:v1", server.host());

    let raw = tools.skopeo(&["inspect", "--raw", "--tls-verify=false", &remote]);
    assert_eq!(
        sha256(raw.stdout.trim_end().as_bytes()),
        img.manifest.digest
    );

    let config = tools.skopeo(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &remote,
    ]);
    assert_eq!(
        sha256(config.stdout.trim_end().as_bytes()),
        img.config.digest
    );

    let info: serde_json::Value = serde_json::from_str(
        &tools
            .skopeo(&["inspect", "--tls-verify=false", &remote])
            .stdout,
    )
    .unwrap_or_else(|e| panic!("skopeo inspect printed no JSON: {e}"));
    assert_eq!(info["Digest"], img.manifest.digest);
    let layers: Vec<&str> = img.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(info["Layers"], serde_json::json!(layers));
}

#[test]
fn skopeo_list_tags_lists_every_pushed_tag() {
    eprintln!("{}", version("skopeo"));
    let server = Server::start();
    let tools = Tools::new();
    let repo = repo("skopeo-tags");
    let api = server.api();
    let (a, b) = (sample_image("tags-a"), sample_image("tags-b"));
    push_image(&api, &repo, "1.0", &a);
    push_image(&api, &repo, "latest", &a);
    push_image(&api, &repo, "2.0-rc", &b);
    // Another repository's tags must not show.
    push_image(&api, &format!("{repo}-other"), "elsewhere", &b);

    assert_eq!(
        tools.skopeo_tags(&server.host(), &repo),
        ["1.0", "2.0-rc", "latest"]
    );
}

#[test]
fn skopeo_delete_removes_the_manifest_and_its_tag() {
    eprintln!("{}", version("skopeo"));
    let server = Server::start();
    let tools = Tools::new();
    let repo = repo("skopeo-delete");
    let api = server.api();
    let (doomed, kept) = (sample_image("delete-doomed"), sample_image("delete-kept"));
    push_image(&api, &repo, "doomed", &doomed);
    push_image(&api, &repo, "kept", &kept);
    let host = server.host();

    tools.skopeo(&[
        "delete",
        "--tls-verify=false",
        &format!("docker://{host}/{repo}:doomed"),
    ]);

    for reference in ["doomed", doomed.manifest.digest.as_str()] {
        let r = api.get_manifest(&repo, reference).unwrap();
        assert_eq!(
            r.status,
            404,
            "{reference} still answers after delete: {}",
            r.describe()
        );
        assert_eq!(r.error_codes(), ["MANIFEST_UNKNOWN"]);
    }
    let gone = tools.try_skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/{repo}:doomed"),
    ]);
    assert!(
        !gone.success,
        "skopeo still inspects the deleted tag: {}",
        gone.describe()
    );
    // The other image is untouched.
    assert_eq!(api.manifest_ok(&repo, "kept"), kept.manifest.bytes);
    let tags = api.get_ok(&format!("/v2/{repo}/tags/list"));
    let tags: serde_json::Value = serde_json::from_slice(&tags).unwrap_or_default();
    assert_eq!(tags["tags"], serde_json::json!(["kept"]));
}

#[test]
fn delete_is_refused_when_disabled() {
    eprintln!("{}", version("skopeo"));
    let server = Server::start_with(Options {
        delete_enabled: false,
        ..Options::default()
    });
    let tools = Tools::new();
    let repo = repo("delete-disabled");
    let api = server.api();
    let img = sample_image("delete-disabled");
    push_image(&api, &repo, "v1", &img);

    let out = tools.try_skopeo(&[
        "delete",
        "--tls-verify=false",
        &format!("docker://{}/{repo}:v1", server.host()),
    ]);
    assert!(
        !out.success,
        "skopeo delete succeeded with deletion disabled: {}",
        out.describe()
    );

    let r = api
        .delete(&format!("/v2/{repo}/manifests/{}", img.manifest.digest))
        .unwrap();
    assert_eq!(r.status, 405, "{}", r.describe());
    assert_eq!(r.error_codes(), ["UNSUPPORTED"]);
    let r = api
        .delete(&format!("/v2/{repo}/blobs/{}", img.layers[0].digest))
        .unwrap();
    assert_eq!(r.status, 405, "{}", r.describe());

    assert_eq!(api.manifest_ok(&repo, "v1"), img.manifest.bytes);
    assert_eq!(
        api.manifest_ok(&repo, &img.manifest.digest),
        img.manifest.bytes
    );
    assert_eq!(
        api.get_ok(&format!("/v2/{repo}/blobs/{}", img.layers[0].digest)),
        img.layers[0].bytes
    );
}
