//! The queries behind each metadata role's method on PostgreSQL, one function per
//! method, each the SQL it runs.
//!
//! The SQL is SQLite's (`sqlite/ops.rs`) with `$N` placeholders and three differences that matter on a
//! server many replicas write at once:
//!
//! - Functions taking `tx` run inside a transaction the caller opened (READ COMMITTED). SQLite has one
//!   writer at a time, so checks and writes there cannot interleave with another writer; here they can,
//!   so each check locks what it relies on until the commit: `put_manifest` and `delete_manifest` lock
//!   the repository's row (`FOR NO KEY UPDATE`: they serialise per repository, while links and reads go
//!   on), and the reference checks lock the rows they found (`FOR SHARE`), so a concurrent unlink or
//!   delete waits until the manifest is stored and cannot slip between the check and the insert.
//! - Lists of references travel as one array parameter (`= ANY($2)`, `unnest`), one round trip however
//!   many layers a manifest has.
//! - Every text that is compared or ordered is a `COLLATE "C"` column (see `schema.rs`), so comparisons
//!   with parameters and `ORDER BY` are byte-wise whatever the database's locale.
//!
//! Digests are stored as their canonical text and parsed back on the way out; a value that does not
//! parse, or a negative size, is reported as [`Error::Corrupt`].

use std::collections::HashSet;

use oci::{Digest, RepoName, Tag};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

use super::now;
use super::pool::Conn;
use super::retry::Failure;
use crate::rows::{self, sql_limit};
use crate::{Error, NewManifest, Referrer, StoredManifest, UploadSession};

type Result<T> = std::result::Result<T, Failure>;

/// Column `idx` of `row`; a value of another type than the schema's is corrupt data (or a bug).
pub(super) fn get<'r, T: FromSql<'r>>(row: &'r Row, idx: usize) -> Result<T> {
    row.try_get(idx)
        .map_err(|e| Error::Corrupt(format!("column {idx}: {}", super::PgError(e))).into())
}

fn parse_digest(text: &str) -> Result<Digest> {
    Ok(rows::digest(text)?)
}

fn unsigned(value: i64, what: &str) -> Result<u64> {
    Ok(rows::unsigned(value, what)?)
}

fn signed(value: u64, what: &str) -> Result<i64> {
    Ok(rows::signed(value, what)?)
}

/// Locks the row of repository `repo`, creating it if needed, and returns its id. The lock (held to
/// the end of the transaction) serialises the manifest writes of one repository.
async fn lock_repo(tx: &mut Conn<'_>, repo: &RepoName) -> Result<i64> {
    const LOCK: &str = "SELECT id FROM repositories WHERE name = $1 FOR NO KEY UPDATE";
    let name = repo.as_str();
    if let Some(row) = tx.query_opt(LOCK, &[(&name, Type::TEXT)]).await? {
        return get(&row, 0);
    }
    tx.execute(
        "INSERT INTO repositories (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        &[(&name, Type::TEXT)],
    )
    .await?;
    // Read committed: this statement sees the row whether we inserted it or a concurrent writer did.
    let row = tx.query_one(LOCK, &[(&name, Type::TEXT)]).await?;
    get(&row, 0)
}

/// The id of repository `repo`, creating its row if needed (no lock: links do not need one).
async fn ensure_repo(tx: &mut Conn<'_>, repo: &RepoName) -> Result<i64> {
    const SELECT: &str = "SELECT id FROM repositories WHERE name = $1";
    let name = repo.as_str();
    if let Some(row) = tx.query_opt(SELECT, &[(&name, Type::TEXT)]).await? {
        return get(&row, 0);
    }
    tx.execute(
        "INSERT INTO repositories (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        &[(&name, Type::TEXT)],
    )
    .await?;
    let row = tx.query_one(SELECT, &[(&name, Type::TEXT)]).await?;
    get(&row, 0)
}

