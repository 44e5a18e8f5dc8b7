//! What a failed attempt at an operation means, and whether to try again.
//!
//! PostgreSQL is a server on the network: connections are refused while it restarts, die when an
//! administrator (or a failover) terminates them, and transactions can lose a deadlock. Each of those is
//! worth a second attempt a moment later, but only when the second attempt cannot do the work twice. An
//! operation is therefore run with a [`Safety`], and each failure is classified by where it happened:
//!
//! | failure | nothing was committed | retried for |
//! | --- | --- | --- |
//! | no connection could be made (refused, reset, server starting or full) | certain | every operation |
//! | the server rolled the transaction back (serialization failure, deadlock) | certain | every operation |
//! | the connection died inside an open transaction, before COMMIT was sent | certain | every operation |
//! | the connection died on an autocommit statement or on COMMIT | unknown | idempotent operations only |
//! | anything else (a constraint, a bug, bad credentials) | - | nothing |
//!
//! When the retries are spent, the first four rows' failures (except an unknown outcome of a
//! non-idempotent operation) are reported as [`Error::Unavailable`]: the server is down or unreachable,
//! nothing needs repair, and the client should come back later (503). The rest are [`Error::Backend`].
//!
//! An operation that is not idempotent (a compare-and-swap, a delete that reports whether it deleted) and
//! whose outcome is unknown is reported as [`Error::Backend`]: answering "lost the race" for a write that
//! in fact happened would be worse than an error the client retries.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_postgres::error::{DbError, SqlState};

use crate::Error;

/// Whether doing an operation twice is the same as doing it once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Safety {
    /// Reads, and writes whose repetition changes nothing (links, manifest puts with their tag).
    Idempotent,
    /// Writes whose answer depends on the state they found: retried only when nothing was committed.
    AtMostOnce,
}

/// Why an attempt failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The operation's own answer (`MissingBlob`, `Corrupt`, ...), or a failure already final: never retried.
    Final(Error),
    /// No connection could be had, so nothing was sent.
    Connect(tokio_postgres::Error),
    /// A statement failed. `maybe_committed` is false when the failure came inside a transaction before
    /// its COMMIT (the server rolls such a transaction back), true for an autocommit statement or COMMIT.
    Query {
        error: tokio_postgres::Error,
        maybe_committed: bool,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Final(e) => write!(f, "{e}"),
            Failure::Connect(e) => write!(f, "connecting: {}", PgError::ref_display(e)),
            Failure::Query { error, .. } => write!(f, "{}", PgError::ref_display(error)),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Final(e)
    }
}

impl Failure {
    /// The error the caller of an operation with `safety` sees once no attempt is left: [`Error::Unavailable`]
    /// when the server could not be reached or the connection was lost and doing the operation again
    /// is safe (nothing was committed, or it is idempotent), so the client may simply retry later;
    /// [`Error::Backend`] for anything else, including a lost connection whose write may have landed.
    pub(super) fn into_error(self, safety: Safety) -> Error {
        let unavailable = match &self {
            Failure::Final(_) => false,
            Failure::Connect(error) => connection_lost(error) || server_unavailable(error),
            Failure::Query {
                error,
                maybe_committed,
            } => connection_lost(error) && (!maybe_committed || safety == Safety::Idempotent),
        };
        match self {
            Failure::Final(e) => e,
            Failure::Connect(error) | Failure::Query { error, .. } if unavailable => {
                Error::Unavailable(Box::new(PgError(error)))
            }
            Failure::Connect(error) | Failure::Query { error, .. } => {
                Error::Backend(Box::new(PgError(error)))
            }
        }
    }

    /// Whether another attempt of an operation with `safety` is safe and may succeed.
    pub(super) fn is_retryable(&self, safety: Safety) -> bool {
        match self {
            Failure::Final(_) => false,
            Failure::Connect(error) => connection_lost(error) || server_unavailable(error),
            Failure::Query {
                error,
                maybe_committed,
            } => {
                rolled_back(error)
                    || (connection_lost(error)
                        && (!maybe_committed || safety == Safety::Idempotent))
            }
        }
    }
}

