//! The parts of the distribution API that the real clients above do not exercise, spoken over raw HTTP:
//! the referrers API, ranged blob reads, and an upload that outlives a restart of the server.

use crate::harness::http::{OCI_INDEX, OCI_MANIFEST, Upload, range_last};
use crate::harness::images::{Blob, artifact, empty_config, sample_image};
use crate::harness::rng::Rng;
use crate::harness::{Api, BlobPush, Server, push_image, repo, sha256};

/// Pushes an artifact of `artifact_type` about `subject`; returns it and the answer to its manifest PUT.
fn push_artifact(
    api: &Api,
    repo: &str,
    artifact_type: &str,
    text: &str,
    subject: &Blob,
) -> (Blob, crate::harness::http::Resp) {
    let payload = Blob::new(artifact_type, text.as_bytes().to_vec());
    for blob in [&empty_config(), &payload] {
        api.push_blob(repo, &blob.bytes, BlobPush::Monolithic)
            .unwrap_or_else(|e| panic!("push of {}: {e}", blob.digest));
    }
    let manifest = artifact(artifact_type, &payload, subject);
    let resp = api
        .put_manifest(repo, &manifest.digest, OCI_MANIFEST, &manifest.bytes)
        .unwrap_or_else(|e| panic!("PUT artifact manifest: {e}"));
    (manifest, resp)
}

/// The `manifests` of a referrers answer, checked to be an OCI index.
fn referrers(api: &Api, path: &str) -> (Vec<serde_json::Value>, crate::harness::http::Resp) {
    let r = api
        .get(path, &[])
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status, 200, "GET {path}: {}", r.describe());
    let ct = r.header("Content-Type").unwrap_or_default();
    assert!(
        ct.starts_with(OCI_INDEX),
        "referrers answered with Content-Type {ct:?}"
    );
    let index = r.json();
    assert_eq!(index["schemaVersion"], 2);
    let list = index["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no manifests in {index}"));
    (list, r)
}

#[test]
fn referrers_list_artifacts_pushed_with_a_subject() {
    let server = Server::start();
    let api = server.api();
    let repo = repo("referrers");
    let image = sample_image("referrers");
    push_image(&api, &repo, "v1", &image);

    let (sbom, resp) = push_artifact(
        &api,
        &repo,
        "application/vnd.example.sbom.v1+json",
        "{\"sbom\":1}",
        &image.manifest,
    );
    assert_eq!(
        resp.header("OCI-Subject"),
        Some(image.manifest.digest.as_str()),
        "PUT with a subject answers OCI-Subject"
    );
    assert_eq!(
        resp.header("Docker-Content-Digest"),
        Some(sbom.digest.as_str())
    );
    let (sig, _) = push_artifact(
        &api,
        &repo,
        "application/vnd.example.signature.v1",
        "signed",
        &image.manifest,
    );

    let (list, _) = referrers(
        &api,
        &format!("/v2/{repo}/referrers/{}", image.manifest.digest),
    );
    let mut digests: Vec<&str> = list.iter().filter_map(|d| d["digest"].as_str()).collect();
    digests.sort();
    let mut expected = vec![sbom.digest.as_str(), sig.digest.as_str()];
    expected.sort();
    assert_eq!(digests, expected);
    let entry = list
        .iter()
        .find(|d| d["digest"] == sbom.digest.as_str())
        .unwrap_or_else(|| panic!("sbom missing"));
    assert_eq!(entry["mediaType"], OCI_MANIFEST);
    assert_eq!(entry["size"], sbom.bytes.len());
    assert_eq!(
        entry["artifactType"],
        "application/vnd.example.sbom.v1+json"
    );
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.created"],
        "2024-01-01T00:00:00Z"
    );

    // The artifact itself pulls back byte for byte.
    assert_eq!(api.manifest_ok(&repo, &sbom.digest), sbom.bytes);
}

#[test]
fn referrers_filter_by_artifact_type() {
    let server = Server::start();
    let api = server.api();
    let repo = repo("referrers-filter");
    let image = sample_image("referrers-filter");
    push_image(&api, &repo, "v1", &image);
    let (sbom, _) = push_artifact(
        &api,
        &repo,
        "application/vnd.example.sbom.v1+json",
        "{}",
        &image.manifest,
    );
    push_artifact(
        &api,
        &repo,
        "application/vnd.example.signature.v1",
        "sig",
        &image.manifest,
    );

    let path = format!(
        "/v2/{repo}/referrers/{}?artifactType=application/vnd.example.sbom.v1%2Bjson",
        image.manifest.digest
    );
    let (list, resp) = referrers(&api, &path);
    assert_eq!(resp.header("OCI-Filters-Applied"), Some("artifactType"));
    let digests: Vec<&str> = list.iter().filter_map(|d| d["digest"].as_str()).collect();
    assert_eq!(digests, [sbom.digest.as_str()]);
}

