//! Cases of the catalog's change feed. Each takes two stores on one database: `a` watches, and a
//! write through `a` (this process) or through `b` (another process, another replica) must reach it.

use std::time::Duration;

use futures_util::StreamExt;

use super::{blob, image, repo, tag};
use crate::{Catalog, CatalogChange, CatalogChanges, ChangeStream, GcMarks};

/// How long a change may take to arrive (SQLite polls for other processes' every 250 ms).
const PATIENCE: Duration = Duration::from_secs(5);

async fn next(changes: &mut ChangeStream) -> CatalogChange {
    tokio::time::timeout(PATIENCE, changes.next())
        .await
        .expect("a change within the patience")
        .expect("the feed does not end")
}

/// The next change that is not `Everything`, or `Everything` itself when `precise` is false and it
/// comes first.
async fn told(changes: &mut ChangeStream, want: &CatalogChange, precise: bool) {
    loop {
        let got = next(changes).await;
        if got == *want || (!precise && got == CatalogChange::Everything) {
            return;
        }
        assert_eq!(
            got,
            CatalogChange::Everything,
            "unexpected change, waiting for {want:?}"
        );
    }
}

pub async fn catalog_changes_of_this_process_name_the_repository<S>(a: S, _b: S)
where
    S: Catalog + CatalogChanges + GcMarks,
{
    let r = repo("app");
    let (one, two) = (image("one", []), image("two", []));
    a.put_manifest(&r, &one, None).await.unwrap();
    let mut changes = a.watch().await;
    assert_eq!(
        next(&mut changes).await,
        CatalogChange::Everything,
        "a watch starts from nothing known"
    );

    let changed = CatalogChange::Repository(r.clone());
    a.put_manifest(&r, &one, Some(&tag("t"))).await.unwrap();
    a.put_manifest(&r, &two, Some(&tag("t"))).await.unwrap();
    told(&mut changes, &changed, true).await;
    a.delete_tag(&r, &tag("t")).await.unwrap();
    told(&mut changes, &changed, true).await;
    a.link_blob(&r, &blob("b"), 1).await.unwrap();
    a.unlink_blob(&r, &blob("b")).await.unwrap();
    told(&mut changes, &changed, true).await;
    a.delete_manifest(&r, &one.digest).await.unwrap();
    told(&mut changes, &changed, true).await;
}

pub async fn catalog_changes_of_another_process_reach_the_watcher<S>(a: S, b: S)
where
    S: Catalog + CatalogChanges + GcMarks,
{
    let r = repo("app");
    let m = image("m", []);
    b.put_manifest(&r, &m, Some(&tag("t"))).await.unwrap();
    let mut changes = a.watch().await;
    assert_eq!(next(&mut changes).await, CatalogChange::Everything);
    // Another writer: named when the backend can (PostgreSQL), else everything (SQLite).
    b.delete_tag(&r, &tag("t")).await.unwrap();
    told(&mut changes, &CatalogChange::Repository(r.clone()), false).await;
}
