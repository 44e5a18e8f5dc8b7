//! The scrub's cursor on PostgreSQL: the same one row as on SQLite.

use tokio_postgres::types::Type;

use super::ops::get;
use super::pool::Conn;
use super::retry::Failure;
use crate::ScrubCursor;
use crate::rows::{self, signed, unsigned};

type Result<T> = std::result::Result<T, Failure>;

pub(super) async fn load(c: &mut Conn<'_>) -> Result<Option<ScrubCursor>> {
    let Some(row) = c
        .query_opt(
            "SELECT after_digest, started_at, checked, bytes, corrupt, missing
             FROM scrub_progress WHERE id = 1",
            &[],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(ScrubCursor {
        after: rows::digest(&get::<String>(&row, 0)?)?,
        started_at: get(&row, 1)?,
        checked: unsigned(get(&row, 2)?, "scrub count")?,
        bytes: unsigned(get(&row, 3)?, "scrub bytes")?,
        corrupt: unsigned(get(&row, 4)?, "scrub count")?,
        missing: unsigned(get(&row, 5)?, "scrub count")?,
    }))
}

pub(super) async fn save(c: &mut Conn<'_>, cursor: Option<&ScrubCursor>) -> Result<()> {
    let Some(s) = cursor else {
        c.execute("DELETE FROM scrub_progress", &[]).await?;
        return Ok(());
    };
    c.execute(
        "INSERT INTO scrub_progress (id, after_digest, started_at, checked, bytes, corrupt, missing)
         VALUES (1, $1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET after_digest = excluded.after_digest,
           started_at = excluded.started_at, checked = excluded.checked, bytes = excluded.bytes,
           corrupt = excluded.corrupt, missing = excluded.missing",
        &[
            (&s.after.to_string(), Type::TEXT),
            (&s.started_at, Type::INT8),
            (&signed(s.checked, "scrub count")?, Type::INT8),
            (&signed(s.bytes, "scrub bytes")?, Type::INT8),
            (&signed(s.corrupt, "scrub count")?, Type::INT8),
            (&signed(s.missing, "scrub count")?, Type::INT8),
        ],
    )
    .await?;
    Ok(())
}
