//! The harness of the end-to-end suite: the server process, an HTTP client of the distribution API, the
//! real clients with isolated state, and test images built on the spot.

pub mod big_image;
pub mod clients;
pub mod containerd;
pub mod daemons;
pub mod dockerd;
pub mod http;
pub mod images;
pub mod nginx;
pub mod postgres;
pub mod private_garage;
pub mod private_postgres;
pub mod receiver;
pub mod registry2;
pub mod rng;
pub mod s3;
pub mod server;

pub use clients::Tools;
pub use http::{Api, BlobPush, sha256};
pub use server::{Metadata, Options, Server, Storage};

/// A repository name unique to one test, so tests never see each other's data even on a shared server.
pub fn repo(test: &str) -> String {
    format!("e2e/{test}")
}

/// Pushes a single-platform image over HTTP (blobs monolithically, manifest under `reference`); returns the
/// answer to the manifest PUT.
pub fn push_image(api: &Api, repo: &str, reference: &str, img: &images::Image) -> http::Resp {
    for blob in img.blobs() {
        api.push_blob(repo, &blob.bytes, BlobPush::Monolithic)
            .unwrap_or_else(|e| panic!("push of blob {} to {repo}: {e}", blob.digest));
    }
    api.put_manifest(
        repo,
        reference,
        &img.manifest.media_type,
        &img.manifest.bytes,
    )
    .unwrap_or_else(|e| panic!("PUT manifest {repo}:{reference}: {e}"))
}
