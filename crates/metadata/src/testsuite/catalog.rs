//! Suite cases for blob links, manifest puts with their reference checks, tags and deletion.

use std::sync::Arc;

use super::{blob, image, index, repo, tag};
use crate::{Catalog, Error};

pub async fn link_linked_known_unlink<S: Catalog>(store: S) {
    let (r, d) = (repo("lib/app"), blob("layer"));
    assert_eq!(store.linked_blob(&r, &d).await.unwrap(), None);
    assert_eq!(store.known_blob(&d).await.unwrap(), None);

    store.link_blob(&r, &d, 42).await.unwrap();
    store.link_blob(&r, &d, 42).await.unwrap(); // idempotent
    assert_eq!(store.linked_blob(&r, &d).await.unwrap(), Some(42));
    assert_eq!(store.known_blob(&d).await.unwrap(), Some(42));
    assert_eq!(store.known_blob(&blob("other")).await.unwrap(), None);

    assert!(store.unlink_blob(&r, &d).await.unwrap());
    assert!(!store.unlink_blob(&r, &d).await.unwrap());
    assert_eq!(store.linked_blob(&r, &d).await.unwrap(), None);
    // Linked nowhere any more: not mountable without `from`.
    assert_eq!(store.known_blob(&d).await.unwrap(), None);

    // Unlinking in a repository that never existed is simply false.
    assert!(!store.unlink_blob(&repo("nobody"), &d).await.unwrap());
}

pub async fn blob_links_are_per_repository<S: Catalog>(store: S) {
    let (a, b, d) = (repo("a"), repo("b"), blob("shared"));
    store.link_blob(&a, &d, 7).await.unwrap();
    assert_eq!(store.linked_blob(&b, &d).await.unwrap(), None);

    store.link_blob(&b, &d, 7).await.unwrap();
    assert!(store.unlink_blob(&a, &d).await.unwrap());
    assert_eq!(store.linked_blob(&a, &d).await.unwrap(), None);
    assert_eq!(store.linked_blob(&b, &d).await.unwrap(), Some(7));
    // Still linked to `b`, so still known.
    assert_eq!(store.known_blob(&d).await.unwrap(), Some(7));
}

/// `link_blobs` links as `link_blob` does, every blob of the list (again: idempotent), and a manifest
/// referencing them may then be stored; an empty list is no error.
pub async fn link_blobs_links_each_in_one_call<S: Catalog>(store: S) {
    let (r, other) = (repo("lib/app"), repo("lib/other"));
    let (config, layer, shared) = (blob("config"), blob("layer"), blob("shared"));
    store.link_blob(&other, &shared, 30).await.unwrap();
    let blobs = [
        (config.clone(), 10),
        (layer.clone(), 20),
        (shared.clone(), 30),
    ];

    store.link_blobs(&r, &blobs).await.unwrap();
    store.link_blobs(&r, &blobs).await.unwrap(); // idempotent
    store.link_blobs(&r, &[]).await.unwrap();
    // A blob listed twice (a layer two images share) is linked once, at the size first given.
    let again = [(shared.clone(), 30), (shared.clone(), 31)];
    store.link_blobs(&repo("lib/third"), &again).await.unwrap();
    let third = store
        .linked_blob(&repo("lib/third"), &shared)
        .await
        .unwrap();
    assert_eq!(third, Some(30));
    for (digest, size) in &blobs {
        assert_eq!(store.linked_blob(&r, digest).await.unwrap(), Some(*size));
    }
    assert_eq!(store.linked_blob(&other, &config).await.unwrap(), None);
    let m = image("one", [config, layer]);
    store.put_manifest(&r, &m, Some(&tag("v1"))).await.unwrap();
    assert!(store.repo_exists(&r).await.unwrap());
}

