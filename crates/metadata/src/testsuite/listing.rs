//! Suite cases for what the registry lists: repositories, tags (order and pagination) and referrers.

use super::{blob, image, repo, tag};
use crate::{Catalog, Referrer};

/// A deterministic shuffle of `0..n` (for `n` not a multiple of 7), so that insertion order never
/// matches listing order by accident.
fn scrambled(n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i * 7 + 3) % n)
}

/// Walks a listing in pages of `limit`, as a client following `Link` headers does.
async fn walk<F, Fut>(limit: usize, mut page: F) -> Vec<String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let mut all: Vec<String> = Vec::new();
    loop {
        let got = page(all.last().cloned()).await;
        assert!(
            got.len() <= limit,
            "page of {} over limit {limit}",
            got.len()
        );
        let done = got.len() < limit;
        all.extend(got);
        if done {
            return all;
        }
    }
}

pub async fn repo_exists_needs_a_manifest<S: Catalog>(store: S) {
    let r = repo("only/blobs");
    assert!(!store.repo_exists(&r).await.unwrap());
    store.link_blob(&r, &blob("layer"), 1).await.unwrap();
    assert!(!store.repo_exists(&r).await.unwrap());
    assert!(store.list_repos(None, 100).await.unwrap().is_empty());

    let m = image("m", []);
    store.put_manifest(&r, &m, None).await.unwrap();
    assert!(store.repo_exists(&r).await.unwrap());
    assert_eq!(
        store.list_repos(None, 100).await.unwrap(),
        vec!["only/blobs"]
    );

    // Deleting the last manifest takes the repository out of the catalog again.
    store.delete_manifest(&r, &m.digest).await.unwrap();
    assert!(!store.repo_exists(&r).await.unwrap());
    assert!(store.list_repos(None, 100).await.unwrap().is_empty());
}

pub async fn list_repos_in_byte_order<S: Catalog>(store: S) {
    // Byte order: '-' (0x2d) < '.' < '/' < '0' < '_' (0x5f) < 'a'.
    let want = ["a", "a-b", "a.b", "a/b", "a0", "a_b", "aa", "b"];
    let m = image("m", []);
    for i in scrambled(want.len()) {
        store.put_manifest(&repo(want[i]), &m, None).await.unwrap();
    }
    // A repository with only blobs is not listed.
    store.link_blob(&repo("a/c"), &blob("x"), 1).await.unwrap();

    assert_eq!(store.list_repos(None, 100).await.unwrap(), want);
    assert_eq!(
        store.list_repos(Some("a.b"), 2).await.unwrap(),
        ["a/b", "a0"]
    );
    assert_eq!(
        store.list_repos(Some("a/bz"), 100).await.unwrap(),
        ["a0", "a_b", "aa", "b"]
    );
    assert!(store.list_repos(Some("b"), 100).await.unwrap().is_empty());
    assert!(store.list_repos(None, 0).await.unwrap().is_empty());
}