/// Links every `(digest, size)` of `blobs` to `repo` (the caller's transaction makes it all or none).
pub(super) async fn link_blobs(
    tx: &mut Conn<'_>,
    repo: &RepoName,
    blobs: &[(Digest, u64)],
) -> Result<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let repo_id = ensure_repo(tx, repo).await?;
    let now = now();
    // One statement per table for the whole list (an upsert may not touch a row twice: one entry per
    // digest, the first; in digest order, so two transactions linking overlapping lists lock their rows
    // in the same order).
    let mut unique: Vec<(&Digest, u64)> = Vec::with_capacity(blobs.len());
    let mut seen = HashSet::new();
    for (digest, size) in blobs {
        if seen.insert(digest) {
            unique.push((digest, *size));
        }
    }
    unique.sort_unstable_by_key(|(d, _)| d.to_string());
    let wanted: Vec<Digest> = unique.iter().map(|(d, _)| (*d).clone()).collect();
    let digests: Vec<String> = wanted.iter().map(Digest::to_string).collect();
    let sizes = unique
        .iter()
        .map(|(_, size)| signed(*size, "blob size"))
        .collect::<Result<Vec<i64>>>()?;
    // A digest names its content, so a second link with another size is a caller bug; the first size
    // recorded (the one verified when the bytes were stored) stands. The link touches the blob for the
    // garbage collector, unless a sweep claimed it: its bytes are going, so it may not be linked. (The
    // upsert waits for a claim holding the row and then sees its mark; a row it did not touch is not
    // returned.)
    let touched = tx
        .query(
            "INSERT INTO blobs (digest, size, touched_at)
             SELECT d, s, $3 FROM unnest($1::text[], $2::int8[]) AS b (d, s)
             ON CONFLICT (digest) DO UPDATE SET touched_at = excluded.touched_at
             WHERE blobs.deleting_since IS NULL
             RETURNING digest",
            &[
                (&digests, Type::TEXT_ARRAY),
                (&sizes, Type::INT8_ARRAY),
                (&now, Type::INT8),
            ],
        )
        .await?;
    if let Some(claimed) = first_missing(&wanted, &touched)? {
        return Err(Error::BlobDeleting(claimed.clone()).into());
    }
    tx.execute(
        "INSERT INTO repository_blobs (repo_id, digest, linked_at)
         SELECT $1, d, $3 FROM unnest($2::text[]) AS b (d)
         ON CONFLICT (repo_id, digest) DO NOTHING",
        &[
            (&repo_id, Type::INT8),
            (&digests, Type::TEXT_ARRAY),
            (&now, Type::INT8),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn linked_blob(
    c: &mut Conn<'_>,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Option<u64>> {
    let row = c
        .query_opt(
            "SELECT b.size FROM repository_blobs rb
             JOIN repositories r ON r.id = rb.repo_id
             JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = $1 AND rb.digest = $2",
            &[
                (&repo.as_str(), Type::TEXT),
                (&digest.to_string(), Type::TEXT),
            ],
        )
        .await?;
    row.map(|row| unsigned(get(&row, 0)?, "blob size"))
        .transpose()
}

pub(super) async fn known_blob(c: &mut Conn<'_>, digest: &Digest) -> Result<Option<u64>> {
    // A `blobs` row outlives its last link (until the garbage collector sweeps it), so "known" means
    // "still linked somewhere", not merely "has a row".
    let row = c
        .query_opt(
            "SELECT b.size FROM blobs b
             WHERE b.digest = $1
               AND EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)",
            &[(&digest.to_string(), Type::TEXT)],
        )
        .await?;
    row.map(|row| unsigned(get(&row, 0)?, "blob size"))
        .transpose()
}

pub(super) async fn unlink_blob(
    c: &mut Conn<'_>,
    repo: &RepoName,
    digest: &Digest,
) -> Result<bool> {
    let digest = digest.to_string();
    let removed = c
        .execute(
            "DELETE FROM repository_blobs
             WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2",
            &[(&repo.as_str(), Type::TEXT), (&digest, Type::TEXT)],
        )
        .await?;
    // The grace period of a blob that may have lost its last link starts now.
    c.execute(
        "UPDATE blobs SET touched_at = $2 WHERE digest = $1",
        &[(&digest, Type::TEXT), (&now(), Type::INT8)],
    )
    .await?;
    Ok(removed > 0)
}

/// The first of `wanted` (in their order) that is not in `found`.
fn first_missing<'a>(wanted: &'a [Digest], found: &[Row]) -> Result<Option<&'a Digest>> {
    let found: HashSet<String> = found
        .iter()
        .map(|row| get::<String>(row, 0))
        .collect::<Result<_>>()?;
    Ok(wanted.iter().find(|d| !found.contains(&d.to_string())))
}

