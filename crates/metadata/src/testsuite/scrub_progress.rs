//! Cases of the scrub's cursor: none at first, the last one saved is the one read, and forgetting it
//! leaves none.

use crate::{ScrubCursor, ScrubProgress};

use super::blob;

pub async fn scrub_cursor_is_saved_replaced_and_forgotten<S: ScrubProgress>(store: S) {
    assert_eq!(store.scrub_cursor().await.unwrap(), None);
    let first = ScrubCursor {
        after: blob("a"),
        started_at: 1_700_000_000,
        checked: 1,
        bytes: 10,
        corrupt: 0,
        missing: 0,
    };
    store.save_scrub_cursor(Some(&first)).await.unwrap();
    assert_eq!(store.scrub_cursor().await.unwrap(), Some(first.clone()));
    let second = ScrubCursor {
        after: blob("b"),
        checked: 2,
        bytes: 5_000_000_000,
        corrupt: 1,
        missing: 3,
        ..first
    };
    store.save_scrub_cursor(Some(&second)).await.unwrap();
    assert_eq!(store.scrub_cursor().await.unwrap(), Some(second));
    store.save_scrub_cursor(None).await.unwrap();
    assert_eq!(store.scrub_cursor().await.unwrap(), None);
    store.save_scrub_cursor(None).await.unwrap();
}
