//! The metrics: exact increments after known requests, storage timings through the decorators, the
//! uploads-in-progress gauge, and the `/metrics` endpoint itself.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use berth_http::metrics::{CONTENT_TYPE_OPENMETRICS, Metrics};
use http_body_util::BodyExt;
use registry::Registry;
use registry::instrumented::{InstrumentedBlobStore, InstrumentedMetadata};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::ServiceExt;

use crate::limits::{read_head, serve_app, start_upload};

/// An instrumented application over instrumented stores, as `berth serve` wires it.
struct Setup {
    _dir: tempfile::TempDir,
    metrics: Metrics,
    app: Router,
    registry: Registry,
}

impl Setup {
    fn new() -> Setup {
        Setup::with(registry::Settings::default())
    }

    fn with(settings: registry::Settings) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let blobs = blobs::fs::FsBlobStore::open(dir.path().join("blobs")).unwrap();
        let meta = metadata::sqlite::SqliteStore::open(&dir.path().join("m.sqlite")).unwrap();
        let registry = Registry::new(
            Arc::new(InstrumentedBlobStore::new(
                Arc::new(blobs),
                "fs",
                metrics.storage_observer(),
            )),
            InstrumentedMetadata::wrap(
                metadata::Metadata::of(Arc::new(meta)),
                "sqlite",
                metrics.storage_observer(),
            ),
            settings,
        );
        metrics.watch_registry(&registry);
        let app = metrics.instrument(berth_http::router(registry.clone()));
        Setup {
            _dir: dir,
            metrics,
            app,
            registry,
        }
    }

    /// Sends a request; returns the status and the whole body (so the response is finished).
    async fn call(&self, method: Method, uri: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-length", body.len().to_string())
            .body(Body::from(body.to_vec()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, body.to_vec())
    }

    /// Every sample of the exposition: `name{labels}` -> value.
    fn samples(&self) -> HashMap<String, f64> {
        let text = self.metrics.render().unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                Some((key.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    fn sample(&self, key: &str) -> f64 {
        self.samples().get(key).copied().unwrap_or(0.0)
    }
}

#[tokio::test]
async fn requests_are_counted_by_endpoint_method_and_status() {
    let s = Setup::new();
    let base = r#"berth_http_requests_total{endpoint="base",method="GET",status="200"}"#;
    let missing = r#"berth_http_requests_total{endpoint="manifest",method="GET",status="404"}"#;
    let other = r#"berth_http_requests_total{endpoint="other",method="GET",status="404"}"#;
    assert_eq!(s.sample(base), 0.0);

    for _ in 0..3 {
        assert_eq!(s.call(Method::GET, "/v2/", b"").await.0, 200);
    }
    assert_eq!(
        s.call(Method::GET, "/v2/secret-team/app/manifests/v1", b"")
            .await
            .0,
        404
    );
    assert_eq!(s.call(Method::GET, "/favicon.ico", b"").await.0, 404);

    assert_eq!(s.sample(base), 3.0);
    assert_eq!(s.sample(missing), 1.0);
    assert_eq!(s.sample(other), 1.0);
    assert_eq!(
        s.sample(r#"berth_http_request_duration_seconds_count{endpoint="base",method="GET"}"#),
        3.0
    );
    assert_eq!(s.sample("berth_http_requests_in_flight"), 0.0);
    // Repository names never become labels.
    assert!(!s.metrics.render().unwrap().contains("secret-team"));
}

#[tokio::test]
async fn body_bytes_in_and_out_are_counted() {
    let s = Setup::new();
    let blob = vec![42u8; 100_000];
    let digest = oci::Digest::sha256_of(&blob);
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/v2/app/blobs/uploads/?digest={digest}"),
            &blob,
        )
        .await;
    assert_eq!(status, 201);
    for _ in 0..2 {
        let (status, body) = s
            .call(Method::GET, &format!("/v2/app/blobs/{digest}"), b"")
            .await;
        assert_eq!((status, body.len()), (200, blob.len()));
    }

    assert_eq!(
        s.sample(r#"berth_http_received_bytes_total{endpoint="blob_upload"}"#),
        100_000.0
    );
    assert_eq!(
        s.sample(r#"berth_http_sent_bytes_total{endpoint="blob"}"#),
        200_000.0
    );
    assert_eq!(
        s.sample(r#"berth_http_requests_total{endpoint="blob_upload",method="POST",status="201"}"#),
        1.0
    );
    assert_eq!(
        s.sample(r#"berth_http_request_duration_seconds_count{endpoint="blob",method="GET"}"#),
        2.0
    );
}

#[tokio::test]
async fn storage_operations_are_timed_by_backend_and_operation() {
    let s = Setup::new();
    let blob = b"some layer".to_vec();
    let digest = oci::Digest::sha256_of(&blob);
    let commit = r#"berth_storage_operation_duration_seconds_count{store="blobs",backend="fs",operation="upload_commit"}"#;
    let link = r#"berth_storage_operation_duration_seconds_count{store="metadata",backend="sqlite",operation="link_blob"}"#;
    let stat = r#"berth_storage_operation_duration_seconds_count{store="blobs",backend="fs",operation="stat"}"#;
    let stats_before = s.sample(stat);

    let uri = format!("/v2/app/blobs/uploads/?digest={digest}");
    assert_eq!(s.call(Method::POST, &uri, &blob).await.0, 201);
    assert_eq!(s.sample(commit), 1.0);
    assert_eq!(s.sample(link), 1.0);
    // Pushing the same blob again finds it committed: no second commit, one more link.
    assert_eq!(s.call(Method::POST, &uri, &blob).await.0, 201);
    assert_eq!(s.sample(commit), 1.0);
    assert_eq!(s.sample(link), 2.0);
    assert!(s.sample(stat) > stats_before);
    assert_eq!(
        s.sample(r#"berth_storage_operation_errors_total{store="blobs",backend="fs",operation="upload_commit"}"#),
        0.0
    );
}

#[tokio::test]
async fn the_endpoint_serves_the_exposition() {
    let s = Setup::new();
    assert_eq!(s.call(Method::GET, "/v2/", b"").await.0, 200);
    // Families without samples are left out of the exposition: touch the storage once.
    assert_eq!(s.call(Method::GET, "/v2/app/tags/list", b"").await.0, 404);
    let resp = s
        .metrics
        .router("/metrics")
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        CONTENT_TYPE_OPENMETRICS
    );
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for family in [
        "# TYPE berth_http_requests counter",
        "# TYPE berth_http_request_duration_seconds histogram",
        "# TYPE berth_http_received_bytes counter",
        "# TYPE berth_http_sent_bytes counter",
        "# TYPE berth_http_requests_in_flight gauge",
        "# TYPE berth_uploads_in_progress gauge",
        "# TYPE berth_storage_operation_duration_seconds histogram",
    ] {
        assert!(text.contains(family), "{family} missing from\n{text}");
    }
    assert!(text.contains("berth_uploads_in_progress 0"), "{text}");
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn uploads_in_progress_follow_the_registry() {
    let s = Setup::new();
    let running = serve_app(s.app.clone(), berth_http::ServeSettings::default()).await;
    let loc = start_upload(running.addr).await;
    let gauge = "berth_uploads_in_progress";
    assert_eq!(s.sample(gauge), 0.0);

    let mut c = TcpStream::connect(running.addr).await.unwrap();
    let req = format!("PATCH {loc} HTTP/1.1\r\nHost: test\r\nContent-Length: 20\r\n\r\nfirst ten.");
    c.write_all(req.as_bytes()).await.unwrap();
    wait_for(&s, gauge, 1.0).await;
    c.write_all(b"second ten").await.unwrap();
    let head = read_head(&mut c, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    wait_for(&s, gauge, 0.0).await;
    running.stop().await;
}

async fn wait_for(s: &Setup, key: &str, value: f64) {
    for _ in 0..500 {
        if s.sample(key) == value {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{key} stayed at {}, expected {value}", s.sample(key));
}

/// What garbage collection deleted is counted, with when it last ran.
#[tokio::test]
async fn garbage_collection_is_counted() {
    let s = Setup::new();
    assert_eq!(s.sample("berth_gc_runs_total"), 0.0);
    assert_eq!(s.sample("berth_gc_last_run_timestamp_seconds"), 0.0);
    let data = b"a blob nothing will reference";
    let d = oci::Digest::sha256_of(data);
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={d}"),
            data,
        )
        .await;
    assert_eq!(status, 201);
    let options = registry::gc::GcOptions {
        grace: std::time::Duration::ZERO,
        dry_run: false,
        delete_untagged: false,
    };
    let report = s.registry.collect_garbage(options).await.unwrap().unwrap();
    assert_eq!(report.blobs, vec![d]);
    assert_eq!(s.sample("berth_gc_runs_total"), 1.0);
    assert_eq!(s.sample("berth_gc_blobs_deleted_total"), 1.0);
    assert_eq!(s.sample("berth_gc_bytes_freed_total"), data.len() as f64);
    assert_eq!(s.sample("berth_gc_manifests_deleted_total"), 0.0);
    assert!(s.sample("berth_gc_last_run_timestamp_seconds") > 1.7e9);
    // A dry run is not a run.
    let dry = registry::gc::GcOptions {
        dry_run: true,
        ..options
    };
    s.registry.collect_garbage(dry).await.unwrap().unwrap();
    assert_eq!(s.sample("berth_gc_runs_total"), 1.0);
}

/// What replication did is counted, failures too, with when its last pass ended. (The one-image upstream
/// serves its layer but not its config, which is fetched first: the tag fails, nothing copied.)
#[tokio::test]
async fn replication_is_counted() {
    let s = Setup::new();
    assert_eq!(s.sample("berth_replication_passes_total"), 0.0);
    let up = crate::proxy::OneImage::new();
    let replication = registry::replicate::Replication {
        upstream: up.clone(),
        repositories: vec![(
            "library/alpine".parse().unwrap(),
            "mirror/alpine".parse().unwrap(),
        )],
        patterns: Vec::new(),
        prefix: None,
        tags: Vec::new(),
        semver: None,
        regex: None,
        delete_removed_tags: false,
        concurrency: 1,
    };
    let pass = |replication: registry::replicate::Replication| {
        let registry = s.registry.clone();
        async move {
            let reports = registry.replicate_all(&[replication]).await.unwrap();
            reports.unwrap().remove(0)
        }
    };
    // A pass that copies the image: its tag and its blobs' bytes (the config's 2 and the layer's).
    let copied = pass(replication.clone()).await;
    assert_eq!(copied.failures, vec![]);
    assert_eq!(copied.tags_updated, ["mirror/alpine:3"]);
    assert_eq!(copied.bytes_copied, 2 + up.layer.len() as u64);
    assert_eq!(s.sample("berth_replication_passes_total"), 1.0);
    assert_eq!(s.sample("berth_replication_failures_total"), 0.0);
    assert_eq!(s.sample("berth_replication_tags_updated_total"), 1.0);
    assert_eq!(
        s.sample("berth_replication_bytes_copied_total"),
        copied.bytes_copied as f64
    );
    assert_eq!(s.sample("berth_replication_referrers_copied_total"), 0.0);
    assert!(s.sample("berth_replication_last_pass_timestamp_seconds") > 1.7e9);
    // A pass while the upstream is down: one failure, nothing more copied.
    up.go_down();
    let failed = pass(replication).await;
    assert_eq!(failed.failures.len(), 1, "{:?}", failed.failures);
    assert_eq!(s.sample("berth_replication_passes_total"), 2.0);
    assert_eq!(s.sample("berth_replication_failures_total"), 1.0);
    assert_eq!(s.sample("berth_replication_tags_updated_total"), 1.0);
}

/// How far an adoption of registry:2's tree got: exported from the start, at zero without one.
#[tokio::test]
async fn adoption_progress_is_exported() {
    let s = Setup::new();
    let samples = s.samples();
    for key in [
        "berth_adopt_repositories_done",
        "berth_adopt_repositories",
        "berth_adopt_finished",
    ] {
        assert_eq!(samples.get(key), Some(&0.0), "{key}");
    }
}

#[tokio::test]
async fn quota_usage_is_exported_once_measured() {
    let s = Setup::with(registry::Settings {
        quotas: vec![registry::quota::Quota {
            repositories: vec![oci::Pattern::repository("team/**").unwrap()],
            bytes: 1 << 20,
        }],
        ..registry::Settings::default()
    });
    assert!(
        !s.metrics.render().unwrap().contains("berth_quota"),
        "nothing before a measurement"
    );
    let data = b"a layer of the team";
    let d = oci::Digest::sha256_of(data);
    let uri = format!("/v2/team/app/blobs/uploads/?digest={d}");
    assert_eq!(s.call(Method::POST, &uri, data).await.0, 201);
    s.registry.quota_usage().await.unwrap();
    assert_eq!(
        s.sample("berth_quota_used_bytes{quota=\"team/**\"}"),
        data.len() as f64
    );
    assert_eq!(
        s.sample("berth_quota_limit_bytes{quota=\"team/**\"}"),
        (1u64 << 20) as f64
    );
}
