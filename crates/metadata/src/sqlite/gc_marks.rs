//! The garbage collector's marks on SQLite: one query function per `GcMarks` method. SQLite has one
//! writer at a time, so a claim and a reservation of one digest are simply ordered.

use oci::{Digest, RepoName};
use rusqlite::Connection;

use super::ops::{self, now};
use crate::rows::{self, sql_limit};
use crate::{RecordedBlob, Result};

pub(super) fn reserve(tx: &Connection, digest: &Digest, size: u64) -> Result<bool> {
    let touched = tx
        .prepare_cached(
            "INSERT INTO blobs (digest, size, touched_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (digest) DO UPDATE SET touched_at = excluded.touched_at
             WHERE blobs.deleting_since IS NULL",
        )?
        .execute((digest.to_string(), rows::signed(size, "blob size")?, now()))?;
    Ok(touched == 1)
}

pub(super) fn unreferenced(
    conn: &Connection,
    touched_before: i64,
    after: Option<&Digest>,
    limit: usize,
) -> Result<Vec<(Digest, u64)>> {
    let found = conn
        .prepare_cached(
            "SELECT digest, size FROM blobs b
             WHERE digest > ?2 AND touched_at < ?1 AND deleting_since IS NULL
               AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.blob_digest = b.digest)
               AND NOT EXISTS (SELECT 1 FROM proxy_cache_entries pe WHERE pe.digest = b.digest)
             ORDER BY digest LIMIT ?3",
        )?
        .query_map(
            (
                touched_before,
                after.map(Digest::to_string).unwrap_or_default(),
                sql_limit(limit),
            ),
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    found
        .into_iter()
        .map(|(digest, size)| Ok((rows::digest(&digest)?, rows::unsigned(size, "blob size")?)))
        .collect()
}

pub(super) fn claim(tx: &Connection, digest: &Digest, touched_before: i64) -> Result<bool> {
    let digest = digest.to_string();
    let claimed = tx
        .prepare_cached(
            "UPDATE blobs SET deleting_since = ?3
             WHERE digest = ?1 AND touched_at < ?2 AND deleting_since IS NULL
               AND NOT EXISTS (SELECT 1 FROM manifest_blobs WHERE blob_digest = ?1)
               AND NOT EXISTS (SELECT 1 FROM proxy_cache_entries WHERE digest = ?1)",
        )?
        .execute((&digest, touched_before, now()))?;
    if claimed == 0 {
        return Ok(false);
    }
    tx.prepare_cached("DELETE FROM repository_blobs WHERE digest = ?1")?
        .execute([&digest])?;
    Ok(true)
}

pub(super) fn release(conn: &Connection, digest: &Digest) -> Result<()> {
    conn.prepare_cached("DELETE FROM blobs WHERE digest = ?1 AND deleting_since IS NOT NULL")?
        .execute([digest.to_string()])?;
    Ok(())
}

pub(super) fn claimed(conn: &Connection, limit: usize) -> Result<Vec<Digest>> {
    let found = conn
        .prepare_cached(
            "SELECT digest FROM blobs WHERE deleting_since IS NOT NULL ORDER BY digest LIMIT ?1",
        )?
        .query_map([sql_limit(limit)], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    found.iter().map(|d| rows::digest(d)).collect()
}

pub(super) fn recorded(
    conn: &Connection,
    after: Option<&Digest>,
    limit: usize,
) -> Result<Vec<RecordedBlob>> {
    let found = conn
        .prepare_cached(
            "SELECT digest, size, touched_at, deleting_since IS NOT NULL FROM blobs
             WHERE digest > ?1 ORDER BY digest LIMIT ?2",
        )?
        .query_map(
            (
                after.map(Digest::to_string).unwrap_or_default(),
                sql_limit(limit),
            ),
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, bool>(3)?,
                ))
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    found
        .into_iter()
        .map(|(digest, size, touched_at, deleting)| {
            Ok(RecordedBlob {
                digest: rows::digest(&digest)?,
                size: rows::unsigned(size, "blob size")?,
                touched_at,
                deleting,
            })
        })
        .collect()
}

pub(super) fn claim_unrecorded(tx: &Connection, digest: &Digest, size: u64) -> Result<bool> {
    let now = now();
    let claimed = tx
        .prepare_cached(
            "INSERT INTO blobs (digest, size, touched_at, deleting_since) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (digest) DO NOTHING",
        )?
        .execute((digest.to_string(), rows::signed(size, "blob size")?, now))?;
    Ok(claimed == 1)
}

/// `rows::UNREACHABLE_MANIFESTS` with SQLite's numbered placeholders (`?N` for `$N`).
fn unreachable_sql() -> String {
    rows::UNREACHABLE_MANIFESTS.replace('$', "?")
}

pub(super) fn unreachable(
    conn: &Connection,
    repo: &RepoName,
    created_before: i64,
) -> Result<Vec<Digest>> {
    let Some(repo_id) = ops::repo_id(conn, repo)? else {
        return Ok(Vec::new());
    };
    let found = conn
        .prepare_cached(&unreachable_sql())?
        .query_map((repo_id, created_before), |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    found.iter().map(|d| rows::digest(d)).collect()
}

pub(super) fn delete_unreachable(
    tx: &Connection,
    repo: &RepoName,
    digest: &Digest,
    created_before: i64,
) -> Result<bool> {
    let Some(repo_id) = ops::repo_id(tx, repo)? else {
        return Ok(false);
    };
    let still: bool = tx
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM ({}) AS u WHERE u.digest = ?3)",
            unreachable_sql()
        ))?
        .query_row((repo_id, created_before, digest.to_string()), |row| {
            row.get(0)
        })?;
    if !still {
        return Ok(false);
    }
    ops::delete_manifest(tx, repo, digest)
}
