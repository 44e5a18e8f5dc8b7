//! The pull-through cache's entries on SQLite: one query function per `ProxyEntries` method.

use oci::{Digest, RepoName};
use rusqlite::{Connection, Row};

use crate::rows::ProxyEntryRow;
use crate::{Error, ProxyEntry, Result};

pub(super) fn touch(tx: &Connection, entries: &[ProxyEntry]) -> Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO proxy_cache_entries (repo, digest, kind, size, pulled_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (repo, digest) DO UPDATE SET
             kind = excluded.kind,
             size = excluded.size,
             pulled_at = MAX(pulled_at, excluded.pulled_at)",
    )?;
    for e in entries {
        let size = i64::try_from(e.size).map_err(|_| {
            Error::Backend(format!("cache entry size {} is out of range", e.size).into())
        })?;
        upsert.execute((
            e.repo.as_str(),
            e.digest.to_string(),
            e.kind.as_str(),
            size,
            e.pulled_at,
        ))?;
    }
    Ok(())
}

pub(super) fn oldest(
    conn: &Connection,
    pulled_before: i64,
    limit: usize,
) -> Result<Vec<ProxyEntry>> {
    let rows = conn
        .prepare_cached(
            "SELECT repo, digest, kind, size, pulled_at FROM proxy_cache_entries
             WHERE pulled_at < ?1
             ORDER BY pulled_at, repo, digest LIMIT ?2",
        )?
        .query_map((pulled_before, crate::rows::sql_limit(limit)), raw)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(crate::rows::proxy_entry).collect()
}

pub(super) fn size(conn: &Connection) -> Result<u64> {
    let total: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(size), 0) FROM proxy_cache_entries")?
        .query_row([], |row| row.get(0))?;
    u64::try_from(total).map_err(|_| Error::Corrupt(format!("negative cache size {total}")))
}

pub(super) fn remove(conn: &Connection, repo: &RepoName, digest: &Digest) -> Result<bool> {
    let removed = conn
        .prepare_cached("DELETE FROM proxy_cache_entries WHERE repo = ?1 AND digest = ?2")?
        .execute((repo.as_str(), digest.to_string()))?;
    Ok(removed > 0)
}

fn raw(row: &Row<'_>) -> rusqlite::Result<ProxyEntryRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}
