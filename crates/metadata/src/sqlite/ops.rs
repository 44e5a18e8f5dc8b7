//! The queries behind each method of the catalog and the upload sessions, as plain synchronous functions
//! over one connection or transaction.
//!
//! Kept apart from the connection handling so that each operation reads as the SQL it runs. The caller
//! decides the transaction: functions taking `tx` must run inside `BEGIN IMMEDIATE` (they read before
//! they write, or write several rows that must appear together); the others are a single statement.
//!
//! The SQL is the portable subset the schema module describes (`ON CONFLICT`, no `INSERT OR ...`), with
//! SQLite's `?N` placeholders; a PostgreSQL backend uses the same statements with `$N`. Digests are
//! stored as their canonical text and parsed back on the way out; a value that does not parse is
//! reported as [`Error::Corrupt`].

use std::time::{SystemTime, UNIX_EPOCH};

use oci::{Digest, RepoName, Tag};
use rusqlite::{Connection, OptionalExtension, Row};

use crate::rows::{self, ManifestRow, UPLOAD_COLUMNS, UploadRow, sql_limit};
use crate::{Error, NewManifest, Referrer, Result, StoredManifest, UploadSession};

/// Unix seconds now. A clock before 1970 reads as 0 rather than failing a write.
pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The id of repository `repo`, creating its row if needed.
fn ensure_repo(tx: &Connection, repo: &RepoName) -> Result<i64> {
    tx.prepare_cached("INSERT INTO repositories (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")?
        .execute([repo.as_str()])?;
    let id = tx
        .prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([repo.as_str()], |row| row.get(0))?;
    Ok(id)
}

pub(super) fn repo_id(conn: &Connection, repo: &RepoName) -> Result<Option<i64>> {
    let id = conn
        .prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([repo.as_str()], |row| row.get(0))
        .optional()?;
    Ok(id)
}

/// Links every `(digest, size)` of `blobs` to `repo` (the caller's transaction makes it all or none).
pub(super) fn link_blobs(tx: &Connection, repo: &RepoName, blobs: &[(Digest, u64)]) -> Result<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let repo_id = ensure_repo(tx, repo)?;
    // A digest names its content, so a second link with another size is a caller bug; the first size
    // recorded (the one verified when the bytes were stored) stands. The link touches the blob for the
    // garbage collector, unless a sweep claimed it: its bytes are going, so it may not be linked.
    let mut touch = tx.prepare_cached(
        "INSERT INTO blobs (digest, size, touched_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (digest) DO UPDATE SET touched_at = excluded.touched_at
         WHERE blobs.deleting_since IS NULL",
    )?;
    let mut link = tx.prepare_cached(
        "INSERT INTO repository_blobs (repo_id, digest, linked_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (repo_id, digest) DO NOTHING",
    )?;
    let now = now();
    for (wanted, size) in blobs {
        let digest = wanted.to_string();
        if touch.execute((&digest, size, now))? == 0 {
            return Err(Error::BlobDeleting(wanted.clone()));
        }
        link.execute((repo_id, &digest, now))?;
    }
    Ok(())
}

pub(super) fn linked_blob(
    conn: &Connection,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Option<u64>> {
    let size = conn
        .prepare_cached(
            "SELECT b.size FROM repository_blobs rb
             JOIN repositories r ON r.id = rb.repo_id
             JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = ?1 AND rb.digest = ?2",
        )?
        .query_row((repo.as_str(), digest.to_string()), |row| row.get(0))
        .optional()?;
    Ok(size)
}

pub(super) fn known_blob(conn: &Connection, digest: &Digest) -> Result<Option<u64>> {
    // A `blobs` row outlives its last link (until the garbage collector sweeps it), so "known" means
    // "still linked somewhere", not merely "has a row".
    let size = conn
        .prepare_cached(
            "SELECT b.size FROM blobs b
             WHERE b.digest = ?1
               AND EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)",
        )?
        .query_row([digest.to_string()], |row| row.get(0))
        .optional()?;
    Ok(size)
}

