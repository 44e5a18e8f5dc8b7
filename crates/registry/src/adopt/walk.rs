//! Finding things in registry:2's tree: its repositories (a name is every directory component down to a
//! directory holding `_manifests` or `_layers`, as registry:2's catalog walk finds them) and the links
//! under one (`<alg>/<hex>/link` files, each naming the digest of its path).

use blobs::registry2::Registry2Tree;
use oci::Digest;

use crate::Result;

/// A link file holds `<alg>:<hex>` (registry:2 writes it without a newline; tolerate one).
const LINK_LIMIT: u64 = 256;

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

/// The links under `dir` (`<dir>/<alg>/<hex>/link`), each with the path it was read from, in order.
pub(super) async fn links(tree: &dyn Registry2Tree, dir: &str) -> Result<Vec<(String, Link)>> {
    let mut links = Vec::new();
    for alg in tree.list(dir).await?.into_iter().filter(|e| e.dir) {
        let alg_dir = format!("{dir}/{}", alg.name);
        for hex in tree.list(&alg_dir).await?.into_iter().filter(|e| e.dir) {
            let path = format!("{alg_dir}/{}/link", hex.name);
            let expected = format!("{}:{}", alg.name, hex.name);
            let link = read_link(tree, &path, Some(&expected)).await?;
            links.push((path, link));
        }
    }
    Ok(links)
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
