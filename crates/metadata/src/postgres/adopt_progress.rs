//! The adoption's cursor on PostgreSQL: the same one row as on SQLite, and the repositories adopted
//! ahead of it.

use tokio_postgres::types::Type;

use super::ops::get;
use super::pool::Conn;
use super::retry::Failure;
use crate::rows::{signed, unsigned};
use crate::{AdoptCursor, AdoptedAhead};

type Result<T> = std::result::Result<T, Failure>;

pub(super) async fn load(c: &mut Conn<'_>) -> Result<Option<AdoptCursor>> {
    let Some(row) = c
        .query_opt(
            "SELECT after_repo, finished, started_at, repositories, manifests, tags, skipped
             FROM adopt_progress WHERE id = 1",
            &[],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(AdoptCursor {
        after: get(&row, 0)?,
        finished: get::<i64>(&row, 1)? != 0,
        started_at: get(&row, 2)?,
        repositories: unsigned(get(&row, 3)?, "adopt count")?,
        manifests: unsigned(get(&row, 4)?, "adopt count")?,
        tags: unsigned(get(&row, 5)?, "adopt count")?,
        skipped: unsigned(get(&row, 6)?, "adopt count")?,
    }))
}

pub(super) async fn save(c: &mut Conn<'_>, s: &AdoptCursor) -> Result<()> {
    c.execute(
        "INSERT INTO adopt_progress
           (id, after_repo, finished, started_at, repositories, manifests, tags, skipped)
         VALUES (1, $1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET after_repo = excluded.after_repo,
           finished = excluded.finished, started_at = excluded.started_at,
           repositories = excluded.repositories, manifests = excluded.manifests,
           tags = excluded.tags, skipped = excluded.skipped",
        &[
            (&s.after, Type::TEXT),
            (&i64::from(s.finished), Type::INT8),
            (&s.started_at, Type::INT8),
            (&signed(s.repositories, "adopt count")?, Type::INT8),
            (&signed(s.manifests, "adopt count")?, Type::INT8),
            (&signed(s.tags, "adopt count")?, Type::INT8),
            (&signed(s.skipped, "adopt count")?, Type::INT8),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn note_ahead(c: &mut Conn<'_>, repo: &str, n: &AdoptedAhead) -> Result<()> {
    c.execute(
        "INSERT INTO adopted_ahead (repo, manifests, tags, layer_links, skipped)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repo) DO NOTHING",
        &[
            (&repo, Type::TEXT),
            (&signed(n.manifests, "adopt count")?, Type::INT8),
            (&signed(n.tags, "adopt count")?, Type::INT8),
            (&signed(n.layer_links, "adopt count")?, Type::INT8),
            (&signed(n.skipped, "adopt count")?, Type::INT8),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn is_ahead(c: &mut Conn<'_>, repo: &str) -> Result<Option<AdoptedAhead>> {
    let Some(row) = c
        .query_opt(
            "SELECT manifests, tags, layer_links, skipped FROM adopted_ahead WHERE repo = $1",
            &[(&repo, Type::TEXT)],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(AdoptedAhead {
        manifests: unsigned(get(&row, 0)?, "adopt count")?,
        tags: unsigned(get(&row, 1)?, "adopt count")?,
        layer_links: unsigned(get(&row, 2)?, "adopt count")?,
        skipped: unsigned(get(&row, 3)?, "adopt count")?,
    }))
}
