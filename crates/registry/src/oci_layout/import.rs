//! `berth import oci`: what OCI layouts hold, pushed into repositories through the registry's own
//! operations (the blob upload, the manifest put, the tag), so an import is checked, linked, quota'd
//! and announced exactly like a client's push.
//!
//! Which repository and tag an `index.json` entry goes to:
//! - a layout found below the imported directory (a zot storage root) is the repository of its
//!   relative path, under `--repository` when given;
//! - the imported directory itself, when it is a layout, is `--repository`; without it, each entry's
//!   `org.opencontainers.image.ref.name` must be a whole reference (`[host/]name:tag`) that names it;
//! - the ref name is the tag (or, as a whole reference, its tag part); an entry without one is imported
//!   by digest only.
//!
//! Blobs already in the registry are linked, never copied again (the mount of the API); a blob missing
//! from a sparse layout leaves its manifest out. Nothing is dropped silently: every entry not imported
//! is in the report with the reason.

use std::collections::HashSet;
use std::path::Path;

use oci::manifest::{Manifest, ManifestKind};
use oci::{Digest, Reference, RepoName, Tag};

use super::{Entry, Layout, find_layouts};
use crate::ingest::Ingested;
use crate::{Error, Registry, Result};

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Layouts read.
    pub layouts: usize,
    /// Manifests put (each index and each image once per repository).
    pub manifests: usize,
    /// Tags set, as `name:tag`.
    pub tags: Vec<String>,
    /// Blobs whose bytes were copied in, and how many bytes.
    pub blobs_copied: usize,
    pub bytes_copied: u64,
    /// Blobs the registry already held, linked without a copy.
    pub blobs_linked: usize,
    /// Entries left out, and why.
    pub skipped: Vec<Skipped>,
}

/// An entry of a layout that was not imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The layout's directory and the entry (its ref name, else its digest).
    pub what: String,
    pub why: String,
}

impl std::fmt::Display for ImportReport {
    /// The summary line `berth import oci` ends with.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "import read {} layouts: {} manifests and {} tags imported, {} blobs copied ({} bytes), {} \
             linked without a copy; {} entries left out",
            self.layouts,
            self.manifests,
            self.tags.len(),
            self.blobs_copied,
            self.bytes_copied,
            self.blobs_linked,
            self.skipped.len()
        )
    }
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "left out {}: {}", self.what, self.why)
    }
}

impl Registry {
    /// Imports every layout under `dir` (see the module's rules for names).
    pub async fn import_oci(
        &self,
        dir: &Path,
        repository: Option<&RepoName>,
    ) -> Result<ImportReport> {
        let layouts =
            find_layouts(dir).map_err(|e| Error::internal(format!("{}: {e}", dir.display())))?;
        if layouts.is_empty() {
            return Err(Error::ManifestInvalid(format!(
                "{}: no OCI image layout (no oci-layout file) in it or below it",
                dir.display()
            )));
        }
        let mut report = ImportReport::default();
        for (rel, layout) in layouts {
            report.layouts += 1;
            let base = layout_repository(&rel, repository);
            let base = match base {
                Ok(base) => base,
                Err(why) => {
                    report.skipped.push(Skipped {
                        what: layout.root().display().to_string(),
                        why,
                    });
                    continue;
                }
            };
            let mut importer = Importer {
                registry: self,
                layout: &layout,
                done: HashSet::new(),
                report: &mut report,
            };
            for entry in layout.entries().await? {
                importer.entry(base.as_ref(), entry).await;
            }
        }
        Ok(report)
    }
}

/// The repository of the layout at `rel` below the imported directory: `None` when entries must name
/// their own (the directory itself, without `--repository`).
fn layout_repository(
    rel: &str,
    repository: Option<&RepoName>,
) -> std::result::Result<Option<RepoName>, String> {
    let name = match (rel, repository) {
        ("", None) => return Ok(None),
        ("", Some(r)) => return Ok(Some(r.clone())),
        (rel, None) => rel.to_string(),
        (rel, Some(r)) => format!("{}/{rel}", r.as_str()),
    };
    name.parse()
        .map(Some)
        .map_err(|_| format!("{name:?} is not a repository name"))
}

/// Where an entry goes: its repository and tag, from the layout's repository and the ref name.
fn destination(
    base: Option<&RepoName>,
    ref_name: Option<&str>,
) -> std::result::Result<(RepoName, Option<Tag>), String> {
    let Some(ref_name) = ref_name else {
        return base
            .cloned()
            .map(|r| (r, None))
            .ok_or_else(|| "no ref name to take a repository from: give --repository".into());
    };
    if let Ok(tag) = ref_name.parse::<Tag>() {
        return match base {
            Some(base) => Ok((base.clone(), Some(tag))),
            None => Err(format!(
                "ref name {ref_name:?} is a tag of no repository: give --repository"
            )),
        };
    }
    // A whole reference: `[host/]name:tag`, the tag after the last `:` that no `/` follows.
    let (name, tag) = ref_name
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .ok_or_else(|| format!("ref name {ref_name:?} is neither a tag nor name:tag"))?;
    let tag: Tag = tag
        .parse()
        .map_err(|_| format!("ref name {ref_name:?}: {tag:?} is not a tag"))?;
    if let Some(base) = base {
        return Ok((base.clone(), Some(tag)));
    }
    // Docker's rule: a first component with a dot or a port, or `localhost`, is a registry host.
    let path = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => name,
    };
    let repo = path
        .parse()
        .map_err(|_| format!("ref name {ref_name:?}: {path:?} is not a repository name"))?;
    Ok((repo, Some(tag)))
}

