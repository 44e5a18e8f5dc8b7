//! Tags, catalog and referrers over real storage: pagination (`n`, `last`, caps and defaults), unknown
//! repositories, and the referrers filter.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use berth_registry as registry;
use bytes::Bytes;
use common::*;
use metadata::Catalog;
use oci::RepoName;
use oci::media_type::OCI_MANIFEST;
use registry::{DEFAULT_CATALOG_PAGE, Error, MAX_PAGE, Page, Registry, Settings};

fn page(n: Option<usize>, last: Option<&str>) -> Page {
    Page {
        n,
        last: last.map(str::to_string),
    }
}

/// Points `tags` at one small manifest (an empty config, no layers) in `repo`.
async fn tag_many(env: &Env, repo: &RepoName, tags: &[String]) {
    let config = push(&env.reg, repo, b"{}").await;
    let manifest = Bytes::from(image_manifest((&config, 2), &[]));
    for t in tags {
        env.reg
            .put_manifest(repo, &tag(t), Some(OCI_MANIFEST), manifest.clone())
            .await
            .unwrap();
    }
}

async fn all_tags(reg: &Registry, repo: &RepoName, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut last = None;
    loop {
        let (items, more) = reg
            .list_tags(repo, &page(Some(n), last.as_deref()))
            .await
            .unwrap();
        assert!(items.len() <= n);
        out.extend(items);
        if !more {
            return out;
        }
        last = out.last().cloned();
    }
}

#[tokio::test]
async fn tags_are_listed_in_order_and_paged() {
    let env = Env::new();
    let r = repo("app");
    let tags: Vec<String> = ["v2", "latest", "v1", "V1", "1.0", "_x"]
        .map(String::from)
        .to_vec();
    tag_many(&env, &r, &tags).await;
    let mut sorted = tags.clone();
    sorted.sort();

    let (items, more) = env.reg.list_tags(&r, &Page::default()).await.unwrap();
    assert_eq!((items, more), (sorted.clone(), false));
    let (items, more) = env.reg.list_tags(&r, &page(Some(2), None)).await.unwrap();
    assert_eq!((items, more), (sorted[..2].to_vec(), true));
    let (items, more) = env
        .reg
        .list_tags(&r, &page(Some(2), Some(&sorted[3])))
        .await
        .unwrap();
    assert_eq!((items, more), (sorted[4..].to_vec(), false));
    // Exactly the rest: no further page is announced.
    let (items, more) = env
        .reg
        .list_tags(&r, &page(Some(3), Some(&sorted[2])))
        .await
        .unwrap();
    assert_eq!((items, more), (sorted[3..].to_vec(), false));
    for n in [1, 4, 6, 7] {
        assert_eq!(all_tags(&env.reg, &r, n).await, sorted, "n={n}");
    }
    // n=0: an empty page.
    assert_eq!(
        env.reg.list_tags(&r, &page(Some(0), None)).await.unwrap(),
        (vec![], false)
    );
}

#[tokio::test]
async fn tags_of_an_unknown_repository() {
    let env = Env::new();
    let r = repo("nobody/here");
    for p in [Page::default(), page(Some(0), None)] {
        assert!(matches!(env.reg.list_tags(&r, &p).await, Err(Error::NameUnknown(n)) if n == r));
    }
    // Blobs alone do not make a repository.
    push(&env.reg, &r, b"a blob").await;
    assert!(matches!(
        env.reg.list_tags(&r, &Page::default()).await,
        Err(Error::NameUnknown(_))
    ));
}

#[tokio::test]
async fn tag_pages_are_capped() {
    let env = Env::new();
    let r = repo("many");
    let tags: Vec<String> = (0..MAX_PAGE + 1).map(|i| format!("t{i:05}")).collect();
    tag_many(&env, &r, &tags).await;
    for p in [Page::default(), page(Some(MAX_PAGE * 10), None)] {
        let (items, more) = env.reg.list_tags(&r, &p).await.unwrap();
        assert_eq!(items.len(), MAX_PAGE, "{p:?}");
        assert!(more, "{p:?}");
    }
    let (items, more) = env
        .reg
        .list_tags(&r, &page(None, Some(&tags[MAX_PAGE - 1])))
        .await
        .unwrap();
    assert_eq!((items, more), (vec![tags[MAX_PAGE].clone()], false));
}

/// registry:3's `tags.maxtags`: the page size without `n`, and a larger `n` clamped to it.
#[tokio::test]
async fn max_tags_sizes_and_caps_the_pages() {
    let env = Env::with_config(Settings {
        max_tags: 3,
        ..Settings::default()
    });
    let r = repo("capped");
    let tags: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    tag_many(&env, &r, &tags).await;
    for p in [Page::default(), page(Some(100), None)] {
        let (items, more) = env.reg.list_tags(&r, &p).await.unwrap();
        assert_eq!((items, more), (tags[..3].to_vec(), true), "{p:?}");
    }
    let (items, more) = env.reg.list_tags(&r, &page(Some(2), None)).await.unwrap();
    assert_eq!((items, more), (tags[..2].to_vec(), true));
    let (items, more) = env
        .reg
        .list_tags(&r, &page(Some(100), Some("t2")))
        .await
        .unwrap();
    assert_eq!((items, more), (tags[3..].to_vec(), false));
}