pub async fn list_tags_in_byte_order<S: Catalog>(store: S) {
    // Digits, then uppercase, then '_', then lowercase; and '-' < '.' < '_' inside a name.
    let want = [
        "1", "A", "Latest", "Z", "_x", "a", "a-b", "a.b", "a_b", "aa", "latest",
    ];
    let r = repo("app");
    let m = image("m", []);
    for i in scrambled(want.len()) {
        store
            .put_manifest(&r, &m, Some(&tag(want[i])))
            .await
            .unwrap();
    }
    // Another repository's tags are not listed.
    store
        .put_manifest(&repo("other"), &m, Some(&tag("b")))
        .await
        .unwrap();

    assert_eq!(store.list_tags(&r, None, 100).await.unwrap(), want);
    assert_eq!(
        store.list_tags(&r, Some("Z"), 3).await.unwrap(),
        ["_x", "a", "a-b"]
    );
    assert!(
        store
            .list_tags(&repo("nobody"), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn list_tags_paginates<S: Catalog>(store: S) {
    const N: usize = 250;
    let r = repo("many");
    let m = image("m", []);
    for i in scrambled(N) {
        store
            .put_manifest(&r, &m, Some(&tag(&format!("t{i}"))))
            .await
            .unwrap();
    }
    // Unpadded numbers: lexical order ("t1" < "t10" < "t100" < "t101" ...), not numeric.
    let mut want: Vec<String> = (0..N).map(|i| format!("t{i}")).collect();
    want.sort();

    for limit in [1, 100, 249, 250, 1000] {
        let got = walk(limit, |after| {
            let (store, r) = (&store, &r);
            async move { store.list_tags(r, after.as_deref(), limit).await.unwrap() }
        })
        .await;
        assert_eq!(got, want, "limit {limit}");
    }
    let first = store.list_tags(&r, None, 100).await.unwrap();
    assert_eq!(first, want[..100]);
    // `after` need not be a tag that exists.
    let mid = store.list_tags(&r, Some("t15x"), 3).await.unwrap();
    assert_eq!(mid, ["t16", "t160", "t161"]);
}

pub async fn list_repos_paginates<S: Catalog>(store: S) {
    const N: usize = 250;
    let m = image("m", []);
    for i in scrambled(N) {
        store
            .put_manifest(&repo(&format!("org/r{i}")), &m, None)
            .await
            .unwrap();
    }
    let mut want: Vec<String> = (0..N).map(|i| format!("org/r{i}")).collect();
    want.sort();

    for limit in [1, 100, 250] {
        let got = walk(limit, |after| {
            let store = &store;
            async move { store.list_repos(after.as_deref(), limit).await.unwrap() }
        })
        .await;
        assert_eq!(got, want, "limit {limit}");
    }
    let page = store.list_repos(Some(&want[99]), 100).await.unwrap();
    assert_eq!(page, want[100..200]);
}

pub async fn referrers_by_subject<S: Catalog>(store: S) {
    let r = repo("app");
    // The subject was never pushed: referrers may arrive first.
    let subject = blob("not-pushed-yet");
    let mut signature = image("signature", []);
    signature.subject = Some(subject.clone());
    signature.artifact_type = Some("application/vnd.example.signature".to_string());
    signature.annotations = Some(r#"{"org.example.signed-by":"ci"}"#.to_string());
    let mut sbom = image("sbom", []);
    sbom.subject = Some(subject.clone());
    let mut unrelated = image("unrelated", []);
    unrelated.subject = Some(blob("something-else"));
    for m in [&signature, &sbom, &unrelated] {
        store.put_manifest(&r, m, None).await.unwrap();
    }
    // A referrer of the same subject in another repository.
    let mut elsewhere = image("elsewhere", []);
    elsewhere.subject = Some(subject.clone());
    store
        .put_manifest(&repo("other"), &elsewhere, None)
        .await
        .unwrap();

    let entry = |m: &crate::NewManifest| Referrer {
        digest: m.digest.clone(),
        media_type: m.media_type.clone(),
        size: m.payload.len() as u64,
        artifact_type: m.artifact_type.clone(),
        annotations: m.annotations.clone(),
    };
    let mut want = vec![entry(&signature), entry(&sbom)];
    want.sort_by_key(|r| r.digest.to_string());
    assert_eq!(store.referrers(&r, &subject).await.unwrap(), want);
    assert_eq!(
        store.referrers(&repo("other"), &subject).await.unwrap(),
        vec![entry(&elsewhere)]
    );
    assert!(
        store
            .referrers(&r, &blob("nothing"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .referrers(&repo("nobody"), &subject)
            .await
            .unwrap()
            .is_empty()
    );

    let stored = store
        .manifest(&r, &signature.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.subject, Some(subject));
}

pub async fn deleted_referrer_disappears<S: Catalog>(store: S) {
    let r = repo("app");
    let subject = image("subject", []);
    store
        .put_manifest(&r, &subject, Some(&tag("v1")))
        .await
        .unwrap();
    let mut referrers = Vec::new();
    for label in ["sig-1", "sig-2", "sig-3"] {
        let mut m = image(label, []);
        m.subject = Some(subject.digest.clone());
        store.put_manifest(&r, &m, None).await.unwrap();
        referrers.push(m);
    }
    assert_eq!(store.referrers(&r, &subject.digest).await.unwrap().len(), 3);

    let gone = referrers.remove(1);
    assert!(store.delete_manifest(&r, &gone.digest).await.unwrap());
    let mut want: Vec<_> = referrers.iter().map(|m| m.digest.to_string()).collect();
    want.sort();
    let got: Vec<_> = store
        .referrers(&r, &subject.digest)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.digest.to_string())
        .collect();
    assert_eq!(got, want);
}
