//! Tag ages and pull times on PostgreSQL: the same queries as on SQLite.

use oci::RepoName;
use tokio_postgres::types::Type;

use super::ops::get;
use super::pool::Conn;
use super::retry::Failure;
use crate::rows::{self, TagAgeRow};
use crate::{ManifestPull, TagAge};

type Result<T> = std::result::Result<T, Failure>;

pub(super) async fn record_pulls(tx: &mut Conn<'_>, pulls: &[ManifestPull]) -> Result<()> {
    for pull in pulls {
        tx.execute(
            "UPDATE manifests SET pulled_at = $3
             WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2
               AND (pulled_at IS NULL OR pulled_at < $3)",
            &[
                (&pull.repo.as_str(), Type::TEXT),
                (&pull.digest.to_string(), Type::TEXT),
                (&pull.at, Type::INT8),
            ],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn tag_ages(c: &mut Conn<'_>, repo: &RepoName) -> Result<Vec<TagAge>> {
    let found = c
        .query(rows::TAG_AGES, &[(&repo.as_str(), Type::TEXT)])
        .await?;
    found
        .iter()
        .map(|row| {
            let columns: TagAgeRow = (get(row, 0)?, get(row, 1)?, get(row, 2)?, get(row, 3)?);
            Ok(rows::tag_age(columns)?)
        })
        .collect()
}

pub(super) async fn delete_unchanged(
    c: &mut Conn<'_>,
    repo: &RepoName,
    age: &TagAge,
) -> Result<bool> {
    let removed = c
        .execute(
            "DELETE FROM tags
             WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2
               AND manifest_digest = $3 AND updated_at = $4",
            &[
                (&repo.as_str(), Type::TEXT),
                (&age.tag.as_str(), Type::TEXT),
                (&age.digest.to_string(), Type::TEXT),
                (&age.pushed_at, Type::INT8),
            ],
        )
        .await?;
    Ok(removed > 0)
}
