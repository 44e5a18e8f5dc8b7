//! Cases of the events outbox: a queue per endpoint in write order, removal by id, and the catalog's
//! writes queuing exactly the events noted for them, in their own transaction.

use crate::outbox::noting;
use crate::{Catalog, NewEvent, Outbox};

use super::{blob, image, repo, tag};

fn event(endpoint: &str, repo: &str, n: u32) -> NewEvent {
    NewEvent {
        endpoint: endpoint.to_string(),
        repo: repo.to_string(),
        payload: format!("{{\"n\":{n}}}"),
    }
}

fn payloads(events: &[crate::QueuedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.payload.as_str()).collect()
}

pub async fn outbox_queues_per_endpoint_in_order_and_removes_by_id<S: Outbox>(store: S) {
    assert!(store.queued_events().await.unwrap().is_empty());
    store
        .append_events(&[event("a", "x", 1), event("b", "x", 1), event("a", "y", 2)])
        .await
        .unwrap();
    store.append_events(&[event("a", "x", 3)]).await.unwrap();

    let a = store.pending_events("a", 10).await.unwrap();
    assert_eq!(payloads(&a), [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]);
    assert!(a.windows(2).all(|w| w[0].id < w[1].id), "{a:?}");
    assert_eq!(a[1].repo, "y");
    assert_eq!(store.pending_events("a", 2).await.unwrap(), a[..2]);
    assert_eq!(
        store.queued_events().await.unwrap(),
        [("a".to_string(), 3), ("b".to_string(), 1)]
    );

    // Removing a's first two leaves b's, and a's third; another endpoint's ids are not a's.
    let b = store.pending_events("b", 10).await.unwrap();
    assert_eq!(store.remove_events("a", &[b[0].id]).await.unwrap(), 0);
    assert_eq!(
        store.remove_events("a", &[a[0].id, a[1].id]).await.unwrap(),
        2
    );
    assert_eq!(store.pending_events("a", 10).await.unwrap(), a[2..]);
    assert_eq!(store.pending_events("b", 10).await.unwrap(), b);
    assert_eq!(store.remove_events("a", &[a[0].id]).await.unwrap(), 0);

    // An endpoint no longer configured loses its queue.
    assert_eq!(
        store
            .drop_other_endpoints(&["a".to_string()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.queued_events().await.unwrap(), [("a".to_string(), 1)]);
    assert_eq!(store.drop_other_endpoints(&[]).await.unwrap(), 1);
    assert!(store.queued_events().await.unwrap().is_empty());
}

pub async fn outbox_gets_the_events_of_catalog_writes_that_happened<S: Catalog + Outbox>(store: S) {
    let r = repo("app");
    let layer = blob("layer");
    let noted = |n| vec![event("e", "app", n)];

    // Writes without noted events queue nothing.
    store.link_blob(&r, &layer, 5).await.unwrap();
    assert!(store.queued_events().await.unwrap().is_empty());

    noting(noted(1), store.link_blob(&r, &blob("other"), 5))
        .await
        .unwrap();
    let m = image("m", [layer.clone()]);
    noting(noted(2), store.put_manifest(&r, &m, Some(&tag("t"))))
        .await
        .unwrap();
    // A write that fails rolls its events back with it.
    let broken = image("broken", [blob("missing")]);
    noting(noted(99), store.put_manifest(&r, &broken, None))
        .await
        .unwrap_err();
    // Deletes queue their events only when they deleted something.
    let absent = tag("absent");
    assert!(
        !noting(noted(98), store.delete_tag(&r, &absent))
            .await
            .unwrap()
    );
    assert!(
        noting(noted(3), store.delete_tag(&r, &tag("t")))
            .await
            .unwrap()
    );
    assert!(
        !noting(noted(97), store.delete_manifest(&r, &blob("nothing")))
            .await
            .unwrap()
    );
    assert!(
        noting(noted(4), store.delete_manifest(&r, &m.digest))
            .await
            .unwrap()
    );
    assert!(
        !noting(noted(96), store.unlink_blob(&r, &blob("never")))
            .await
            .unwrap()
    );
    assert!(
        noting(noted(5), store.unlink_blob(&r, &layer))
            .await
            .unwrap()
    );

    let queued = store.pending_events("e", 100).await.unwrap();
    assert_eq!(
        payloads(&queued),
        [1, 2, 3, 4, 5].map(|n| format!("{{\"n\":{n}}}"))
    );
    // The scope ends with the write: the next write outside it queues nothing.
    store.link_blob(&r, &layer, 5).await.unwrap();
    assert_eq!(store.pending_events("e", 100).await.unwrap(), queued);
}
