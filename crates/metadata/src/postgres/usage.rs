//! Usage on PostgreSQL: the same queries as on SQLite, a set of repositories passed as a text array.

use oci::{Digest, RepoName};
use tokio_postgres::types::Type;

use super::ops::get;
use super::pool::Conn;
use super::retry::Failure;
use crate::rows::{self, RepoUsageRow, StoreTotalsRow, sql_limit};
use crate::{RepoUsage, StoreTotals};

type Result<T> = std::result::Result<T, Failure>;

pub(super) async fn repo_usage(
    c: &mut Conn<'_>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<RepoUsage>> {
    let found = c
        .query(
            rows::REPO_USAGE,
            &[
                (&after.unwrap_or_default(), Type::TEXT),
                (&sql_limit(limit), Type::INT8),
            ],
        )
        .await?;
    found
        .iter()
        .map(|row| {
            let columns: RepoUsageRow = (
                get(row, 0)?,
                get(row, 1)?,
                get(row, 2)?,
                get(row, 3)?,
                get(row, 4)?,
                get(row, 5)?,
                get(row, 6)?,
                get(row, 7)?,
            );
            Ok(rows::repo_usage(columns)?)
        })
        .collect()
}

pub(super) async fn repos_with_prefix(c: &mut Conn<'_>, prefix: &str) -> Result<Vec<RepoName>> {
    let found = c
        .query(rows::REPOS_WITH_PREFIX, &[(&prefix, Type::TEXT)])
        .await?;
    found
        .iter()
        .map(|row| Ok(rows::repo_name(&get::<String>(row, 0)?)?))
        .collect()
}

fn names(repos: &[RepoName]) -> Vec<&str> {
    repos.iter().map(RepoName::as_str).collect()
}

pub(super) async fn distinct_bytes(c: &mut Conn<'_>, repos: &[RepoName]) -> Result<u64> {
    let row = c
        .query(
            "SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM blobs b
             WHERE b.digest IN (
                SELECT rb.digest FROM repository_blobs rb
                JOIN repositories r ON r.id = rb.repo_id
                WHERE r.name = ANY($1))",
            &[(&names(repos), Type::TEXT_ARRAY)],
        )
        .await?;
    let bytes: i64 = match row.first() {
        Some(row) => get(row, 0)?,
        None => 0,
    };
    Ok(rows::unsigned(bytes, "bytes")?)
}

pub(super) async fn linked_to_any(
    c: &mut Conn<'_>,
    repos: &[RepoName],
    digest: &Digest,
) -> Result<bool> {
    let row = c
        .query(
            "SELECT EXISTS (SELECT 1 FROM repository_blobs rb
                JOIN repositories r ON r.id = rb.repo_id
                WHERE rb.digest = $2 AND r.name = ANY($1))",
            &[
                (&names(repos), Type::TEXT_ARRAY),
                (&digest.to_string(), Type::TEXT),
            ],
        )
        .await?;
    match row.first() {
        Some(row) => Ok(get(row, 0)?),
        None => Ok(false),
    }
}

pub(super) async fn totals(c: &mut Conn<'_>) -> Result<StoreTotals> {
    let found = c.query(rows::STORE_TOTALS, &[]).await?;
    let mut counts: StoreTotalsRow = [0; 7];
    if let Some(row) = found.first() {
        for (i, n) in counts.iter_mut().enumerate() {
            *n = get(row, i)?;
        }
    }
    Ok(rows::store_totals(counts)?)
}
