//! Job locks on PostgreSQL: a session-level advisory lock held by a connection of its own.
//!
//! Why a session lock on a dedicated connection rather than a lease row with an expiry: the server
//! itself releases a session lock the moment the session ends, so a holder that crashes frees the job at
//! once (its kernel closes the socket), and no clock has to agree between replicas. The connection is
//! outside the pool (a pooled connection is handed to other operations and may be closed at any time),
//! and it sets short TCP keepalives on both ends, so a holder cut off by the network loses the lock
//! within about a minute instead of the operating system's two hours.
//!
//! Advisory locks are scoped to the database, so registries in separate databases of one server never
//! exclude each other. Keys are the two-integer form: a namespace for berth's jobs and a hash of the
//! job's name, which never collide with the one-integer migration lock.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::pool::Pool;
use super::retry::{Backoff, Failure, Safety};
use crate::{JobLock, LockHolder, Result};

/// The first key of every job lock: "brth" as a big-endian integer.
const NAMESPACE: i32 = i32::from_be_bytes(*b"brth");

/// TCP keepalives of the lock's connection: the first probe after this much silence...
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// ...then one every this long...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// ...and the peer counts as gone after this many unanswered.
const KEEPALIVE_RETRIES: u32 = 3;

/// How long [`LockSession::is_alive`] waits for the server's answer.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The session that holds an advisory lock; dropping it ends the session, which releases the lock.
struct LockSession {
    client: Client,
    /// The lock's second key ([`key`] of the job's name).
    key: i32,
}

#[async_trait::async_trait]
impl LockHolder for LockSession {
    /// Whether the session (and so the lock) is still there: one round trip.
    async fn is_held(&self) -> bool {
        if self.client.is_closed() {
            return false;
        }
        matches!(
            tokio::time::timeout(PING_TIMEOUT, self.client.simple_query("SELECT 1")).await,
            Ok(Ok(_))
        )
    }

    /// Unlocks on the session and waits for the answer: ending the session would free the lock only
    /// once the server has noticed, which a new holder can beat. Bounded; a session that does not
    /// answer is dropped anyway, and its end frees the lock.
    async fn release(&self) {
        let keys = [(&NAMESPACE as _, Type::INT4), (&self.key as _, Type::INT4)];
        let unlock = self
            .client
            .query_typed("SELECT pg_advisory_unlock($1, $2)", &keys);
        if let Ok(Err(e)) = tokio::time::timeout(PING_TIMEOUT, unlock).await {
            tracing::debug!(error = %e, "unlocking a job lock failed; ending its session instead");
        }
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

/// The second key: FNV-1a of the name, folded to 32 bits. Stable across versions and platforms, since
/// replicas of different builds must agree on it.
fn key(name: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::from_be_bytes(hash.to_be_bytes())
}

/// Tries to take the lock of job `name` on a new session, retrying connection failures with the same
/// backoff as every other operation (a session that died after the lock was granted took the lock with it,
/// so trying again is safe).
pub(super) async fn try_lock(pool: &Pool, name: &str) -> Result<Option<JobLock>> {
    let mut backoff = Backoff::new(Safety::Idempotent);
    loop {
        match attempt(pool, name).await {
            Ok(Some(session)) => return Ok(Some(JobLock::new(name, Box::new(session)))),
            Ok(None) => return Ok(None),
            Err(failure) => match backoff.next_delay(&failure) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(backoff.give_up(failure)),
            },
        }
    }
}

async fn attempt(pool: &Pool, name: &str) -> Result<Option<LockSession>, Failure> {
    let client = pool
        .connect_dedicated(|config| {
            config
                .keepalives(true)
                .keepalives_idle(KEEPALIVE_IDLE)
                .keepalives_interval(KEEPALIVE_INTERVAL)
                .keepalives_retries(KEEPALIVE_RETRIES)
                .application_name("berth job lock");
        })
        .await
        .map_err(Failure::Connect)?;
    let failed = |error| Failure::Query {
        error,
        maybe_committed: false,
    };
    // The server's side of the same keepalives (ignored on a Unix socket).
    client
        .batch_execute(&format!(
            "SET tcp_keepalives_idle = {}; SET tcp_keepalives_interval = {}; \
             SET tcp_keepalives_count = {KEEPALIVE_RETRIES}",
            KEEPALIVE_IDLE.as_secs(),
            KEEPALIVE_INTERVAL.as_secs()
        ))
        .await
        .map_err(failed)?;
    let row = client
        .query_typed_one(
            "SELECT pg_try_advisory_lock($1, $2)",
            &[(&NAMESPACE, Type::INT4), (&key(name), Type::INT4)],
        )
        .await
        .map_err(failed)?;
    let granted: bool = row.try_get(0).map_err(failed)?;
    // Not granted: the client is dropped here, which ends the session.
    Ok(granted.then_some(LockSession {
        client,
        key: key(name),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys are part of the protocol between replicas: they must not change between builds.
    #[test]
    fn keys_are_stable() {
        assert_eq!(NAMESPACE, 0x6272_7468);
        assert_eq!(key(""), i32::from_be_bytes(0x811c_9dc5_u32.to_be_bytes()));
        assert_eq!(key("a"), i32::from_be_bytes(0xe40c_292c_u32.to_be_bytes()));
        assert_ne!(key("upload-purge"), key("gc"));
    }
}
