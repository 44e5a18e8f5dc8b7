//! One repository of registry:2's tree into the catalog: its layer links, then its manifests (children
//! before the indexes that list them), then its tags.

use std::collections::{HashMap, HashSet};

use blobs::BlobStore;
use blobs::registry2::{Registry2Tree, blob_data_path};
use futures_util::{StreamExt, TryStreamExt, stream};
use metadata::{AdoptedAhead, Catalog, NewManifest};
use oci::manifest::{Manifest, ManifestError};
use oci::{Digest, RepoName, Tag};

use super::walk::{self, Link};
use super::{AdoptOptions, AdoptReport, SkipKind, Skipped};
use crate::{Registry, Result};

/// One adoption's state across repositories.
pub(super) struct Adoption<'a> {
    pub registry: &'a Registry,
    pub tree: &'a dyn Registry2Tree,
    pub options: AdoptOptions,
    /// Blobs hashed so far and whether their bytes matched (a layer shared by many repositories is
    /// hashed once).
    pub verdicts: HashMap<Digest, bool>,
    pub report: &'a mut AdoptReport,
}

impl Adoption<'_> {
    fn skip(&mut self, kind: SkipKind, what: String, reason: impl Into<String>) {
        let skipped = Skipped {
            kind,
            what,
            reason: reason.into(),
        };
        tracing::warn!("registry:2's {skipped}");
        self.report.skipped.push(skipped);
    }

    /// Adopts the repository `name` of the tree.
    pub async fn repository(&mut self, name: &str) -> Result<()> {
        self.report.repositories += 1;
        let repo: RepoName = match name.parse() {
            Ok(repo) => repo,
            Err(e) => {
                self.skip(
                    SkipKind::Invalid,
                    format!("repository {name}"),
                    e.to_string(),
                );
                return Ok(());
            }
        };
        let base = format!("repositories/{name}");
        let before = (
            self.report.manifests,
            self.report.tags,
            self.report.layer_links,
        );
        self.layers(&repo, &base).await?;
        let adopted = self.manifests(&repo, &base).await?;
        self.tags(&repo, &base, &adopted).await?;
        tracing::info!(
            repo = name,
            manifests = self.report.manifests - before.0,
            tags = self.report.tags - before.1,
            layer_links = self.report.layer_links - before.2,
            "adopted a registry:2 repository"
        );
        Ok(())
    }

    /// Counts the repository `name`, adopted ahead for a request with `counts`, as adopted.
    pub fn passed_over(&mut self, name: &str, counts: &AdoptedAhead) {
        tracing::debug!(repo = name, "adopted ahead for a request; passed over");
        self.report.repositories += 1;
        self.report.manifests += counts.manifests;
        self.report.tags += counts.tags;
        self.report.layer_links += counts.layer_links;
        self.report.ahead += 1;
        self.report.skipped_ahead += counts.skipped;
    }

    /// `_layers/<alg>/<hex>/link`: the blobs the repository may read, linked in one catalog call (one
    /// commit for the repository's layers, not one per layer: the commits' flushes to disk were most of
    /// an adoption's time).
    async fn layers(&mut self, repo: &RepoName, base: &str) -> Result<()> {
        let links = walk::links(self.tree, &format!("{base}/_layers")).await?;
        // The sizes first, several at a time (as the links were read, and for the same reason), in the
        // links' order.
        let blob_store = &*self.registry.blobs;
        let stats: Vec<_> = links
            .iter()
            .map(|(_, link)| size_of(blob_store, link))
            .collect();
        let sizes: Vec<_> = stream::iter(stats)
            .buffered(walk::CONCURRENT_READS)
            .collect()
            .await;
        let mut blobs = Vec::new();
        for ((path, link), size) in links.into_iter().zip(sizes) {
            let digest = match link {
                Link::Digest(digest) => digest,
                Link::Absent => continue, // A directory without its link links nothing, for registry:2 too.
                Link::Bad(why) => {
                    self.skip(SkipKind::Invalid, format!("layer link {path}"), why);
                    continue;
                }
            };
            let what = format!("blob {digest} of {repo}");
            let Some(size) = size? else {
                let reason = format!("linked, but {} holds no bytes", blob_data_path(&digest));
                self.skip(SkipKind::Missing, what, reason);
                continue;
            };
            if self.options.verify && !self.verify(&digest, size).await? {
                self.skip(
                    SkipKind::Corrupt,
                    what,
                    "its bytes do not hash to its digest",
                );
                continue;
            }
            blobs.push((digest, size));
        }
        self.registry.meta.catalog.link_blobs(repo, &blobs).await?;
        self.report.layer_links += blobs.len() as u64;
        Ok(())
    }

    /// Whether blob `digest`'s bytes match it, hashing each blob once per adoption.
    async fn verify(&mut self, digest: &Digest, size: u64) -> Result<bool> {
        if let Some(&good) = self.verdicts.get(digest) {
            return Ok(good);
        }
        // Bytes that vanished between the stat and the read are no match either.
        let good = self.registry.bytes_match(digest).await?.unwrap_or(false);
        self.verdicts.insert(digest.clone(), good);
        self.report.verified_blobs += 1;
        self.report.verified_bytes += size;
        Ok(good)
    }

    /// `_manifests/revisions/<alg>/<hex>/link`: every manifest of the repository, stored; returns the
    /// digests stored, for the tags. Each manifest is stored as soon as it is read, so only the
    /// indexes waiting for a child are held in memory, not a repository's every revision.
    async fn manifests(&mut self, repo: &RepoName, base: &str) -> Result<HashSet<Digest>> {
        let mut adopted = HashSet::new();
        let mut pending = Vec::new();
        let revisions = format!("{base}/_manifests/revisions");
        for (path, link) in walk::links(self.tree, &revisions).await? {
            let digest = match link {
                Link::Digest(digest) => digest,
                Link::Absent => continue,
                Link::Bad(why) => {
                    self.skip(SkipKind::Invalid, format!("revision link {path}"), why);
                    continue;
                }
            };
            if let Some(manifest) = self.read_manifest(repo, &digest).await?
                && let Some(waiting) = self.store(repo, manifest, &mut adopted).await?
            {
                pending.push(waiting);
            }
        }
        // Children first: an index whose child was not stored yet waits, and each pass over the waiting
        // stores what it can; a pass that stores nothing leaves only manifests that can never be.
        while !pending.is_empty() {
            let before = adopted.len();
            let mut waiting = Vec::new();
            for (manifest, _) in std::mem::take(&mut pending) {
                if let Some(still) = self.store(repo, manifest, &mut adopted).await? {
                    waiting.push(still);
                }
            }
            if adopted.len() > before {
                pending = waiting;
            } else {
                for (manifest, reason) in waiting {
                    let what = format!("manifest {repo}@{}", manifest.digest);
                    self.skip(SkipKind::Missing, what, reason);
                }
            }
        }
        Ok(adopted)
    }

    /// Stores `manifest` in `repo`, noting it in `adopted`; gives it back with the reason when a child
    /// of it is not in the repository (yet); skips it when a blob it references is not linked.
    async fn store(
        &mut self,
        repo: &RepoName,
        manifest: NewManifest,
        adopted: &mut HashSet<Digest>,
    ) -> Result<Option<(NewManifest, String)>> {
        let catalog = &self.registry.meta.catalog;
        match catalog.put_manifest(repo, &manifest, None).await {
            Ok(()) => {
                self.report.manifests += 1;
                adopted.insert(manifest.digest);
                Ok(None)
            }
            Err(metadata::Error::MissingManifest(child)) => {
                let reason = format!("it lists {child}, which is not in the repository");
                Ok(Some((manifest, reason)))
            }
            Err(metadata::Error::MissingBlob(blob)) => {
                let what = format!("manifest {repo}@{}", manifest.digest);
                let reason = format!(
                    "it references blob {blob}, which the repository does not link (or which was skipped)"
                );
                self.skip(SkipKind::Missing, what, reason);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The manifest `digest` of `repo` from the tree's bytes, ready to store; `None` (skipped, with the
    /// reason) when it cannot be.
    async fn read_manifest(
        &mut self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<NewManifest>> {
        let what = format!("manifest {repo}@{digest}");
        let path = blob_data_path(digest);
        let limit = self.registry.settings.max_manifest_bytes as u64;
        let size = match self.tree.stat_blob(digest).await? {
            None => {
                self.skip(SkipKind::Missing, what, format!("{path} holds no bytes"));
                return Ok(None);
            }
            Some(size) if size > limit => {
                let reason = format!(
                    "{size} bytes, more than the {limit} a manifest may have (limits.maxmanifestbytes)"
                );
                self.skip(SkipKind::Invalid, what, reason);
                return Ok(None);
            }
            Some(size) => size,
        };
        let Some(payload) = self.tree.read_small(&path, size).await? else {
            self.skip(SkipKind::Missing, what, format!("{path} holds no bytes"));
            return Ok(None);
        };
        if Digest::of(digest.algorithm(), &payload) != *digest {
            self.skip(
                SkipKind::Corrupt,
                what,
                "its bytes do not hash to its digest",
            );
            return Ok(None);
        }
        let parsed = match Manifest::parse(&payload, None) {
            Ok(parsed) => parsed,
            Err(e @ ManifestError::Schema1(_)) => {
                self.skip(SkipKind::Schema1, what, e.to_string());
                return Ok(None);
            }
            Err(e) => {
                self.skip(SkipKind::Invalid, what, e.to_string());
                return Ok(None);
            }
        };
        // As `Registry::put_manifest` builds it from a push (foreign layers need no link).
        Ok(Some(NewManifest {
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            artifact_type: parsed.artifact_type.clone(),
            subject: parsed.subject_digest().cloned(),
            annotations: parsed.annotations.clone(),
            blobs: unique(parsed.required_blobs().map(|d| &d.digest)),
            children: unique(parsed.manifests.iter().map(|d| &d.digest)),
            optional_children: Vec::new(),
            tag_immutable: false,
            payload,
        }))
    }

    /// `_manifests/tags/<tag>/current/link`: each tag, pointed where registry:2 pointed it, unless
    /// berth holds it on another manifest already. The links and what berth holds are read several at
    /// a time, and the tags are set in one catalog call (one commit, the manifests not sent again).
    async fn tags(&mut self, repo: &RepoName, base: &str, adopted: &HashSet<Digest>) -> Result<()> {
        let tags_dir = format!("{base}/_manifests/tags");
        let names = self
            .tree
            .list(&tags_dir)
            .await?
            .into_iter()
            .filter(|e| e.dir);
        let catalog = &*self.registry.meta.catalog;
        let reads: Vec<_> = names
            .map(|entry| read_tag(self.tree, catalog, repo, &tags_dir, entry.name))
            .collect();
        let reads: Vec<TagRead> = stream::iter(reads)
            .buffered(walk::CONCURRENT_READS)
            .try_collect()
            .await?;
        let mut set = Vec::new();
        for read in reads {
            let what = format!("tag {repo}:{}", read.name);
            let (tag, digest, held) = match read.state {
                TagState::Invalid(why) => {
                    self.skip(SkipKind::Invalid, what, why);
                    continue;
                }
                TagState::Absent(path) => {
                    self.skip(SkipKind::Missing, what, format!("{path} is missing"));
                    continue;
                }
                TagState::Found { tag, digest, held } => (tag, digest, held),
            };
            if !adopted.contains(&digest) {
                let reason = format!(
                    "it points to {digest}, which was not adopted (deleted in registry:2, or skipped)"
                );
                self.skip(SkipKind::Missing, what, reason);
                continue;
            }
            match held {
                Some(held) if held != digest => {
                    self.report.kept_tags.push((
                        format!("{repo}:{tag}"),
                        held.to_string(),
                        digest.to_string(),
                    ));
                    continue;
                }
                Some(_) => {}
                None => set.push((tag, digest)),
            }
            self.report.tags += 1;
        }
        catalog.put_tags(repo, &set).await?;
        Ok(())
    }
}

/// One tag directory of registry:2's tree, read.
struct TagRead {
    /// The directory's name.
    name: String,
    state: TagState,
}

enum TagState {
    /// Not a tag berth can hold, or its link names no digest: why.
    Invalid(String),
    /// Its `current/link` (this path) is missing.
    Absent(String),
    /// The tag, the manifest its link names, and the one berth holds under it, if any.
    Found {
        tag: Tag,
        digest: Digest,
        held: Option<Digest>,
    },
}

/// Reads the tag directory `name` of `tags_dir` (a repository's `_manifests/tags`) and what `catalog`
/// holds under the tag in `repo`. (A function, not an `async` block in `tags`, for the reason
/// `walk::links` gives.)
async fn read_tag(
    tree: &dyn Registry2Tree,
    catalog: &dyn Catalog,
    repo: &RepoName,
    tags_dir: &str,
    name: String,
) -> Result<TagRead> {
    let tag: Tag = match name.parse() {
        Ok(tag) => tag,
        Err(e) => {
            let state = TagState::Invalid(e.to_string());
            return Ok(TagRead { name, state });
        }
    };
    let path = format!("{tags_dir}/{name}/current/link");
    let state = match walk::read_link(tree, &path, None).await? {
        Link::Digest(digest) => {
            let held = catalog.tagged_manifest(repo, &tag).await?.map(|m| m.digest);
            TagState::Found { tag, digest, held }
        }
        Link::Absent => TagState::Absent(path),
        Link::Bad(why) => TagState::Invalid(why),
    };
    Ok(TagRead { name, state })
}

/// The size of the blob `link` names, `None` when it has no bytes or names none.
async fn size_of(blobs: &dyn BlobStore, link: &Link) -> blobs::Result<Option<u64>> {
    match link {
        Link::Digest(digest) => blobs.stat(digest).await,
        Link::Absent | Link::Bad(_) => Ok(None),
    }
}

/// The digests in first-seen order without repeats (as a push stores them).
fn unique<'a>(digests: impl Iterator<Item = &'a Digest>) -> Vec<Digest> {
    let mut seen = HashSet::new();
    digests.filter(|d| seen.insert(*d)).cloned().collect()
}
