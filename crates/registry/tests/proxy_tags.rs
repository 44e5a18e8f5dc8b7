//! A cached repository's tags come from the upstream, as registry:3's pull-through cache lists them
//! (every tag there, pulled through or not, paged with `n` and `last`), and from what the cache holds
//! when the upstream fails or does not know the repository.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;
mod proxy_common;

use std::time::Duration;

use berth_registry as registry;
use common::{push_image, repo, tag};
use proxy_common::{FakeUpstream, Fault, cache};
use registry::{Error, Page};

fn page(n: Option<usize>, last: Option<&str>) -> Page {
    Page {
        n,
        last: last.map(str::to_string),
    }
}

#[tokio::test]
async fn tags_are_the_upstreams_paged() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    for (i, t) in ["1.0", "1.1", "2.0"].iter().enumerate() {
        push_image(up.reg(), &name, t, i as u8).await;
    }
    let (env, _) = cache(&up, "", false, Duration::ZERO);
    // Nothing pulled through yet: the upstream's tags all the same.
    let (tags, more) = env.reg.list_tags(&name, &Page::default()).await.unwrap();
    assert_eq!(
        (tags, more),
        (vec!["1.0".into(), "1.1".into(), "2.0".into()], false)
    );
    let (tags, more) = env
        .reg
        .list_tags(&name, &page(Some(2), None))
        .await
        .unwrap();
    assert_eq!((tags, more), (vec!["1.0".into(), "1.1".into()], true));
    let (tags, more) = env
        .reg
        .list_tags(&name, &page(Some(2), Some("1.1")))
        .await
        .unwrap();
    assert_eq!((tags, more), (vec!["2.0".to_string()], false));
}

#[tokio::test]
async fn an_upstream_that_fails_leaves_the_cached_tags() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    push_image(up.reg(), &name, "1.0", 1).await;
    push_image(up.reg(), &name, "2.0", 2).await;
    let (env, _) = cache(&up, "", false, Duration::ZERO);
    env.reg.get_manifest(&name, &tag("1.0")).await.unwrap();
    for fault in [Fault::Down, Fault::RateLimited] {
        up.set_fault(fault);
        let (tags, more) = env.reg.list_tags(&name, &Page::default()).await.unwrap();
        assert_eq!((tags, more), (vec!["1.0".to_string()], false), "{fault:?}");
    }
    // Nothing cached and the upstream down: the repository is unknown here.
    let other = repo("org/never-pulled");
    assert!(matches!(
        env.reg.list_tags(&other, &Page::default()).await,
        Err(Error::NameUnknown(_))
    ));
}

#[tokio::test]
async fn a_repository_the_upstream_does_not_know_lists_what_is_cached() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    push_image(up.reg(), &name, "1.0", 1).await;
    let (env, _) = cache(&up, "", false, Duration::ZERO);
    assert!(matches!(
        env.reg
            .list_tags(&repo("org/nothing"), &Page::default())
            .await,
        Err(Error::NameUnknown(_))
    ));
}
