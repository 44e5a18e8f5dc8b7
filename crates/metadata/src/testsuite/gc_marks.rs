//! Cases of the garbage collector's marks. They need the catalog too (a blob is linked and referenced
//! through it), so they run against stores that are both: every backend.
//!
//! Times are Unix seconds: "everything touched so far" is a cut-off one second ahead of now, "nothing
//! touched since this second" a cut-off of now.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{blob, image, repo};
use crate::{Catalog, Error, GcMarks, ProxyEntries, ProxyEntry, ProxyEntryKind};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A cut-off after every touch so far (a grace period of nothing).
fn everything() -> i64 {
    now() + 1
}

pub async fn gc_candidates_are_the_blobs_no_manifest_references<S: Catalog + GcMarks>(store: S) {
    let r = repo("app");
    let (loose, used, unlinked) = (blob("loose"), blob("used"), blob("unlinked"));
    store.link_blob(&r, &loose, 1).await.unwrap();
    store.link_blob(&r, &used, 2).await.unwrap();
    store.link_blob(&r, &unlinked, 3).await.unwrap();
    store.unlink_blob(&r, &unlinked).await.unwrap();
    store
        .put_manifest(&r, &image("m", [used.clone()]), None)
        .await
        .unwrap();
    let mut want = vec![(loose.clone(), 1), (unlinked.clone(), 3)];
    want.sort();
    assert_eq!(
        store
            .unreferenced_blobs(everything(), None, 10)
            .await
            .unwrap(),
        want
    );
    // Paged in digest order.
    let first = store
        .unreferenced_blobs(everything(), None, 1)
        .await
        .unwrap();
    assert_eq!(first, want[..1]);
    let rest = store
        .unreferenced_blobs(everything(), Some(&first[0].0), 10)
        .await
        .unwrap();
    assert_eq!(rest, want[1..]);
    // Touched this very second: not before a cut-off of now.
    assert!(
        store
            .unreferenced_blobs(now() - 1, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Deleting the manifest frees what it referenced.
    let m = image("m", [used.clone()]);
    assert!(store.delete_manifest(&r, &m.digest).await.unwrap());
    let found = store
        .unreferenced_blobs(everything(), None, 10)
        .await
        .unwrap();
    assert!(found.contains(&(used, 2)), "{found:?}");
}

pub async fn gc_a_claimed_blob_is_unlinked_and_cannot_be_reserved_until_released<
    S: Catalog + GcMarks,
>(
    store: S,
) {
    let (a, b, d) = (repo("a"), repo("b"), blob("layer"));
    store.link_blob(&a, &d, 9).await.unwrap();
    store.link_blob(&b, &d, 9).await.unwrap();
    // Touched after the cut-off: not claimed.
    assert!(!store.claim_blob(&d, now() - 1).await.unwrap());
    assert!(store.claim_blob(&d, everything()).await.unwrap());
    assert!(
        !store.claim_blob(&d, everything()).await.unwrap(),
        "claimed twice"
    );
    assert_eq!(store.linked_blob(&a, &d).await.unwrap(), None);
    assert_eq!(store.linked_blob(&b, &d).await.unwrap(), None);
    assert_eq!(store.known_blob(&d).await.unwrap(), None);
    assert!(!store.reserve_blob(&d, 9).await.unwrap());
    assert!(matches!(
        store.link_blob(&a, &d, 9).await,
        Err(Error::BlobDeleting(x)) if x == d
    ));
    assert_eq!(store.claimed_blobs(10).await.unwrap(), vec![d.clone()]);
    assert!(
        store
            .unreferenced_blobs(everything(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    store.release_blob(&d).await.unwrap();
    assert!(store.claimed_blobs(10).await.unwrap().is_empty());
    assert!(store.reserve_blob(&d, 9).await.unwrap());
    store.link_blob(&a, &d, 9).await.unwrap();
    assert_eq!(store.linked_blob(&a, &d).await.unwrap(), Some(9));
    // Releasing a blob nobody claimed changes nothing.
    store.release_blob(&d).await.unwrap();
    assert_eq!(store.linked_blob(&a, &d).await.unwrap(), Some(9));
}

pub async fn gc_a_referenced_blob_is_never_claimed<S: Catalog + GcMarks>(store: S) {
    let r = repo("app");
    let d = blob("layer");
    store.link_blob(&r, &d, 5).await.unwrap();
    store
        .put_manifest(&r, &image("m", [d.clone()]), None)
        .await
        .unwrap();
    assert!(!store.claim_blob(&d, everything()).await.unwrap());
    assert_eq!(store.linked_blob(&r, &d).await.unwrap(), Some(5));
    // A reservation of a blob nobody has heard of makes it known to the collector.
    let fresh = blob("fresh");
    assert!(store.reserve_blob(&fresh, 3).await.unwrap());
    assert_eq!(
        store
            .unreferenced_blobs(everything(), None, 10)
            .await
            .unwrap(),
        vec![(fresh, 3)]
    );
}

/// A manifest put that references a claimed blob fails as if the blob were missing; one that came
/// first keeps the blob from being claimed.
pub async fn gc_a_manifest_cannot_reference_a_claimed_blob<S: Catalog + GcMarks>(store: S) {
    let r = repo("app");
    let d = blob("layer");
    store.link_blob(&r, &d, 5).await.unwrap();
    assert!(store.claim_blob(&d, everything()).await.unwrap());
    assert!(matches!(
        store.put_manifest(&r, &image("m", [d.clone()]), None).await,
        Err(Error::MissingBlob(x)) if x == d
    ));
}

/// `link_blobs` is all or nothing: one blob of the list claimed by a sweep, and none is linked.
pub async fn gc_link_blobs_with_a_claimed_blob_links_none<S: Catalog + GcMarks>(store: S) {
    let (r, claimed, fine) = (repo("app"), blob("claimed"), blob("fine"));
    store.link_blob(&repo("old"), &claimed, 5).await.unwrap();
    assert!(store.claim_blob(&claimed, everything()).await.unwrap());
    let blobs = [(fine.clone(), 1), (claimed.clone(), 5)];
    assert!(matches!(
        store.link_blobs(&r, &blobs).await,
        Err(Error::BlobDeleting(x)) if x == claimed
    ));
    assert_eq!(store.linked_blob(&r, &fine).await.unwrap(), None);
    assert_eq!(store.linked_blob(&r, &claimed).await.unwrap(), None);
}

/// Writers that reserve and link, and sweeps that claim and release, on the same digests at once: a
/// claimed blob is never linked anywhere while it is claimed, and every reservation or link either
/// succeeded before the claim (so the claim saw the touch... or unlinked it) or was refused.
pub async fn gc_claims_racing_links_never_leave_a_claimed_blob_linked<S: Catalog + GcMarks>(
    store: S,
) {
    const DIGESTS: usize = 12;
    let store = Arc::new(store);
    let r = repo("race");
    let mut tasks = Vec::new();
    for i in 0..DIGESTS {
        let d = blob(&format!("race-{i}"));
        store.link_blob(&r, &d, 1).await.unwrap();
        let (writer, sweeper) = (Arc::clone(&store), Arc::clone(&store));
        let (rw, dw, ds) = (r.clone(), d.clone(), d.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..4 {
                if writer.reserve_blob(&dw, 1).await.unwrap() {
                    match writer.link_blob(&rw, &dw, 1).await {
                        Ok(()) | Err(Error::BlobDeleting(_)) => {}
                        Err(e) => panic!("link: {e}"),
                    }
                }
                tokio::task::yield_now().await;
            }
        }));
        let rs = r.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..4 {
                if sweeper.claim_blob(&ds, everything()).await.unwrap() {
                    assert_eq!(
                        sweeper.linked_blob(&rs, &ds).await.unwrap(),
                        None,
                        "a claimed blob is linked"
                    );
                    sweeper.release_blob(&ds).await.unwrap();
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(store.claimed_blobs(100).await.unwrap().is_empty());
}

/// Which manifests no tag reaches: a tagged index keeps its children, a tagged image its referrers, a
/// tagged referrer its subject; an untagged index goes with its untagged children, an untagged image
/// with its referrers. Only manifests pushed before the cut-off count.
pub async fn gc_unreachable_manifests_are_what_no_tag_reaches<S: Catalog + GcMarks>(store: S) {
    let r = repo("app");
    let layer = blob("layer");
    store.link_blob(&r, &layer, 1).await.unwrap();
    let put = |m: crate::NewManifest, t: Option<&'static str>| {
        let (store, r) = (&store, r.clone());
        async move {
            let tag = t.map(super::tag);
            store.put_manifest(&r, &m, tag.as_ref()).await.unwrap();
            m.digest
        }
    };
    let image_of = |label: &str| image(label, [layer.clone()]);
    let with_subject = |label: &str, subject: &oci::Digest| {
        let mut m = image(label, []);
        m.subject = Some(subject.clone());
        m
    };
    // Kept: a tagged image and its signature; a tagged index and its children; the subject of a
    // tagged referrer.
    let tagged = put(image_of("tagged"), Some("v1")).await;
    let signature = put(with_subject("signature", &tagged), None).await;
    let (amd, arm) = (
        put(image_of("amd64"), None).await,
        put(image_of("arm64"), None).await,
    );
    let tagged_index = put(
        super::index("multi", [amd.clone(), arm.clone()]),
        Some("multi"),
    )
    .await;
    let subject_of_tagged = put(image_of("signed-base"), None).await;
    let tagged_sbom = put(with_subject("sbom", &subject_of_tagged), Some("sbom")).await;
    // Gone: an untagged image and its referrer; an untagged index and its only child.
    let loose = put(image_of("loose"), None).await;
    let loose_sig = put(with_subject("loose-sig", &loose), None).await;
    let child = put(image_of("child"), None).await;
    let loose_index = put(super::index("loose-index", [child.clone()]), None).await;

    let mut want = vec![loose.clone(), loose_sig, child, loose_index];
    want.sort();
    assert_eq!(
        store.unreachable_manifests(&r, everything()).await.unwrap(),
        want
    );
    for kept in [
        tagged,
        signature,
        amd,
        arm,
        tagged_index,
        subject_of_tagged,
        tagged_sbom,
    ] {
        assert!(!want.contains(&kept));
    }
    // Pushed this very second: not before a cut-off of now.
    assert!(
        store
            .unreachable_manifests(&r, now() - 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .unreachable_manifests(&repo("nobody"), everything())
            .await
            .unwrap()
            .is_empty()
    );

    // Deleting checks again: a tag pushed meanwhile keeps the manifest.
    store
        .put_manifest(&r, &image_of("loose"), Some(&super::tag("late")))
        .await
        .unwrap();
    assert!(
        !store
            .delete_unreachable_manifest(&r, &loose, everything())
            .await
            .unwrap()
    );
    assert!(store.manifest(&r, &loose).await.unwrap().is_some());
    let rest = store.unreachable_manifests(&r, everything()).await.unwrap();
    assert_eq!(
        rest.len(),
        2,
        "the loose image's signature is reached again too"
    );
    for d in &rest {
        assert!(
            store
                .delete_unreachable_manifest(&r, d, everything())
                .await
                .unwrap()
        );
        assert!(store.manifest(&r, d).await.unwrap().is_none());
    }
    assert!(
        store
            .unreachable_manifests(&r, everything())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Every row, in digest order and pages, whatever references it: linked, referenced, reserved only,
/// or claimed (flagged).
pub async fn gc_recorded_blobs_pages_every_row<S: Catalog + GcMarks>(store: S) {
    let r = repo("app");
    let (linked, used, reserved, claimed) = (
        blob("linked"),
        blob("used"),
        blob("reserved"),
        blob("claimed"),
    );
    store.link_blob(&r, &linked, 1).await.unwrap();
    store.link_blob(&r, &used, 2).await.unwrap();
    store
        .put_manifest(&r, &image("m", [used.clone()]), None)
        .await
        .unwrap();
    assert!(store.reserve_blob(&reserved, 3).await.unwrap());
    store.link_blob(&r, &claimed, 4).await.unwrap();
    store.unlink_blob(&r, &claimed).await.unwrap();
    assert!(store.claim_blob(&claimed, everything()).await.unwrap());

    let mut want = vec![
        (linked, 1, false),
        (used, 2, false),
        (reserved, 3, false),
        (claimed, 4, true),
    ];
    want.sort();
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let page = store.recorded_blobs(after.as_ref(), 3).await.unwrap();
        assert!(page.len() <= 3);
        let done = page.len() < 3;
        after = page.last().map(|b| b.digest.clone()).or(after);
        got.extend(page);
        if done {
            break;
        }
    }
    let (start, end) = (now() - 5, now() + 5);
    assert!(
        got.iter()
            .all(|b| b.touched_at > start && b.touched_at < end),
        "{got:?}"
    );
    let got: Vec<_> = got
        .into_iter()
        .map(|b| (b.digest, b.size, b.deleting))
        .collect();
    assert_eq!(got, want);
}

/// Bytes no row records are claimed as a sweep claims a blob (a reservation is refused until the
/// release, and `claimed_blobs` lists it for a sweep that stopped); bytes a row records are not.
pub async fn gc_claim_unrecorded_only_without_a_row<S: Catalog + GcMarks>(store: S) {
    let r = repo("app");
    let (orphan, known, reserved) = (blob("orphan"), blob("known"), blob("reserved"));
    store.link_blob(&r, &known, 1).await.unwrap();
    assert!(store.reserve_blob(&reserved, 2).await.unwrap());
    assert!(!store.claim_unrecorded_blob(&known, 1).await.unwrap());
    assert!(!store.claim_unrecorded_blob(&reserved, 2).await.unwrap());
    assert_eq!(store.linked_blob(&r, &known).await.unwrap(), Some(1));

    assert!(store.claim_unrecorded_blob(&orphan, 7).await.unwrap());
    assert!(
        !store.claim_unrecorded_blob(&orphan, 7).await.unwrap(),
        "claimed twice"
    );
    assert!(
        !store.reserve_blob(&orphan, 7).await.unwrap(),
        "reserved while claimed"
    );
    assert!(matches!(
        store.link_blob(&r, &orphan, 7).await,
        Err(Error::BlobDeleting(x)) if x == orphan
    ));
    assert_eq!(store.claimed_blobs(10).await.unwrap(), vec![orphan.clone()]);
    assert!(
        !store
            .unreferenced_blobs(everything(), None, 10)
            .await
            .unwrap()
            .iter()
            .any(|(d, _)| d == &orphan),
        "a claimed orphan is no candidate"
    );
    store.release_blob(&orphan).await.unwrap();
    assert!(store.claimed_blobs(10).await.unwrap().is_empty());
    let rows = store.recorded_blobs(None, 10).await.unwrap();
    assert!(rows.iter().all(|b| b.digest != orphan), "released: no row");
    assert!(store.reserve_blob(&orphan, 7).await.unwrap());
}

pub async fn gc_leaves_the_blobs_the_cache_holds_to_its_eviction<
    S: Catalog + GcMarks + ProxyEntries,
>(
    store: S,
) {
    let r = repo("cache/app");
    let (cached, loose) = (blob("cached"), blob("loose"));
    store.link_blob(&r, &cached, 1).await.unwrap();
    store.link_blob(&r, &loose, 2).await.unwrap();
    let entry = ProxyEntry {
        repo: r.clone(),
        digest: cached.clone(),
        kind: ProxyEntryKind::Blob,
        size: 1,
        pulled_at: now(),
    };
    store.touch_proxy_entries(&[entry]).await.unwrap();
    assert_eq!(
        store
            .unreferenced_blobs(everything(), None, 10)
            .await
            .unwrap(),
        vec![(loose.clone(), 2)]
    );
    assert!(!store.claim_blob(&cached, everything()).await.unwrap());
    assert_eq!(store.linked_blob(&r, &cached).await.unwrap(), Some(1));
    // Evicted: an ordinary unreferenced blob from then on.
    assert!(store.remove_proxy_entry(&r, &cached).await.unwrap());
    assert!(store.claim_blob(&cached, everything()).await.unwrap());
}
