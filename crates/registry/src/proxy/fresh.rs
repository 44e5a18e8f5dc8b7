//! When each cached tag was last confirmed current, so that a tag pull within the revalidation interval
//! makes no upstream request at all.
//!
//! Kept in memory, per process: after a restart (or on another replica) the first pull of a tag
//! revalidates it with one HEAD, which is cheap and free against Docker Hub's pull limit, so persisting
//! these times would buy little. The map is bounded: when it is full, entries past the interval (which
//! would be revalidated anyway) are dropped first, then everything.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use oci::{RepoName, Tag};

/// Most tags remembered at once (a few MiB at most).
const MAX_ENTRIES: usize = 100_000;

pub(crate) struct Freshness {
    interval: Duration,
    confirmed: Mutex<HashMap<(RepoName, Tag), Instant>>,
}

impl Freshness {
    pub fn new(interval: Duration) -> Freshness {
        Freshness {
            interval,
            confirmed: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `tag` was confirmed within the interval.
    pub fn is_fresh(&self, repo: &RepoName, tag: &Tag) -> bool {
        let map = self
            .confirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A clone of the key is the price of a tuple key; it is two short strings.
        map.get(&(repo.clone(), tag.clone()))
            .is_some_and(|at| at.elapsed() < self.interval)
    }

    /// Records that the upstream just confirmed (or provided) `tag`.
    pub fn confirm(&self, repo: &RepoName, tag: &Tag) {
        if self.interval.is_zero() {
            return;
        }
        let mut map = self
            .confirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES {
            let interval = self.interval;
            map.retain(|_, at| at.elapsed() < interval);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert((repo.clone(), tag.clone()), Instant::now());
    }

    /// Forgets `tag` (it vanished upstream).
    pub fn forget(&self, repo: &RepoName, tag: &Tag) {
        let mut map = self
            .confirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.remove(&(repo.clone(), tag.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmed_tag_is_fresh_within_the_interval_only() {
        let repo: RepoName = "a/b".parse().unwrap();
        let tag: Tag = "1".parse().unwrap();
        let long = Freshness::new(Duration::from_secs(3600));
        assert!(!long.is_fresh(&repo, &tag));
        long.confirm(&repo, &tag);
        assert!(long.is_fresh(&repo, &tag));
        long.forget(&repo, &tag);
        assert!(!long.is_fresh(&repo, &tag));

        let never = Freshness::new(Duration::ZERO);
        never.confirm(&repo, &tag);
        assert!(!never.is_fresh(&repo, &tag));

        let short = Freshness::new(Duration::from_millis(20));
        short.confirm(&repo, &tag);
        std::thread::sleep(Duration::from_millis(40));
        assert!(!short.is_fresh(&repo, &tag));
    }
}
