//! Pushing, pulling and deleting manifests.
//!
//! A manifest is accepted only when every blob it references is linked to the repository and every child
//! of an index exists there; the metadata store checks both inside the transaction that stores it, so a
//! concurrent delete cannot slip between the check and the write. It is stored byte for byte: its digest
//! is of the bytes the client sent.

use std::collections::HashSet;

use bytes::Bytes;
use metadata::NewManifest;
use oci::manifest::Manifest;
use oci::{Digest, Reference, RepoName};

use crate::{Error, Registry, Result};

/// A manifest being served.
#[derive(Clone, Debug)]
pub struct ManifestContent {
    pub digest: Digest,
    pub media_type: String,
    pub payload: Bytes,
    /// Served from the pull-through cache although the upstream could not confirm it is current (the
    /// HTTP layer adds a `Warning` header).
    pub stale: bool,
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
        if let Some(route) = self.proxy_route(repo) {
            return self.cached_manifest(&route, reference).await;
        }
        let found = match reference {
            Reference::Tag(tag) => self.meta.catalog.tagged_manifest(repo, tag).await?,
            Reference::Digest(digest) => self.meta.catalog.manifest(repo, digest).await?,
        };
        match found {
            Some(m) => Ok(ManifestContent {
                digest: m.digest,
                media_type: m.media_type,
                payload: m.payload,
                stale: false,
            }),
            None => Err(Error::ManifestUnknown(reference.to_string())),
        }
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
        self.writable_in(repo)?;
        let limit = self.settings.max_manifest_bytes;
        if payload.len() > limit {
            return Err(Error::ManifestTooLarge {
                size: payload.len() as u64,
                limit,
            });
        }
        let parsed = Manifest::parse(&payload, content_type)
            .map_err(|e| Error::ManifestInvalid(e.to_string()))?;
        // The digest is of the exact bytes pushed; a digest reference picks the algorithm and must match.
        let (digest, tag) = match reference {
            Reference::Digest(want) => {
                let got = Digest::of(want.algorithm(), &payload);
                if got != *want {
                    return Err(Error::DigestInvalid(format!(
                        "the manifest's digest is {got}, not {want}"
                    )));
                }
                (got, None)
            }
            Reference::Tag(tag) => (Digest::sha256_of(&payload), Some(tag)),
        };
        let subject = parsed.subject_digest().cloned();
        let manifest = NewManifest {
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            payload,
            artifact_type: parsed.artifact_type.clone(),
            subject: subject.clone(),
            annotations: parsed.annotations.clone(),
            // Foreign layers are fetched from their URLs, never from here, so they need not be linked.
            blobs: unique(parsed.required_blobs().map(|d| &d.digest)),
            children: unique(parsed.manifests.iter().map(|d| &d.digest)),
        };
        // One transaction checks every reference, stores the manifest and moves the tag.
        self.meta.catalog.put_manifest(repo, &manifest, tag).await?;
        Ok(PutManifestOutcome { digest, subject })
    }

    /// DELETE of a manifest by digest (with its tags), or of a tag alone.
    pub async fn delete_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        self.writable_in(repo)?;
        if !self.settings.delete_enabled {
            return Err(Error::Unsupported("deletes are disabled".into()));
        }
        let existed = match reference {
            Reference::Digest(digest) => self.meta.catalog.delete_manifest(repo, digest).await?,
            Reference::Tag(tag) => self.meta.catalog.delete_tag(repo, tag).await?,
        };
        if existed {
            Ok(())
        } else {
            Err(Error::ManifestUnknown(reference.to_string()))
        }
    }
}

/// The digests in first-seen order without repeats (an artifact may use the empty blob as config and
/// layer alike).
fn unique<'a>(digests: impl Iterator<Item = &'a Digest>) -> Vec<Digest> {
    let mut seen = HashSet::new();
    digests.filter(|d| seen.insert(*d)).cloned().collect()
}
