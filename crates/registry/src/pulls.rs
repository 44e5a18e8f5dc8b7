//! Manifest pulls, recorded for retention rules and usage reports without a database write per pull:
//! a GET of a manifest notes `(repository, digest) -> now` in memory ([`PullLog`]), and the log is
//! written in one batch ([`Registry::flush_pulls`]) by a background task every few seconds, before each
//! retention run, and when it grows past [`FLUSH_AT`] entries. A crash loses at most one interval's
//! pull times, which can only make a "not pulled for" rule see a pull as older than it was by that much.
//!
//! A HEAD is not a pull: tools that poll a tag for updates would otherwise keep every image alive. The
//! pull-through cache's repositories keep their own pull times (`proxy::evict`), for eviction.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use metadata::ManifestPull;
use oci::{Digest, RepoName};

use crate::clock::unix_now;
use crate::{Registry, Result};

/// Pulls noted before a batch is written without waiting for the next flush.
const FLUSH_AT: usize = 10_000;

/// Pulls noted and not written yet: the latest time per repository and manifest. Nested maps so that a
/// pull of something already noted looks it up by reference and allocates nothing.
#[derive(Default)]
pub(crate) struct PullLog(Mutex<Noted>);

#[derive(Default)]
struct Noted {
    by_repo: HashMap<RepoName, HashMap<Digest, i64>>,
    /// Entries across `by_repo`, kept so a pull never counts them.
    entries: usize,
}

impl PullLog {
    /// Notes a pull at `at`; returns whether the log is full enough to write now.
    fn note(&self, repo: &RepoName, digest: &Digest, at: i64) -> bool {
        let mut noted = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match noted.by_repo.get_mut(repo) {
            Some(digests) => match digests.get_mut(digest) {
                Some(time) => *time = at,
                None => {
                    digests.insert(digest.clone(), at);
                    noted.entries += 1;
                }
            },
            None => {
                let digests = HashMap::from([(digest.clone(), at)]);
                noted.by_repo.insert(repo.clone(), digests);
                noted.entries += 1;
            }
        }
        noted.entries >= FLUSH_AT
    }

    fn take(&self) -> Vec<ManifestPull> {
        let noted = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        noted
            .by_repo
            .into_iter()
            .flat_map(|(repo, digests)| {
                digests.into_iter().map(move |(digest, at)| ManifestPull {
                    repo: repo.clone(),
                    digest,
                    at,
                })
            })
            .collect()
    }
}

impl Registry {
    /// Notes a GET of manifest `digest` of `repo` (written by the next flush).
    pub(crate) fn note_pull(&self, repo: &RepoName, digest: &Digest) {
        // Read-only mode writes nothing, bookkeeping included.
        if self.settings.read_only {
            return;
        }
        if self.pulls.note(repo, digest, unix_now()) {
            let reg = self.clone();
            tokio::spawn(async move {
                if let Err(e) = reg.flush_pulls().await {
                    tracing::warn!(error = %e, "recording manifest pulls failed");
                }
            });
        }
    }

    /// Writes the pulls noted so far. On failure they are lost (logged by the caller): pull times are
    /// a hint for retention, not worth holding memory for while the database is away.
    pub async fn flush_pulls(&self) -> Result<()> {
        let pulls = self.pulls.take();
        if !pulls.is_empty() {
            self.meta.tag_ages.record_pulls(&pulls).await?;
        }
        Ok(())
    }

    /// Flushes the pulls every `interval`, forever (a background task of `serve`).
    pub async fn run_pull_recorder(self, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            if let Err(e) = self.flush_pulls().await {
                tracing::warn!(error = %e, "recording manifest pulls failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_latest_pull_per_manifest() {
        let log = PullLog::default();
        let (a, b): (RepoName, RepoName) = ("a".parse().unwrap(), "b".parse().unwrap());
        let d = Digest::sha256_of(b"m");
        assert!(!log.note(&a, &d, 1));
        assert!(!log.note(&a, &d, 5));
        assert!(!log.note(&b, &d, 3));
        let mut pulls = log.take();
        pulls.sort_by(|x, y| x.repo.cmp(&y.repo));
        assert_eq!(
            pulls,
            [
                ManifestPull {
                    repo: a,
                    digest: d.clone(),
                    at: 5
                },
                ManifestPull {
                    repo: b,
                    digest: d,
                    at: 3
                },
            ]
        );
        assert!(log.take().is_empty(), "taken once");
    }

    #[test]
    fn the_log_asks_for_a_flush_once_it_holds_enough_distinct_pulls() {
        let log = PullLog::default();
        let (a, b): (RepoName, RepoName) = ("a".parse().unwrap(), "b".parse().unwrap());
        for i in 0..FLUSH_AT - 1 {
            let repo = if i % 2 == 0 { &a } else { &b };
            assert!(!log.note(repo, &Digest::sha256_of(&i.to_be_bytes()), 1));
        }
        // The same pull again adds nothing; one more distinct one fills the log.
        assert!(!log.note(&a, &Digest::sha256_of(&0usize.to_be_bytes()), 2));
        assert!(log.note(&a, &Digest::sha256_of(b"one more"), 1));
        assert_eq!(log.take().len(), FLUSH_AT);
        assert!(
            !log.note(&a, &Digest::sha256_of(b"after"), 1),
            "the count starts again"
        );
    }
}