#[tokio::test]
async fn catalog_lists_repositories_with_manifests_in_pages() {
    let env = Env::new();
    let names: Vec<String> = (0..DEFAULT_CATALOG_PAGE + 5)
        .map(|i| format!("org/r{i:04}"))
        .collect();
    for name in &names {
        tag_many(&env, &repo(name), &["latest".to_string()]).await;
    }
    // A repository with only a blob is not listed.
    push(&env.reg, &repo("org/blobonly"), b"x").await;

    let (items, more) = env.reg.catalog(&Page::default()).await.unwrap();
    assert_eq!(
        (items.as_slice(), more),
        (&names[..DEFAULT_CATALOG_PAGE], true)
    );
    let (items, more) = env
        .reg
        .catalog(&page(Some(10), Some(&names[DEFAULT_CATALOG_PAGE - 1])))
        .await
        .unwrap();
    assert_eq!(
        (items.as_slice(), more),
        (&names[DEFAULT_CATALOG_PAGE..], false)
    );
    let (items, more) = env.reg.catalog(&page(Some(2), None)).await.unwrap();
    assert_eq!((items.as_slice(), more), (&names[..2], true));
    assert_eq!(
        env.reg.catalog(&page(Some(0), None)).await.unwrap(),
        (vec![], false)
    );
}

#[tokio::test]
async fn referrers_with_and_without_a_filter() {
    let env = Env::new();
    let r = repo("app");
    let (subject, _) = push_image(&env.reg, &r, "v1", 1).await;
    push(&env.reg, &r, b"{}").await;
    let sig = push(&env.reg, &r, b"signature bytes").await;
    let sbom = push(&env.reg, &r, b"sbom bytes").await;
    let sig_manifest = referrer_manifest("application/vnd.example.sig", &subject, (&sig, 15));
    let sbom_manifest = referrer_manifest("application/spdx+json", &subject, (&sbom, 10));
    let mut pushed = Vec::new();
    for m in [&sig_manifest, &sbom_manifest] {
        let out = env
            .reg
            .put_manifest(
                &r,
                &by_digest(&sha256(m.as_bytes())),
                Some(OCI_MANIFEST),
                Bytes::from(m.clone()),
            )
            .await
            .unwrap();
        assert_eq!(out.subject.as_ref(), Some(&subject));
        pushed.push((out.digest, m.len() as u64));
    }
    // An image with the subject and no artifactType: reported with its config's media type.
    let config = push(&env.reg, &r, b"{\"os\":\"linux\"}").await;
    let plain = image_manifest((&config, 15), &[]).replacen(
        "\"layers\":[]",
        &format!("\"layers\":[],\"subject\":{{\"mediaType\":\"{OCI_MANIFEST}\",\"digest\":\"{subject}\",\"size\":1}}"),
        1,
    );
    env.reg
        .put_manifest(&r, &tag("attached"), None, Bytes::from(plain))
        .await
        .unwrap();

    let all = env.reg.referrers(&r, &subject, None).await.unwrap();
    assert!(!all.filtered);
    assert_eq!(all.manifests.len(), 3);
    let mut types: Vec<_> = all
        .manifests
        .iter()
        .map(|m| m.artifact_type.clone().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "application/spdx+json",
            "application/vnd.example.sig",
            "application/vnd.oci.image.config.v1+json"
        ]
    );
    let sig_entry = all
        .manifests
        .iter()
        .find(|m| m.digest == pushed[0].0)
        .unwrap();
    assert_eq!(sig_entry.size, pushed[0].1);
    assert_eq!(sig_entry.media_type, OCI_MANIFEST);
    assert!(
        sig_entry
            .annotations
            .as_deref()
            .unwrap()
            .contains("org.opencontainers.image.created")
    );

    let only = env
        .reg
        .referrers(&r, &subject, Some("application/spdx+json"))
        .await
        .unwrap();
    assert!(only.filtered);
    assert_eq!(
        only.manifests.iter().map(|m| &m.digest).collect::<Vec<_>>(),
        vec![&pushed[1].0]
    );
    let none = env
        .reg
        .referrers(&r, &subject, Some("application/unknown"))
        .await
        .unwrap();
    assert!(none.filtered && none.manifests.is_empty());

    // Scoped to the repository, and an unknown subject simply has none.
    assert!(
        env.reg
            .referrers(&repo("other"), &subject, None)
            .await
            .unwrap()
            .manifests
            .is_empty()
    );
    assert!(
        env.reg
            .referrers(&r, &sha256(b"nothing"), None)
            .await
            .unwrap()
            .manifests
            .is_empty()
    );
    assert!(env.meta.repo_exists(&r).await.unwrap());
}
