//! A registry:3 configuration given as a compose file gives it, in `REGISTRY_*` variables only, to the
//! real binary: `tags.maxtags` pages a tag listing, `validation.manifests.indexes.platforms: none` takes
//! a sparse index, `http.h2c.enabled: false` refuses HTTP/2 by prior knowledge (which the default
//! serves), and list items come from `_0`, `_1` variables.

use std::process::Command;

use crate::harness::clients::version;
use crate::harness::http::Api;
use crate::harness::{Options, Server, repo, sha256};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Pushes a one-layer image into `r`; returns its manifest's digest and size.
fn push_image(api: &Api, r: &str, seed: &str) -> (String, usize) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let layer = format!("layer {seed}").into_bytes();
    let how = crate::harness::http::BlobPush::Monolithic;
    let c = api
        .push_blob(r, config.as_bytes(), how)
        .unwrap_or_else(|e| panic!("config: {e:?}"));
    let l = api
        .push_blob(r, &layer, how)
        .unwrap_or_else(|e| panic!("layer: {e:?}"));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{l}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    api.put_manifest(r, seed, OCI_MANIFEST, manifest.as_bytes())
        .unwrap_or_else(|e| panic!("manifest {seed}: {e:?}"));
    (sha256(manifest.as_bytes()), manifest.len())
}

/// Whether curl gets `/v2/` answered over HTTP/2 by prior knowledge (h2c).
fn h2c_answered(server: &Server) -> bool {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            "--max-time",
            "10",
        ])
        .arg("--http2-prior-knowledge")
        .arg(format!("http://{}/v2/", server.host()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "2"
}

#[test]
fn a_registry3_compose_configuration_in_variables() {
    eprintln!("{}", version("curl"));
    let env = [
        ("REGISTRY_TAGS_MAXTAGS", "2"),
        ("REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMS", "list"),
        (
            "REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMLIST_0_OS",
            "linux",
        ),
        (
            "REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMLIST_0_ARCHITECTURE",
            "amd64",
        ),
        ("REGISTRY_HTTP_H2C_ENABLED", "false"),
    ];
    let server = Server::start_with(Options {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Options::default()
    });
    let api = server.api();
    let r = repo("registry3");
    let (amd, size) = push_image(&api, &r, "a");
    push_image(&api, &r, "b");
    push_image(&api, &r, "c");

    // tags.maxtags: two a page, the rest behind the Link.
    let resp = api
        .get(&format!("/v2/{r}/tags/list?n=100"), &[])
        .unwrap_or_else(|e| panic!("tags: {e}"));
    assert_eq!(resp.status, 200, "{}", resp.describe());
    assert_eq!(resp.json()["tags"], serde_json::json!(["a", "b"]));
    let link = resp
        .header("link")
        .unwrap_or_else(|| panic!("no Link: {}", resp.describe()));
    assert!(link.contains("last=b"), "{link}");

    // A sparse index: the arm64 child is absent, and only linux/amd64 children must exist.
    let absent = sha256(b"an arm64 image never pushed");
    let index = |first: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{first}","size":{size},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{absent}","size":500,"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#
        )
    };
    api.put_manifest(&r, "multi", OCI_INDEX, index(&amd).as_bytes())
        .unwrap_or_else(|e| panic!("sparse index: {e:?}"));
    let missing_amd = sha256(b"an amd64 image never pushed");
    let refused = api
        .request(
            "PUT",
            &format!("/v2/{r}/manifests/broken"),
            &[("Content-Type", OCI_INDEX)],
            Some(index(&missing_amd).as_bytes()),
        )
        .unwrap_or_else(|e| panic!("PUT: {e}"));
    assert_eq!(refused.status, 400, "{}", refused.describe());
    assert_eq!(refused.error_codes(), ["MANIFEST_BLOB_UNKNOWN"]);

    // h2c off here; berth's default serves it.
    assert!(
        !h2c_answered(&server),
        "h2c answered with h2c.enabled: false"
    );
    let default = Server::start();
    assert!(h2c_answered(&default), "h2c refused by default");
}
