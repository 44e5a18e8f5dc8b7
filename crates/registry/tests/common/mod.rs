//! Shared harness of the registry's integration tests: a registry over the real filesystem blob store and
//! the real SQLite metadata store in a temporary directory, plus builders for bodies and manifests.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io;
use std::path::Path;
use std::sync::Arc;

use berth_registry as registry;
use blobs::fs::FsBlobStore;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use metadata::Metadata;
use metadata::sqlite::SqliteStore;
use oci::{Digest, DigestAlgorithm, Reference, RepoName};
use registry::{ByteStream, Chunk, Registry, Settings};
use tempfile::TempDir;

pub mod faulty;

/// A registry and direct handles on its two stores (to check what it did or did not store).
pub struct Env {
    pub dir: TempDir,
    pub blobs: Arc<FsBlobStore>,
    pub meta: Arc<SqliteStore>,
    pub reg: Registry,
}

impl Env {
    pub fn new() -> Env {
        Env::with_config(Settings::default())
    }

    pub fn with_deletes() -> Env {
        Env::with_config(Settings {
            delete_enabled: true,
            ..Settings::default()
        })
    }

    pub fn with_config(config: Settings) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let (blobs, meta) = open_stores(dir.path());
        let reg = Registry::new(blobs.clone(), meta.clone(), config);
        Env {
            dir,
            blobs,
            meta,
            reg,
        }
    }

    /// Simulates a restart: drops the registry and both stores, then opens new ones over the same
    /// directories.
    pub fn restart(self) -> Env {
        let Env {
            dir,
            blobs,
            meta,
            reg,
        } = self;
        let config = reg.settings().clone();
        drop((reg, blobs, meta));
        let (blobs, meta) = open_stores(dir.path());
        let reg = Registry::new(blobs.clone(), meta.clone(), config);
        Env {
            dir,
            blobs,
            meta,
            reg,
        }
    }

    /// A registry over the same blob store and `meta` in place of the SQLite store.
    pub fn registry_with_meta(&self, meta: impl Into<Metadata>) -> Registry {
        Registry::new(self.blobs.clone(), meta, self.reg.settings().clone())
    }
}

fn open_stores(root: &Path) -> (Arc<FsBlobStore>, Arc<SqliteStore>) {
    let blobs = FsBlobStore::open(root.join("blobs")).expect("open blob store");
    let meta = SqliteStore::open(&root.join("metadata.db")).expect("open metadata store");
    (Arc::new(blobs), Arc::new(meta))
}

pub fn repo(name: &str) -> RepoName {
    name.parse().expect("valid repository name")
}

pub fn tag(name: &str) -> Reference {
    name.parse().expect("valid tag")
}

pub fn by_digest(d: &Digest) -> Reference {
    Reference::Digest(d.clone())
}

/// Deterministic, incompressible-looking test content.
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[0] ^ seed)
        .collect()
}

pub fn sha256(data: &[u8]) -> Digest {
    Digest::sha256_of(data)
}

pub fn sha512(data: &[u8]) -> Digest {
    Digest::of(DigestAlgorithm::Sha512, data)
}

/// `data` as a stream of small pieces, as a network body arrives.
pub fn body(data: &[u8]) -> ByteStream {
    let pieces: Vec<io::Result<Bytes>> = data
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(pieces))
}

/// `data`, then a failure, as when the client goes away mid-body.
pub fn broken_body(data: &[u8]) -> ByteStream {
    let err = stream::once(async { Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone")) });
    Box::pin(body(data).chain(err))
}

/// A chunk that declares exactly what it carries: `Content-Range: start-end` and `Content-Length`.
pub fn exact(data: &[u8], start: u64) -> Chunk {
    let len = data.len() as u64;
    Chunk {
        range: (len > 0).then(|| (start, start + len - 1)),
        length: Some(len),
        body: body(data),
    }
}

/// A chunk that declares nothing (a streamed PATCH, chunked transfer encoding).
pub fn bare(data: &[u8]) -> Chunk {
    Chunk {
        range: None,
        length: None,
        body: body(data),
    }
}

pub async fn read_all(mut s: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.expect("body chunk"));
    }
    out
}

/// Pushes `data` into `repo` in one request and returns its digest.
pub async fn push(reg: &Registry, repo: &RepoName, data: &[u8]) -> Digest {
    let digest = sha256(data);
    let info = reg
        .push_blob(repo, &digest, exact(data, 0))
        .await
        .expect("push blob");
    assert_eq!(info.size, data.len() as u64);
    digest
}

/// Reads blob `digest` through `repo`, whole.
pub async fn pull(reg: &Registry, repo: &RepoName, digest: &Digest) -> registry::Result<Vec<u8>> {
    let content = reg.get_blob(repo, digest, None).await?;
    Ok(read_all(content.body).await)
}

/// An OCI image manifest referencing `config` and `layers` (digest and size each).
pub fn image_manifest(config: (&Digest, usize), layers: &[(&Digest, usize)]) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, s)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":{s}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
        config.0,
        config.1,
        layers.join(",")
    )
}

/// An OCI index over `children` (digest and size each).
pub fn index_manifest(children: &[(&Digest, usize)]) -> String {
    let children: Vec<String> = children
        .iter()
        .map(|(d, s)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":{s},"platform":{{"architecture":"amd64","os":"linux"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        children.join(",")
    )
}

/// An OCI artifact (empty config) of `artifact_type` whose subject is `subject`.
pub fn referrer_manifest(artifact_type: &str, subject: &Digest, layer: (&Digest, usize)) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"{artifact_type}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{}","size":{}}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{subject}","size":100}},"annotations":{{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"}}}}"#,
        sha256(b"{}"),
        layer.0,
        layer.1
    )
}

/// Pushes a small image (config and one layer, seeded by `seed`) into `repo` under `tag_name` and returns
/// the manifest's digest and bytes.
pub async fn push_image(
    reg: &Registry,
    repo: &RepoName,
    tag_name: &str,
    seed: u8,
) -> (Digest, String) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
    let layer = content(3000, seed);
    let c = push(reg, repo, config.as_bytes()).await;
    let l = push(reg, repo, &layer).await;
    let manifest = image_manifest((&c, config.len()), &[(&l, layer.len())]);
    let out = reg
        .put_manifest(
            repo,
            &tag(tag_name),
            Some("application/vnd.oci.image.manifest.v1+json"),
            Bytes::from(manifest.clone()),
        )
        .await
        .expect("put manifest");
    assert_eq!(out.digest, sha256(manifest.as_bytes()));
    (out.digest, manifest)
}