/// `put_tags` sets and moves tags on stored manifests, all or none: a tag on a manifest the repository
/// does not hold sets none of the list; an empty list is no error.
pub async fn put_tags_moves_every_tag_or_none<S: Catalog>(store: S) {
    let r = repo("lib/app");
    let (one, two) = (image("one", []), image("two", []));
    store.put_manifest(&r, &one, None).await.unwrap();
    store
        .put_manifest(&r, &two, Some(&tag("v2")))
        .await
        .unwrap();
    let target = |d: &oci::Digest| Some(d.clone());

    store
        .put_tags(
            &r,
            &[
                (tag("v1"), one.digest.clone()),
                (tag("latest"), one.digest.clone()),
            ],
        )
        .await
        .unwrap();
    store.put_tags(&r, &[]).await.unwrap();
    let at = |t: &str| {
        let (store, r, t) = (&store, &r, tag(t));
        async move {
            store
                .tagged_manifest(r, &t)
                .await
                .unwrap()
                .map(|m| m.digest)
        }
    };
    assert_eq!(at("v1").await, target(&one.digest));
    assert_eq!(at("latest").await, target(&one.digest));
    assert_eq!(
        store.list_tags(&r, None, 10).await.unwrap(),
        vec!["latest", "v1", "v2"]
    );

    // Moved (and set again: idempotent).
    let latest = [(tag("latest"), two.digest.clone())];
    store.put_tags(&r, &latest).await.unwrap();
    store.put_tags(&r, &latest).await.unwrap();
    assert_eq!(at("latest").await, target(&two.digest));
    // A tag listed twice ends where its last entry points.
    let twice = [
        (tag("v9"), one.digest.clone()),
        (tag("v9"), two.digest.clone()),
    ];
    store.put_tags(&r, &twice).await.unwrap();
    assert_eq!(at("v9").await, target(&two.digest));

    // A manifest the repository lacks (stored in another one): nothing of the list is set.
    let elsewhere = image("elsewhere", []);
    store
        .put_manifest(&repo("other"), &elsewhere, None)
        .await
        .unwrap();
    let mixed = [
        (tag("v3"), one.digest.clone()),
        (tag("v1"), elsewhere.digest.clone()),
    ];
    assert!(matches!(
        store.put_tags(&r, &mixed).await,
        Err(Error::MissingManifest(d)) if d == elsewhere.digest
    ));
    assert_eq!(at("v3").await, None);
    assert_eq!(at("v1").await, target(&one.digest));
    // Nor in a repository that does not exist, which it does not create.
    let nobody = repo("nobody");
    assert!(matches!(
        store.put_tags(&nobody, &[(tag("v1"), one.digest.clone())]).await,
        Err(Error::MissingManifest(d)) if d == one.digest
    ));
    assert!(!store.repo_exists(&nobody).await.unwrap());
}

pub async fn put_manifest_with_linked_blobs<S: Catalog>(store: S) {
    let r = repo("lib/app");
    let (config, layer) = (blob("config"), blob("layer"));
    store.link_blob(&r, &config, 10).await.unwrap();
    store.link_blob(&r, &layer, 20).await.unwrap();
    let m = image("one", [config, layer]);

    store.put_manifest(&r, &m, Some(&tag("v1"))).await.unwrap();

    let stored = store.manifest(&r, &m.digest).await.unwrap().unwrap();
    assert_eq!(stored.digest, m.digest);
    assert_eq!(stored.media_type, m.media_type);
    assert_eq!(stored.payload, m.payload);
    assert_eq!(stored.subject, None);
    let tagged = store.tagged_manifest(&r, &tag("v1")).await.unwrap();
    assert_eq!(tagged, Some(stored));
    assert!(store.repo_exists(&r).await.unwrap());

    // Without a tag: stored, reachable by digest only.
    let untagged = image("two", []);
    store.put_manifest(&r, &untagged, None).await.unwrap();
    assert!(
        store
            .manifest(&r, &untagged.digest)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.list_tags(&r, None, 100).await.unwrap(), vec!["v1"]);
}

