//! The metadata database or the S3 blob storage goes away and comes back: berth answers 503 UNAVAILABLE
//! with the spec's error body (never a 500, never a host name) to what needs the missing engine, its
//! readiness probe fails, nothing half-done is left behind, and once the engine is back every request
//! works again, including an upload started before the outage.
//!
//! The engines are servers of the test's own (`harness::private_postgres`, `harness::private_garage`),
//! stopped while berth runs (every connection cut, new ones refused) and started again on the same port.

use std::time::{Duration, Instant};

use crate::harness::http::{Resp, content_range};
use crate::harness::images::sample_image;
use crate::harness::private_garage::PrivateGarage;
use crate::harness::private_postgres::PrivatePostgres;
use crate::harness::{Api, BlobPush, Options, Server, Storage, push_image, repo, sha256};

/// How long readiness may take to follow the database: the check interval configured below, plus the
/// store's bounded retries inside one check, plus slack for a loaded machine.
const READINESS_BOUND: Duration = Duration::from_secs(20);

#[test]
fn postgres_outage_answers_503_and_recovers_without_partial_state() {
    let test = "postgres_outage_answers_503_and_recovers_without_partial_state";
    let Some(pg) = PrivatePostgres::start(test) else {
        return;
    };
    let db = pg.database();
    let mut env: Vec<(String, String)> = db
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.push((
        "REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL".into(),
        "500ms".into(),
    ));
    let server = Server::start_with(Options {
        env,
        ..Options::default()
    });
    let api = server.api();
    let repo = repo("outage");
    let img = sample_image("outage");
    let put = push_image(&api, &repo, "v1", &img);
    assert_eq!(put.status, 201, "{}", put.describe());
    assert_eq!(api.get_ok("/readyz"), b"ok\n");
    // An upload with its first chunk acknowledged, to be finished after the outage.
    let first = vec![7u8; 300_000];
    let second = vec![9u8; 200_000];
    let mut upload = api.start_upload(&repo).unwrap_or_else(|e| panic!("{e}"));
    api.patch(&mut upload, &first)
        .unwrap_or_else(|e| panic!("{e}"));

    pg.stop();

    // Every operation that needs the database: 503 UNAVAILABLE, Retry-After, no internals.
    let blob_during = b"a blob pushed while the database is down".to_vec();
    let attempts: Vec<(&str, Resp)> = vec![
        ("GET manifest", must(api.get_manifest(&repo, "v1"))),
        (
            "GET tags",
            must(api.get(&format!("/v2/{repo}/tags/list"), &[])),
        ),
        (
            "GET blob",
            must(api.get(&format!("/v2/{repo}/blobs/{}", img.config.digest), &[])),
        ),
        ("GET catalog", must(api.get("/v2/_catalog", &[]))),
        (
            "PUT manifest",
            must(api.request(
                "PUT",
                &format!("/v2/{repo}/manifests/v2"),
                &[("Content-Type", img.manifest.media_type.as_str())],
                Some(&img.manifest.bytes),
            )),
        ),
        (
            "POST upload",
            must(api.request(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                Some(&[]),
            )),
        ),
        (
            "single-POST blob",
            must(api.request(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(&blob_during)),
                &[("Content-Type", "application/octet-stream")],
                Some(&blob_during),
            )),
        ),
        (
            "PATCH upload",
            must(api.request(
                "PATCH",
                &upload.location,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Range", &content_range(upload.offset, 10)),
                ],
                Some(&[1u8; 10]),
            )),
        ),
    ];
    for (what, r) in &attempts {
        check_unavailable(what, r, &pg_port(&db.env()));
    }
    // Readiness follows: 503 with the spec's body, naming the failing check.
    let ready = wait_for_readiness(&api, 503);
    assert_eq!(ready.error_codes(), ["UNAVAILABLE"], "{}", ready.describe());
    assert!(
        String::from_utf8_lossy(&ready.body).contains("metadata_postgres"),
        "{}",
        ready.describe()
    );
    // Liveness does not: the process is fine, restarting it would not help.
    assert_eq!(api.get_ok("/healthz"), b"ok\n");

    pg.start_again();
    wait_for_readiness(&api, 200);

    // Back as it was: what was there is there, what failed left nothing.
    assert_eq!(api.manifest_ok(&repo, "v1"), img.manifest.bytes);
    let v2 = must(api.get_manifest(&repo, "v2"));
    assert_eq!(
        v2.status,
        404,
        "the tag refused during the outage exists: {}",
        v2.describe()
    );
    let head = must(api.head(&format!("/v2/{repo}/blobs/{}", sha256(&blob_during))));
    assert_eq!(
        head.status, 404,
        "a blob refused during the outage is readable in the repository"
    );
    // The upload from before goes on where it was acknowledged (the refused PATCH recorded nothing).
    let status = must(api.get(&upload.location, &[]));
    assert_eq!(status.status, 204, "{}", status.describe());
    assert_eq!(
        status.header("Range"),
        Some(format!("0-{}", first.len() - 1).as_str())
    );
    api.patch(&mut upload, &second)
        .unwrap_or_else(|e| panic!("PATCH after the outage: {e}"));
    let whole: Vec<u8> = first.iter().chain(&second).copied().collect();
    api.finish(&upload, &sha256(&whole), &[])
        .unwrap_or_else(|e| panic!("PUT after the outage: {e}"));
    let got = api.get_ok(&format!("/v2/{repo}/blobs/{}", sha256(&whole)));
    assert_eq!(sha256(&got), sha256(&whole));
    // And new pushes work.
    api.push_blob(&repo, &blob_during, BlobPush::SinglePost)
        .unwrap_or_else(|e| panic!("push after the outage: {e}"));
    let put = push_image(&api, &repo, "v2", &img);
    assert_eq!(put.status, 201, "{}", put.describe());
}