/// A tokio-postgres error whose message includes its cause: tokio-postgres's own `Display` says only
/// "db error" and keeps the server's message in the source, which many log lines never print.
#[derive(Debug)]
pub struct PgError(pub tokio_postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", PgError::ref_display(&self.0))
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl PgError {
    /// `error` with its cause, for a message.
    fn ref_display(error: &tokio_postgres::Error) -> String {
        match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        }
    }

    /// The server's SQLSTATE, if the server answered with an error.
    pub fn code(&self) -> Option<&SqlState> {
        self.0.code()
    }
}

fn db_code(error: &tokio_postgres::Error) -> Option<&str> {
    error.as_db_error().map(|db: &DbError| db.code().code())
}

/// The server aborted the transaction and asks for it to be run again (SQLSTATE class 40: serialization
/// failure, deadlock). Nothing of it was committed.
fn rolled_back(error: &tokio_postgres::Error) -> bool {
    db_code(error).is_some_and(|code| code.starts_with("40"))
}

/// The connection broke: closed, an IO error or a timeout on the socket, or the server terminating the
/// session (administrator command, shutdown, crash: SQLSTATE 57P01/57P02, class 08).
fn connection_lost(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match db_code(error) {
        Some(code) => code == "57P01" || code == "57P02" || code.starts_with("08"),
        // No server error: the socket failed (reset, refused, timed out) if an IO error is under it;
        // otherwise a client-side problem, such as a value that does not encode.
        None => has_io_source(error),
    }
}

/// At connect time: the server is starting or shutting down (57P03), or out of connection slots
/// (53300), conditions that pass.
fn server_unavailable(error: &tokio_postgres::Error) -> bool {
    db_code(error).is_some_and(|code| code == "57P03" || code == "53300")
}

fn has_io_source(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if e.is::<std::io::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Delays before the second, third, ... attempt. Short: a request is waiting. Together with
/// [`RETRY_BUDGET`] they bound how long an operation keeps trying (a restarting server is usually back
/// within a second or two; longer than that the caller gets an error and its client retries).
const DELAYS: [Duration; 5] = [
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
];

/// No new attempt starts after this much time since the first.
const RETRY_BUDGET: Duration = Duration::from_secs(3);

/// The retry state of one operation.
pub(super) struct Backoff {
    safety: Safety,
    attempt: usize,
    started: Instant,
}

impl Backoff {
    pub(super) fn new(safety: Safety) -> Backoff {
        Backoff {
            safety,
            attempt: 0,
            started: Instant::now(),
        }
    }

    /// The error the caller sees after `failure`, the last attempt (see [`Failure::into_error`]).
    pub(super) fn give_up(&self, failure: Failure) -> Error {
        failure.into_error(self.safety)
    }

    /// The delay before the next attempt after `failure`, or `None` if the failure is final.
    pub(super) fn next_delay(&mut self, failure: &Failure) -> Option<Duration> {
        if !failure.is_retryable(self.safety) || self.started.elapsed() >= RETRY_BUDGET {
            return None;
        }
        let base = *DELAYS.get(self.attempt)?;
        self.attempt += 1;
        Some(base + jitter(base / 2))
    }
}

/// Up to `max` of spread, so replicas that failed together do not retry in lockstep. The clock's
/// nanoseconds are random enough for that and need no RNG.
fn jitter(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let max_nanos = u32::try_from(max.as_nanos()).unwrap_or(u32::MAX);
    Duration::from_nanos(u64::from(nanos % max_nanos.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_failures_are_never_retried() {
        let f = Failure::Final(Error::Corrupt("x".into()));
        assert!(!f.is_retryable(Safety::Idempotent));
        assert!(Backoff::new(Safety::Idempotent).next_delay(&f).is_none());
    }

    /// Every delay, at its largest jitter, fits in the budget: the last attempt is not cut short.
    #[test]
    fn delays_grow_and_fit_in_the_budget() {
        let mut previous = Duration::ZERO;
        for d in DELAYS {
            assert!(d > previous);
            previous = d;
        }
        let total: Duration = DELAYS.iter().map(|d| *d + *d / 2).sum();
        assert!(total < RETRY_BUDGET, "{total:?}");
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        for max in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(10),
        ] {
            let j = jitter(max);
            assert!(j <= max, "{j:?} > {max:?}");
        }
    }
}
