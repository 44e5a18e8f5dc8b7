//! Prometheus metrics from the binary: served on the debug address when `http.debug.prometheus` is on
//! (never on the registry's own address), with exact request counts and the storage timings of the
//! configured backends.

use std::collections::HashMap;
use std::net::TcpListener;

use crate::harness::{Api, BlobPush, Options, Server, repo};

/// A port free at the time of asking (the debug address is not printed on stdout).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Every sample of a scrape: `name{labels}` -> value.
fn scrape(debug: &Api) -> HashMap<String, f64> {
    let r = debug.get("/metrics", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        r.header("content-type")
    );
    String::from_utf8_lossy(&r.body)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

#[test]
fn the_debug_address_serves_exact_request_and_storage_metrics() {
    let port = free_port();
    let server = Server::start_with(Options {
        env: vec![
            (
                "REGISTRY_HTTP_DEBUG_ADDR".into(),
                format!("127.0.0.1:{port}"),
            ),
            (
                "REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED".into(),
                "true".into(),
            ),
        ],
        ..Options::default()
    });
    let debug = Api::new(&format!("http://127.0.0.1:{port}"));
    let api = server.api();
    let repo = repo("metrics");

    let before = scrape(&debug);
    for _ in 0..3 {
        assert_eq!(api.get("/v2/", &[]).unwrap().status, 200);
    }
    let data = vec![5u8; 64 * 1024];
    let digest = api.push_blob(&repo, &data, BlobPush::SinglePost).unwrap();
    assert_eq!(
        api.get_ok(&format!("/v2/{repo}/blobs/{digest}")).len(),
        data.len()
    );
    let missing = api.get_manifest(&repo, "nope").unwrap();
    assert_eq!(missing.status, 404);
    let after = scrape(&debug);

    let d = |key: &str| delta(&before, &after, key);
    assert_eq!(
        d(r#"berth_http_requests_total{endpoint="base",method="GET",status="200"}"#),
        3.0
    );
    assert_eq!(
        d(r#"berth_http_requests_total{endpoint="blob_upload",method="POST",status="201"}"#),
        1.0
    );
    assert_eq!(
        d(r#"berth_http_requests_total{endpoint="blob",method="GET",status="200"}"#),
        1.0
    );
    assert_eq!(
        d(r#"berth_http_requests_total{endpoint="manifest",method="GET",status="404"}"#),
        1.0
    );
    assert_eq!(
        d(r#"berth_http_received_bytes_total{endpoint="blob_upload"}"#),
        65536.0
    );
    assert_eq!(
        d(r#"berth_http_sent_bytes_total{endpoint="blob"}"#),
        65536.0
    );
    assert_eq!(
        d(
            r#"berth_storage_operation_duration_seconds_count{store="blobs",backend="filesystem",operation="upload_commit"}"#
        ),
        1.0
    );
    assert_eq!(
        d(
            r#"berth_storage_operation_duration_seconds_count{store="metadata",backend="sqlite",operation="link_blob"}"#
        ),
        1.0
    );
    assert_eq!(after.get("berth_uploads_in_progress"), Some(&0.0));
    assert!(
        !after.keys().any(|k| k.contains("e2e/metrics")),
        "a repository name became a label"
    );

    // Not on the registry's own address.
    assert_eq!(api.get("/metrics", &[]).unwrap().status, 404);
}

#[test]
fn without_prometheus_the_debug_address_has_no_metrics() {
    let port = free_port();
    let _server = Server::start_with(Options {
        env: vec![(
            "REGISTRY_HTTP_DEBUG_ADDR".into(),
            format!("127.0.0.1:{port}"),
        )],
        ..Options::default()
    });
    let debug = Api::new(&format!("http://127.0.0.1:{port}"));
    assert_eq!(debug.get("/debug/health", &[]).unwrap().status, 200);
    assert_eq!(debug.get("/metrics", &[]).unwrap().status, 404);
}
