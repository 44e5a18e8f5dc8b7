//! Cases of storage usage. They push through the catalog, so they run against stores that are both:
//! every backend.

use super::{blob, image, repo, tag};
use crate::{
    Catalog, ManifestPull, ProxyEntries, ProxyEntry, ProxyEntryKind, StoreTotals, TagAges, Usage,
};

pub async fn usage_per_repository_counts_shared_bytes<S: Catalog + TagAges + Usage>(store: S) {
    let (a, b, c) = (repo("a"), repo("b"), repo("c"));
    let (base, only_a, only_b) = (blob("base"), blob("only-a"), blob("only-b"));
    store.link_blob(&a, &base, 100).await.unwrap();
    store.link_blob(&a, &only_a, 10).await.unwrap();
    store.link_blob(&b, &base, 100).await.unwrap();
    store.link_blob(&b, &only_b, 1).await.unwrap();
    let m = image("m", [base.clone(), only_a.clone()]);
    store.put_manifest(&a, &m, Some(&tag("v1"))).await.unwrap();
    store.put_manifest(&a, &m, Some(&tag("v2"))).await.unwrap();
    store
        .record_pulls(&[ManifestPull {
            repo: a.clone(),
            digest: m.digest.clone(),
            at: 4_000_000_000,
        }])
        .await
        .unwrap();

    let all = store.repo_usage(None, 10).await.unwrap();
    let names: Vec<_> = all.iter().map(|u| u.repo.as_str()).collect();
    assert_eq!(names, ["a", "b"], "in name order; c never stored anything");
    let (ua, ub) = (&all[0], &all[1]);
    assert_eq!((ua.bytes, ua.shared_bytes), (110, 100));
    assert_eq!((ua.manifests, ua.tags), (1, 2));
    assert!(ua.last_push.is_some_and(|t| t > 1_600_000_000), "{ua:?}");
    assert_eq!(ua.last_pull, Some(4_000_000_000));
    assert_eq!(
        (ub.bytes, ub.shared_bytes, ub.manifests, ub.tags),
        (101, 100, 0, 0)
    );
    assert_eq!((ub.last_push, ub.last_pull), (None, None));
    // Paged by name.
    let rest = store.repo_usage(Some("a"), 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].repo, b);
    assert_eq!(store.repo_usage(None, 1).await.unwrap().len(), 1);

    // Every repository under a prefix, those holding only blobs too; `_` is no wildcard.
    store.link_blob(&repo("a/x_y"), &base, 100).await.unwrap();
    store.link_blob(&repo("a/xzy"), &base, 100).await.unwrap();
    let under = |p: &'static str| {
        let store = &store;
        async move {
            let found = store.repos_with_prefix(p).await.unwrap();
            found.iter().map(|r| r.to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(under("a").await, ["a", "a/x_y", "a/xzy"]);
    assert_eq!(under("a/x_").await, ["a/x_y"]);
    assert_eq!(under("").await, ["a", "a/x_y", "a/xzy", "b"]);
    assert!(under("z").await.is_empty());

    // A set counts each blob once.
    assert_eq!(
        store.distinct_bytes(&[a.clone(), b.clone()]).await.unwrap(),
        111
    );
    assert_eq!(
        store
            .distinct_bytes(std::slice::from_ref(&b))
            .await
            .unwrap(),
        101
    );
    assert_eq!(
        store
            .distinct_bytes(std::slice::from_ref(&c))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.distinct_bytes(&[]).await.unwrap(), 0);
    assert!(
        store
            .linked_to_any(&[c.clone(), b.clone()], &base)
            .await
            .unwrap()
    );
    assert!(
        !store
            .linked_to_any(std::slice::from_ref(&b), &only_a)
            .await
            .unwrap()
    );
    assert!(!store.linked_to_any(&[], &base).await.unwrap());
    // Unlinked: no longer counted.
    store.unlink_blob(&b, &base).await.unwrap();
    assert_eq!(store.distinct_bytes(&[b]).await.unwrap(), 1);
}

pub async fn usage_totals_count_the_whole_store<S: Catalog + TagAges + Usage + ProxyEntries>(
    store: S,
) {
    assert_eq!(store.totals().await.unwrap(), StoreTotals::default());
    let (a, b, cache) = (repo("a"), repo("b"), repo("cache/x"));
    let (base, only_a, loose, cached) =
        (blob("base"), blob("only-a"), blob("loose"), blob("cached"));
    store.link_blob(&a, &base, 100).await.unwrap();
    store.link_blob(&a, &only_a, 10).await.unwrap();
    store.link_blob(&b, &base, 100).await.unwrap();
    store.link_blob(&b, &only_a, 10).await.unwrap();
    store.link_blob(&b, &loose, 7).await.unwrap();
    store.link_blob(&cache, &cached, 1000).await.unwrap();
    store
        .touch_proxy_entries(&[ProxyEntry {
            repo: cache.clone(),
            digest: cached.clone(),
            kind: ProxyEntryKind::Blob,
            size: 1000,
            pulled_at: 1_700_000_000,
        }])
        .await
        .unwrap();
    let m = image("m", [base.clone(), only_a.clone()]);
    store.put_manifest(&a, &m, Some(&tag("v1"))).await.unwrap();
    store.put_manifest(&a, &m, Some(&tag("v2"))).await.unwrap();
    store.put_manifest(&b, &m, None).await.unwrap();
    assert_eq!(
        store.totals().await.unwrap(),
        StoreTotals {
            repositories: 3,
            manifests: 2,
            tags: 2,
            // `base`, linked twice, is one blob.
            blobs: 4,
            bytes: 1117,
            // Only `loose`: `cached` is the cache's, the rest a manifest references.
            unreferenced_blobs: 1,
            unreferenced_bytes: 7,
        }
    );
}
