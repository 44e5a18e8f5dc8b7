//! Job locks: background work (upload purging, later GC) that must run on one registry replica at a time.
//!
//! Replicas share nothing but their stores, so the metadata store is where they agree on who runs a job:
//! [`JobLocks::try_job_lock`] takes a named lock without waiting and gives a [`JobLock`] that holds it
//! until dropped. The lock must never outlive its holder, or a
//! replica killed mid-job would stop the job everywhere for good, so each backend ties it to something
//! that dies with the process:
//!
//! - PostgreSQL: a session-level advisory lock on a connection of its own. The server releases it when
//!   that session ends: the holder drops the lock, exits, is killed (the kernel closes its socket), or
//!   loses the network (TCP keepalives on both ends notice within about a minute).
//! - SQLite: an exclusive `flock(2)` on a file beside the database; the kernel drops it with the last
//!   descriptor, so with the process.
//!
//! A job that runs for a while asks [`JobLock::is_held`] between steps: a PostgreSQL session can be cut
//! (a failover, an administrator's `pg_terminate_backend`), after which another replica may take the lock.

use crate::Result;

/// Background work on one replica at a time.
#[async_trait::async_trait]
pub trait JobLocks: Send + Sync + 'static {
    /// Takes the job lock `name` (ASCII letters, digits, `-`, `_`; at most 64 bytes) without waiting:
    /// `None` if another holder has it, whether in this process or in another replica on the same
    /// database. Not reentrant: a second call while the first lock is held gives `None`. The lock is
    /// released when the [`JobLock`] is dropped, and also when its holder dies (see the module comment).
    async fn try_job_lock(&self, name: &str) -> Result<Option<JobLock>>;
}

/// What keeps a lock in a backend; dropping it releases the lock.
#[async_trait::async_trait]
pub trait LockHolder: Send + Sync + 'static {
    /// Whether the lock is still this holder's (see [`JobLock::is_held`]).
    async fn is_held(&self) -> bool;

    /// Gives the lock up and returns once the store has (see [`JobLock::release`]); the holder is
    /// dropped right after. A holder whose drop already frees the lock at once does nothing here.
    async fn release(&self);

    /// What holds it, for `Debug` (`file`, `postgres`, ...).
    fn kind(&self) -> &'static str;
}

/// A job lock, held until dropped.
pub struct JobLock {
    name: String,
    holder: Box<dyn LockHolder>,
}

impl JobLock {
    /// The lock of job `name`, kept by `holder`; `name` must be a valid job name (the backends check it).
    pub fn new(name: &str, holder: Box<dyn LockHolder>) -> JobLock {
        JobLock {
            name: name.to_string(),
            holder,
        }
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Releases the lock, and returns once the store has: another holder, in this process or any
    /// other, may take it at once. Dropping a `JobLock` releases it too, but on PostgreSQL only when
    /// the server has processed the end of the session, a moment after: a job that ends calls this, so
    /// that the next run (a maintenance command started right after this one exits) is not refused.
    pub async fn release(self) {
        self.holder.release().await;
    }

    /// Whether the lock is still ours. False once the store lost it (its PostgreSQL session died): the job
    /// should stop, since another replica may have taken the lock since. Bounded: a server that does not
    /// answer within a few seconds counts as lost.
    pub async fn is_held(&self) -> bool {
        self.holder.is_held().await
    }
}

impl std::fmt::Debug for JobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobLock")
            .field("name", &self.name)
            .field("kind", &self.holder.kind())
            .finish()
    }
}

/// Job names are short identifiers (they name files on SQLite): ASCII letters, digits, `-` and `_`, at
/// most 64 bytes.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, thiserror::Error)]
#[error("invalid job lock name {0:?} (ASCII letters, digits, '-' and '_', at most 64 bytes)")]
pub(crate) struct InvalidName(pub String);

/// `Err` unless `name` is a [valid](valid_name) job name.
pub(crate) fn check_name(name: &str) -> crate::Result<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(crate::Error::Backend(Box::new(InvalidName(
            name.to_string(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_identifiers() {
        for ok in ["upload-purge", "gc", "A_1", &"x".repeat(64)] {
            assert!(valid_name(ok), "{ok:?}");
        }
        for bad in ["", "a/b", "../x", "a b", "é", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
