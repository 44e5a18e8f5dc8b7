//! `storage.redirect`: with redirects configured and a blob store that offers URLs (S3's presigned
//! ones), a blob GET is answered 307 to the storage; HEAD, unlinked blobs and stores without URLs are
//! served as usual. The store here is the filesystem one behind a decorator that hands out URLs, so the
//! test needs no S3 server (the S3 URLs themselves are tested against Garage in berth-blobs).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use blobs::{BlobReader, BlobStore, ByteStream, UploadId};
use http_body_util::BodyExt;
use oci::Digest;
use registry::Registry;
use registry::instrumented::{InstrumentedBlobStore, StorageObserver, StorageOp};
use tower::ServiceExt;

/// The filesystem store, plus a redirect URL that names the digest and the expiry.
struct Redirecting(blobs::fs::FsBlobStore);

#[async_trait::async_trait]
impl BlobStore for Redirecting {
    async fn stat(&self, d: &Digest) -> blobs::Result<Option<u64>> {
        self.0.stat(d).await
    }
    async fn read(&self, d: &Digest, r: Option<Range<u64>>) -> blobs::Result<Option<BlobReader>> {
        self.0.read(d, r).await
    }
    async fn delete(&self, d: &Digest) -> blobs::Result<bool> {
        self.0.delete(d).await
    }
    async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> blobs::Result<Vec<blobs::ListedBlob>> {
        self.0.list_blobs(after, limit).await
    }
    async fn quarantine(&self, d: &Digest) -> blobs::Result<bool> {
        self.0.quarantine(d).await
    }
    async fn upload_write(
        &self,
        id: &UploadId,
        offset: u64,
        data: ByteStream,
    ) -> blobs::Result<u64> {
        self.0.upload_write(id, offset, data).await
    }
    async fn upload_write_unsynced(
        &self,
        id: &UploadId,
        offset: u64,
        data: ByteStream,
    ) -> blobs::Result<u64> {
        self.0.upload_write_unsynced(id, offset, data).await
    }
    async fn upload_read(&self, id: &UploadId, len: u64) -> blobs::Result<ByteStream> {
        self.0.upload_read(id, len).await
    }
    async fn upload_read_from(
        &self,
        id: &UploadId,
        from: u64,
        len: u64,
    ) -> blobs::Result<ByteStream> {
        self.0.upload_read_from(id, from, len).await
    }
    async fn upload_commit(&self, id: &UploadId, len: u64, d: &Digest) -> blobs::Result<()> {
        self.0.upload_commit(id, len, d).await
    }
    async fn upload_delete(&self, id: &UploadId) -> blobs::Result<()> {
        self.0.upload_delete(id).await
    }
    async fn purge_temporary(&self, t: SystemTime, dry: bool) -> blobs::Result<Vec<String>> {
        self.0.purge_temporary(t, dry).await
    }
    async fn check(&self) -> blobs::Result<()> {
        self.0.check().await
    }
    async fn redirect_url(&self, d: &Digest, expires: Duration) -> blobs::Result<Option<String>> {
        Ok(Some(format!(
            "https://bucket.example/{}?expires={}",
            d.hex(),
            expires.as_secs()
        )))
    }
}

struct Nobody;

impl StorageObserver for Nobody {
    fn observe(&self, _: StorageOp, _: Duration, _: bool) {}
}

/// A router over a temporary redirecting store (behind the metrics decorator, as `serve` wires it).
fn app(redirect: Option<Duration>) -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fs =
        blobs::fs::FsBlobStore::open(dir.path().join("blobs")).unwrap_or_else(|e| panic!("{e}"));
    let meta = metadata::sqlite::SqliteStore::open(&dir.path().join("metadata.sqlite"))
        .unwrap_or_else(|e| panic!("{e}"));
    let blobs = Arc::new(InstrumentedBlobStore::new(
        Arc::new(Redirecting(fs)),
        "s3",
        Arc::new(Nobody),
    ));
    let config = registry::Settings {
        blob_redirect: redirect,
        ..registry::Settings::default()
    };
    let registry = Registry::new(blobs, Arc::new(meta), config);
    (dir, berth_http::router(registry))
}

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    body: &[u8],
) -> (StatusCode, axum::http::HeaderMap) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-length", body.len().to_string())
        .body(Body::from(body.to_vec()))
        .unwrap_or_else(|e| panic!("{e}"));
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (parts, body) = resp.into_parts();
    let _ = body.collect().await;
    (parts.status, parts.headers)
}

/// Pushes `data` to `repo` in one POST + PUT; returns its digest.
async fn push(app: &axum::Router, repo: &str, data: &[u8]) -> Digest {
    let digest = Digest::sha256_of(data);
    let (status, headers) = call(
        app,
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/"),
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let (status, _) = call(
        app,
        Method::PUT,
        &format!("{location}{sep}digest={digest}"),
        data,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    digest
}

#[tokio::test]
async fn blob_gets_are_redirected_when_configured() {
    let (_dir, app) = app(Some(Duration::from_secs(1200)));
    let digest = push(&app, "a/b", b"some layer").await;
    let (status, headers) = call(&app, Method::GET, &format!("/v2/a/b/blobs/{digest}"), b"").await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    let location = headers.get("location").and_then(|v| v.to_str().ok());
    assert_eq!(
        location,
        Some(format!("https://bucket.example/{}?expires=1200", digest.hex()).as_str())
    );
    assert_eq!(
        headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok()),
        Some(digest.to_string().as_str())
    );
    // HEAD answers itself: clients learn the size without a round trip to the storage.
    let (status, _) = call(&app, Method::HEAD, &format!("/v2/a/b/blobs/{digest}"), b"").await;
    assert_eq!(status, StatusCode::OK);
    // A repository the blob is not linked to gets no URL, only BLOB_UNKNOWN.
    let (status, _) = call(&app, Method::GET, &format!("/v2/other/blobs/{digest}"), b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn blob_gets_are_served_when_redirects_are_off() {
    let (_dir, app) = app(None);
    let digest = push(&app, "a/b", b"some layer").await;
    let (status, headers) = call(&app, Method::GET, &format!("/v2/a/b/blobs/{digest}"), b"").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("location").is_none());
}