#[test]
fn referrers_of_an_unknown_subject_is_an_empty_index() {
    let server = Server::start();
    let api = server.api();
    let repo = repo("referrers-empty");
    push_image(&api, &repo, "v1", &sample_image("referrers-empty"));
    let unknown = sha256(b"no manifest has these bytes");
    let (list, _) = referrers(&api, &format!("/v2/{repo}/referrers/{unknown}"));
    assert!(list.is_empty(), "{list:?}");
    // A malformed digest is a bad request, not an empty list.
    let r = api
        .get(&format!("/v2/{repo}/referrers/sha256:nothex"), &[])
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.describe());
}

#[test]
fn blob_range_get_returns_the_requested_bytes() {
    let server = Server::start();
    let api = server.api();
    let repo = repo("range");
    let data = Rng::new(7).bytes(1_500_000);
    let digest = api
        .push_blob(&repo, &data, BlobPush::Chunked(400_000))
        .unwrap_or_else(|e| panic!("{e}"));
    let path = format!("/v2/{repo}/blobs/{digest}");
    let size = data.len();

    let whole = api.get(&path, &[]).unwrap();
    assert_eq!(whole.status, 200);
    assert_eq!(sha256(&whole.body), digest);
    assert_eq!(whole.header("Docker-Content-Digest"), Some(digest.as_str()));
    let head = api.head(&path).unwrap();
    assert_eq!(head.status, 200, "{}", head.describe());
    assert_eq!(
        head.header("Content-Length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(head.header("Docker-Content-Digest"), Some(digest.as_str()));

    for (start, end) in [
        (0usize, 0usize),
        (1000, 1999),
        (999_999, 1_234_567),
        (size - 10, size - 1),
    ] {
        let r = api
            .get(&path, &[("Range", &format!("bytes={start}-{end}"))])
            .unwrap();
        assert_eq!(r.status, 206, "bytes={start}-{end}: {}", r.describe());
        assert_eq!(r.body, &data[start..=end], "bytes={start}-{end}");
        assert_eq!(
            r.header("Content-Range"),
            Some(format!("bytes {start}-{end}/{size}").as_str())
        );
        assert_eq!(
            r.header("Content-Length"),
            Some((end - start + 1).to_string().as_str())
        );
    }
    // Open-ended.
    let r = api.get(&path, &[("Range", "bytes=1400000-")]).unwrap();
    assert_eq!(r.status, 206, "{}", r.describe());
    assert_eq!(r.body, &data[1_400_000..]);
    // Beyond the end.
    let r = api
        .get(&path, &[("Range", &format!("bytes={size}-{}", size + 10))])
        .unwrap();
    assert_eq!(r.status, 416, "{}", r.describe());
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes */{size}").as_str())
    );
}

#[test]
fn upload_survives_restart_and_finishes_after_it() {
    let mut server = Server::start();
    let repo = repo("upload-restart");
    let data = Rng::new(11).bytes(3_000_000);
    let digest = sha256(&data);
    let (first, rest) = data.split_at(1_200_000);

    let api = server.api();
    let mut upload = api.start_upload(&repo).unwrap_or_else(|e| panic!("{e}"));
    api.patch(&mut upload, first)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(upload.offset, first.len() as u64);

    server.restart();

    let api = server.api();
    let status = api.get(&upload.location, &[]).unwrap();
    assert_eq!(
        status.status,
        204,
        "upload status after restart: {}",
        status.describe()
    );
    assert_eq!(range_last(&status), Some(first.len() as u64 - 1));
    // A chunk that does not continue where the upload stands is refused, and changes nothing.
    let mut wrong = Upload {
        location: upload.location.clone(),
        offset: 1000,
    };
    match api.patch(&mut wrong, &rest[..1000]) {
        Err(crate::harness::http::PushError::Refused { resp, .. }) => {
            assert_eq!(resp.status, 416, "{}", resp.describe())
        }
        other => panic!("out-of-order PATCH accepted: {other:?}"),
    }
    api.patch(&mut upload, &rest[..800_000])
        .unwrap_or_else(|e| panic!("{e}"));
    let done = api
        .finish(&upload, &digest, &rest[800_000..])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(api.get_ok(&format!("/v2/{repo}/blobs/{digest}")), data);
    // The finished session is gone.
    let r = api.get(&upload.location, &[]).unwrap();
    assert_eq!(r.status, 404, "{}", r.describe());
    assert_eq!(r.error_codes(), ["BLOB_UPLOAD_UNKNOWN"]);
}
