//! Cases of the adoption's cursor: none at first, and the last one saved is the one read; repositories
//! adopted ahead of it are remembered by exact name.

use crate::{AdoptCursor, AdoptProgress, AdoptedAhead};

pub async fn adopt_cursor_is_saved_and_replaced<S: AdoptProgress>(store: S) {
    assert_eq!(store.adopt_cursor().await.unwrap(), None);
    let first = AdoptCursor {
        after: None,
        finished: false,
        started_at: 1_700_000_000,
        repositories: 0,
        manifests: 0,
        tags: 0,
        skipped: 0,
    };
    store.save_adopt_cursor(&first).await.unwrap();
    assert_eq!(store.adopt_cursor().await.unwrap(), Some(first.clone()));
    let second = AdoptCursor {
        after: Some("team/app/sub".into()),
        repositories: 3,
        manifests: 5_000_000_000,
        tags: 7,
        skipped: 1,
        ..first.clone()
    };
    store.save_adopt_cursor(&second).await.unwrap();
    assert_eq!(store.adopt_cursor().await.unwrap(), Some(second.clone()));
    let done = AdoptCursor {
        finished: true,
        ..second
    };
    store.save_adopt_cursor(&done).await.unwrap();
    assert_eq!(store.adopt_cursor().await.unwrap(), Some(done));
}

pub async fn repositories_adopted_ahead_are_remembered<S: AdoptProgress>(store: S) {
    assert_eq!(store.adopted_ahead("team/app").await.unwrap(), None);
    let counts = AdoptedAhead {
        manifests: 5_000_000_000,
        tags: 3,
        layer_links: 12,
        skipped: 1,
    };
    store.note_adopted_ahead("team/app", &counts).await.unwrap();
    // Noting it twice (two replicas, or a retry) is no error, and keeps what was noted first.
    let again = AdoptedAhead { tags: 4, ..counts };
    store.note_adopted_ahead("team/app", &again).await.unwrap();
    assert_eq!(store.adopted_ahead("team/app").await.unwrap(), Some(counts));
    // By exact name: neither a parent, a child nor another case.
    for other in ["team", "team/app/sub", "Team/app", "team/ap"] {
        assert_eq!(store.adopted_ahead(other).await.unwrap(), None, "{other}");
    }
}
