//! Cases of the adoption's cursor: none at first, and the last one saved is the one read.

use crate::{AdoptCursor, AdoptProgress};

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
