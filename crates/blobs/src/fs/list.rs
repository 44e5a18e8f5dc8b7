//! Listing the committed blobs in digest order, a page at a time (`BlobStore::list_blobs`). Blocking
//! code: callers run it inside `spawn_blocking`.
//!
//! Why the order comes for free: a blob's path is `blobs/<algorithm>/<first two hex>/<hex>`, so walking
//! the algorithms in `Digest` order, then each algorithm's fan-out directories by name, then each
//! fan-out directory's names, visits digests in order. A page starts at the cursor's fan-out directory
//! and reads no directory it does not need, and at most one fan-out directory's names are in memory at
//! once (about 1/256 of the blobs), never every digest.

use std::fs;
use std::io;
use std::time::SystemTime;

use oci::Digest;

use super::layout::{ALGORITHMS, Layout};
use crate::ListedBlob;

/// Up to `limit` committed blobs strictly after `after`, in digest order.
pub(super) fn list_blobs(
    layout: &Layout,
    after: Option<&Digest>,
    limit: usize,
) -> io::Result<Vec<ListedBlob>> {
    let mut page = Vec::new();
    if limit == 0 {
        return Ok(page);
    }
    for algorithm in ALGORITHMS {
        if after.is_some_and(|a| algorithm < a.algorithm()) {
            continue;
        }
        // The cursor's fan-out directory, when the cursor is of this algorithm: those before it hold
        // nothing after it.
        let from = after
            .filter(|a| a.algorithm() == algorithm)
            .and_then(|a| a.hex().get(..2));
        let mut fanouts = names(&layout.algorithm_dir(algorithm))?;
        fanouts.retain(|f| from.is_none_or(|from| f.as_str() >= from));
        for fanout in fanouts {
            let dir = layout.algorithm_dir(algorithm).join(&fanout);
            for name in names(&dir)? {
                let Ok(digest) = format!("{}:{name}", algorithm.as_str()).parse::<Digest>() else {
                    continue;
                };
                // Only what the layout would put here: a stray file is not a blob.
                if layout.blob_path(&digest) != dir.join(&name)
                    || after.is_some_and(|a| &digest <= a)
                {
                    continue;
                }
                let meta = match fs::symlink_metadata(dir.join(&name)) {
                    Ok(meta) if meta.is_file() => meta,
                    Ok(_) => continue,
                    // Deleted since the directory was read: a blob that went during the walk.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                page.push(ListedBlob {
                    digest,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or_else(|_| SystemTime::now()),
                });
                if page.len() == limit {
                    return Ok(page);
                }
            }
        }
    }
    Ok(page)
}

/// The names in `dir`, sorted (byte order, which for hex names is digest order); none if it is missing.
fn names(dir: &std::path::Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        // A name that is not UTF-8 is not a blob's.
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}
