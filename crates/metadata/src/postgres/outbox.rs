//! The events outbox on PostgreSQL: the same rows as on SQLite, and [`insert`], which the catalog's
//! writes call inside their transaction with the events the registry noted.
//!
//! Order: ids come from a sequence when a row is inserted, not when its transaction commits, so two
//! writers may commit their ids out of order. Delivery removes rows by id (never "everything up to"),
//! so a row that commits late is still delivered; and [`insert`] first takes a transaction-scoped
//! advisory lock on the repository, held to the commit, so within one repository ids are in commit
//! order and the worker can never see a later event of a repository before an earlier one.

use tokio_postgres::types::Type;

use super::ops::get;
use super::pool::Conn;
use super::retry::Failure;
use crate::outbox::{NewEvent, QueuedEvent};
use crate::rows::{sql_limit, unsigned};

type Result<T> = std::result::Result<T, Failure>;

/// The first key of the two-key advisory locks on repositories' events ("bE" "vt" as an `i32`), so
/// they share no key with berth's other advisory locks (which use the one-key form).
const EVENT_LOCKS: i32 = i32::from_be_bytes(*b"bEvt");

/// Queues `events` inside the caller's transaction.
pub(super) async fn insert(tx: &mut Conn<'_>, events: &[NewEvent]) -> Result<()> {
    let mut locked: Vec<&str> = Vec::new();
    for e in events {
        if !locked.contains(&e.repo.as_str()) {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[(&EVENT_LOCKS, Type::INT4), (&e.repo, Type::TEXT)],
            )
            .await?;
            locked.push(&e.repo);
        }
        tx.execute(
            "INSERT INTO outbox (endpoint, repo, payload, created_at) VALUES ($1, $2, $3, $4)",
            &[
                (&e.endpoint, Type::TEXT),
                (&e.repo, Type::TEXT),
                (&e.payload, Type::TEXT),
                (&super::now(), Type::INT8),
            ],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn pending(
    c: &mut Conn<'_>,
    endpoint: &str,
    limit: usize,
) -> Result<Vec<QueuedEvent>> {
    let rows = c
        .query(
            "SELECT id, repo, payload FROM outbox WHERE endpoint = $1 ORDER BY id LIMIT $2",
            &[(&endpoint, Type::TEXT), (&sql_limit(limit), Type::INT8)],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(QueuedEvent {
                id: get(row, 0)?,
                repo: get(row, 1)?,
                payload: get(row, 2)?,
            })
        })
        .collect()
}

pub(super) async fn remove(c: &mut Conn<'_>, endpoint: &str, ids: &[i64]) -> Result<u64> {
    c.execute(
        "DELETE FROM outbox WHERE endpoint = $1 AND id = ANY($2)",
        &[(&endpoint, Type::TEXT), (&ids, Type::INT8_ARRAY)],
    )
    .await
}

pub(super) async fn queued(c: &mut Conn<'_>) -> Result<Vec<(String, u64)>> {
    let rows = c
        .query(
            "SELECT endpoint, COUNT(*) FROM outbox GROUP BY endpoint ORDER BY endpoint",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((get(row, 0)?, unsigned(get(row, 1)?, "outbox count")?)))
        .collect()
}

pub(super) async fn drop_others(c: &mut Conn<'_>, keep: &[String]) -> Result<u64> {
    c.execute(
        "DELETE FROM outbox WHERE NOT (endpoint = ANY($1))",
        &[(&keep, Type::TEXT_ARRAY)],
    )
    .await
}