pub async fn put_manifest_missing_blob_stores_nothing<S: Catalog>(store: S) {
    let r = repo("lib/app");
    let (present, missing1, missing2) = (blob("present"), blob("missing1"), blob("missing2"));
    store.link_blob(&r, &present, 1).await.unwrap();
    let old = image("old", [present.clone()]);
    store
        .put_manifest(&r, &old, Some(&tag("latest")))
        .await
        .unwrap();

    let mut new = image("new", [present, missing1.clone(), missing2]);
    new.subject = Some(old.digest.clone());
    let err = store.put_manifest(&r, &new, Some(&tag("latest"))).await;
    match err {
        Err(Error::MissingBlob(d)) => assert_eq!(d, missing1, "must name the first missing blob"),
        other => panic!("want MissingBlob, got {other:?}"),
    }
    assert_eq!(store.manifest(&r, &new.digest).await.unwrap(), None);
    let latest = store.tagged_manifest(&r, &tag("latest")).await.unwrap();
    assert_eq!(latest.map(|m| m.digest), Some(old.digest.clone()));
    assert!(store.referrers(&r, &old.digest).await.unwrap().is_empty());

    // A failed first push leaves no repository behind either.
    let fresh = repo("fresh");
    let lonely = image("lonely", [blob("absent")]);
    let err = store.put_manifest(&fresh, &lonely, Some(&tag("t"))).await;
    assert!(matches!(err, Err(Error::MissingBlob(_))), "{err:?}");
    assert!(!store.repo_exists(&fresh).await.unwrap());
    assert_eq!(store.list_repos(None, 100).await.unwrap(), vec!["lib/app"]);
    assert!(store.list_tags(&fresh, None, 100).await.unwrap().is_empty());
}

pub async fn put_manifest_blob_of_another_repo_is_missing<S: Catalog>(store: S) {
    let (a, b, d) = (repo("a"), repo("b"), blob("layer"));
    store.link_blob(&a, &d, 5).await.unwrap();
    let m = image("m", [d.clone()]);
    let err = store.put_manifest(&b, &m, None).await;
    assert!(
        matches!(&err, Err(Error::MissingBlob(x)) if *x == d),
        "{err:?}"
    );

    // An unlinked blob is missing too.
    store.put_manifest(&a, &m, None).await.unwrap();
    store.unlink_blob(&a, &d).await.unwrap();
    let again = image("again", [d.clone()]);
    let err = store.put_manifest(&a, &again, None).await;
    assert!(
        matches!(&err, Err(Error::MissingBlob(x)) if *x == d),
        "{err:?}"
    );
}

pub async fn put_manifest_missing_child_stores_nothing<S: Catalog>(store: S) {
    let r = repo("multi");
    let present = image("amd64", []);
    store.put_manifest(&r, &present, None).await.unwrap();
    let (missing1, missing2) = (blob("arm64-manifest"), blob("s390x-manifest"));

    let idx = index("idx", [present.digest.clone(), missing1.clone(), missing2]);
    let err = store.put_manifest(&r, &idx, Some(&tag("latest"))).await;
    match err {
        Err(Error::MissingManifest(d)) => {
            assert_eq!(d, missing1, "must name the first missing child")
        }
        other => panic!("want MissingManifest, got {other:?}"),
    }
    assert_eq!(store.manifest(&r, &idx.digest).await.unwrap(), None);
    assert_eq!(
        store.tagged_manifest(&r, &tag("latest")).await.unwrap(),
        None
    );
    assert!(store.list_tags(&r, None, 100).await.unwrap().is_empty());

    // A child that exists only in another repository is missing here.
    let other = repo("other");
    let idx2 = index("idx2", [present.digest.clone()]);
    let err = store.put_manifest(&other, &idx2, None).await;
    assert!(
        matches!(&err, Err(Error::MissingManifest(d)) if *d == present.digest),
        "{err:?}"
    );
}

