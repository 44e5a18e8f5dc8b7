//! The events outbox on SQLite: one query function per method, and [`insert`], which the catalog's
//! writes call inside their transaction with the events the registry noted.

use rusqlite::Connection;

use super::SqliteStore;
use super::ops::now;
use crate::Result;
use crate::outbox::{NewEvent, Outbox, QueuedEvent};
use crate::rows::{sql_limit, unsigned};

/// Queues `events` on `conn` (inside the caller's transaction, if any).
pub(super) fn insert(conn: &Connection, events: &[NewEvent]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO outbox (endpoint, repo, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let at = now();
    for e in events {
        stmt.execute((&e.endpoint, &e.repo, &e.payload, at))?;
    }
    Ok(())
}

fn pending(conn: &Connection, endpoint: &str, limit: usize) -> Result<Vec<QueuedEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, repo, payload FROM outbox WHERE endpoint = ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map((endpoint, sql_limit(limit)), |row| {
        Ok(QueuedEvent {
            id: row.get(0)?,
            repo: row.get(1)?,
            payload: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn remove(conn: &Connection, endpoint: &str, ids: &[i64]) -> Result<u64> {
    let tx = conn.unchecked_transaction()?;
    let mut removed = 0;
    {
        let mut stmt = tx.prepare_cached("DELETE FROM outbox WHERE endpoint = ?1 AND id = ?2")?;
        for id in ids {
            removed += stmt.execute((endpoint, id))? as u64;
        }
    }
    tx.commit()?;
    Ok(removed)
}

fn queued(conn: &Connection) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT endpoint, COUNT(*) FROM outbox GROUP BY endpoint ORDER BY endpoint",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
    })?;
    rows.map(|r| {
        let (endpoint, n) = r?;
        Ok((endpoint, unsigned(n, "outbox count")?))
    })
    .collect()
}

fn drop_others(conn: &Connection, keep: &[String]) -> Result<u64> {
    let endpoints: Vec<String> = conn
        .prepare_cached("SELECT DISTINCT endpoint FROM outbox")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut removed = 0;
    for gone in endpoints.iter().filter(|e| !keep.contains(e)) {
        removed += conn
            .prepare_cached("DELETE FROM outbox WHERE endpoint = ?1")?
            .execute([gone])? as u64;
    }
    Ok(removed)
}

#[async_trait::async_trait]
impl Outbox for SqliteStore {
    async fn append_events(&self, events: &[NewEvent]) -> Result<()> {
        let events = events.to_vec();
        self.write_tx(move |tx| insert(tx, &events)).await
    }

    async fn pending_events(&self, endpoint: &str, limit: usize) -> Result<Vec<QueuedEvent>> {
        let endpoint = endpoint.to_string();
        self.read(move |conn| pending(conn, &endpoint, limit)).await
    }

    async fn remove_events(&self, endpoint: &str, ids: &[i64]) -> Result<u64> {
        let (endpoint, ids) = (endpoint.to_string(), ids.to_vec());
        self.write(move |conn| remove(conn, &endpoint, &ids)).await
    }

    async fn queued_events(&self) -> Result<Vec<(String, u64)>> {
        self.read(queued).await
    }

    async fn drop_other_endpoints(&self, keep: &[String]) -> Result<u64> {
        let keep = keep.to_vec();
        self.write(move |conn| drop_others(conn, &keep)).await
    }
}
