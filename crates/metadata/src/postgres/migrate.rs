//! Schema migrations on PostgreSQL, run by every replica at start and applied by exactly one.
//!
//! Replicas behind a load balancer start together. Each runs [`migrate`]: one transaction that first
//! takes a transaction-scoped advisory lock, so the others wait on it, then reads which migrations the
//! database has applied and applies the rest. When the first commits (and releases the lock), the next
//! finds everything applied and does nothing. PostgreSQL's DDL is transactional, so a migration that
//! fails (or a replica killed halfway) leaves no half-applied schema behind.
//!
//! Advisory locks are scoped to the current database, so registries sharing a server in separate
//! databases do not wait for each other.

use tokio_postgres::types::Type;

use super::pool::Conn;
use super::retry::Failure;
use super::{SchemaTooNew, now};
use crate::schema::{self, Dialect};

/// The advisory lock key: the bytes of "berthmig" as a big-endian integer, unlikely to collide with
/// another application's locks on a shared database.
pub(super) const MIGRATION_LOCK: i64 = i64::from_be_bytes(*b"berthmig");

/// Brings the schema up to date; the caller has opened a transaction on `tx`.
pub(super) async fn migrate(tx: &mut Conn<'_>) -> Result<(), Failure> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[(&MIGRATION_LOCK, Type::INT8)],
    )
    .await?;
    tx.batch(schema::MIGRATIONS_TABLE).await?;
    let migrations = schema::migrations(Dialect::Postgres);
    let known = migrations.last().map_or(0, |m| m.version);
    let row = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?;
    let found: i64 = row
        .try_get(0)
        .map_err(|e| crate::Error::Corrupt(format!("schema_migrations: {}", super::PgError(e))))?;
    if found > known {
        return Err(crate::Error::Backend(Box::new(SchemaTooNew { found, known })).into());
    }
    for m in migrations.iter().filter(|m| m.version > found) {
        tracing::info!(
            version = m.version,
            name = m.name,
            "applying metadata migration"
        );
        tx.batch(&m.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[(&m.version, Type::INT8), (&now(), Type::INT8)],
        )
        .await?;
    }
    Ok(())
}