pub async fn put_index_with_present_children<S: Catalog>(store: S) {
    let r = repo("multi");
    let (amd, arm) = (image("amd64", []), image("arm64", []));
    store.put_manifest(&r, &amd, None).await.unwrap();
    store.put_manifest(&r, &arm, None).await.unwrap();
    let idx = index("idx", [amd.digest.clone(), arm.digest.clone()]);
    store
        .put_manifest(&r, &idx, Some(&tag("latest")))
        .await
        .unwrap();
    let got = store.tagged_manifest(&r, &tag("latest")).await.unwrap();
    assert_eq!(
        got.map(|m| (m.digest, m.media_type)),
        Some((idx.digest, idx.media_type))
    );
}

/// A sparse index (registry:3's `validation.manifests.indexes`): its optional children need not exist,
/// its required ones still must.
pub async fn put_sparse_index_without_its_optional_children<S: Catalog>(store: S) {
    let r = repo("mirror");
    let amd = image("amd64", []);
    store.put_manifest(&r, &amd, None).await.unwrap();
    let absent = image("arm64", []).digest;
    let mut idx = index("sparse", [amd.digest.clone()]);
    idx.optional_children = vec![absent.clone()];
    store
        .put_manifest(&r, &idx, Some(&tag("latest")))
        .await
        .unwrap();
    let got = store.tagged_manifest(&r, &tag("latest")).await.unwrap();
    assert_eq!(got.map(|m| m.digest), Some(idx.digest));

    let mut required = index("required", [absent.clone()]);
    required.optional_children = vec![amd.digest.clone()];
    let err = store.put_manifest(&r, &required, None).await;
    assert!(
        matches!(&err, Err(Error::MissingManifest(d)) if *d == absent),
        "{err:?}"
    );
}

pub async fn put_same_digest_twice_is_idempotent<S: Catalog>(store: S) {
    let r = repo("app");
    let d = blob("layer");
    store.link_blob(&r, &d, 3).await.unwrap();
    // The layer listed twice, as a manifest may.
    let m = image("m", [d.clone(), d]);
    store.put_manifest(&r, &m, Some(&tag("a"))).await.unwrap();
    store.put_manifest(&r, &m, Some(&tag("a"))).await.unwrap();
    store.put_manifest(&r, &m, Some(&tag("b"))).await.unwrap();
    store.put_manifest(&r, &m, None).await.unwrap();

    let stored = store.manifest(&r, &m.digest).await.unwrap().unwrap();
    assert_eq!(stored.payload, m.payload);
    assert_eq!(
        store.list_tags(&r, None, 100).await.unwrap(),
        vec!["a", "b"]
    );
    // One manifest, not several copies: deleting it once removes it.
    assert!(store.delete_manifest(&r, &m.digest).await.unwrap());
    assert_eq!(store.manifest(&r, &m.digest).await.unwrap(), None);
    assert!(!store.repo_exists(&r).await.unwrap());
}

pub async fn manifests_are_per_repository<S: Catalog>(store: S) {
    let (a, b) = (repo("a"), repo("b"));
    let m = image("m", []);
    store
        .put_manifest(&a, &m, Some(&tag("latest")))
        .await
        .unwrap();
    assert_eq!(store.manifest(&b, &m.digest).await.unwrap(), None);
    assert_eq!(
        store.tagged_manifest(&b, &tag("latest")).await.unwrap(),
        None
    );

    // The same manifest pushed to both lives independently in each.
    store.put_manifest(&b, &m, None).await.unwrap();
    assert!(store.delete_manifest(&a, &m.digest).await.unwrap());
    assert!(store.manifest(&b, &m.digest).await.unwrap().is_some());
    assert_eq!(
        store.tagged_manifest(&a, &tag("latest")).await.unwrap(),
        None
    );
}

