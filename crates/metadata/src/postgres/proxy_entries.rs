//! The pull-through cache's entries on PostgreSQL: the same queries as on SQLite.

use oci::{Digest, RepoName};
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::ops::get;
use super::pool::Conn;
use super::retry::Failure;
use crate::{Error, ProxyEntry};

type Result<T> = std::result::Result<T, Failure>;

pub(super) async fn touch(tx: &mut Conn<'_>, entries: &[ProxyEntry]) -> Result<()> {
    for e in entries {
        let size = i64::try_from(e.size).map_err(|_| {
            Failure::from(Error::Backend(
                format!("cache entry size {} is out of range", e.size).into(),
            ))
        })?;
        tx.execute(
            "INSERT INTO proxy_cache_entries (repo, digest, kind, size, pulled_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (repo, digest) DO UPDATE SET
                 kind = excluded.kind,
                 size = excluded.size,
                 pulled_at = GREATEST(proxy_cache_entries.pulled_at, excluded.pulled_at)",
            &[
                (&e.repo.as_str(), Type::TEXT),
                (&e.digest.to_string(), Type::TEXT),
                (&e.kind.as_str(), Type::TEXT),
                (&size, Type::INT8),
                (&e.pulled_at, Type::INT8),
            ],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn oldest(
    c: &mut Conn<'_>,
    pulled_before: i64,
    limit: usize,
) -> Result<Vec<ProxyEntry>> {
    let limit = crate::rows::sql_limit(limit);
    let rows = c
        .query(
            "SELECT repo, digest, kind, size, pulled_at FROM proxy_cache_entries
             WHERE pulled_at < $1
             ORDER BY pulled_at, repo, digest LIMIT $2",
            &[(&pulled_before, Type::INT8), (&limit, Type::INT8)],
        )
        .await?;
    rows.iter().map(entry).collect()
}

pub(super) async fn size(c: &mut Conn<'_>) -> Result<u64> {
    let rows = c
        .query(
            "SELECT COALESCE(SUM(size), 0)::BIGINT FROM proxy_cache_entries",
            &[],
        )
        .await?;
    let total: i64 = match rows.first() {
        Some(row) => get(row, 0)?,
        None => 0,
    };
    u64::try_from(total).map_err(|_| Error::Corrupt(format!("negative cache size {total}")).into())
}

pub(super) async fn remove(c: &mut Conn<'_>, repo: &RepoName, digest: &Digest) -> Result<bool> {
    let removed = c
        .execute(
            "DELETE FROM proxy_cache_entries WHERE repo = $1 AND digest = $2",
            &[
                (&repo.as_str(), Type::TEXT),
                (&digest.to_string(), Type::TEXT),
            ],
        )
        .await?;
    Ok(removed > 0)
}

fn entry(row: &Row) -> Result<ProxyEntry> {
    let row = (
        get(row, 0)?,
        get(row, 1)?,
        get(row, 2)?,
        get(row, 3)?,
        get(row, 4)?,
    );
    Ok(crate::rows::proxy_entry(row)?)
}
