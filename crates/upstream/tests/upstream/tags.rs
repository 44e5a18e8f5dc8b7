//! A repository's tags from the upstream (`Upstream::tags_list`): a page with `n` and `last`, whether
//! more follow (the upstream's `Link`), and 404 for a repository it does not have.

use registry::proxy::Upstream;

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