pub(super) fn unlink_blob(tx: &Connection, repo: &RepoName, digest: &Digest) -> Result<bool> {
    let digest = digest.to_string();
    let removed = tx
        .prepare_cached(
            "DELETE FROM repository_blobs
             WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND digest = ?2",
        )?
        .execute((repo.as_str(), &digest))?;
    // The grace period of a blob that may have lost its last link starts now.
    tx.prepare_cached("UPDATE blobs SET touched_at = ?2 WHERE digest = ?1")?
        .execute((&digest, now()))?;
    Ok(removed > 0)
}

/// Checks every reference, then stores the manifest, its references and the tag. The caller's
/// transaction makes it all-or-nothing: an error return rolls back even the repository row.
pub(super) fn put_manifest(
    tx: &Connection,
    repo: &RepoName,
    manifest: &NewManifest,
    tag: Option<&Tag>,
) -> Result<()> {
    let repo_id = ensure_repo(tx, repo)?;
    {
        let mut linked = tx.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM repository_blobs WHERE repo_id = ?1 AND digest = ?2)",
        )?;
        for blob in &manifest.blobs {
            if !linked.query_row((repo_id, blob.to_string()), |row| row.get::<_, bool>(0))? {
                return Err(Error::MissingBlob(blob.clone()));
            }
        }
        let mut present = tx.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2)",
        )?;
        for child in &manifest.children {
            if !present.query_row((repo_id, child.to_string()), |row| row.get::<_, bool>(0))? {
                return Err(Error::MissingManifest(child.clone()));
            }
        }
    }

    let digest = manifest.digest.to_string();
    if let Some(tag) = tag.filter(|_| manifest.tag_immutable) {
        let current: Option<String> = tx
            .prepare_cached("SELECT manifest_digest FROM tags WHERE repo_id = ?1 AND name = ?2")?
            .query_row((repo_id, tag.as_str()), |row| row.get(0))
            .optional()?;
        if current.is_some_and(|d| d != digest) {
            return Err(Error::TagImmutable(tag.clone()));
        }
    }
    let now = now();
    // Same digest, same bytes: a second put of it changes nothing but the tag.
    tx.prepare_cached(
        "INSERT INTO manifests
           (repo_id, digest, media_type, payload, size, artifact_type, subject, annotations, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (repo_id, digest) DO NOTHING",
    )?
    .execute((
        repo_id,
        &digest,
        &manifest.media_type,
        &manifest.payload[..],
        manifest.payload.len(),
        &manifest.artifact_type,
        manifest.subject.as_ref().map(Digest::to_string),
        &manifest.annotations,
        now,
    ))?;
    {
        // ON CONFLICT: a manifest may list one blob twice (a repeated layer), and a repeated put
        // inserts the same references again.
        let mut blob_ref = tx.prepare_cached(
            "INSERT INTO manifest_blobs (repo_id, manifest_digest, blob_digest) VALUES (?1, ?2, ?3)
             ON CONFLICT (repo_id, manifest_digest, blob_digest) DO NOTHING",
        )?;
        for blob in &manifest.blobs {
            blob_ref.execute((repo_id, &digest, blob.to_string()))?;
        }
        let mut child_ref = tx.prepare_cached(
            "INSERT INTO manifest_children (repo_id, parent_digest, child_digest) VALUES (?1, ?2, ?3)
             ON CONFLICT (repo_id, parent_digest, child_digest) DO NOTHING",
        )?;
        for child in manifest.children.iter().chain(&manifest.optional_children) {
            child_ref.execute((repo_id, &digest, child.to_string()))?;
        }
    }
    if let Some(tag) = tag {
        set_tag(tx, repo_id, tag, &digest, now)?;
    }
    Ok(())
}