/// Checks every reference, then stores the manifest, its references and the tag. The caller's
/// transaction makes it all-or-nothing: an error return rolls back even the repository row.
pub(super) async fn put_manifest(
    tx: &mut Conn<'_>,
    repo: &RepoName,
    manifest: &NewManifest,
    tag: Option<&Tag>,
) -> Result<()> {
    let repo_id = lock_repo(tx, repo).await?;
    let blobs: Vec<String> = manifest.blobs.iter().map(Digest::to_string).collect();
    let children: Vec<String> = manifest.children.iter().map(Digest::to_string).collect();
    if !blobs.is_empty() {
        // FOR SHARE on the blob rows first: a sweep's claim (which locks the row for update) waits for
        // our commit and then sees our reference, or we wait for its commit and then find the blob
        // being deleted, its links gone.
        let live = tx
            .query(
                "SELECT digest FROM blobs WHERE digest = ANY($1) AND deleting_since IS NULL
                 FOR SHARE",
                &[(&blobs, Type::TEXT_ARRAY)],
            )
            .await?;
        if let Some(missing) = first_missing(&manifest.blobs, &live)? {
            return Err(Error::MissingBlob(missing.clone()).into());
        }
        // FOR SHARE: an unlink of one of these waits for our commit instead of slipping in before it.
        let found = tx
            .query(
                "SELECT digest FROM repository_blobs WHERE repo_id = $1 AND digest = ANY($2)
                 FOR SHARE",
                &[(&repo_id, Type::INT8), (&blobs, Type::TEXT_ARRAY)],
            )
            .await?;
        if let Some(missing) = first_missing(&manifest.blobs, &found)? {
            return Err(Error::MissingBlob(missing.clone()).into());
        }
    }
    if !children.is_empty() {
        let found = tx
            .query(
                "SELECT digest FROM manifests WHERE repo_id = $1 AND digest = ANY($2) FOR SHARE",
                &[(&repo_id, Type::INT8), (&children, Type::TEXT_ARRAY)],
            )
            .await?;
        if let Some(missing) = first_missing(&manifest.children, &found)? {
            return Err(Error::MissingManifest(missing.clone()).into());
        }
    }

    let digest = manifest.digest.to_string();
    // The repository's row is locked (`lock_repo`), so no other tag write of it runs meanwhile.
    if let Some(tag) = tag.filter(|_| manifest.tag_immutable) {
        let current = tx
            .query_opt(
                "SELECT manifest_digest FROM tags WHERE repo_id = $1 AND name = $2",
                &[(&repo_id, Type::INT8), (&tag.as_str(), Type::TEXT)],
            )
            .await?;
        if let Some(row) = current
            && get::<String>(&row, 0)? != digest
        {
            return Err(Error::TagImmutable(tag.clone()).into());
        }
    }
    let now = now();
    let size = signed(manifest.payload.len() as u64, "manifest size")?;
    let subject = manifest.subject.as_ref().map(Digest::to_string);
    // Same digest, same bytes: a second put of it changes nothing but the tag.
    tx.execute(
        "INSERT INTO manifests
           (repo_id, digest, media_type, payload, size, artifact_type, subject, annotations, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (repo_id, digest) DO NOTHING",
        &[
            (&repo_id, Type::INT8),
            (&digest, Type::TEXT),
            (&manifest.media_type, Type::TEXT),
            (&&manifest.payload[..], Type::BYTEA),
            (&size, Type::INT8),
            (&manifest.artifact_type, Type::TEXT),
            (&subject, Type::TEXT),
            (&manifest.annotations, Type::TEXT),
            (&now, Type::INT8),
        ],
    )
    .await?;
    // ON CONFLICT: a manifest may list one blob twice (a repeated layer), and a repeated put inserts
    // the same references again.
    if !blobs.is_empty() {
        tx.execute(
            "INSERT INTO manifest_blobs (repo_id, manifest_digest, blob_digest)
             SELECT $1, $2, d FROM unnest($3::text[]) AS refs (d)
             ON CONFLICT (repo_id, manifest_digest, blob_digest) DO NOTHING",
            &[
                (&repo_id, Type::INT8),
                (&digest, Type::TEXT),
                (&blobs, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    }
    // Sparse indexes' children that need not exist are recorded all the same.
    let children: Vec<String> = children
        .into_iter()
        .chain(manifest.optional_children.iter().map(Digest::to_string))
        .collect();
    if !children.is_empty() {
        tx.execute(
            "INSERT INTO manifest_children (repo_id, parent_digest, child_digest)
             SELECT $1, $2, d FROM unnest($3::text[]) AS refs (d)
             ON CONFLICT (repo_id, parent_digest, child_digest) DO NOTHING",
            &[
                (&repo_id, Type::INT8),
                (&digest, Type::TEXT),
                (&children, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    }
    if let Some(tag) = tag {
        set_tags(tx, repo_id, &[tag.as_str()], &[digest.as_str()], now).await?;
    }
    Ok(())
}

/// Points each tag of `tags` at its manifest, which must be in `repo` (the caller's transaction makes
/// it all or none).
pub(super) async fn put_tags(
    tx: &mut Conn<'_>,
    repo: &RepoName,
    tags: &[(Tag, Digest)],
) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    // Locked as `put_manifest` locks it: no other tag write of the repository runs meanwhile.
    let repo_id = lock_repo(tx, repo).await?;
    let digests: Vec<Digest> = tags.iter().map(|(_, d)| d.clone()).collect();
    let wanted: Vec<String> = digests.iter().map(Digest::to_string).collect();
    // FOR SHARE: a delete of one of these manifests waits for our commit (and takes the tag with it)
    // instead of slipping in before it.
    let found = tx
        .query(
            "SELECT digest FROM manifests WHERE repo_id = $1 AND digest = ANY($2) FOR SHARE",
            &[(&repo_id, Type::INT8), (&wanted, Type::TEXT_ARRAY)],
        )
        .await?;
    if let Some(missing) = first_missing(&digests, &found)? {
        return Err(Error::MissingManifest(missing.clone()).into());
    }
    // One statement for them all, which may not touch a row twice: a tag listed twice ends where its
    // last entry points, as one move after the other would leave it.
    let mut seen = HashSet::new();
    let (mut names, mut targets): (Vec<&str>, Vec<&str>) = tags
        .iter()
        .zip(&wanted)
        .rev()
        .filter(|((tag, _), _)| seen.insert(tag.as_str()))
        .map(|((tag, _), digest)| (tag.as_str(), digest.as_str()))
        .unzip();
    names.reverse();
    targets.reverse();
    set_tags(tx, repo_id, &names, &targets, now()).await
}

/// Points each tag of `names` of repository `repo_id` at the manifest of `digests` in the same place
/// (the names distinct). One statement moves a tag: readers see the old target or the new one, never
/// no tag.
async fn set_tags(
    tx: &mut Conn<'_>,
    repo_id: i64,
    names: &[&str],
    digests: &[&str],
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO tags (repo_id, name, manifest_digest, updated_at)
         SELECT $1, n, d, $4 FROM unnest($2::text[], $3::text[]) AS t (n, d)
         ON CONFLICT (repo_id, name)
         DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
        &[
            (&repo_id, Type::INT8),
            (&names, Type::TEXT_ARRAY),
            (&digests, Type::TEXT_ARRAY),
            (&now, Type::INT8),
        ],
    )
    .await?;
    Ok(())
}

/// A `StoredManifest` from the columns of `rows::ManifestRow`.
fn stored_manifest(row: &Row) -> Result<StoredManifest> {
    let row = (get(row, 0)?, get(row, 1)?, get(row, 2)?, get(row, 3)?);
    Ok(rows::stored_manifest(row)?)
}

pub(super) async fn manifest(
    c: &mut Conn<'_>,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Option<StoredManifest>> {
    let row = c
        .query_opt(
            "SELECT m.digest, m.media_type, m.payload, m.subject FROM manifests m
             JOIN repositories r ON r.id = m.repo_id
             WHERE r.name = $1 AND m.digest = $2",
            &[
                (&repo.as_str(), Type::TEXT),
                (&digest.to_string(), Type::TEXT),
            ],
        )
        .await?;
    row.as_ref().map(stored_manifest).transpose()
}

pub(super) async fn tagged_manifest(
    c: &mut Conn<'_>,
    repo: &RepoName,
    tag: &Tag,
) -> Result<Option<StoredManifest>> {
    // One statement, so the tag and the manifest come from the same snapshot.
    let row = c
        .query_opt(
            "SELECT m.digest, m.media_type, m.payload, m.subject FROM tags t
             JOIN repositories r ON r.id = t.repo_id
             JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.manifest_digest
             WHERE r.name = $1 AND t.name = $2",
            &[(&repo.as_str(), Type::TEXT), (&tag.as_str(), Type::TEXT)],
        )
        .await?;
    row.as_ref().map(stored_manifest).transpose()
}

/// Locks the row of repository `repo` as every manifest write of it does, if it exists; its id.
pub(super) async fn lock_existing_repo(tx: &mut Conn<'_>, repo: &RepoName) -> Result<Option<i64>> {
    let row = tx
        .query_opt(
            "SELECT id FROM repositories WHERE name = $1 FOR NO KEY UPDATE",
            &[(&repo.as_str(), Type::TEXT)],
        )
        .await?;
    row.map(|row| get(&row, 0)).transpose()
}

/// Removes the manifest with its tags and its reference rows (children first: the keys point at it).
pub(super) async fn delete_manifest(
    tx: &mut Conn<'_>,
    repo: &RepoName,
    digest: &Digest,
) -> Result<bool> {
    let Some(repo_id) = lock_existing_repo(tx, repo).await? else {
        return Ok(false);
    };
    let digest = digest.to_string();
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 2] =
        [(&repo_id, Type::INT8), (&digest, Type::TEXT)];
    // The blobs it referenced may have lost their last reference: their grace period starts now.
    tx.execute(
        "UPDATE blobs SET touched_at = $3 WHERE digest IN
           (SELECT blob_digest FROM manifest_blobs WHERE repo_id = $1 AND manifest_digest = $2)",
        &[
            (&repo_id, Type::INT8),
            (&digest, Type::TEXT),
            (&now(), Type::INT8),
        ],
    )
    .await?;
    for sql in [
        "DELETE FROM tags WHERE repo_id = $1 AND manifest_digest = $2",
        "DELETE FROM manifest_blobs WHERE repo_id = $1 AND manifest_digest = $2",
        "DELETE FROM manifest_children WHERE repo_id = $1 AND parent_digest = $2",
    ] {
        tx.execute(sql, &params).await?;
    }
    let removed = tx
        .execute(
            "DELETE FROM manifests WHERE repo_id = $1 AND digest = $2",
            &params,
        )
        .await?;
    Ok(removed > 0)
}

pub(super) async fn delete_tag(c: &mut Conn<'_>, repo: &RepoName, tag: &Tag) -> Result<bool> {
    let removed = c
        .execute(
            "DELETE FROM tags
             WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2",
            &[(&repo.as_str(), Type::TEXT), (&tag.as_str(), Type::TEXT)],
        )
        .await?;
    Ok(removed > 0)
}

pub(super) async fn repo_exists(c: &mut Conn<'_>, repo: &RepoName) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM manifests m
                            JOIN repositories r ON r.id = m.repo_id
                            WHERE r.name = $1)",
            &[(&repo.as_str(), Type::TEXT)],
        )
        .await?;
    get(&row, 0)
}

// Listing: names are never empty, so "after nothing" is "after ''", which keeps one statement that
// walks the primary key in order from the right place.

fn names(rows: &[Row]) -> Result<Vec<String>> {
    rows.iter().map(|row| get(row, 0)).collect()
}

pub(super) async fn list_tags(
    c: &mut Conn<'_>,
    repo: &RepoName,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT t.name FROM tags t
             JOIN repositories r ON r.id = t.repo_id
             WHERE r.name = $1 AND t.name > $2
             ORDER BY t.name
             LIMIT $3",
            &[
                (&repo.as_str(), Type::TEXT),
                (&after.unwrap_or(""), Type::TEXT),
                (&sql_limit(limit), Type::INT8),
            ],
        )
        .await?;
    names(&rows)
}

pub(super) async fn list_repos(
    c: &mut Conn<'_>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT r.name FROM repositories r
             WHERE r.name > $1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
             ORDER BY r.name
             LIMIT $2",
            &[
                (&after.unwrap_or(""), Type::TEXT),
                (&sql_limit(limit), Type::INT8),
            ],
        )
        .await?;
    names(&rows)
}

