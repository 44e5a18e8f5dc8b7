//! Cases for job locks: two stores on one database stand for two replicas (or two processes), and at most
//! one of them holds a given job lock at any time. What "the holder died" means differs per backend (a
//! killed process, a terminated PostgreSQL session), so that case is in each backend's own tests.

use std::time::{Duration, Instant};

use crate::{JobLock, JobLocks};

/// How long a released lock may take to be free for the other store: PostgreSQL releases a session's
/// locks when the server has processed its end, a moment after the client closed the connection.
const RELEASE_BOUND: Duration = Duration::from_secs(10);

/// Takes `name` through `store`, failing the test on an error.
async fn take(store: &impl JobLocks, name: &str) -> Option<JobLock> {
    store
        .try_job_lock(name)
        .await
        .unwrap_or_else(|e| panic!("try_job_lock({name:?}): {e}"))
}

/// Takes `name` through `store`, retrying until [`RELEASE_BOUND`] passes.
pub async fn take_within_bound(store: &impl JobLocks, name: &str) -> JobLock {
    let deadline = Instant::now() + RELEASE_BOUND;
    loop {
        if let Some(lock) = take(store, name).await {
            return lock;
        }
        assert!(
            Instant::now() < deadline,
            "job lock {name:?} still held {RELEASE_BOUND:?} after its holder let go"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// While one store holds a job lock, neither the other store nor the holder itself gets it again.
pub async fn job_lock_is_held_by_one_store_at_a_time<S: JobLocks>(a: S, b: S) {
    let held = take(&a, "purge")
        .await
        .unwrap_or_else(|| panic!("a free job lock was refused"));
    assert_eq!(held.name(), "purge");
    assert!(held.is_held().await);
    assert!(
        take(&b, "purge").await.is_none(),
        "a second store took a held lock"
    );
    assert!(
        take(&a, "purge").await.is_none(),
        "the holder's store took its own lock again"
    );
    // Asking again does not disturb the holder.
    assert!(held.is_held().await);
}

/// Locks of different jobs are independent.
pub async fn job_locks_of_different_jobs_are_independent<S: JobLocks>(a: S, b: S) {
    let _purge = take(&a, "purge").await.expect("purge is free");
    let gc = take(&b, "gc").await;
    assert!(gc.is_some(), "holding purge kept gc from being taken");
    assert!(take(&a, "gc").await.is_none());
}

/// Dropping the lock releases it: the other store takes it (within a short bound), and the first store
/// is then refused in turn.
pub async fn job_lock_is_released_on_drop<S: JobLocks>(a: S, b: S) {
    let held = take(&a, "purge").await.expect("purge is free");
    assert!(take(&b, "purge").await.is_none());
    drop(held);
    let taken = take_within_bound(&b, "purge").await;
    assert!(taken.is_held().await);
    assert!(
        take(&a, "purge").await.is_none(),
        "the lock was taken over, yet the first store got it too"
    );
}

/// A lock released with `JobLock::release` is free for the other store as soon as `release`
/// returns, with no bound to wait out (a maintenance command run right after another ended).
pub async fn job_lock_released_is_free_at_once<S: JobLocks>(a: S, b: S) {
    for round in 0..50 {
        let held = take(&a, "purge").await.expect("purge is free");
        held.release().await;
        let taken = take(&b, "purge")
            .await
            .unwrap_or_else(|| panic!("round {round}: still held right after its release"));
        taken.release().await;
    }
}

/// Many tries at once from both stores: exactly one wins.
pub async fn concurrent_job_lock_tries_have_one_winner<S: JobLocks + Clone>(a: S, b: S) {
    let tries: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.try_job_lock("race").await })
        })
        .collect();
    let mut held = Vec::new();
    for t in tries {
        match t.await {
            Ok(Ok(lock)) => held.extend(lock),
            Ok(Err(e)) => panic!("try_job_lock failed: {e}"),
            Err(e) => panic!("a try panicked: {e}"),
        }
    }
    assert_eq!(held.len(), 1, "{held:?}");
}

/// A name that could not be a file name (or is empty) is refused, not mangled.
pub async fn job_lock_names_are_checked<S: JobLocks>(a: S, _b: S) {
    for bad in ["", "../x", "a/b", "a b"] {
        assert!(
            a.try_job_lock(bad).await.is_err(),
            "job lock name {bad:?} accepted"
        );
    }
}