/// Points each tag of `tags` at its manifest, which must be in `repo` (the caller's transaction makes
/// it all or none).
pub(super) fn put_tags(tx: &Connection, repo: &RepoName, tags: &[(Tag, Digest)]) -> Result<()> {
    let Some((_, first)) = tags.first() else {
        return Ok(());
    };
    let Some(repo_id) = repo_id(tx, repo)? else {
        return Err(Error::MissingManifest(first.clone()));
    };
    let mut present = tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2)",
    )?;
    let now = now();
    for (tag, wanted) in tags {
        let digest = wanted.to_string();
        if !present.query_row((repo_id, &digest), |row| row.get::<_, bool>(0))? {
            return Err(Error::MissingManifest(wanted.clone()));
        }
        set_tag(tx, repo_id, tag, &digest, now)?;
    }
    Ok(())
}

/// Points `tag` of repository `repo_id` at the manifest `digest`. One statement moves the tag: readers
/// see the old target or the new one, never no tag.
fn set_tag(tx: &Connection, repo_id: i64, tag: &Tag, digest: &str, now: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO tags (repo_id, name, manifest_digest, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (repo_id, name)
         DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
    )?
    .execute((repo_id, tag.as_str(), digest, now))?;
    Ok(())
}

fn manifest_row(row: &Row<'_>) -> rusqlite::Result<ManifestRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

pub(super) fn manifest(
    conn: &Connection,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Option<StoredManifest>> {
    conn.prepare_cached(
        "SELECT m.digest, m.media_type, m.payload, m.subject FROM manifests m
         JOIN repositories r ON r.id = m.repo_id
         WHERE r.name = ?1 AND m.digest = ?2",
    )?
    .query_row((repo.as_str(), digest.to_string()), manifest_row)
    .optional()?
    .map(rows::stored_manifest)
    .transpose()
}

pub(super) fn tagged_manifest(
    conn: &Connection,
    repo: &RepoName,
    tag: &Tag,
) -> Result<Option<StoredManifest>> {
    // One statement, so the tag and the manifest come from the same snapshot.
    conn.prepare_cached(
        "SELECT m.digest, m.media_type, m.payload, m.subject FROM tags t
         JOIN repositories r ON r.id = t.repo_id
         JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.manifest_digest
         WHERE r.name = ?1 AND t.name = ?2",
    )?
    .query_row((repo.as_str(), tag.as_str()), manifest_row)
    .optional()?
    .map(rows::stored_manifest)
    .transpose()
}

/// Removes the manifest with its tags and its reference rows (children first: the keys point at it).
pub(super) fn delete_manifest(tx: &Connection, repo: &RepoName, digest: &Digest) -> Result<bool> {
    let Some(repo_id) = repo_id(tx, repo)? else {
        return Ok(false);
    };
    let digest = digest.to_string();
    // The blobs it referenced may have lost their last reference: their grace period starts now.
    tx.prepare_cached(
        "UPDATE blobs SET touched_at = ?3 WHERE digest IN
           (SELECT blob_digest FROM manifest_blobs WHERE repo_id = ?1 AND manifest_digest = ?2)",
    )?
    .execute((repo_id, &digest, now()))?;
    for sql in [
        "DELETE FROM tags WHERE repo_id = ?1 AND manifest_digest = ?2",
        "DELETE FROM manifest_blobs WHERE repo_id = ?1 AND manifest_digest = ?2",
        "DELETE FROM manifest_children WHERE repo_id = ?1 AND parent_digest = ?2",
    ] {
        tx.prepare_cached(sql)?.execute((repo_id, &digest))?;
    }
    let removed = tx
        .prepare_cached("DELETE FROM manifests WHERE repo_id = ?1 AND digest = ?2")?
        .execute((repo_id, &digest))?;
    Ok(removed > 0)
}

pub(super) fn delete_tag(conn: &Connection, repo: &RepoName, tag: &Tag) -> Result<bool> {
    let removed = conn
        .prepare_cached(
            "DELETE FROM tags
             WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND name = ?2",
        )?
        .execute((repo.as_str(), tag.as_str()))?;
    Ok(removed > 0)
}

pub(super) fn repo_exists(conn: &Connection, repo: &RepoName) -> Result<bool> {
    let exists = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM manifests m
                            JOIN repositories r ON r.id = m.repo_id
                            WHERE r.name = ?1)",
        )?
        .query_row([repo.as_str()], |row| row.get(0))?;
    Ok(exists)
}

