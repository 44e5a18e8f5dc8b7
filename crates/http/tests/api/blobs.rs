//! Blob reads (whole, ranged, HEAD) and deletes.

use axum::http::Method;
use oci::Digest;

use crate::harness::Harness;

const DATA: &[u8] = b"0123456789abcdefghij";

fn blob_url(repo: &str, d: &Digest) -> String {
    format!("/v2/{repo}/blobs/{d}")
}

#[tokio::test]
async fn get_streams_the_blob_with_every_header() {
    let h = Harness::new();
    let d = h.push_blob("lib/app", DATA).await;
    let r = h.get(&blob_url("lib/app", &d)).await;
    r.assert_status(200);
    assert_eq!(&r.body[..], DATA);
    assert_eq!(r.header("docker-content-digest"), d.to_string());
    assert_eq!(r.header("content-length"), DATA.len().to_string());
    assert_eq!(r.header("content-type"), "application/octet-stream");
    assert_eq!(r.header("etag"), format!("\"{d}\""));
    assert_eq!(r.header("accept-ranges"), "bytes");
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let h = Harness::new();
    let d = h.push_blob("a", DATA).await;
    let r = h.head(&blob_url("a", &d)).await;
    r.assert_status(200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), DATA.len().to_string());
    assert_eq!(r.header("docker-content-digest"), d.to_string());
    assert_eq!(r.header("etag"), format!("\"{d}\""));
    assert_eq!(r.header("content-type"), "application/octet-stream");
}

#[tokio::test]
async fn unknown_blobs_and_blobs_of_other_repositories_are_404() {
    let h = Harness::new();
    let d = h.push_blob("a", DATA).await;
    h.get(&blob_url("b", &d))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    h.head(&blob_url("b", &d)).await.assert_status(404);
    let never = Digest::sha256_of(b"never pushed");
    h.get(&blob_url("a", &never))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn ranges_are_served_as_206() {
    let h = Harness::new();
    let d = h.push_blob("a", DATA).await;
    let url = blob_url("a", &d);
    let cases: &[(&str, &[u8], &str)] = &[
        ("bytes=0-3", b"0123", "bytes 0-3/20"),
        ("bytes=10-", b"abcdefghij", "bytes 10-19/20"),
        ("bytes=-3", b"hij", "bytes 17-19/20"),
        ("bytes=5-5", b"5", "bytes 5-5/20"),
        ("bytes=15-100", b"fghij", "bytes 15-19/20"),
    ];
    for (range, want, content_range) in cases {
        let r = h.call(Method::GET, &url, &[("range", range)], None).await;
        r.assert_status(206);
        assert_eq!(&r.body[..], *want, "{range}");
        assert_eq!(r.header("content-range"), *content_range, "{range}");
        assert_eq!(
            r.header("content-length"),
            want.len().to_string(),
            "{range}"
        );
        assert_eq!(r.header("docker-content-digest"), d.to_string());
    }
}

#[tokio::test]
async fn unsatisfiable_malformed_and_multiple_ranges_are_416() {
    let h = Harness::new();
    let d = h.push_blob("a", DATA).await;
    let url = blob_url("a", &d);
    for range in [
        "bytes=20-",
        "bytes=100-200",
        "bytes=0-1,5-6",
        "bytes=5-2",
        "bytes=x-y",
        "lines=1-2",
        "bytes=-0",
    ] {
        let r = h.call(Method::GET, &url, &[("range", range)], None).await;
        r.assert_error(416, "SIZE_INVALID");
        assert_eq!(r.header("content-range"), "bytes */20", "{range}");
    }
    // An unknown blob is a 404 whatever the range says.
    let never = blob_url("a", &Digest::sha256_of(b"never"));
    h.call(Method::GET, &never, &[("range", "bytes=0-1,2-3")], None)
        .await
        .assert_error(404, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn deletes_are_refused_when_disabled() {
    let h = Harness::new();
    let d = h.push_blob("a", DATA).await;
    h.delete(&blob_url("a", &d))
        .await
        .assert_error(405, "UNSUPPORTED");
    h.get(&blob_url("a", &d)).await.assert_status(200);
}

#[tokio::test]
async fn deletes_unlink_the_blob_when_enabled() {
    let h = Harness::with_deletes();
    let d = h.push_blob("a", DATA).await;
    h.push_blob("b", DATA).await;
    let r = h.delete(&blob_url("a", &d)).await;
    r.assert_status(202);
    h.get(&blob_url("a", &d))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
    // Only the link of "a" went; "b" still reads it.
    h.get(&blob_url("b", &d)).await.assert_status(200);
    h.delete(&blob_url("a", &d))
        .await
        .assert_error(404, "BLOB_UNKNOWN");
}
