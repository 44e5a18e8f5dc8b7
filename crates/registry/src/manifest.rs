//! Pushing, pulling and deleting manifests.
//!
//! A manifest is accepted only when every blob it references is linked to the repository and every child
//! of an index exists there (unless `validation.manifests.indexes` allows a sparse index:
//! `index_children.rs`); the metadata store checks both inside the transaction that stores it, so a
//! concurrent delete cannot slip between the check and the write. It is stored byte for byte: its digest
//! is of the bytes the client sent.

use std::collections::HashSet;

use bytes::Bytes;
use metadata::NewManifest;
use oci::manifest::Manifest;
use oci::{Digest, Reference, RepoName, Tag};

use crate::notify::ManifestFacts;
use crate::notify::event::Action;
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
    /// GET of a manifest by tag or digest: a pull, noted for retention rules (see `pulls`).
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        if let Some(route) = self.proxy_route(repo) {
            let found = self.cached_manifest(&route, reference).await?;
            self.note_manifest_pull(repo, reference, &found);
            return Ok(found);
        }
        let found = self.stored_manifest(repo, reference).await?;
        self.note_pull(repo, &found.digest);
        self.note_manifest_pull(repo, reference, &found);
        Ok(found)
    }

    /// HEAD of a manifest: [`get_manifest`](Self::get_manifest) that is not a pull (see `pulls`).
    pub async fn head_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        if let Some(route) = self.proxy_route(repo) {
            return self.cached_manifest(&route, reference).await;
        }
        self.stored_manifest(repo, reference).await
    }

    async fn stored_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        self.adopt_ahead(repo).await?;
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
        self.adopt_ahead(repo).await?;
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
        // `validation.manifests.indexes`: the children that must be here already (by default all).
        let rule = &self.settings.index_children;
        let required_children = unique(
            parsed
                .manifests
                .iter()
                .filter(|d| rule.requires(d))
                .map(|d| &d.digest),
        );
        let manifest = NewManifest {
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            payload,
            artifact_type: parsed.artifact_type.clone(),
            subject: subject.clone(),
            annotations: parsed.annotations.clone(),
            // Foreign layers are fetched from their URLs, never from here, so they need not be linked.
            blobs: unique(parsed.required_blobs().map(|d| &d.digest)),
            children: required_children.clone(),
            optional_children: unique(
                parsed
                    .manifests
                    .iter()
                    .map(|d| &d.digest)
                    .filter(|d| !required_children.contains(d)),
            ),
            tag_immutable: tag.is_some_and(|t| self.tag_is_immutable(repo, t)),
        };
        let events = self.manifest_events(
            Action::Push,
            repo,
            &ManifestFacts {
                digest: &digest,
                media_type: &manifest.media_type,
                size: manifest.payload.len() as u64,
                tag: tag.map(Tag::as_str),
                payload: &manifest.payload,
            },
        );
        // One transaction checks every reference, stores the manifest and moves the tag (unless it is
        // immutable and on another manifest), and queues its events.
        let put = self.meta.catalog.put_manifest(repo, &manifest, tag);
        match self.noting(events, put).await {
            Err(metadata::Error::TagImmutable(tag)) => {
                return Err(Error::TagImmutable {
                    repo: repo.clone(),
                    tag,
                });
            }
            other => other?,
        }
        Ok(PutManifestOutcome { digest, subject })
    }

    /// DELETE of a manifest by digest (with its tags), or of a tag alone.
    pub async fn delete_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        self.writable_in(repo)?;
        self.adopt_ahead(repo).await?;
        if !self.settings.delete_enabled {
            return Err(Error::Unsupported("deletes are disabled".into()));
        }
        if let Some(tag) = self.immutable_tag_of(repo, reference).await? {
            return Err(Error::TagImmutable {
                repo: repo.clone(),
                tag,
            });
        }
        let existed = match reference {
            Reference::Digest(digest) => {
                let events = self.delete_events(repo, Some(digest), None);
                let delete = self.meta.catalog.delete_manifest(repo, digest);
                self.noting(events, delete).await?
            }
            Reference::Tag(tag) => {
                let events = self.delete_events(repo, None, Some(tag));
                self.noting(events, self.meta.catalog.delete_tag(repo, tag))
                    .await?
            }
        };
        if existed {
            Ok(())
        } else {
            Err(Error::ManifestUnknown(reference.to_string()))
        }
    }
}

impl Registry {
    /// The pull event of a manifest GET (written in a batch: see `notify`).
    fn note_manifest_pull(&self, repo: &RepoName, reference: &Reference, found: &ManifestContent) {
        if !self.notifies() {
            return;
        }
        let tag = match reference {
            Reference::Tag(tag) => Some(tag.as_str()),
            Reference::Digest(_) => None,
        };
        let events = self.manifest_events(
            Action::Pull,
            repo,
            &ManifestFacts {
                digest: &found.digest,
                media_type: &found.media_type,
                size: found.payload.len() as u64,
                tag,
                payload: &found.payload,
            },
        );
        self.note_pull_events(events);
    }
}

/// The digests in first-seen order without repeats (an artifact may use the empty blob as config and
/// layer alike).
fn unique<'a>(digests: impl Iterator<Item = &'a Digest>) -> Vec<Digest> {
    let mut seen = HashSet::new();
    digests.filter(|d| seen.insert(*d)).cloned().collect()
}

impl Registry {
    /// An immutable tag a delete of `reference` would remove: the tag itself, or one pointing at the
    /// manifest by digest (deleting a manifest removes its tags). Only repositories an immutable rule
    /// covers pay for looking.
    async fn immutable_tag_of(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<Tag>> {
        let covered = self
            .settings
            .immutable_tags
            .iter()
            .any(|rule| rule.repositories.iter().any(|p| p.matches(repo.as_str())));
        if !covered {
            return Ok(None);
        }
        let digest = match reference {
            Reference::Tag(tag) => {
                return Ok(self.tag_is_immutable(repo, tag).then(|| tag.clone()));
            }
            Reference::Digest(digest) => digest,
        };
        let mut after: Option<String> = None;
        loop {
            let page = self
                .meta
                .catalog
                .list_tags(repo, after.as_deref(), crate::MAX_PAGE)
                .await?;
            let Some(last) = page.last() else {
                return Ok(None);
            };
            after = Some(last.clone());
            for name in page {
                let Ok(tag) = name.parse::<Tag>() else {
                    continue;
                };
                if self.tag_is_immutable(repo, &tag)
                    && let Some(m) = self.meta.catalog.tagged_manifest(repo, &tag).await?
                    && m.digest == *digest
                {
                    return Ok(Some(tag));
                }
            }
        }
    }
}