// Listing: names are never empty, so "after nothing" is "after ''", which keeps one statement that
// walks the primary key in order from the right place.

pub(super) fn list_tags(
    conn: &Connection,
    repo: &RepoName,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.name FROM tags t
         JOIN repositories r ON r.id = t.repo_id
         WHERE r.name = ?1 AND t.name > ?2
         ORDER BY t.name
         LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        (repo.as_str(), after.unwrap_or(""), sql_limit(limit)),
        |row| row.get(0),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn list_repos(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.name FROM repositories r
         WHERE r.name > ?1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
         ORDER BY r.name
         LIMIT ?2",
    )?;
    let rows = stmt.query_map((after.unwrap_or(""), sql_limit(limit)), |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn referrers(
    conn: &Connection,
    repo: &RepoName,
    subject: &Digest,
) -> Result<Vec<Referrer>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations FROM manifests m
         JOIN repositories r ON r.id = m.repo_id
         WHERE r.name = ?1 AND m.subject = ?2
         ORDER BY m.digest",
    )?;
    let rows = stmt.query_map((repo.as_str(), subject.to_string()), |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
        ))
    })?;
    rows.map(|row| {
        let (digest, media_type, size, artifact_type, annotations) = row?;
        Ok(Referrer {
            digest: rows::digest(&digest)?,
            media_type,
            size,
            artifact_type,
            annotations,
        })
    })
    .collect()
}

/// Create (`expected_offset: None`) or compare-and-swap on the stored offset, each in one statement, so
/// two racing writers cannot both succeed.
pub(super) fn save_upload(
    conn: &Connection,
    session: &UploadSession,
    expected_offset: Option<u64>,
) -> Result<bool> {
    let s = session;
    let written = match expected_offset {
        None => conn
            .prepare_cached(
                "INSERT INTO uploads (id, repo, byte_offset, hash_state, started_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO NOTHING",
            )?
            .execute((
                &s.id,
                s.repo.as_str(),
                s.offset,
                &s.hash_state,
                s.started_at,
                s.updated_at,
            ))?,
        Some(expected) => conn
            .prepare_cached(
                "UPDATE uploads
                 SET repo = ?2, byte_offset = ?3, hash_state = ?4, started_at = ?5, updated_at = ?6
                 WHERE id = ?1 AND byte_offset = ?7",
            )?
            .execute((
                &s.id,
                s.repo.as_str(),
                s.offset,
                &s.hash_state,
                s.started_at,
                s.updated_at,
                expected,
            ))?,
    };
    Ok(written == 1)
}

fn upload_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

pub(super) fn upload(conn: &Connection, id: &str) -> Result<Option<UploadSession>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = ?1"
        ))?
        .query_row([id], upload_row)
        .optional()?;
    row.map(rows::upload_session).transpose()
}

/// Sessions not updated since `updated_before`, a page at a time in id order.
pub(super) fn stale_uploads(
    conn: &Connection,
    updated_before: i64,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<UploadSession>> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads
             WHERE updated_at < ?1 AND id > ?2
             ORDER BY id LIMIT ?3"
        ))?
        .query_map(
            (updated_before, after.unwrap_or(""), sql_limit(limit)),
            upload_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(crate::rows::upload_session).collect()
}

pub(super) fn delete_upload(conn: &Connection, id: &str) -> Result<bool> {
    let removed = conn
        .prepare_cached("DELETE FROM uploads WHERE id = ?1")?
        .execute([id])?;
    Ok(removed > 0)
}
