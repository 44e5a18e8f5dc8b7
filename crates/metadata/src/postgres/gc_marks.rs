//! The garbage collector's marks on PostgreSQL: the same queries as on SQLite, with the row locks that
//! order a claim against a reservation, a link or a manifest put of the same digest (see
//! `crate::gc_marks` for the protocol): a claim locks the blob's row, then its links, and only then
//! checks; the others take the blob's row in share or update mode first.

use oci::{Digest, RepoName};
use tokio_postgres::types::Type;

use super::now;
use super::ops::{self, get};
use super::pool::Conn;
use super::retry::Failure;
use crate::RecordedBlob;
use crate::rows::{self, sql_limit};

type Result<T> = std::result::Result<T, Failure>;

pub(super) async fn reserve(c: &mut Conn<'_>, digest: &Digest, size: u64) -> Result<bool> {
    // The upsert waits for a claim that holds the row, then sees its mark and touches nothing.
    let touched = c
        .execute(
            "INSERT INTO blobs (digest, size, touched_at) VALUES ($1, $2, $3)
             ON CONFLICT (digest) DO UPDATE SET touched_at = excluded.touched_at
             WHERE blobs.deleting_since IS NULL",
            &[
                (&digest.to_string(), Type::TEXT),
                (&rows::signed(size, "blob size")?, Type::INT8),
                (&now(), Type::INT8),
            ],
        )
        .await?;
    Ok(touched == 1)
}

pub(super) async fn unreferenced(
    c: &mut Conn<'_>,
    touched_before: i64,
    after: Option<&Digest>,
    limit: usize,
) -> Result<Vec<(Digest, u64)>> {
    let after = after.map(Digest::to_string).unwrap_or_default();
    let found = c
        .query(
            "SELECT digest, size FROM blobs b
             WHERE digest > $2 AND touched_at < $1 AND deleting_since IS NULL
               AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.blob_digest = b.digest)
               AND NOT EXISTS (SELECT 1 FROM proxy_cache_entries pe WHERE pe.digest = b.digest)
             ORDER BY digest LIMIT $3",
            &[
                (&touched_before, Type::INT8),
                (&after, Type::TEXT),
                (&sql_limit(limit), Type::INT8),
            ],
        )
        .await?;
    found
        .iter()
        .map(|row| {
            let digest = rows::digest(&get::<String>(row, 0)?)?;
            Ok((digest, rows::unsigned(get(row, 1)?, "blob size")?))
        })
        .collect()
}

pub(super) async fn claim(tx: &mut Conn<'_>, digest: &Digest, touched_before: i64) -> Result<bool> {
    let digest = digest.to_string();
    let param = [(
        &digest as &(dyn tokio_postgres::types::ToSql + Sync),
        Type::TEXT,
    )];
    // Lock first, check after: each statement below sees what the writers that held these rows
    // committed before we got them.
    let row = tx
        .query_opt(
            "SELECT touched_at, deleting_since IS NULL FROM blobs WHERE digest = $1 FOR UPDATE",
            &param,
        )
        .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let (touched_at, free): (i64, bool) = (get(&row, 0)?, get(&row, 1)?);
    if touched_at >= touched_before || !free {
        return Ok(false);
    }
    tx.query(
        "SELECT 1 FROM repository_blobs WHERE digest = $1 FOR UPDATE",
        &param,
    )
    .await?;
    // Referenced by a manifest, or held by the pull-through cache (whose eviction decides).
    let referenced = tx
        .query_opt(
            "SELECT 1 FROM manifest_blobs WHERE blob_digest = $1
             UNION ALL SELECT 1 FROM proxy_cache_entries WHERE digest = $1 LIMIT 1",
            &param,
        )
        .await?
        .is_some();
    if referenced {
        return Ok(false);
    }
    tx.execute(
        "UPDATE blobs SET deleting_since = $2 WHERE digest = $1",
        &[(&digest, Type::TEXT), (&now(), Type::INT8)],
    )
    .await?;
    tx.execute("DELETE FROM repository_blobs WHERE digest = $1", &param)
        .await?;
    Ok(true)
}

