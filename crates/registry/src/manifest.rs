//! Pushing, pulling and deleting manifests.

use bytes::Bytes;
use oci::{Digest, Reference, RepoName};

use crate::{Registry, Result};

/// A manifest being served.
#[derive(Clone, Debug)]
pub struct ManifestContent {
    pub digest: Digest,
    pub media_type: String,
    pub payload: Bytes,
}

/// What a manifest PUT produced.
#[derive(Clone, Debug)]
pub struct PutManifestOutcome {
    pub digest: Digest,
    /// The manifest's subject, answered as `OCI-Subject`.
    pub subject: Option<Digest>,
}

impl Registry {
    /// GET/HEAD of a manifest by tag or digest.
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        let _ = (repo, reference);
        todo!()
    }

    /// PUT of a manifest: validates it, checks its references, stores the bytes as pushed and moves the tag.
    /// `content_type` is the request's Content-Type, if any.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        payload: Bytes,
    ) -> Result<PutManifestOutcome> {
        let _ = (repo, reference, content_type, payload);
        todo!()
    }

    /// DELETE of a manifest by digest (with its tags), or of a tag alone.
    pub async fn delete_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        let _ = (repo, reference);
        todo!()
    }
}