struct Importer<'a> {
    registry: &'a Registry,
    layout: &'a Layout,
    /// Manifests already put, per repository, so an index's shared children are put once.
    done: HashSet<(RepoName, Digest)>,
    report: &'a mut ImportReport,
}

impl Importer<'_> {
    async fn entry(&mut self, base: Option<&RepoName>, entry: Entry) {
        let what = format!(
            "{}: {}",
            self.layout.root().display(),
            entry
                .ref_name
                .as_deref()
                .unwrap_or(&entry.digest.to_string())
        );
        let outcome = match destination(base, entry.ref_name.as_deref()) {
            Ok((repo, tag)) => self.place(&repo, &entry, tag).await,
            Err(why) => Err(why),
        };
        if let Err(why) = outcome {
            self.report.skipped.push(Skipped { what, why });
        }
    }

    /// The entry's manifest (and what it needs) into `repo`, then the tag.
    async fn place(
        &mut self,
        repo: &RepoName,
        entry: &Entry,
        tag: Option<Tag>,
    ) -> std::result::Result<(), String> {
        let media_type = (!entry.media_type.is_empty()).then_some(entry.media_type.as_str());
        let payload = self.manifest(repo, &entry.digest, media_type).await?;
        if let Some(tag) = tag {
            self.registry
                .put_manifest(repo, &Reference::Tag(tag.clone()), media_type, payload)
                .await
                .map_err(|e| e.to_string())?;
            self.report
                .tags
                .push(format!("{}:{}", repo.as_str(), tag.as_str()));
        }
        Ok(())
    }

    /// Puts manifest `digest` into `repo` by digest after what it references (an index's children
    /// first, an image's config and layers); its bytes, for the tag.
    async fn manifest(
        &mut self,
        repo: &RepoName,
        digest: &Digest,
        media_type: Option<&str>,
    ) -> std::result::Result<bytes::Bytes, String> {
        let payload = self
            .layout
            .read_small(digest)
            .await
            .map_err(|e| format!("manifest {digest}: {e}"))?;
        if self.done.contains(&(repo.clone(), digest.clone())) {
            return Ok(payload);
        }
        let parsed = Manifest::parse(&payload, media_type).map_err(|e| e.to_string())?;
        match parsed.kind {
            ManifestKind::Index => {
                for child in &parsed.manifests {
                    // Boxed: an index may hold indexes.
                    Box::pin(self.manifest(repo, &child.digest, Some(&child.media_type)))
                        .await
                        .map_err(|why| format!("child {}: {why}", child.digest))?;
                }
            }
            ManifestKind::Image => {
                for blob in parsed.required_blobs() {
                    self.blob(repo, &blob.digest).await?;
                }
            }
        }
        self.registry
            .put_manifest(
                repo,
                &Reference::Digest(digest.clone()),
                media_type,
                payload.clone(),
            )
            .await
            .map_err(|e| e.to_string())?;
        self.done.insert((repo.clone(), digest.clone()));
        self.report.manifests += 1;
        Ok(payload)
    }

    /// Blob `digest` linked to `repo`: already there, mounted from another repository, or copied in
    /// from the layout (the upload checks its digest).
    async fn blob(&mut self, repo: &RepoName, digest: &Digest) -> std::result::Result<(), String> {
        let layout = self.layout;
        let source = || async move {
            let Some(size) = layout.blob_size(digest).await? else {
                return Ok(None);
            };
            Ok(Some((Some(size), layout.stream(digest).await?)))
        };
        match self.registry.ingest_blob(repo, digest, source).await {
            Ok(Ingested::Linked) => self.report.blobs_linked += 1,
            Ok(Ingested::Copied(size)) => {
                self.report.blobs_copied += 1;
                self.report.bytes_copied += size;
            }
            Err(Error::BlobUnknown(_)) => return Err(format!("blob {digest}: not in the layout")),
            Err(e) => return Err(format!("blob {digest}: {e}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    #[test]
    fn names_come_from_the_layout_or_the_ref_name() {
        let base = repo("team/app");
        let tag = |s: &str| Some(s.parse::<Tag>().unwrap());
        assert_eq!(
            destination(Some(&base), Some("v1")),
            Ok((base.clone(), tag("v1")))
        );
        assert_eq!(destination(Some(&base), None), Ok((base.clone(), None)));
        // A whole reference under --repository keeps only its tag.
        assert_eq!(
            destination(Some(&base), Some("localhost/other:v2")),
            Ok((base.clone(), tag("v2")))
        );
        // Without --repository the reference names the repository; a registry host is dropped.
        for (ref_name, name) in [
            ("localhost/app:v1", "app"),
            ("registry.example:5000/a/b:v1", "a/b"),
            ("docker.io/library/alpine:v1", "library/alpine"),
            ("team/app:v1", "team/app"),
        ] {
            assert_eq!(
                destination(None, Some(ref_name)),
                Ok((repo(name), tag("v1"))),
                "{ref_name}"
            );
        }
        for bad in [
            None,
            Some("v1"),
            Some("Team/App:v1"),
            Some("a:b/c"),
            Some("a:"),
        ] {
            assert!(destination(None, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_layout_below_the_directory_is_the_repository_of_its_path() {
        assert_eq!(layout_repository("", None), Ok(None));
        assert_eq!(layout_repository("", Some(&repo("x"))), Ok(Some(repo("x"))));
        assert_eq!(layout_repository("a/b", None), Ok(Some(repo("a/b"))));
        assert_eq!(
            layout_repository("a/b", Some(&repo("mirror"))),
            Ok(Some(repo("mirror/a/b")))
        );
        assert!(layout_repository("_trivy/db", None).is_err());
    }
}
