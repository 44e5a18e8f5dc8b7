//! Cases of tag ages and pull times. They push through the catalog, so they run against stores that
//! are both: every backend.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{image, repo, tag};
use crate::{Catalog, ManifestPull, TagAges};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub async fn tag_ages_give_push_and_last_pull_times<S: Catalog + TagAges>(store: S) {
    let (r, other) = (repo("app"), repo("other"));
    let (one, two) = (image("one", []), image("two", []));
    let before = now();
    store.put_manifest(&r, &one, Some(&tag("a"))).await.unwrap();
    store.put_manifest(&r, &two, Some(&tag("c"))).await.unwrap();
    store.put_manifest(&r, &two, Some(&tag("b"))).await.unwrap();
    store
        .put_manifest(&other, &two, Some(&tag("b")))
        .await
        .unwrap();
    let after = now();

    let ages = store.tag_ages(&r).await.unwrap();
    let names: Vec<_> = ages.iter().map(|a| a.tag.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"], "in tag order");
    assert_eq!(ages[0].digest, one.digest);
    assert_eq!(ages[1].digest, two.digest);
    for age in &ages {
        assert!((before..=after).contains(&age.pushed_at), "{age:?}");
        assert_eq!(age.pulled_at, None, "never pulled");
    }

    let pull = |digest: &oci::Digest, at| ManifestPull {
        repo: r.clone(),
        digest: digest.clone(),
        at,
    };
    // An older pull after a newer one changes nothing; a pull of a manifest not stored is dropped.
    store
        .record_pulls(&[pull(&two.digest, 1_000), pull(&image("gone", []).digest, 5)])
        .await
        .unwrap();
    store.record_pulls(&[pull(&two.digest, 900)]).await.unwrap();
    let ages = store.tag_ages(&r).await.unwrap();
    assert_eq!(ages[0].pulled_at, None);
    assert_eq!(
        ages[1].pulled_at,
        Some(1_000),
        "both tags of the pulled manifest"
    );
    assert_eq!(ages[2].pulled_at, Some(1_000));
    // Pull times are per repository.
    assert_eq!(store.tag_ages(&other).await.unwrap()[0].pulled_at, None);
    assert!(store.tag_ages(&repo("none")).await.unwrap().is_empty());
}

pub async fn tag_ages_delete_only_a_tag_unchanged_since_read<S: Catalog + TagAges>(store: S) {
    let r = repo("app");
    let (one, two) = (image("one", []), image("two", []));
    store.put_manifest(&r, &one, Some(&tag("t"))).await.unwrap();
    store.put_manifest(&r, &two, None).await.unwrap();
    let read = store.tag_ages(&r).await.unwrap().remove(0);

    // Moved since it was read: it stays.
    store.put_manifest(&r, &two, Some(&tag("t"))).await.unwrap();
    assert!(!store.delete_tag_unchanged(&r, &read).await.unwrap());
    assert_eq!(store.list_tags(&r, None, 10).await.unwrap(), ["t"]);

    let fresh = store.tag_ages(&r).await.unwrap().remove(0);
    assert_eq!(fresh.digest, two.digest);
    assert!(store.delete_tag_unchanged(&r, &fresh).await.unwrap());
    assert!(store.list_tags(&r, None, 10).await.unwrap().is_empty());
    assert!(
        !store.delete_tag_unchanged(&r, &fresh).await.unwrap(),
        "gone"
    );
    // The manifest stays: only the tag goes.
    assert!(store.manifest(&r, &two.digest).await.unwrap().is_some());
}
