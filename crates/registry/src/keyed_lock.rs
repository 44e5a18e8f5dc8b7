//! One-at-a-time access, within this process, to one upload or one blob digest: async locks by key,
//! created on demand and forgotten when idle. The registry keeps two sets of them.
//!
//! **Uploads** (keyed by upload id). Why the compare-and-swap on the session's offset is not enough on
//! its own: two requests that both read offset N both truncate the upload to N and write. The one that
//! saves first wins the swap, but the loser's bytes may land after the winner's, so the file would hold
//! the loser's bytes under the winner's hash state, and the blob would be committed under a digest its
//! bytes do not have (which another repository could then mount). Holding the upload's lock from reading
//! the session to saving it makes every write start at the offset actually recorded. Clients never send
//! two chunks of one upload at once, so nothing legitimate ever waits there.
//!
//! **Blobs** (keyed by digest). The pull-through cache's eviction deletes a blob's bytes once no
//! repository links it any more; a push (or mount, or fetch) of the same blob finds the bytes present
//! and then links them. Without a lock the two interleave: eviction sees no link, the push sees the
//! bytes, eviction deletes them, the push links a blob that is gone. Holding the digest's lock from
//! "are the bytes there" to "linked" on the one side, and from "is it linked anywhere" to "bytes deleted"
//! on the other, makes one of them see the other's result.
//!
//! Scope: one process. Replicas sharing storage still rely on the swap to refuse an upload's loser
//! (making its bytes harmless there needs the blob store's help, an exclusive lease on the upload's
//! bytes), and on eviction's check after the delete, which reports a push that linked the blob meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OwnedMutexGuard;

/// Async locks by key, created on demand and dropped when nobody holds or awaits them.
#[derive(Clone, Default)]
pub(crate) struct KeyedLocks {
    /// A std mutex: only held to look up or remove an entry, never across an `.await`.
    map: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Holds one key's lock; releases it (and forgets the lock if unused) when dropped.
pub(crate) struct KeyedGuard {
    locks: KeyedLocks,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits until no other holder in this process has `key`.
    pub async fn lock(&self, key: &str) -> KeyedGuard {
        let lock = Arc::clone(self.entries().entry(key.to_string()).or_default());
        KeyedGuard {
            locks: self.clone(),
            key: key.to_string(),
            guard: Some(lock.lock_owned().await),
        }
    }

    /// [`lock`](Self::lock) keyed by a blob digest.
    pub async fn lock_digest(&self, digest: &oci::Digest) -> KeyedGuard {
        self.lock(&digest.to_string()).await
    }

    /// The map, even if a panic elsewhere poisoned its mutex: every change to it is a single insert or
    /// remove, so it is never left half-updated.
    fn entries(&self) -> MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

impl Drop for KeyedGuard {
    fn drop(&mut self) {
        let mut entries = self.locks.entries();
        // Release first, then look: the map's own reference is then the only one unless another holder
        // holds or awaits the lock (it clones the Arc under the map's mutex, which we hold).
        drop(self.guard.take());
        if entries
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            entries.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn serialises_one_upload_and_forgets_idle_locks() {
        let locks = KeyedLocks::default();
        let first = locks.lock("a").await;
        // Another upload is not held up.
        let other = locks.lock("b").await;
        drop(other);
        // The same upload is.
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move {
                let _g = locks.lock("a").await;
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "second holder got in while the first held the lock"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(locks.len(), 0, "idle locks are forgotten");
    }
}
