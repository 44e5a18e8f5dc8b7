//! The case every reader of registry:2's tree ([`Registry2Tree`]: the filesystem's, a bucket's)
//! passes: a tree made by hand through `put` (a file's path below `docker/registry/v2/`, its bytes),
//! listed, its link files read within a limit, its blobs stat'ed and read by range, and no path
//! escaping the tree.

use std::future::Future;

use bytes::Bytes;
use futures_util::TryStreamExt;
use oci::Digest;

use crate::registry2::{Entry, Registry2Tree, blob_data_path};

pub async fn registry2_tree_reads_a_tree_made_by_hand<F, Fut>(tree: &dyn Registry2Tree, put: F)
where
    F: Fn(String, Vec<u8>) -> Fut,
    Fut: Future<Output = ()>,
{
    assert!(!tree.exists().await.unwrap());
    assert!(tree.list("repositories").await.unwrap().is_empty());

    let blob = b"layer bytes";
    let digest = Digest::sha256_of(blob);
    put(blob_data_path(&digest), blob.to_vec()).await;
    let link = format!("repositories/a/b/_layers/sha256/{}/link", digest.hex());
    put(link.clone(), digest.to_string().into_bytes()).await;
    put(
        "repositories/a/c/_manifests/tags/x/current/link".into(),
        b"x".to_vec(),
    )
    .await;
    assert!(tree.exists().await.unwrap());

    let entries = |v: Vec<Entry>| v.into_iter().map(|e| (e.name, e.dir)).collect::<Vec<_>>();
    let dir = |name: &str| (name.to_string(), true);
    assert_eq!(
        entries(tree.list("repositories").await.unwrap()),
        [dir("a")]
    );
    assert_eq!(
        entries(tree.list("repositories/a").await.unwrap()),
        [dir("b"), dir("c")]
    );
    assert_eq!(
        entries(tree.list("repositories/a/b").await.unwrap()),
        [dir("_layers")]
    );
    let hex_dir = format!("repositories/a/b/_layers/sha256/{}", digest.hex());
    assert_eq!(
        entries(tree.list(&hex_dir).await.unwrap()),
        [("link".to_string(), false)]
    );
    assert_eq!(
        tree.read_small(&link, 100).await.unwrap().as_deref(),
        Some(digest.to_string().as_bytes())
    );
    assert!(
        tree.read_small(&link, 10).await.is_err(),
        "longer than the limit"
    );
    assert_eq!(
        tree.read_small("repositories/a/nope", 100).await.unwrap(),
        None
    );
    assert!(tree.list("repositories/../..").await.is_err());
    assert!(tree.list("repositories/../x").await.is_err());

    assert_eq!(
        tree.stat_blob(&digest).await.unwrap(),
        Some(blob.len() as u64)
    );
    assert_eq!(
        tree.stat_blob(&Digest::sha256_of(b"other")).await.unwrap(),
        None
    );
    let reader = tree.read_blob(&digest, Some(6..11)).await.unwrap().unwrap();
    assert_eq!(reader.size, blob.len() as u64);
    let got: Vec<Bytes> = reader.body.try_collect().await.unwrap();
    assert_eq!(got.concat(), b"bytes");
}
