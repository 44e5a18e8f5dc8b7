//! Reading OCI image layouts (image-spec `image-layout.md`) for `berth import oci`: a directory holding
//! `oci-layout`, `index.json` and `blobs/<algorithm>/<hex>`, as skopeo's `oci:` transport, `podman save
//! --format oci-dir`, buildah and crane write it; or a tree of such directories, one per repository, as
//! zot keeps its storage root.
//!
//! Only reading is here, and only of the layout's own files: a digest is turned into a path by
//! [`Digest`]'s validated parts, never by a string from the layout, so a hostile `index.json` cannot
//! name a file outside `blobs/`. What the layout holds is then pushed through the registry's own
//! operations ([`import`]), which check every digest and reference as for a client's push.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::stream;
use oci::Digest;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use crate::{ByteStream, Error, Result};

pub mod import;

pub use import::{ImportReport, Skipped};

/// The annotation of an `index.json` entry that names it (image-spec): a tag (`v1`), or in some
/// tools' layouts a whole reference (`localhost/app:v1`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The largest `index.json` or manifest read whole; real ones are kilobytes.
const MAX_JSON: u64 = 16 << 20;

/// One OCI image layout on disk.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

/// An entry of `index.json`: a manifest and the name it is given, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub ref_name: Option<String>,
}

#[derive(Deserialize)]
struct IndexFile {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl Layout {
    /// The layout at `root`, if `root` holds an `oci-layout` file (the marker every writer puts there).
    pub fn open(root: &Path) -> Option<Layout> {
        root.join("oci-layout").is_file().then(|| Layout {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The entries of `index.json`, in its order.
    pub async fn entries(&self) -> Result<Vec<Entry>> {
        let bytes = read_small(&self.root.join("index.json")).await?;
        let index: IndexFile = serde_json::from_slice(&bytes).map_err(|e| {
            Error::ManifestInvalid(format!("{}/index.json: {e}", self.root.display()))
        })?;
        index
            .manifests
            .into_iter()
            .map(|e| {
                let digest = e.digest.parse().map_err(|_| {
                    Error::ManifestInvalid(format!(
                        "{}/index.json: not a digest: {:?}",
                        self.root.display(),
                        e.digest.chars().take(100).collect::<String>()
                    ))
                })?;
                Ok(Entry {
                    media_type: e.media_type,
                    digest,
                    size: e.size,
                    ref_name: e.annotations.get(REF_NAME).cloned(),
                })
            })
            .collect()
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// The size of blob `digest` in the layout, or `None` when the layout lacks it (a layout may be
    /// sparse: one platform of an index, say).
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::internal(format!("{}: {e}", self.root.display()))),
        }
    }

    /// Blob `digest` read whole, for manifests (at most 16 MiB).
    pub async fn read_small(&self, digest: &Digest) -> Result<Bytes> {
        read_small(&self.blob_path(digest)).await
    }

    /// Blob `digest` as a stream of 1 MiB reads.
    pub async fn stream(&self, digest: &Digest) -> Result<ByteStream> {
        let path = self.blob_path(digest);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
        Ok(Box::pin(stream::unfold(Some(file), |file| async move {
            let mut file = file?;
            let mut buf = Vec::with_capacity(1 << 20);
            match (&mut file).take(1 << 20).read_to_end(&mut buf).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(Bytes::from(buf)), Some(file))),
                Err(e) => Some((Err(e), None)),
            }
        })))
    }
}

/// The layouts under `root`, each with its path relative to `root` (`""` for `root` itself): `root`
/// alone when it is a layout, else every layout below it (a zot storage root), in path order. A
/// layout's own directories are not searched further.
pub fn find_layouts(root: &Path) -> std::io::Result<Vec<(String, Layout)>> {
    let mut found = Vec::new();
    walk(root, root, &mut found)?;
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<(String, Layout)>) -> std::io::Result<()> {
    if let Some(layout) = Layout::open(dir) {
        let rel = dir.strip_prefix(root).unwrap_or(dir);
        found.push((rel.to_string_lossy().into_owned(), layout));
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // Symbolic links are not followed: a tree of layouts has none, and a loop would never end.
        if entry.file_type()?.is_dir() {
            walk(root, &entry.path(), found)?;
        }
    }
    Ok(())
}

async fn read_small(path: &Path) -> Result<Bytes> {
    let io = |e: std::io::Error| Error::internal(format!("{}: {e}", path.display()));
    let file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(io)?;
    if bytes.len() as u64 > MAX_JSON {
        return Err(Error::ManifestInvalid(format!(
            "{}: larger than {MAX_JSON} bytes",
            path.display()
        )));
    }
    Ok(Bytes::from(bytes))
}