pub(super) async fn referrers(
    c: &mut Conn<'_>,
    repo: &RepoName,
    subject: &Digest,
) -> Result<Vec<Referrer>> {
    let rows = c
        .query(
            "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations FROM manifests m
             JOIN repositories r ON r.id = m.repo_id
             WHERE r.name = $1 AND m.subject = $2
             ORDER BY m.digest",
            &[
                (&repo.as_str(), Type::TEXT),
                (&subject.to_string(), Type::TEXT),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Referrer {
                digest: parse_digest(&get::<String>(row, 0)?)?,
                media_type: get(row, 1)?,
                size: unsigned(get(row, 2)?, "manifest size")?,
                artifact_type: get(row, 3)?,
                annotations: get(row, 4)?,
            })
        })
        .collect()
}

/// Create (`expected_offset: None`) or compare-and-swap on the stored offset, each in one statement, so
/// two racing writers cannot both succeed.
pub(super) async fn save_upload(
    c: &mut Conn<'_>,
    session: &UploadSession,
    expected_offset: Option<u64>,
) -> Result<bool> {
    let s = session;
    let offset = signed(s.offset, "upload offset")?;
    let written = match expected_offset {
        None => {
            c.execute(
                "INSERT INTO uploads (id, repo, byte_offset, hash_state, started_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    (&s.id, Type::TEXT),
                    (&s.repo.as_str(), Type::TEXT),
                    (&offset, Type::INT8),
                    (&s.hash_state, Type::BYTEA),
                    (&s.started_at, Type::INT8),
                    (&s.updated_at, Type::INT8),
                ],
            )
            .await?
        }
        Some(expected) => {
            let expected = signed(expected, "upload offset")?;
            c.execute(
                "UPDATE uploads
                 SET repo = $2, byte_offset = $3, hash_state = $4, started_at = $5, updated_at = $6
                 WHERE id = $1 AND byte_offset = $7",
                &[
                    (&s.id, Type::TEXT),
                    (&s.repo.as_str(), Type::TEXT),
                    (&offset, Type::INT8),
                    (&s.hash_state, Type::BYTEA),
                    (&s.started_at, Type::INT8),
                    (&s.updated_at, Type::INT8),
                    (&expected, Type::INT8),
                ],
            )
            .await?
        }
    };
    Ok(written == 1)
}

