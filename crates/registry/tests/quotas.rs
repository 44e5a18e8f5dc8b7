//! Quotas over a real store: a push that would take a scope past its limit is refused with DENIED
//! naming the quota (and its bytes are not kept), a blob the scope already holds costs nothing, a full
//! scope refuses new uploads, mounts are counted, other scopes are untouched, and the usage report
//! counts each blob once per scope.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use berth_registry as registry;
use blobs::BlobStore;
use common::{Env, content, exact, push, repo, sha256};
use oci::Pattern;
use registry::quota::Quota;
use registry::{Error, MountOutcome, Page, Settings};

fn env() -> Env {
    Env::with_config(Settings {
        quotas: vec![Quota {
            repositories: vec![Pattern::repository("team/**").unwrap()],
            bytes: 10_000,
        }],
        ..Settings::default()
    })
}

#[tokio::test]
async fn a_push_past_the_quota_is_refused_and_shared_blobs_count_once() {
    let env = env();
    let (a, b) = (repo("team/a"), repo("team/b"));
    let six = content(6_000, 1);
    push(&env.reg, &a, &six).await;
    // The same blob in another repository of the scope: no new bytes.
    push(&env.reg, &b, &six).await;
    assert_eq!(env.reg.quota_usage().await.unwrap()[0].used, 6_000);

    // 6,000 + 5,000 > 10,000: refused, naming the quota and the numbers; the bytes are not kept.
    let five = content(5_000, 2);
    let refused = env.reg.push_blob(&b, &sha256(&five), exact(&five, 0)).await;
    let Err(Error::OverQuota(why)) = &refused else {
        panic!("{refused:?}")
    };
    assert!(
        why.contains("team/**")
            && why.contains("6000")
            && why.contains("10000")
            && why.contains("5000"),
        "{why}"
    );
    assert!(
        env.blobs.stat(&sha256(&five)).await.unwrap().is_none(),
        "not kept"
    );

    // Outside the scope: no limit.
    push(&env.reg, &repo("other"), &five).await;
    // 4,000 fits exactly.
    push(&env.reg, &a, &content(4_000, 3)).await;
    assert_eq!(env.reg.quota_usage().await.unwrap()[0].used, 10_000);
    // Full: a new upload is refused at once, before any byte is sent.
    assert!(matches!(
        env.reg.start_upload(&a).await,
        Err(Error::OverQuota(_))
    ));
}

#[tokio::test]
async fn mounts_into_the_scope_are_counted() {
    let env = env();
    let big = content(9_000, 4);
    let d = push(&env.reg, &repo("outside"), &big).await;
    let into = repo("team/a");
    match env
        .reg
        .mount_blob(&into, &d, Some(&repo("outside")))
        .await
        .unwrap()
    {
        MountOutcome::Mounted(info) => assert_eq!(info.size, 9_000),
        MountOutcome::Started(_) => panic!("not mounted"),
    }
    let more = content(2_000, 5);
    let d2 = push(&env.reg, &repo("outside"), &more).await;
    assert!(matches!(
        env.reg.mount_blob(&into, &d2, Some(&repo("outside"))).await,
        Err(Error::OverQuota(_))
    ));
}

#[tokio::test]
async fn the_usage_report_lists_each_repository() {
    let env = env();
    let shared = content(1_000, 6);
    push(&env.reg, &repo("team/a"), &shared).await;
    push(&env.reg, &repo("team/b"), &shared).await;
    push(&env.reg, &repo("team/b"), &content(10, 7)).await;
    let (page, more) = env
        .reg
        .usage(&Page {
            n: Some(1),
            last: None,
        })
        .await
        .unwrap();
    assert!(more);
    assert_eq!(page[0].repo.as_str(), "team/a");
    assert_eq!((page[0].bytes, page[0].shared_bytes), (1_000, 1_000));
    let (rest, more) = env
        .reg
        .usage(&Page {
            n: None,
            last: Some("team/a".into()),
        })
        .await
        .unwrap();
    assert!(!more);
    assert_eq!((rest[0].bytes, rest[0].shared_bytes), (1_010, 1_000));
    let q = &env.reg.quota_usage().await.unwrap()[0];
    assert_eq!(q.used, 1_010);
    assert_eq!(q.scope.len(), 2);
}