#[test]
fn s3_outage_answers_503_and_recovers_without_partial_state() {
    let test = "s3_outage_answers_503_and_recovers_without_partial_state";
    let Some(mut garage) = PrivateGarage::start(test) else {
        return;
    };
    let bucket = garage.bucket();
    let port = bucket
        .endpoint
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let server = Server::start_with(Options {
        storage: Storage::S3,
        s3: Some(bucket),
        env: vec![(
            "REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL".into(),
            "500ms".into(),
        )],
        ..Options::default()
    });
    let api = server.api();
    let repo = repo("s3-outage");
    let img = sample_image("s3-outage");
    let put = push_image(&api, &repo, "v1", &img);
    assert_eq!(put.status, 201, "{}", put.describe());
    assert_eq!(api.get_ok("/readyz"), b"ok\n");
    let first = vec![3u8; 300_000];
    let second = vec![5u8; 200_000];
    let mut upload = api.start_upload(&repo).unwrap_or_else(|e| panic!("{e}"));
    api.patch(&mut upload, &first)
        .unwrap_or_else(|e| panic!("{e}"));

    garage.stop();

    // What needs blob bytes: 503 UNAVAILABLE.
    let blob_during = b"a blob pushed while the object store is down".to_vec();
    let attempts: Vec<(&str, Resp)> = vec![
        (
            "GET blob",
            must(api.get(&format!("/v2/{repo}/blobs/{}", img.config.digest), &[])),
        ),
        (
            "single-POST blob",
            must(api.request(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(&blob_during)),
                &[("Content-Type", "application/octet-stream")],
                Some(&blob_during),
            )),
        ),
        (
            "PATCH upload",
            must(api.request(
                "PATCH",
                &upload.location,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Range", &content_range(upload.offset, 10)),
                ],
                Some(&[1u8; 10]),
            )),
        ),
    ];
    for (what, r) in &attempts {
        check_unavailable(what, r, &port);
    }
    let ready = wait_for_readiness(&api, 503);
    assert_eq!(ready.error_codes(), ["UNAVAILABLE"], "{}", ready.describe());
    assert!(
        String::from_utf8_lossy(&ready.body).contains("storagedriver_s3"),
        "{}",
        ready.describe()
    );

    garage.start_again();
    wait_for_readiness(&api, 200);

    for blob in img.blobs() {
        let got = api.get_ok(&format!("/v2/{repo}/blobs/{}", blob.digest));
        assert_eq!(sha256(&got), blob.digest);
    }
    let head = must(api.head(&format!("/v2/{repo}/blobs/{}", sha256(&blob_during))));
    assert_eq!(
        head.status, 404,
        "a blob refused during the outage is readable in the repository"
    );
    let status = must(api.get(&upload.location, &[]));
    assert_eq!(
        status.header("Range"),
        Some(format!("0-{}", first.len() - 1).as_str()),
        "{}",
        status.describe()
    );
    api.patch(&mut upload, &second)
        .unwrap_or_else(|e| panic!("PATCH after the outage: {e}"));
    let whole: Vec<u8> = first.iter().chain(&second).copied().collect();
    api.finish(&upload, &sha256(&whole), &[])
        .unwrap_or_else(|e| panic!("PUT after the outage: {e}"));
    let got = api.get_ok(&format!("/v2/{repo}/blobs/{}", sha256(&whole)));
    assert_eq!(sha256(&got), sha256(&whole));
    api.push_blob(&repo, &blob_during, BlobPush::SinglePost)
        .unwrap_or_else(|e| panic!("push after the outage: {e}"));
}

fn must(r: Result<Resp, ureq::Error>) -> Resp {
    r.unwrap_or_else(|e| panic!("no answer from berth: {e}"))
}

/// The database's port, which must not appear in what clients see.
fn pg_port(env: &[(&str, String)]) -> String {
    env.iter()
        .find(|(k, _)| *k == "REGISTRY_DATABASE_PORT")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn check_unavailable(what: &str, r: &Resp, port: &str) {
    assert_eq!(r.status, 503, "{what}: {}", r.describe());
    assert_eq!(r.error_codes(), ["UNAVAILABLE"], "{what}: {}", r.describe());
    assert!(r.header("Retry-After").is_some(), "{what}: no Retry-After");
    let body = String::from_utf8_lossy(&r.body);
    for secret in [port, "127.0.0.1", "postgres://", "berth_e2e_"] {
        assert!(
            secret.is_empty() || !body.contains(secret),
            "{what}: the body tells {secret:?}: {body}"
        );
    }
}

/// Polls `/readyz` until it answers `status`; returns that answer.
fn wait_for_readiness(api: &Api, status: u16) -> Resp {
    let deadline = Instant::now() + READINESS_BOUND;
    loop {
        let r = must(api.get("/readyz", &[]));
        if r.status == status {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {} after {READINESS_BOUND:?}, want {status}",
            r.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
