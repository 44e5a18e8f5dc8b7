//! A registry over temporary storage, a request helper that checks the invariants of every response, and
//! builders for the blobs and manifests the tests push.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use oci::Digest;
use registry::Registry;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub struct Harness {
    pub app: Router,
    _dir: TempDir,
}

/// A response, collected.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// A header as text; panics (failing the test) if it is missing.
    pub fn header(&self, name: &str) -> &str {
        match self.headers.get(name) {
            Some(v) => v.to_str().unwrap(),
            None => panic!("no {name} header in {:?}", self.headers),
        }
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.contains_key(name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The spec code of an error response (and a check that the body has the spec's shape).
    pub fn code(&self) -> String {
        assert_eq!(self.header("content-type"), "application/json");
        let v = self.json();
        let err = &v["errors"][0];
        assert!(err["message"].is_string(), "{v}");
        assert!(err.get("detail").is_some(), "{v}");
        err["code"].as_str().unwrap_or_default().to_string()
    }

    /// Asserts an error status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.code(), code);
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
    }
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(registry::Settings::default())
    }

    pub fn with_deletes() -> Harness {
        Harness::with(registry::Settings {
            delete_enabled: true,
            ..registry::Settings::default()
        })
    }

    pub fn with(config: registry::Settings) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let blobs = blobs::fs::FsBlobStore::open(dir.path().join("blobs")).unwrap();
        let meta =
            metadata::sqlite::SqliteStore::open(&dir.path().join("metadata.sqlite")).unwrap();
        let registry = Registry::new(Arc::new(blobs), Arc::new(meta), config);
        Harness {
            app: berth_http::router(registry),
            _dir: dir,
        }
    }

    /// A harness over fresh temporary stores serving what `build` makes of the registry over them and
    /// of their directory (the blob store is in `<dir>/blobs`): the API mounted under a prefix, beside
    /// health probes, and so on.
    pub async fn with_app<F>(
        config: registry::Settings,
        build: impl FnOnce(Registry, PathBuf) -> F,
    ) -> Harness
    where
        F: Future<Output = Router>,
    {
        let dir = tempfile::tempdir().unwrap();
        let blobs = blobs::fs::FsBlobStore::open(dir.path().join("blobs")).unwrap();
        let meta =
            metadata::sqlite::SqliteStore::open(&dir.path().join("metadata.sqlite")).unwrap();
        let registry = Registry::new(Arc::new(blobs), Arc::new(meta), config);
        Harness {
            app: build(registry, dir.path().to_path_buf()).await,
            _dir: dir,
        }
    }

    /// Sends a request as built. Every response must carry the version header and a request id, and
    /// none may be a 500.
    pub async fn send(&self, req: Request<Body>) -> Resp {
        let what = format!("{} {}", req.method(), req.uri());
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{what}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            headers
                .get("docker-distribution-api-version")
                .map(|v| v.to_str().unwrap()),
            Some("registry/2.0"),
            "{what}"
        );
        assert!(
            headers.get("x-request-id").is_some_and(|v| !v.is_empty()),
            "{what}"
        );
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A request with `headers` and, if `body` is given, that body with its (true) Content-Length.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                {
                    req = req.header("content-length", b.len().to_string());
                }
                Body::from(b.to_vec())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.call(Method::GET, uri, &[], None).await
    }

    pub async fn head(&self, uri: &str) -> Resp {
        self.call(Method::HEAD, uri, &[], None).await
    }

    pub async fn delete(&self, uri: &str) -> Resp {
        self.call(Method::DELETE, uri, &[], None).await
    }

    /// Pushes `data` to `repo` in one POST; returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::sha256_of(data);
        let resp = self
            .call(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
                &[("content-type", "application/octet-stream")],
                Some(data),
            )
            .await;
        resp.assert_status(201);
        digest
    }

    /// Pushes a manifest under `reference` (tag or digest); returns the response.
    pub async fn put_manifest(&self, repo: &str, reference: &str, manifest: &[u8]) -> Resp {
        self.call(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", OCI_MANIFEST)],
            Some(manifest),
        )
        .await
    }

    /// Pushes a config and a layer to `repo` and returns an image manifest (bytes) referencing them.
    /// `seed` makes the content, hence the digests, distinct.
    pub async fn image(&self, repo: &str, seed: &str) -> Vec<u8> {
        let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}");
        let layer = format!("layer bytes for {seed}").repeat(50);
        let c = self.push_blob(repo, config.as_bytes()).await;
        let l = self.push_blob(repo, layer.as_bytes()).await;
        image_manifest((&c, config.len()), (&l, layer.len()), None)
    }
}

/// An OCI image manifest, optionally an artifact referring to `subject` (digest, size).
pub fn image_manifest(
    config: (&Digest, usize),
    layer: (&Digest, usize),
    subject: Option<(&Digest, usize)>,
) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.0.to_string(),
            "size": config.1,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer.0.to_string(),
            "size": layer.1,
        }],
    });
    if let Some((d, size)) = subject {
        m["subject"] = json!({ "mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": size });
        m["artifactType"] = json!("application/vnd.example.signature");
        m["annotations"] = json!({ "org.example.signed-by": "tests" });
    }
    serde_json::to_vec(&m).unwrap()
}

/// A log sink a test can read back: every line logged on this thread while the guard lives.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs a capture as this thread's subscriber. Tokio tests run on one thread (the current-thread
    /// runtime), so it sees every line the middleware and the handlers log.
    pub fn install() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let capture = LogCapture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(capture.clone())
            .with_ansi(false)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}