pub async fn tag_moves_to_the_new_manifest<S: Catalog>(store: S) {
    let r = repo("app");
    let (one, two) = (image("one", []), image("two", []));
    store
        .put_manifest(&r, &one, Some(&tag("latest")))
        .await
        .unwrap();
    store
        .put_manifest(&r, &two, Some(&tag("latest")))
        .await
        .unwrap();
    let got = store.tagged_manifest(&r, &tag("latest")).await.unwrap();
    assert_eq!(got.map(|m| m.digest), Some(two.digest));
    // The old manifest stays, untagged.
    assert!(store.manifest(&r, &one.digest).await.unwrap().is_some());
    assert_eq!(
        store.list_tags(&r, None, 100).await.unwrap(),
        vec!["latest"]
    );

    // And back.
    store
        .put_manifest(&r, &one, Some(&tag("latest")))
        .await
        .unwrap();
    let got = store.tagged_manifest(&r, &tag("latest")).await.unwrap();
    assert_eq!(got.map(|m| m.digest), Some(one.digest));
}

/// Many tasks move one tag at once while readers watch it: every move succeeds, readers always see
/// some manifest (never none), and the tag ends on one of the pushed manifests.
pub async fn concurrent_tag_moves_end_on_one_value<S: Catalog>(store: S) {
    const WRITERS: usize = 24;
    let store = Arc::new(store);
    let r = repo("race");
    let first = image("first", []);
    store
        .put_manifest(&r, &first, Some(&tag("latest")))
        .await
        .unwrap();

    let manifests: Vec<_> = (0..WRITERS).map(|i| image(&format!("m{i}"), [])).collect();
    let mut writers = Vec::new();
    for m in manifests.clone() {
        let (store, r) = (Arc::clone(&store), r.clone());
        writers.push(tokio::spawn(async move {
            store.put_manifest(&r, &m, Some(&tag("latest"))).await
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (store, r) = (Arc::clone(&store), r.clone());
        readers.push(tokio::spawn(async move {
            for _ in 0..50 {
                let seen = store.tagged_manifest(&r, &tag("latest")).await?;
                if seen.is_none() {
                    return Ok(false);
                }
                tokio::task::yield_now().await;
            }
            Ok::<_, Error>(true)
        }));
    }
    for w in writers {
        w.await.unwrap().unwrap();
    }
    for rd in readers {
        assert!(rd.await.unwrap().unwrap(), "a reader saw the tag missing");
    }

    let last = store
        .tagged_manifest(&r, &tag("latest"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        manifests.iter().any(|m| m.digest == last.digest),
        "tag ended on {}, not one of the concurrent pushes",
        last.digest
    );
    assert_eq!(
        store.list_tags(&r, None, 100).await.unwrap(),
        vec!["latest"]
    );
}

pub async fn delete_manifest_removes_its_tags<S: Catalog>(store: S) {
    let r = repo("app");
    let d = blob("layer");
    store.link_blob(&r, &d, 1).await.unwrap();
    let (doomed, kept) = (image("doomed", [d.clone()]), image("kept", [d.clone()]));
    store
        .put_manifest(&r, &doomed, Some(&tag("a")))
        .await
        .unwrap();
    store
        .put_manifest(&r, &doomed, Some(&tag("b")))
        .await
        .unwrap();
    store
        .put_manifest(&r, &kept, Some(&tag("c")))
        .await
        .unwrap();

    assert!(store.delete_manifest(&r, &doomed.digest).await.unwrap());
    assert!(!store.delete_manifest(&r, &doomed.digest).await.unwrap());
    assert_eq!(store.manifest(&r, &doomed.digest).await.unwrap(), None);
    assert_eq!(store.tagged_manifest(&r, &tag("a")).await.unwrap(), None);
    assert_eq!(store.list_tags(&r, None, 100).await.unwrap(), vec!["c"]);
    assert!(store.manifest(&r, &kept.digest).await.unwrap().is_some());
    // The blob link is the repository's, not the manifest's.
    assert_eq!(store.linked_blob(&r, &d).await.unwrap(), Some(1));

    // Deleted manifests can be pushed again.
    store
        .put_manifest(&r, &doomed, Some(&tag("a")))
        .await
        .unwrap();
    let got = store.tagged_manifest(&r, &tag("a")).await.unwrap();
    assert_eq!(got.map(|m| m.digest), Some(doomed.digest));
    assert!(
        !store
            .delete_manifest(&repo("nobody"), &kept.digest)
            .await
            .unwrap()
    );
}

pub async fn delete_tag_keeps_the_manifest<S: Catalog>(store: S) {
    let r = repo("app");
    let m = image("m", []);
    store.put_manifest(&r, &m, Some(&tag("v1"))).await.unwrap();
    store.put_manifest(&r, &m, Some(&tag("v2"))).await.unwrap();

    assert!(store.delete_tag(&r, &tag("v1")).await.unwrap());
    assert!(!store.delete_tag(&r, &tag("v1")).await.unwrap());
    assert!(!store.delete_tag(&repo("nobody"), &tag("v1")).await.unwrap());
    assert_eq!(store.tagged_manifest(&r, &tag("v1")).await.unwrap(), None);
    assert!(store.manifest(&r, &m.digest).await.unwrap().is_some());
    assert_eq!(store.list_tags(&r, None, 100).await.unwrap(), vec!["v2"]);
    assert!(store.repo_exists(&r).await.unwrap());
}

/// Many tasks link blobs, push manifests and delete them in several repositories at once, all
/// succeeding (no "database is locked" or the like), with every result visible afterwards.
pub async fn concurrent_writers_do_not_fail<S: Catalog>(store: S) {
    const TASKS: usize = 16;
    const ROUNDS: usize = 8;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let r = repo(&format!("repo{}", t % 4));
            for i in 0..ROUNDS {
                let d = blob(&format!("layer-{t}-{i}"));
                store.link_blob(&r, &d, 1).await?;
                let m = image(&format!("m-{t}-{i}"), [d]);
                store
                    .put_manifest(&r, &m, Some(&tag(&format!("t{t}-{i}"))))
                    .await?;
                let scratch = image(&format!("scratch-{t}-{i}"), []);
                store.put_manifest(&r, &scratch, None).await?;
                store.delete_manifest(&r, &scratch.digest).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut tags = 0;
    for n in 0..4 {
        tags += store
            .list_tags(&repo(&format!("repo{n}")), None, 1000)
            .await
            .unwrap()
            .len();
    }
    assert_eq!(tags, TASKS * ROUNDS);
    assert_eq!(store.list_repos(None, 100).await.unwrap().len(), 4);
}

/// An immutable tag is created, and confirmed on the same manifest, but never moved; the failed put
/// stores nothing.
pub async fn an_immutable_tag_is_never_moved<S: Catalog>(store: S) {
    let r = repo("app");
    let (one, two) = (image("one", []), image("two", []));
    let immutable = |m: &crate::NewManifest| crate::NewManifest {
        tag_immutable: true,
        ..m.clone()
    };
    let v1 = tag("v1");
    store
        .put_manifest(&r, &immutable(&one), Some(&v1))
        .await
        .unwrap();
    store
        .put_manifest(&r, &immutable(&one), Some(&v1))
        .await
        .unwrap();
    assert!(matches!(
        store.put_manifest(&r, &immutable(&two), Some(&v1)).await,
        Err(Error::TagImmutable(t)) if t == v1
    ));
    assert_eq!(
        store
            .tagged_manifest(&r, &v1)
            .await
            .unwrap()
            .unwrap()
            .digest,
        one.digest
    );
    assert_eq!(store.manifest(&r, &two.digest).await.unwrap(), None);
    // Without the flag the tag moves as ever.
    store.put_manifest(&r, &two, Some(&v1)).await.unwrap();
    assert_eq!(
        store
            .tagged_manifest(&r, &v1)
            .await
            .unwrap()
            .unwrap()
            .digest,
        two.digest
    );
}
