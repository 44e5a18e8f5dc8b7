//! Usage on SQLite: one query function per `Usage` method. A set of repositories is passed as one JSON
//! array read with `json_each`, so its size is not bound by SQLite's limit on parameters; repository
//! names never need escaping in JSON (`oci::RepoName` allows only `[a-z0-9._/-]`).

use oci::{Digest, RepoName};
use rusqlite::Connection;

use crate::rows::{self, RepoUsageRow, StoreTotalsRow, sql_limit};
use crate::{RepoUsage, Result, StoreTotals};

pub(super) fn repo_usage(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<RepoUsage>> {
    let found: Vec<RepoUsageRow> = conn
        .prepare_cached(&rows::REPO_USAGE.replace('$', "?"))?
        .query_map((after.unwrap_or_default(), sql_limit(limit)), |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    found.into_iter().map(rows::repo_usage).collect()
}

pub(super) fn repos_with_prefix(conn: &Connection, prefix: &str) -> Result<Vec<RepoName>> {
    let found: Vec<String> = conn
        .prepare_cached(&rows::REPOS_WITH_PREFIX.replace('$', "?"))?
        .query_map([prefix], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    found.iter().map(|n| rows::repo_name(n)).collect()
}

/// `repos` as a JSON array of strings.
fn json_names(repos: &[RepoName]) -> String {
    let names: Vec<String> = repos.iter().map(|r| format!("\"{r}\"")).collect();
    format!("[{}]", names.join(","))
}

pub(super) fn distinct_bytes(conn: &Connection, repos: &[RepoName]) -> Result<u64> {
    let bytes: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(b.size), 0) FROM blobs b
             WHERE b.digest IN (
                SELECT rb.digest FROM repository_blobs rb
                JOIN repositories r ON r.id = rb.repo_id
                WHERE r.name IN (SELECT value FROM json_each(?1)))",
        )?
        .query_row([json_names(repos)], |row| row.get(0))?;
    rows::unsigned(bytes, "bytes")
}

pub(super) fn linked_to_any(
    conn: &Connection,
    repos: &[RepoName],
    digest: &Digest,
) -> Result<bool> {
    let linked = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM repository_blobs rb
                JOIN repositories r ON r.id = rb.repo_id
                WHERE rb.digest = ?2 AND r.name IN (SELECT value FROM json_each(?1)))",
        )?
        .query_row((json_names(repos), digest.to_string()), |row| row.get(0))?;
    Ok(linked)
}

pub(super) fn totals(conn: &Connection) -> Result<StoreTotals> {
    let row: StoreTotalsRow = conn
        .prepare_cached(rows::STORE_TOTALS)?
        .query_row([], |row| {
            let mut counts = [0i64; 7];
            for (i, n) in counts.iter_mut().enumerate() {
                *n = row.get(i)?;
            }
            Ok(counts)
        })?;
    rows::store_totals(row)
}