pub(super) async fn release(c: &mut Conn<'_>, digest: &Digest) -> Result<()> {
    c.execute(
        "DELETE FROM blobs WHERE digest = $1 AND deleting_since IS NOT NULL",
        &[(&digest.to_string(), Type::TEXT)],
    )
    .await?;
    Ok(())
}

pub(super) async fn claimed(c: &mut Conn<'_>, limit: usize) -> Result<Vec<Digest>> {
    let found = c
        .query(
            "SELECT digest FROM blobs WHERE deleting_since IS NOT NULL ORDER BY digest LIMIT $1",
            &[(&sql_limit(limit), Type::INT8)],
        )
        .await?;
    found
        .iter()
        .map(|row| Ok(rows::digest(&get::<String>(row, 0)?)?))
        .collect()
}

pub(super) async fn recorded(
    c: &mut Conn<'_>,
    after: Option<&Digest>,
    limit: usize,
) -> Result<Vec<RecordedBlob>> {
    let after = after.map(Digest::to_string).unwrap_or_default();
    let found = c
        .query(
            "SELECT digest, size, touched_at, deleting_since IS NOT NULL FROM blobs
             WHERE digest > $1 ORDER BY digest LIMIT $2",
            &[(&after, Type::TEXT), (&sql_limit(limit), Type::INT8)],
        )
        .await?;
    found
        .iter()
        .map(|row| {
            Ok(RecordedBlob {
                digest: rows::digest(&get::<String>(row, 0)?)?,
                size: rows::unsigned(get(row, 1)?, "blob size")?,
                touched_at: get(row, 2)?,
                deleting: get(row, 3)?,
            })
        })
        .collect()
}

pub(super) async fn claim_unrecorded(c: &mut Conn<'_>, digest: &Digest, size: u64) -> Result<bool> {
    // A reservation inserting the same digest at once waits for this insert's commit (or this one
    // for it): then the loser's ON CONFLICT sees the winner's row.
    let now = now();
    let claimed = c
        .execute(
            "INSERT INTO blobs (digest, size, touched_at, deleting_since) VALUES ($1, $2, $3, $3)
             ON CONFLICT (digest) DO NOTHING",
            &[
                (&digest.to_string(), Type::TEXT),
                (&rows::signed(size, "blob size")?, Type::INT8),
                (&now, Type::INT8),
            ],
        )
        .await?;
    Ok(claimed == 1)
}

pub(super) async fn unreachable(
    c: &mut Conn<'_>,
    repo: &RepoName,
    created_before: i64,
) -> Result<Vec<Digest>> {
    let Some(row) = c
        .query_opt(
            "SELECT id FROM repositories WHERE name = $1",
            &[(&repo.as_str(), Type::TEXT)],
        )
        .await?
    else {
        return Ok(Vec::new());
    };
    let repo_id: i64 = get(&row, 0)?;
    let found = c
        .query(
            rows::UNREACHABLE_MANIFESTS,
            &[(&repo_id, Type::INT8), (&created_before, Type::INT8)],
        )
        .await?;
    found
        .iter()
        .map(|row| Ok(rows::digest(&get::<String>(row, 0)?)?))
        .collect()
}

pub(super) async fn delete_unreachable(
    tx: &mut Conn<'_>,
    repo: &RepoName,
    digest: &Digest,
    created_before: i64,
) -> Result<bool> {
    // The repository's row, locked as every manifest write of it locks it: a tag pushed meanwhile is
    // either committed before our check (and seen) or waits for our commit.
    let Some(repo_id) = ops::lock_existing_repo(tx, repo).await? else {
        return Ok(false);
    };
    let still: bool = get(
        &tx.query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM ({}) AS u WHERE u.digest = $3)",
                rows::UNREACHABLE_MANIFESTS
            ),
            &[
                (&repo_id, Type::INT8),
                (&created_before, Type::INT8),
                (&digest.to_string(), Type::TEXT),
            ],
        )
        .await?,
        0,
    )?;
    if !still {
        return Ok(false);
    }
    ops::delete_manifest(tx, repo, digest).await
}
