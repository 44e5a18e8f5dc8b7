//! The scrub's cursor on SQLite: one row, replaced at each save.

use rusqlite::{Connection, OptionalExtension};

use super::SqliteStore;
use crate::rows::{self, signed, unsigned};
use crate::{Result, ScrubCursor, ScrubProgress};

fn load(conn: &Connection) -> Result<Option<ScrubCursor>> {
    let row = conn
        .prepare_cached(
            "SELECT after_digest, started_at, checked, bytes, corrupt, missing
             FROM scrub_progress WHERE id = 1",
        )?
        .query_row([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                [
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, i64>(5)?,
                ],
            ))
        })
        .optional()?;
    let Some((after, started_at, [checked, bytes, corrupt, missing])) = row else {
        return Ok(None);
    };
    Ok(Some(ScrubCursor {
        after: rows::digest(&after)?,
        started_at,
        checked: unsigned(checked, "scrub count")?,
        bytes: unsigned(bytes, "scrub bytes")?,
        corrupt: unsigned(corrupt, "scrub count")?,
        missing: unsigned(missing, "scrub count")?,
    }))
}

fn save(conn: &Connection, cursor: Option<&ScrubCursor>) -> Result<()> {
    let Some(c) = cursor else {
        conn.prepare_cached("DELETE FROM scrub_progress")?
            .execute([])?;
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT INTO scrub_progress (id, after_digest, started_at, checked, bytes, corrupt, missing)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET after_digest = excluded.after_digest,
           started_at = excluded.started_at, checked = excluded.checked, bytes = excluded.bytes,
           corrupt = excluded.corrupt, missing = excluded.missing",
    )?
    .execute((
        c.after.to_string(),
        c.started_at,
        signed(c.checked, "scrub count")?,
        signed(c.bytes, "scrub bytes")?,
        signed(c.corrupt, "scrub count")?,
        signed(c.missing, "scrub count")?,
    ))?;
    Ok(())
}

#[async_trait::async_trait]
impl ScrubProgress for SqliteStore {
    async fn scrub_cursor(&self) -> Result<Option<ScrubCursor>> {
        self.read(load).await
    }

    async fn save_scrub_cursor(&self, cursor: Option<&ScrubCursor>) -> Result<()> {
        let cursor = cursor.cloned();
        self.write(move |conn| save(conn, cursor.as_ref())).await
    }
}
