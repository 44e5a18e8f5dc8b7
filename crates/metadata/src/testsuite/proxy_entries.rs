//! Cases of the pull-through cache's entries: recorded pulls, least recently pulled first, sizes.
//! Run by [`proxy_entry_tests!`](crate::proxy_entry_tests) for the backends (the
//! decorators of other crates forward these methods and test that themselves).

use oci::Digest;

use super::repo;
use crate::{ProxyEntries, ProxyEntry, ProxyEntryKind};

fn entry(r: &str, content: &[u8], kind: ProxyEntryKind, size: u64, at: i64) -> ProxyEntry {
    ProxyEntry {
        repo: repo(r),
        digest: Digest::sha256_of(content),
        kind,
        size,
        pulled_at: at,
    }
}

pub async fn proxy_entries_oldest_first_with_sizes(store: impl ProxyEntries) {
    assert_eq!(store.proxy_entries_size().await.unwrap(), 0);
    assert!(
        store
            .oldest_proxy_entries(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let a = entry("hub/a", b"a", ProxyEntryKind::Blob, 1000, 300);
    let b = entry("hub/b", b"b", ProxyEntryKind::Manifest, 20, 100);
    let c = entry("hub/a", b"c", ProxyEntryKind::Blob, 5, 200);
    store
        .touch_proxy_entries(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    assert_eq!(store.proxy_entries_size().await.unwrap(), 1025);
    let all = store.oldest_proxy_entries(i64::MAX, 10).await.unwrap();
    assert_eq!(all, [b.clone(), c.clone(), a.clone()]);
    assert_eq!(
        store.oldest_proxy_entries(i64::MAX, 2).await.unwrap(),
        [b.clone(), c]
    );
    // Only those pulled strictly before the cut.
    assert_eq!(store.oldest_proxy_entries(200, 10).await.unwrap(), [b]);
}

pub async fn proxy_entries_move_forward_only(store: impl ProxyEntries) {
    let first = entry("hub/a", b"a", ProxyEntryKind::Blob, 1000, 500);
    store
        .touch_proxy_entries(std::slice::from_ref(&first))
        .await
        .unwrap();
    // An older pull (a batch flushed late) never moves the time back.
    let older = ProxyEntry {
        pulled_at: 400,
        ..first.clone()
    };
    store.touch_proxy_entries(&[older]).await.unwrap();
    assert_eq!(
        store.oldest_proxy_entries(i64::MAX, 10).await.unwrap(),
        std::slice::from_ref(&first)
    );
    let newer = ProxyEntry {
        pulled_at: 900,
        size: 1001,
        ..first
    };
    store
        .touch_proxy_entries(std::slice::from_ref(&newer))
        .await
        .unwrap();
    assert_eq!(
        store.oldest_proxy_entries(i64::MAX, 10).await.unwrap(),
        [newer]
    );
    assert_eq!(store.proxy_entries_size().await.unwrap(), 1001);
}

pub async fn proxy_entries_are_removed_one_by_one(store: impl ProxyEntries) {
    let a = entry("hub/a", b"a", ProxyEntryKind::Blob, 10, 1);
    let same_digest_elsewhere = entry("hub/b", b"a", ProxyEntryKind::Blob, 10, 2);
    store
        .touch_proxy_entries(&[a.clone(), same_digest_elsewhere.clone()])
        .await
        .unwrap();
    assert!(store.remove_proxy_entry(&a.repo, &a.digest).await.unwrap());
    assert!(!store.remove_proxy_entry(&a.repo, &a.digest).await.unwrap());
    assert_eq!(
        store.oldest_proxy_entries(i64::MAX, 10).await.unwrap(),
        [same_digest_elsewhere]
    );
    assert_eq!(store.proxy_entries_size().await.unwrap(), 10);
}