/// An `UploadSession` from the columns of `rows::UploadRow`.
fn upload_session(row: &Row) -> Result<UploadSession> {
    let row = (
        get(row, 0)?,
        get(row, 1)?,
        get(row, 2)?,
        get(row, 3)?,
        get(row, 4)?,
        get(row, 5)?,
    );
    Ok(rows::upload_session(row)?)
}

pub(super) async fn upload(c: &mut Conn<'_>, id: &str) -> Result<Option<UploadSession>> {
    let row = c
        .query_opt(
            "SELECT id, repo, byte_offset, hash_state, started_at, updated_at FROM uploads
             WHERE id = $1",
            &[(&id, Type::TEXT)],
        )
        .await?;
    row.as_ref().map(upload_session).transpose()
}

/// Sessions not updated since `updated_before`, a page at a time in id order. The id column is plain
/// TEXT in the schema, so the byte order of the other listings is asked for explicitly.
pub(super) async fn stale_uploads(
    c: &mut Conn<'_>,
    updated_before: i64,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<UploadSession>> {
    let rows = c
        .query(
            r#"SELECT id, repo, byte_offset, hash_state, started_at, updated_at FROM uploads
               WHERE updated_at < $1 AND id COLLATE "C" > $2
               ORDER BY id COLLATE "C"
               LIMIT $3"#,
            &[
                (&updated_before, Type::INT8),
                (&after.unwrap_or(""), Type::TEXT),
                (&sql_limit(limit), Type::INT8),
            ],
        )
        .await?;
    rows.iter().map(upload_session).collect()
}

pub(super) async fn delete_upload(c: &mut Conn<'_>, id: &str) -> Result<bool> {
    let removed = c
        .execute("DELETE FROM uploads WHERE id = $1", &[(&id, Type::TEXT)])
        .await?;
    Ok(removed > 0)
}
