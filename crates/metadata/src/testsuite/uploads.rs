//! Suite cases for upload sessions: creation, compare-and-swap progress, deletion.

use std::sync::Arc;

use super::repo;
use crate::{Catalog, UploadSession, UploadSessions};

fn session(id: &str, offset: u64, state: &[u8]) -> UploadSession {
    UploadSession {
        id: id.to_string(),
        repo: repo("lib/app"),
        offset,
        hash_state: state.to_vec(),
        started_at: 1_700_000_000,
        updated_at: 1_700_000_000 + offset as i64,
    }
}

/// Also a catalog: that an upload makes no repository is a promise between the two roles of a backend.
pub async fn upload_create_get_delete<S: UploadSessions + Catalog>(store: S) {
    assert_eq!(store.upload("u1").await.unwrap(), None);
    let s = session("u1", 0, b"\x00state\xff");
    assert!(store.save_upload(&s, None).await.unwrap());
    assert_eq!(store.upload("u1").await.unwrap(), Some(s.clone()));

    // Creating again fails (returns false) and changes nothing.
    let other = session("u1", 99, b"other");
    assert!(!store.save_upload(&other, None).await.unwrap());
    assert_eq!(store.upload("u1").await.unwrap(), Some(s));

    // Sessions are independent.
    let s2 = session("u2", 0, b"");
    assert!(store.save_upload(&s2, None).await.unwrap());

    assert!(store.delete_upload("u1").await.unwrap());
    assert!(!store.delete_upload("u1").await.unwrap());
    assert_eq!(store.upload("u1").await.unwrap(), None);
    assert_eq!(store.upload("u2").await.unwrap(), Some(s2));
    // An upload does not make a repository.
    assert!(store.list_repos(None, 100).await.unwrap().is_empty());
}

pub async fn upload_compare_and_swap<S: UploadSessions>(store: S) {
    let s0 = session("u", 0, b"h0");
    assert!(store.save_upload(&s0, None).await.unwrap());

    let s1 = session("u", 100, b"h1");
    assert!(store.save_upload(&s1, Some(0)).await.unwrap());
    assert_eq!(store.upload("u").await.unwrap(), Some(s1.clone()));

    // A writer that still believes the offset is 0 loses, and nothing changes.
    let stale = session("u", 50, b"stale");
    assert!(!store.save_upload(&stale, Some(0)).await.unwrap());
    assert_eq!(store.upload("u").await.unwrap(), Some(s1));

    let s2 = session("u", 250, b"h2");
    assert!(store.save_upload(&s2, Some(100)).await.unwrap());
    assert_eq!(store.upload("u").await.unwrap(), Some(s2));

    // Updating a session that does not exist writes nothing.
    assert!(
        !store
            .save_upload(&session("ghost", 10, b""), Some(0))
            .await
            .unwrap()
    );
    assert_eq!(store.upload("ghost").await.unwrap(), None);
}

/// Many tasks try to advance the same upload from the same offset: exactly one wins.
pub async fn concurrent_upload_updates_have_one_winner<S: UploadSessions>(store: S) {
    const TASKS: u64 = 16;
    let store = Arc::new(store);
    assert!(
        store
            .save_upload(&session("u", 0, b""), None)
            .await
            .unwrap()
    );
    let mut tasks = Vec::new();
    for t in 1..=TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let s = session("u", t * 10, format!("task{t}").as_bytes());
            store
                .save_upload(&s, Some(0))
                .await
                .map(|won| won.then_some(s))
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(s) = task.await.unwrap().unwrap() {
            winners.push(s);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(store.upload("u").await.unwrap(), winners.pop());
}

/// `stale_uploads` lists the sessions last updated strictly before the cutoff, in id order, a page at a
/// time; an update moves a session out of the list.
pub async fn stale_uploads_by_last_update<S: UploadSessions>(store: S) {
    let at = |id: &str, updated_at: i64| UploadSession {
        updated_at,
        ..session(id, 0, b"")
    };
    for s in [
        at("d", 100),
        at("b", 50),
        at("a", 200),
        at("c", 99),
        at("e", 10),
    ] {
        assert!(store.save_upload(&s, None).await.unwrap());
    }
    let ids = |v: Vec<UploadSession>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();

    assert_eq!(
        ids(store.stale_uploads(100, None, 10).await.unwrap()),
        ["b", "c", "e"]
    );
    assert_eq!(
        ids(store.stale_uploads(10, None, 10).await.unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(store.stale_uploads(1000, None, 10).await.unwrap()),
        ["a", "b", "c", "d", "e"]
    );
    // Pages.
    assert_eq!(
        ids(store.stale_uploads(1000, None, 2).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        ids(store.stale_uploads(1000, Some("b"), 2).await.unwrap()),
        ["c", "d"]
    );
    assert_eq!(
        ids(store.stale_uploads(1000, Some("d"), 2).await.unwrap()),
        ["e"]
    );
    assert_eq!(
        ids(store.stale_uploads(1000, Some("e"), 2).await.unwrap()),
        Vec::<String>::new()
    );
    // Whole sessions come back.
    let c = store.stale_uploads(100, Some("b"), 1).await.unwrap();
    assert_eq!(c, [at("c", 99)]);

    // Progress on an upload makes it fresh again.
    let moved = UploadSession {
        offset: 5,
        updated_at: 500,
        ..at("b", 50)
    };
    assert!(store.save_upload(&moved, Some(0)).await.unwrap());
    assert_eq!(
        ids(store.stale_uploads(100, None, 10).await.unwrap()),
        ["c", "e"]
    );
    assert!(store.delete_upload("c").await.unwrap());
    assert_eq!(
        ids(store.stale_uploads(100, None, 10).await.unwrap()),
        ["e"]
    );
}
