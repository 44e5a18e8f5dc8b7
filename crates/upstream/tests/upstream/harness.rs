//! A real berth registry served on 127.0.0.1 as the upstream (temporary fs blobs + SQLite), seeded through
//! the registry API, and the client settings the tests start from.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use berth_http::ServeSettings;
use berth_upstream::{HttpUpstream, Settings};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use oci::{Digest, Reference, RepoName};
use registry::{ByteStream, Chunk, Registry};
use serde_json::json;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The upstream: a registry over temporary storage and the servers exposing it. Servers stop when this
/// is dropped.
pub struct Origin {
    pub registry: Registry,
    /// `http://127.0.0.1:PORT` of the open router.
    pub url: String,
    _dir: TempDir,
    _stops: Vec<oneshot::Sender<()>>,
}

/// What [`Origin::seed_image`] pushed.
pub struct Image {
    pub manifest: Bytes,
    pub digest: Digest,
    pub layer: Digest,
}

impl Origin {
    /// A registry served without authentication.
    pub async fn start() -> Origin {
        let dir = tempfile::tempdir().unwrap();
        let blobs = blobs::fs::FsBlobStore::open(dir.path().join("blobs")).unwrap();
        let meta =
            metadata::sqlite::SqliteStore::open(&dir.path().join("metadata.sqlite")).unwrap();
        let registry = Registry::new(
            Arc::new(blobs),
            Arc::new(meta),
            registry::Settings::default(),
        );
        let mut origin = Origin {
            registry: registry.clone(),
            url: String::new(),
            _dir: dir,
            _stops: Vec::new(),
        };
        origin.url = origin
            .serve(berth_http::router(registry), ServeSettings::default())
            .await;
        origin
    }

    /// Serves `router` (over this registry, or anything else) on another port; returns its
    /// `http://127.0.0.1:PORT` (or `https://` with TLS in `options`).
    pub async fn serve(&mut self, router: Router, options: ServeSettings) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(berth_http::serve_with(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            options,
        ));
        self._stops.push(stop);
        format!("{scheme}://{addr}")
    }

    /// Pushes `data` to `repo` through the registry, streamed in 64 KiB chunks.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::sha256_of(data);
        let chunks: Vec<io::Result<Bytes>> = data
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let body: ByteStream = Box::pin(stream::iter(chunks));
        self.registry
            .push_blob(
                &name(repo),
                &digest,
                Chunk {
                    range: None,
                    length: Some(data.len() as u64),
                    body,
                },
            )
            .await
            .unwrap();
        digest
    }

    /// Stores a manifest under `reference` (a tag or its digest); returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        payload: &[u8],
    ) -> Digest {
        self.registry
            .put_manifest(
                &name(repo),
                &reference.parse().unwrap(),
                Some(media_type),
                Bytes::copy_from_slice(payload),
            )
            .await
            .unwrap()
            .digest
    }

    /// An OCI image (config + one layer of `layer`) tagged `tag` in `repo`.
    pub async fn seed_image(&self, repo: &str, tag: &str, layer: &[u8]) -> Image {
        self.seed_image_as(repo, tag, layer, OCI_MANIFEST).await
    }

    /// [`Origin::seed_image`] as an OCI or Docker schema2 manifest.
    pub async fn seed_image_as(
        &self,
        repo: &str,
        tag: &str,
        layer: &[u8],
        media_type: &str,
    ) -> Image {
        let docker = media_type == DOCKER_MANIFEST;
        let config = format!(r#"{{"architecture":"amd64","os":"linux","tag":"{tag}"}}"#);
        let c = self.push_blob(repo, config.as_bytes()).await;
        let l = self.push_blob(repo, layer).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": if docker { "application/vnd.docker.container.image.v1+json" } else { "application/vnd.oci.image.config.v1+json" },
                "digest": c.to_string(),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": if docker { "application/vnd.docker.image.rootfs.diff.tar.gzip" } else { "application/vnd.oci.image.layer.v1.tar" },
                "digest": l.to_string(),
                "size": layer.len(),
            }],
        });
        let manifest = Bytes::from(serde_json::to_vec(&manifest).unwrap());
        let digest = self.push_manifest(repo, tag, media_type, &manifest).await;
        Image {
            manifest,
            digest,
            layer: l,
        }
    }

    /// An index (`media_type`: OCI index or Docker list) of `children` (digest, size, media type).
    pub async fn seed_index(
        &self,
        repo: &str,
        tag: &str,
        media_type: &str,
        children: &[(&Digest, usize, &str)],
    ) -> (Bytes, Digest) {
        let manifests: Vec<_> = children
            .iter()
            .map(|(d, size, mt)| {
                json!({
                    "mediaType": mt, "digest": d.to_string(), "size": size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                })
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests});
        let payload = Bytes::from(serde_json::to_vec(&index).unwrap());
        let digest = self.push_manifest(repo, tag, media_type, &payload).await;
        (payload, digest)
    }
}

/// Client settings for `url` with short timeouts, so failure tests end quickly.
pub fn settings(url: &str) -> Settings {
    let mut s = Settings::new("test-upstream", url);
    s.connect_timeout = Duration::from_secs(5);
    s.response_timeout = Duration::from_secs(2);
    s.stall_timeout = Duration::from_secs(1);
    s
}

pub fn client(url: &str) -> HttpUpstream {
    HttpUpstream::new(&settings(url)).unwrap()
}

pub fn name(s: &str) -> RepoName {
    s.parse().unwrap()
}

pub fn tag(s: &str) -> Reference {
    s.parse().unwrap()
}

pub fn by_digest(d: &Digest) -> Reference {
    Reference::Digest(d.clone())
}

/// Deterministic bytes that do not compress or repeat (xorshift), `len` long.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Reads a blob stream to its end: (bytes, number of chunks, largest chunk) or the first error with
/// how many bytes came before it.
pub async fn drain(mut body: ByteStream) -> Result<(Vec<u8>, usize, usize), (io::Error, usize)> {
    let mut out = Vec::new();
    let (mut chunks, mut largest) = (0, 0);
    while let Some(item) = body.next().await {
        match item {
            Ok(chunk) => {
                chunks += 1;
                largest = largest.max(chunk.len());
                out.extend_from_slice(&chunk);
            }
            Err(e) => return Err((e, out.len())),
        }
    }
    Ok((out, chunks, largest))
}
