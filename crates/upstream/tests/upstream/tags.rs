//! The upstream's lists (`Upstream::tags_list`, `Upstream::catalog`): a page with `n` and `last`, whether
//! more follow (the upstream's `Link`), and 404 for a repository it does not have.

use berth_http::ServeSettings;
use registry::proxy::{Upstream, UpstreamError};

use crate::harness::*;

#[tokio::test]
async fn tags_are_listed_a_page_at_a_time() {
    let origin = Origin::start().await;
    for t in ["a", "b", "c"] {
        origin.seed_image("team/app", t, t.as_bytes()).await;
    }
    let up = client(&origin.url);
    let repo = name("team/app");
    let all = up.tags_list(&repo, 100, None).await.unwrap();
    assert_eq!(all, Some((vec!["a".into(), "b".into(), "c".into()], false)));
    let first = up.tags_list(&repo, 2, None).await.unwrap();
    assert_eq!(first, Some((vec!["a".into(), "b".into()], true)));
    let rest = up.tags_list(&repo, 2, Some("b")).await.unwrap();
    assert_eq!(rest, Some((vec!["c".into()], false)));
    assert_eq!(
        up.tags_list(&name("team/none"), 10, None).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn the_catalog_is_listed_a_page_at_a_time() {
    let origin = Origin::start().await;
    for r in ["a/one", "b/two", "c/three"] {
        origin.seed_image(r, "v1", r.as_bytes()).await;
    }
    let up = client(&origin.url);
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        up.catalog(100, None).await.unwrap(),
        Some((names(&["a/one", "b/two", "c/three"]), false))
    );
    assert_eq!(
        up.catalog(2, None).await.unwrap(),
        Some((names(&["a/one", "b/two"]), true))
    );
    assert_eq!(
        up.catalog(2, Some("b/two")).await.unwrap(),
        Some((names(&["c/three"]), false))
    );
    // Nothing that is not a name is sent as one.
    assert!(up.catalog(2, Some("a&n=1")).await.is_err());
}

#[tokio::test]
async fn a_tag_list_that_is_not_an_object_is_an_error_not_an_empty_list() {
    let mut origin = Origin::start().await;
    // registry:2's answer for a repository without tags, then two bodies no registry sends.
    let bodies = [r#"{"name":"team/app","tags":null}"#, "[]", r#""tags""#];
    let mut urls = Vec::new();
    for body in bodies {
        let router = axum::Router::new().fallback(move || async move {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
        });
        urls.push(origin.serve(router, ServeSettings::default()).await);
    }
    let repo = name("team/app");
    let listed = |url: &str| {
        let (up, repo) = (client(url), repo.clone());
        async move { up.tags_list(&repo, 10, None).await }
    };
    assert_eq!(listed(&urls[0]).await.unwrap(), Some((Vec::new(), false)));
    for url in &urls[1..] {
        assert!(
            matches!(listed(url).await, Err(UpstreamError::Protocol(_))),
            "{url}"
        );
    }
}
