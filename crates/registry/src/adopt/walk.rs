//! Finding things in registry:2's tree: its repositories (a name is every directory component down to a
//! directory holding `_manifests` or `_layers`, as registry:2's catalog walk finds them) and the links
//! under one (`<alg>/<hex>/link` files, each naming the digest of its path).

use blobs::registry2::Registry2Tree;
use futures_util::{StreamExt, TryStreamExt, stream};
use oci::Digest;

use crate::Result;

/// A link file holds `<alg>:<hex>` (registry:2 writes it without a newline; tolerate one).
const LINK_LIMIT: u64 = 256;

/// How many small reads (link files, blob sizes) of one repository are in flight at once. Each is a
/// trip to a blocking thread that costs more than the read itself; one after the other, they were a
/// third of an adoption's time (issue 19's tree: eleven per repository), while a few dozen at once
/// cost about one trip's wait.
pub(super) const CONCURRENT_READS: usize = 16;

/// Every repository of the tree, in name order.
pub(super) async fn repositories(tree: &dyn Registry2Tree) -> Result<Vec<String>> {
    let mut found = Vec::new();
    // An explicit stack rather than async recursion; names are short, and there are as many as there
    // are repositories and their parent directories.
    let mut stack = vec![String::new()];
    while let Some(name) = stack.pop() {
        let path = if name.is_empty() {
            "repositories".to_string()
        } else {
            format!("repositories/{name}")
        };
        let entries = tree.list(&path).await?;
        if entries.iter().any(is_repository_part) {
            found.push(name.clone());
        }
        // `a` and `a/b` may both be repositories; `_`-directories are a repository's own.
        for entry in entries.iter().filter(|e| e.dir && !e.name.starts_with('_')) {
            stack.push(if name.is_empty() {
                entry.name.clone()
            } else {
                format!("{name}/{}", entry.name)
            });
        }
    }
    found.sort();
    Ok(found)
}

/// Whether the tree holds repository `name` (its directory has `_manifests` or `_layers`, as the walk
/// above decides).
pub(super) async fn is_repository(tree: &dyn Registry2Tree, name: &str) -> Result<bool> {
    let entries = tree.list(&format!("repositories/{name}")).await?;
    Ok(entries.iter().any(is_repository_part))
}

/// A repository's own directory, which makes its parent a repository.
fn is_repository_part(e: &blobs::registry2::Entry) -> bool {
    e.dir && (e.name == "_manifests" || e.name == "_layers")
}

/// What one link file under a `<alg>/<hex>/` directory says.
pub(super) enum Link {
    /// It names the digest its path does.
    Digest(Digest),
    /// No link file in the directory (an interrupted write, or a removal halfway).
    Absent,
    /// It names something else, or no digest: why.
    Bad(String),
}

/// The links under `dir` (`<dir>/<alg>/<hex>/link`), each with the path it was read from, in order
/// (read [`CONCURRENT_READS`] at a time).
pub(super) async fn links(tree: &dyn Registry2Tree, dir: &str) -> Result<Vec<(String, Link)>> {
    let mut wanted = Vec::new();
    for alg in tree.list(dir).await?.into_iter().filter(|e| e.dir) {
        let alg_dir = format!("{dir}/{}", alg.name);
        for hex in tree.list(&alg_dir).await?.into_iter().filter(|e| e.dir) {
            let path = format!("{alg_dir}/{}/link", hex.name);
            wanted.push((path, format!("{}:{}", alg.name, hex.name)));
        }
    }
    // The reads are made before they are streamed: a stream holding the closure that makes them is
    // one the compiler cannot prove `Send` for every lifetime, which `berth serve`'s spawned adoption
    // needs.
    let reads: Vec<_> = wanted
        .into_iter()
        .map(|(path, expected)| read_expected(tree, path, expected))
        .collect();
    stream::iter(reads)
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await
}

/// [`read_link`] of `path`, which must name `expected`, with its path.
async fn read_expected(
    tree: &dyn Registry2Tree,
    path: String,
    expected: String,
) -> Result<(String, Link)> {
    let link = read_link(tree, &path, Some(&expected)).await?;
    Ok((path, link))
}

/// Reads the link file at `path`; when `expected` is given, the digest it names must be that one.
pub(super) async fn read_link(
    tree: &dyn Registry2Tree,
    path: &str,
    expected: Option<&str>,
) -> Result<Link> {
    let Some(bytes) = tree.read_small(path, LINK_LIMIT).await? else {
        return Ok(Link::Absent);
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    let digest = match text.parse::<Digest>() {
        Ok(digest) => digest,
        Err(e) => return Ok(Link::Bad(format!("the link holds no digest ({e})"))),
    };
    match expected {
        Some(want) if digest.to_string() != want => Ok(Link::Bad(format!(
            "the link names {digest}, not the {want} of its path"
        ))),
        _ => Ok(Link::Digest(digest)),
    }
}
