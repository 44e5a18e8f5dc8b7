//! Job locks: background work (upload purging, later GC) that must run on one registry replica at a time.
//!
//! Replicas share nothing but their stores, so the metadata store is where they agree on who runs a job:
//! [`MetadataStore::try_job_lock`](crate::MetadataStore::try_job_lock) takes a named lock without waiting
//! and gives a [`JobLock`] that holds it until dropped. The lock must never outlive its holder, or a
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

use std::fs::File;

/// A job lock, held until dropped.
pub struct JobLock {
    name: String,
    holder: Holder,
}

/// What keeps the lock; dropping it releases the lock.
pub(crate) enum Holder {
    /// A store only this process uses: nothing to hold.
    Local,
    /// The open descriptor that carries the `flock`.
    File(
        #[expect(
            dead_code,
            reason = "never read: holding it open is what keeps the lock"
        )]
        File,
    ),
    /// The session that holds the advisory lock.
    Postgres(crate::postgres::LockSession),
}

impl JobLock {
    pub(crate) fn new(name: &str, holder: Holder) -> JobLock {
        JobLock {
            name: name.to_string(),
            holder,
        }
    }

    /// A lock that excludes nobody, for stores no other process uses (the trait's default).
    pub fn local(name: &str) -> JobLock {
        JobLock::new(name, Holder::Local)
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the lock is still ours. False once the store lost it (its PostgreSQL session died): the job
    /// should stop, since another replica may have taken the lock since. Bounded: a server that does not
    /// answer within a few seconds counts as lost.
    pub async fn is_held(&self) -> bool {
        match &self.holder {
            Holder::Local | Holder::File(_) => true,
            Holder::Postgres(session) => session.is_alive().await,
        }
    }
}

impl std::fmt::Debug for JobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.holder {
            Holder::Local => "local",
            Holder::File(_) => "file",
            Holder::Postgres(_) => "postgres",
        };
        f.debug_struct("JobLock")
            .field("name", &self.name)
            .field("kind", &kind)
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
