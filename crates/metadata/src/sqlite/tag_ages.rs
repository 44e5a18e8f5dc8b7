//! Tag ages and pull times on SQLite: one query function per `TagAges` method.

use oci::RepoName;
use rusqlite::Connection;

use crate::rows;
use crate::{ManifestPull, Result, TagAge};

pub(super) fn record_pulls(tx: &Connection, pulls: &[ManifestPull]) -> Result<()> {
    let mut update = tx.prepare_cached(
        "UPDATE manifests SET pulled_at = ?3
         WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2
           AND (pulled_at IS NULL OR pulled_at < ?3)",
    )?;
    for pull in pulls {
        update.execute((pull.repo.as_str(), pull.digest.to_string(), pull.at))?;
    }
    Ok(())
}

pub(super) fn tag_ages(conn: &Connection, repo: &RepoName) -> Result<Vec<TagAge>> {
    let found: Vec<rows::TagAgeRow> = conn
        .prepare_cached(&rows::TAG_AGES.replace('$', "?"))?
        .query_map([repo.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    found.into_iter().map(rows::tag_age).collect()
}

pub(super) fn delete_unchanged(conn: &Connection, repo: &RepoName, age: &TagAge) -> Result<bool> {
    let removed = conn
        .prepare_cached(
            "DELETE FROM tags
             WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND name = ?2
               AND manifest_digest = ?3 AND updated_at = ?4",
        )?
        .execute((
            repo.as_str(),
            age.tag.as_str(),
            age.digest.to_string(),
            age.pushed_at,
        ))?;
    Ok(removed > 0)
}
