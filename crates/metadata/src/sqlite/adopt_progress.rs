//! The adoption's cursor on SQLite: one row, replaced at each save; and the repositories adopted ahead
//! of it.

use rusqlite::{Connection, OptionalExtension};

use super::SqliteStore;
use crate::rows::{signed, unsigned};
use crate::{AdoptCursor, AdoptProgress, AdoptedAhead, Result};

fn load(conn: &Connection) -> Result<Option<AdoptCursor>> {
    let row = conn
        .prepare_cached(
            "SELECT after_repo, finished, started_at, repositories, manifests, tags, skipped
             FROM adopt_progress WHERE id = 1",
        )?
        .query_row([], |row| {
            Ok((
                row.get::<_, Option<String>>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                [
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, i64>(5)?,
                    row.get::<_, i64>(6)?,
                ],
            ))
        })
        .optional()?;
    let Some((after, finished, started_at, [repositories, manifests, tags, skipped])) = row else {
        return Ok(None);
    };
    Ok(Some(AdoptCursor {
        after,
        finished: finished != 0,
        started_at,
        repositories: unsigned(repositories, "adopt count")?,
        manifests: unsigned(manifests, "adopt count")?,
        tags: unsigned(tags, "adopt count")?,
        skipped: unsigned(skipped, "adopt count")?,
    }))
}

fn save(conn: &Connection, c: &AdoptCursor) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO adopt_progress
           (id, after_repo, finished, started_at, repositories, manifests, tags, skipped)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET after_repo = excluded.after_repo,
           finished = excluded.finished, started_at = excluded.started_at,
           repositories = excluded.repositories, manifests = excluded.manifests,
           tags = excluded.tags, skipped = excluded.skipped",
    )?
    .execute((
        c.after.as_deref(),
        i64::from(c.finished),
        c.started_at,
        signed(c.repositories, "adopt count")?,
        signed(c.manifests, "adopt count")?,
        signed(c.tags, "adopt count")?,
        signed(c.skipped, "adopt count")?,
    ))?;
    Ok(())
}

#[async_trait::async_trait]
impl AdoptProgress for SqliteStore {
    async fn adopt_cursor(&self) -> Result<Option<AdoptCursor>> {
        self.read(load).await
    }

    async fn save_adopt_cursor(&self, cursor: &AdoptCursor) -> Result<()> {
        let cursor = cursor.clone();
        self.write(move |conn| save(conn, &cursor)).await
    }

    async fn note_adopted_ahead(&self, repo: &str, counts: &AdoptedAhead) -> Result<()> {
        let (repo, n) = (repo.to_string(), *counts);
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO adopted_ahead (repo, manifests, tags, layer_links, skipped)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (repo) DO NOTHING",
            )?
            .execute((
                &repo,
                signed(n.manifests, "adopt count")?,
                signed(n.tags, "adopt count")?,
                signed(n.layer_links, "adopt count")?,
                signed(n.skipped, "adopt count")?,
            ))?;
            Ok(())
        })
        .await
    }

    async fn adopted_ahead(&self, repo: &str) -> Result<Option<AdoptedAhead>> {
        let repo = repo.to_string();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT manifests, tags, layer_links, skipped FROM adopted_ahead WHERE repo = ?1",
                )?
                .query_row([&repo], |row| {
                    Ok([row.get::<_, i64>(0)?, row.get(1)?, row.get(2)?, row.get(3)?])
                })
                .optional()?;
            let Some([manifests, tags, layer_links, skipped]) = row else {
                return Ok(None);
            };
            Ok(Some(AdoptedAhead {
                manifests: unsigned(manifests, "adopt count")?,
                tags: unsigned(tags, "adopt count")?,
                layer_links: unsigned(layer_links, "adopt count")?,
                skipped: unsigned(skipped, "adopt count")?,
            }))
        })
        .await
    }
}
